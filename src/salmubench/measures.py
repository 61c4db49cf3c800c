"""Formulas more than one stage uses, defined once (STYLE.md §13): pair similarity, the
similarity matrix, a seeded derangement, and the share of a gap a model closed.

Unlearning methods call these on features with gradients; the metrics call them on
embeddings under `torch.no_grad()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# torch only inside the functions that compute with it: the report imports this module for
# `gap_share`/`rounded` and runs without torch (tests/test_torch_free.py).
if TYPE_CHECKING:
    import torch

# Metrics and scores are stored rounded to this many decimals ...
DIGITS = 6
# ... so two references closer than this have no gap between them to close: noise.
GAP_EPS = 1e-6


def check_matrix(what: str, x: torch.Tensor) -> None:
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a 2-D tensor [rows, dim], got {shape}")


def pair_similarity(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """[n] row-wise dot product: the cosine similarity of each (image i, text i) pair of
    unit vectors."""
    check_matrix("image", image)
    check_matrix("text", text)
    if image.shape != text.shape:
        raise ValueError(
            f"image {tuple(image.shape)} and text {tuple(text.shape)} must have the same shape"
        )
    return (image * text).sum(dim=1)


def similarity_matrix(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """[n, m] cosine similarity of every image with every text (unit vectors)."""
    return image @ text.T


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of range(n) without fixed points (n >= 2): nobody keeps their
    own caption. One cycle through a seeded random order, so one draw, never a retry."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    import torch

    order = torch.randperm(n, generator=generator)
    result = torch.empty(n, dtype=torch.long)
    result[order] = order.roll(-1)
    return result


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`: the same draws on every machine."""
    import torch

    return torch.Generator().manual_seed(seed)


def gap_share(value: float, start: float, end: float) -> float | None:
    """How far `value` has gone from `start` towards `end`, as a share of the gap between
    them (0 at start, 1 at end); None when the two are closer than GAP_EPS. Forgetting is
    gap_share(x, compromised, clean), holdout kept gap_share(x, clean, compromised)."""
    gap = end - start
    if abs(gap) < GAP_EPS:
        return None
    return (value - start) / gap


def rounded(x: float | None) -> float | None:
    """A score as stored and shown: DIGITS decimals (None stays None)."""
    return None if x is None else round(float(x), DIGITS)
