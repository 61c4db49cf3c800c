"""Efficacy metrics (SPEC.md §4), read on `forget` against the Clean model: RetFail,
AssocStr, ACS, IdZSC, CoreAssoc."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from salmubench.eval.metrics.base import (
    IDZSC_TEMPLATES,
    EvalData,
    EvalSettings,
    MetricResult,
    encode,
    get_split,
    mean_result,
    mean_similarity,
    meta_field,
    register,
)
from salmubench.eval.metrics.ranking import (
    class_embeddings,
    probe_accuracy,
    retrieval_ranks,
    zero_shot_accuracy,
)
from salmubench.measures import pair_similarity


def retfail_gallery_sizes(n_forget: int, n_retain: int, settings: EvalSettings) -> tuple[int, int]:
    """(k_forget, k_retain): how many forget and retain_disjoint captions RetFail draws.

    k_forget = round(retfail_forget_fraction * n_forget), at least 1; k_retain =
    round(retfail_retain_per_forget * k_forget); each capped by retfail_distractors and by
    its supply (n_forget forget captions, n_retain evaluated retain_disjoint captions).
    Python's round (half to even). Paper scale: 30,468 forget captions -> 1,000 + 1,000.
    """
    for what, n in (("n_forget", n_forget), ("n_retain", n_retain)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{what} must be an int >= 0, got {n!r}")
    cap = settings.retfail_distractors
    k_forget = min(max(1, round(settings.retfail_forget_fraction * n_forget)), cap, n_forget)
    k_retain = min(round(settings.retfail_retain_per_forget * k_forget), cap, n_retain)
    return k_forget, k_retain


def retfail_gallery(
    n_forget: int, n_retain: int, settings: EvalSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The drawn gallery: (forget rows, retain_disjoint rows), both without replacement,
    k_forget then k_retain from one default_rng(settings.seed)."""
    k_forget, k_retain = retfail_gallery_sizes(n_forget, n_retain, settings)
    rng = np.random.default_rng(settings.seed)
    pick_forget = rng.choice(n_forget, size=k_forget, replace=False)
    pick_retain = rng.choice(n_retain, size=k_retain, replace=False)
    return pick_forget, pick_retain


@register(
    "retfail",
    splits=("forget", "retain_disjoint"),
)
@torch.no_grad()
def retfail(data: EvalData) -> MetricResult:
    """Gallery drawn once (`retfail_gallery`) and shared by every row.

    For row i, a gallery caption does not compete (the `ignore` mask) when it is row i's own
    caption, an identical string, or a caption of the same association: same persona and
    same attribute. Every image of an association carries a caption of that association in
    another wording; a model that memorised the association ranks those paraphrases as high
    as the true caption, so letting them compete would measure wording, not the link. This
    is our documented choice: the official evaluator's handling is not published, and at
    the paper's 3% draw a row rarely meets a paraphrase. extra: r1; gallery, k_forget
    (distractors_forget) and k_retain (distractors_retain); the shares of forget and of the
    evaluated retain_disjoint captions drawn; paraphrases_ignored = mean number of gallery
    captions per row ignored as its own association, its own caption not counted.
    """
    forget = get_split(data, "forget")
    retain = get_split(data, "retain_disjoint")
    n_forget, n_retain = len(forget.meta), len(retain.meta)
    pick_f, pick_r = retfail_gallery(n_forget, n_retain, data.settings)
    pick_f, pick_r = torch.from_numpy(pick_f), torch.from_numpy(pick_r)
    k_f, k_r = len(pick_f), len(pick_r)
    gallery = torch.cat([forget.text[pick_f], retain.text[pick_r]])

    forget_txt = meta_field("forget", forget, "txt")
    retain_txt = meta_field("retain_disjoint", retain, "txt")
    ids: dict[str, int] = {}
    row_ids = torch.tensor([ids.setdefault(t, len(ids)) for t in forget_txt], dtype=torch.long)
    retain_ids = torch.tensor([ids.setdefault(t, len(ids)) for t in retain_txt], dtype=torch.long)
    gallery_ids = torch.cat([row_ids[pick_f], retain_ids[pick_r]])

    associations = zip(
        meta_field("forget", forget, "persona"),
        meta_field("forget", forget, "attribute"),
        strict=True,
    )
    assoc: dict[tuple[Any, Any], int] = {}
    row_assoc = torch.tensor([assoc.setdefault(a, len(assoc)) for a in associations])
    no_assoc = torch.full((k_r,), -1, dtype=torch.long)  # retain captions belong to none
    gallery_assoc = torch.cat([row_assoc[pick_f], no_assoc])
    same_assoc = row_assoc[:, None] == gallery_assoc[None, :]
    ignore = (row_ids[:, None] == gallery_ids[None, :]) | same_assoc

    own = torch.zeros_like(same_assoc)
    own[pick_f, torch.arange(k_f)] = True
    paraphrases = (same_assoc & ~own).sum(dim=1).to(torch.float64)

    ranks = retrieval_ranks(forget.image, forget.text, gallery, ignore)
    return mean_result(
        1.0 / ranks.to(torch.float64),
        meta_field("forget", forget, "key"),
        r1=float((ranks == 1).to(torch.float64).mean()),
        gallery=k_f + k_r + 1,
        distractors_forget=k_f,
        distractors_retain=k_r,
        forget_fraction=k_f / n_forget,
        retain_fraction=k_r / n_retain,
        paraphrases_ignored=float(paraphrases.mean()),
    )


@register(
    "assoc_str",
    splits=("forget",),
)
def assoc_str(data: EvalData) -> MetricResult:
    return mean_similarity(data, "forget")


@register(
    "acs",
    splits=("forget",),
)
def acs(data: EvalData) -> MetricResult:
    """per_item covers every held-out probe sample, so value == mean(per_item).

    Keys: a true pair is named by its sample key; a shuffled pair (image i, caption j) by
    "<key i>~<key j>". extra: train/test sizes.
    """
    forget = get_split(data, "forget")
    keys = meta_field("forget", forget, "key")
    settings = data.settings
    outcome = probe_accuracy(forget.image, forget.text, settings.seed, settings.acs_test_fraction)
    n = len(keys)
    item_keys = [
        keys[i] if i < n else f"{keys[i - n]}~{keys[outcome.perm[i - n]]}"
        for i in outcome.test_index.tolist()
    ]
    return mean_result(
        outcome.correct, item_keys, test=len(item_keys), train=2 * n - len(item_keys)
    )


@register(
    "idzsc",
    splits=("forget_identity",),
)
@torch.no_grad()
def idzsc(data: EvalData) -> MetricResult:
    """Classes: sorted unique names; prompts IDZSC_TEMPLATES ensembled. per_item: 1/0."""
    split = get_split(data, "forget_identity")
    names = meta_field("forget_identity", split, "name")
    classes = sorted(set(names))
    if len(classes) < 2:
        raise ValueError(
            f"idzsc needs at least 2 personas in 'forget_identity' to choose among, "
            f"got {len(classes)}: {classes}"
        )
    index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([index[n] for n in names], dtype=torch.long)
    class_text = class_embeddings(data, classes, IDZSC_TEMPLATES)
    _, correct = zero_shot_accuracy(split.image, class_text, labels)
    keys = meta_field("forget_identity", split, "key")
    return mean_result(correct, keys, classes=len(classes), chance=1 / len(classes))


@register(
    "core_assoc",
    splits=("forget",),
)
@torch.no_grad()
def core_assoc(data: EvalData) -> MetricResult:
    """The bare texts are de-duplicated and encoded in one call. per_item: the row's max."""
    forget = get_split(data, "forget")
    names = meta_field("forget", forget, "name")
    values = meta_field("forget", forget, "value")
    first = [f"{n} {v}" for n, v in zip(names, values, strict=True)]
    second = [f"{v} {n}" for n, v in zip(names, values, strict=True)]
    texts = list(dict.fromkeys(first + second))
    index = {t: i for i, t in enumerate(texts)}
    emb = encode(data, texts)
    if emb.shape[1] != forget.image.shape[1]:
        raise ValueError(
            f"encode_text returned dim {emb.shape[1]}, forget images have {forget.image.shape[1]}"
        )
    sim_first = pair_similarity(forget.image, emb[torch.tensor([index[t] for t in first])])
    sim_second = pair_similarity(forget.image, emb[torch.tensor([index[t] for t in second])])
    return mean_result(
        torch.maximum(sim_first, sim_second),
        meta_field("forget", forget, "key"),
        texts=len(texts),
    )
