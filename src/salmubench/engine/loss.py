"""The CLIP contrastive loss, aware of duplicate captions in a batch.

Procedural captions repeat ("a large red circle in the centre"): with the usual one-hot
targets, two identical captions in one batch are each other's false negatives. Here every
caption with the same text is a positive, with the target mass split evenly (SPEC.md §7).
With unique captions this is exactly OpenCLIP's ClipLoss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_targets(caption_ids: torch.Tensor) -> torch.Tensor:
    """[B, B] row-stochastic targets: 1/k on the k captions equal to row i's (itself included)."""
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def contrastive_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, caption_ids: torch.Tensor
) -> torch.Tensor:
    """Symmetric cross-entropy of scaled cosine logits against duplicate-aware targets."""
    logits = logit_scale * image @ text.T
    targets = soft_targets(caption_ids)
    loss_i = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(targets.T * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2
