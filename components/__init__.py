"""Kubeflow Pipelines v2 components: one per stage, thin shells over `salmubench <stage>`."""
