"""Pure helpers of the metrics: retrieval ranks, zero-shot accuracy, prompt-ensembled class
embeddings and the ACS probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from salmubench.eval.metrics.base import EvalData, encode
from salmubench.measures import check_matrix, derangement, pair_similarity, seeded_generator

# Rows of the [rows, gallery] similarity matrix computed at once in `retrieval_ranks`.
_RANK_CHUNK = 4096


@torch.no_grad()
def retrieval_ranks(
    image: torch.Tensor,
    true_text: torch.Tensor,
    gallery: torch.Tensor,
    ignore: torch.Tensor,
) -> torch.Tensor:
    """Rank [N] (1 = best) of each image's true caption among itself + its gallery.

    image, true_text: [N, D]; gallery: [G, D]; ignore: [N, G] bool, True where gallery entry g
    does not compete for row i (e.g. it is row i's own caption). rank_i = 1 + the number of
    non-ignored gallery entries whose similarity to image i is STRICTLY greater than the true
    caption's: ties favour the true caption. Similarities are exact float comparisons, so a
    gallery copy of the true caption must be ignored, not left to tie.
    """
    check_matrix("image", image)
    check_matrix("true_text", true_text)
    check_matrix("gallery", gallery)
    n, d = image.shape
    if true_text.shape != (n, d):
        raise ValueError(f"true_text must be {(n, d)} like image, got {tuple(true_text.shape)}")
    if gallery.shape[1] != d:
        raise ValueError(f"gallery must have dim {d} like image, got {tuple(gallery.shape)}")
    g = gallery.shape[0]
    if ignore.dtype != torch.bool or tuple(ignore.shape) != (n, g):
        raise ValueError(
            f"ignore must be a bool tensor of shape {(n, g)}, "
            f"got {ignore.dtype} {tuple(ignore.shape)}"
        )
    true_sim = pair_similarity(image, true_text)
    ranks = torch.empty(n, dtype=torch.long)
    for start in range(0, n, _RANK_CHUNK):
        stop = min(start + _RANK_CHUNK, n)
        sim = image[start:stop] @ gallery.T  # [rows, G]
        beats = (sim > true_sim[start:stop, None]) & ~ignore[start:stop]
        ranks[start:stop] = 1 + beats.sum(dim=1)
    return ranks


@torch.no_grad()
def zero_shot_accuracy(
    image: torch.Tensor, class_text: torch.Tensor, labels: torch.Tensor
) -> tuple[float, torch.Tensor]:
    """Top-1 accuracy of argmax_c <image, class_text[c]> against `labels`; also [N] correct.

    On a tie the lowest class index wins (torch.argmax).
    """
    check_matrix("image", image)
    check_matrix("class_text", class_text)
    n, d = image.shape
    c = class_text.shape[0]
    if n == 0:
        raise ValueError("zero_shot_accuracy needs at least one image, got 0")
    if class_text.shape[1] != d:
        raise ValueError(f"class_text must have dim {d} like image, got {tuple(class_text.shape)}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be a 1-D tensor of length {n}, got {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= c:
        bad = labels[(labels < 0) | (labels >= c)][0].item()
        raise ValueError(f"label {bad} out of range; valid: 0..{c - 1} ({c} classes)")
    predicted = (image @ class_text.T).argmax(dim=1)
    correct = predicted == labels.to(predicted.device)
    return correct.float().mean().item(), correct


@torch.no_grad()
def class_embeddings(
    data: EvalData, names: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """[C, D] CLIP prompt ensembling: mean of each name's template embeddings, re-normalised.

    Every template holds one "{}" that the name replaces (plain substitution, so names may
    contain braces). All C * T prompts go through ONE encode_text call, name-major.
    """
    if not names:
        raise ValueError("class_embeddings needs at least one class name, got none")
    if not templates:
        raise ValueError("class_embeddings needs at least one template, got none")
    for template in templates:
        if template.count("{}") != 1:
            raise ValueError(f"template {template!r} must contain exactly one '{{}}'")
    prompts = [t.replace("{}", name) for name in names for t in templates]
    emb = encode(data, prompts)
    emb = emb.reshape(len(names), len(templates), emb.shape[1]).mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=1)


class ProbeOutcome(NamedTuple):
    """What `probe_accuracy` returns; unpacks like a tuple, accuracy first.

    The probe's samples are indexed 0..2N-1: sample i < N is the true pair (image i, text i),
    sample N + i the shuffled pair (image i, text perm[i]).
    """

    accuracy: float  # on the held-out samples, positives and negatives together
    correct: torch.Tensor  # [T] bool: each held-out sample classified correctly
    test_index: np.ndarray  # [T] int: which probe sample each entry of `correct` is
    perm: np.ndarray  # [N] the derangement that built the negatives


@torch.no_grad()
def probe_accuracy(
    image: torch.Tensor, text: torch.Tensor, seed: int, test_fraction: float
) -> ProbeOutcome:
    """ACS: accuracy of a logistic-regression probe telling true pairs from shuffled ones.

    Features are image * text element-wise, standardised on the training part; negatives
    pair image i with text perm[i], perm a seeded derangement. Shuffling does not look at
    captions, so a negative whose caption happens to equal the true one (duplicate captions)
    stays labelled negative. The stratified train/test split and the probe use `seed`.
    """
    check_matrix("image", image)
    if image.shape != text.shape:
        raise ValueError(
            f"image {tuple(image.shape)} and text {tuple(text.shape)} must have the same shape"
        )
    n = image.shape[0]
    if n < 2:
        raise ValueError(f"probe_accuracy needs at least 2 pairs to shuffle, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    perm = derangement(n, seeded_generator(seed)).numpy()
    positives = image * text
    negatives = image * text[torch.from_numpy(perm)]
    features = torch.cat([positives, negatives]).to(torch.float64).cpu().numpy()
    labels = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    train_idx, test_idx = train_test_split(
        np.arange(2 * n), test_size=test_fraction, stratify=labels, random_state=seed
    )
    # Standardised first (statistics from the training part only): products of unit vectors
    # are O(1/D), so at D=512 an unscaled lbfgs probe stops at its first step (gradient below
    # tol) and reports exactly chance even for a clearly learnable signal.
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    probe.fit(features[train_idx], labels[train_idx])
    correct = probe.predict(features[test_idx]) == labels[test_idx]
    return ProbeOutcome(float(correct.mean()), torch.from_numpy(correct), test_idx, perm)
