"""Evaluation: embeddings computed once per split, the ten SALMUBench metrics, targets."""
