"""Training: Clean and Compromised CLIP models from scratch, resumable and distributed."""
