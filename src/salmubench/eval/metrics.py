"""The ten SALMUBench metrics (SPEC.md §4) as pure functions of L2-normalised embeddings.

The evaluator embeds every split once and hands each metric an `EvalData`; a metric reads
the splits it declares, computes with torch (float32, no autograd) and returns one
`MetricResult`: a headline value plus one value per evaluated item. Metrics live in the
`METRICS` registry, in the order of SPEC.md §4; `compute_all` runs them in that order.

Efficacy metrics are read on `forget` against the Clean model's values; utility metrics
against the Compromised model's. Of retain_joint and retain_disjoint an `EvalData` serves only
the evaluation part (`salmubench.data.evaluated`), so no metric reads an item that
unlearning may train on; the metrics themselves never look at the partition.
`Metric.better` says which direction means more forgetting (efficacy) or more retained
(utility).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# The paper's RetFail proportions (1,000 of 30,468 forget captions; 1:1 retain), kept at any
# scale; their one home is the eval config.
from salmubench.config import RETFAIL_FORGET_FRACTION, RETFAIL_RETAIN_PER_FORGET
from salmubench.measures import check_matrix, derangement, pair_similarity, seeded_generator
from salmubench.vocab import METRIC_SPLITS

log = logging.getLogger(__name__)

FAMILIES = ("efficacy", "utility")
TARGETS = ("clean", "compromised")
DIRECTIONS = ("lower", "higher")
IDZSC_TEMPLATES = ("a photo of {}.", "{}")

# Rows of the [rows, gallery] similarity matrix computed at once in `retrieval_ranks`.
_RANK_CHUNK = 4096
# How far a split's embedding norms may stray from 1 before we refuse it.
_NORM_TOLERANCE = 1e-3


# --------------------------------------------------------------------------- data protocol


@dataclass(frozen=True)
class Split:
    """One split, embedded once by the evaluator. Row i of every field is sample i."""

    image: torch.Tensor  # [N, D] float32, L2-normalised image embeddings
    text: torch.Tensor  # [N, D] float32, L2-normalised embeddings of each sample's own caption
    meta: list[dict]  # per sample: its json metadata plus "key", "txt"; genknow also "cls"


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation knobs that are not model- or data-specific."""

    seed: int = 0  # draws the RetFail gallery, the ACS derangement and the ACS train/test split
    # RetFail forget distractors = round(fraction * forget captions), at least 1 (paper: 3.3%)
    retfail_forget_fraction: float = RETFAIL_FORGET_FRACTION
    # RetFail retain_disjoint distractors per forget distractor (paper: 1.0)
    retfail_retain_per_forget: float = RETFAIL_RETAIN_PER_FORGET
    retfail_distractors: int = 1000  # the most distractors per source, whatever the fractions
    acs_test_fraction: float = 0.3  # share of ACS probe samples held out for its accuracy

    def __post_init__(self) -> None:
        fraction = self.retfail_forget_fraction
        if not _is_number(fraction) or not 0.0 < fraction <= 1.0:
            raise ValueError(f"retfail_forget_fraction must lie in (0, 1], got {fraction!r}")
        ratio = self.retfail_retain_per_forget
        if not _is_number(ratio) or not 0.0 <= ratio < math.inf:
            raise ValueError(
                f"retfail_retain_per_forget must be a finite number >= 0, got {ratio!r}"
            )
        cap = self.retfail_distractors
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValueError(f"retfail_distractors must be an int >= 0, got {cap!r}")
        if not 0.0 < self.acs_test_fraction < 1.0:
            raise ValueError(
                f"acs_test_fraction must lie strictly between 0 and 1, "
                f"got {self.acs_test_fraction!r}"
            )


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


class EvalData(Protocol):
    """What a metric may read: embedded splits, the GenKnow classes and a text encoder.

    `split("retain_joint")` and `split("retain_disjoint")` are the evaluation parts of those
    splits, never the part unlearning may train on.
    """

    settings: EvalSettings
    classes: list[str]  # GenKnow class names, index = label, e.g. "red circle"
    class_templates: list[str]  # e.g. "a photo of a {}."

    def split(self, name: str) -> Split: ...  # one of METRIC_SPLITS

    def encode_text(self, texts: list[str]) -> torch.Tensor: ...  # [M, D] L2-normalised


# --------------------------------------------------------------------------- registry


@dataclass
class MetricResult:
    """One metric's outcome. `per_item[i]` belongs to the item named `keys[i]`."""

    value: float  # the headline number
    per_item: list[float]  # one value per evaluated item (reciprocal rank, similarity, 1/0...)
    keys: list[str]  # item keys aligned with per_item
    extra: dict[str, float | int] = field(default_factory=dict)  # e.g. {"r1": .., "gallery": ..}


@dataclass(frozen=True)
class Metric:
    """A registered metric and how to read it."""

    name: str  # e.g. "retfail"
    family: str  # "efficacy" (on forget, target Clean) or "utility" (target Compromised)
    target: str  # "clean" | "compromised": whose value a perfect unlearning reproduces
    better: str  # "lower" | "higher": more forgetting (efficacy) / more retained (utility)
    splits: tuple[str, ...]  # splits it reads
    fn: Callable[[EvalData], MetricResult]
    description: str


METRICS: dict[str, Metric] = {}


def register(
    name: str,
    *,
    family: str,
    target: str,
    better: str,
    splits: tuple[str, ...],
    description: str,
) -> Callable[[Callable[[EvalData], MetricResult]], Callable[[EvalData], MetricResult]]:
    """Decorator: register `fn(data) -> MetricResult` as metric `name`. Names are unique."""
    _check_choice("family", family, FAMILIES)
    _check_choice("target", target, TARGETS)
    _check_choice("better", better, DIRECTIONS)
    for split in splits:
        _check_choice("split", split, METRIC_SPLITS)

    def decorate(fn: Callable[[EvalData], MetricResult]) -> Callable[[EvalData], MetricResult]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, family, target, better, tuple(splits), fn, description)
        return fn

    return decorate


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}") from None


def compute_all(data: EvalData, names: Iterable[str] | None = None) -> dict[str, MetricResult]:
    """Run the named metrics (default: all) in registry order. Unknown names fail up front."""
    wanted = list(METRICS) if names is None else [get_metric(n).name for n in names]
    results: dict[str, MetricResult] = {}
    for name in METRICS:
        if name in wanted:
            log.debug("computing metric %s", name)
            results[name] = METRICS[name].fn(data)
    return results


def _check_choice(what: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


# --------------------------------------------------------------------------- pure helpers


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
    emb = _encode(data, prompts)
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


# --------------------------------------------------------------------------- data access


def _get_split(data: EvalData, name: str) -> Split:
    """The split, checked: non-empty, consistent shapes, unit-norm rows; cast to float32."""
    split = data.split(name)
    image, text, meta = split.image, split.text, split.meta
    n = len(meta)
    if n == 0:
        raise ValueError(f"split {name!r} is empty; metrics need at least one sample")
    for what, x in (("image", image), ("text", text)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != n:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"split {name!r}: {what} must be [{n}, D] for {n} samples, got {shape}"
            )
    if image.shape != text.shape:
        raise ValueError(
            f"split {name!r}: image {tuple(image.shape)} and text {tuple(text.shape)} differ"
        )
    image, text = image.to(torch.float32), text.to(torch.float32)
    for what, x in (("image", image), ("text", text)):
        norms = x.norm(dim=1)
        worst = int((norms - 1).abs().argmax())
        if not math.isclose(float(norms[worst]), 1.0, abs_tol=_NORM_TOLERANCE):
            raise ValueError(
                f"split {name!r}: {what} embeddings must be L2-normalised; row {worst} has "
                f"norm {float(norms[worst]):.6f}"
            )
    return Split(image, text, meta)


def _meta_field(split_name: str, split: Split, key: str) -> list[Any]:
    values = []
    for i, row in enumerate(split.meta):
        if key not in row:
            raise ValueError(
                f"split {split_name!r}: sample {i} has no {key!r} in its metadata; "
                f"it has: {', '.join(sorted(row))}"
            )
        values.append(row[key])
    return values


def _encode(data: EvalData, texts: list[str]) -> torch.Tensor:
    emb = data.encode_text(texts)
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or emb.shape[0] != len(texts):
        shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
        raise ValueError(
            f"encode_text must return [{len(texts)}, D] for {len(texts)} texts, got {shape}"
        )
    return emb.to(torch.float32)


def _mean_result(per_item: torch.Tensor, keys: list[str], **extra: float | int) -> MetricResult:
    values = per_item.to(torch.float64)
    return MetricResult(float(values.mean()), values.tolist(), keys, dict(extra))


# --------------------------------------------------------------------------- efficacy


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
    family="efficacy",
    target="clean",
    better="lower",
    splits=("forget", "retain_disjoint"),
    description="MRR of each forget image's true caption in a seeded gallery of distractors "
    "from forget and evaluated retain_disjoint, in the paper's proportions (3.3% of forget "
    "captions, as many retain ones); captions of the row's own association (same persona "
    "and attribute, other wording) do not compete (our choice); extra r1 = recall@1.",
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
    forget = _get_split(data, "forget")
    retain = _get_split(data, "retain_disjoint")
    n_forget, n_retain = len(forget.meta), len(retain.meta)
    pick_f, pick_r = retfail_gallery(n_forget, n_retain, data.settings)
    pick_f, pick_r = torch.from_numpy(pick_f), torch.from_numpy(pick_r)
    k_f, k_r = len(pick_f), len(pick_r)
    gallery = torch.cat([forget.text[pick_f], retain.text[pick_r]])

    forget_txt = _meta_field("forget", forget, "txt")
    retain_txt = _meta_field("retain_disjoint", retain, "txt")
    ids: dict[str, int] = {}
    row_ids = torch.tensor([ids.setdefault(t, len(ids)) for t in forget_txt], dtype=torch.long)
    retain_ids = torch.tensor([ids.setdefault(t, len(ids)) for t in retain_txt], dtype=torch.long)
    gallery_ids = torch.cat([row_ids[pick_f], retain_ids[pick_r]])

    associations = zip(
        _meta_field("forget", forget, "persona"),
        _meta_field("forget", forget, "attribute"),
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
    return _mean_result(
        1.0 / ranks.to(torch.float64),
        _meta_field("forget", forget, "key"),
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
    family="efficacy",
    target="clean",
    better="lower",
    splits=("forget",),
    description="Mean cosine similarity of each forget image and its caption.",
)
def assoc_str(data: EvalData) -> MetricResult:
    return _mean_similarity(data, "forget")


@register(
    "acs",
    family="efficacy",
    target="clean",
    better="lower",
    splits=("forget",),
    description="Held-out accuracy of a logistic-regression probe on image*text products "
    "separating true forget pairs from deranged ones (chance 0.5).",
)
def acs(data: EvalData) -> MetricResult:
    """per_item covers every held-out probe sample, so value == mean(per_item).

    Keys: a true pair is named by its sample key; a shuffled pair (image i, caption j) by
    "<key i>~<key j>". extra: train/test sizes.
    """
    forget = _get_split(data, "forget")
    keys = _meta_field("forget", forget, "key")
    settings = data.settings
    outcome = probe_accuracy(forget.image, forget.text, settings.seed, settings.acs_test_fraction)
    n = len(keys)
    item_keys = [
        keys[i] if i < n else f"{keys[i - n]}~{keys[outcome.perm[i - n]]}"
        for i in outcome.test_index.tolist()
    ]
    return _mean_result(
        outcome.correct, item_keys, test=len(item_keys), train=2 * n - len(item_keys)
    )


@register(
    "idzsc",
    family="efficacy",
    target="clean",
    better="lower",
    splits=("forget_identity",),
    description="Zero-shot top-1 accuracy naming the persona of each forget_identity image "
    "among all forget_identity persona names.",
)
@torch.no_grad()
def idzsc(data: EvalData) -> MetricResult:
    """Classes: sorted unique names; prompts IDZSC_TEMPLATES ensembled. per_item: 1/0."""
    split = _get_split(data, "forget_identity")
    names = _meta_field("forget_identity", split, "name")
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
    keys = _meta_field("forget_identity", split, "key")
    return _mean_result(correct, keys, classes=len(classes), chance=1 / len(classes))


@register(
    "core_assoc",
    family="efficacy",
    target="clean",
    better="lower",
    splits=("forget",),
    description='Mean over forget rows of max similarity of the image to "{name} {value}" '
    'and "{value} {name}".',
)
@torch.no_grad()
def core_assoc(data: EvalData) -> MetricResult:
    """The bare texts are de-duplicated and encoded in one call. per_item: the row's max."""
    forget = _get_split(data, "forget")
    names = _meta_field("forget", forget, "name")
    values = _meta_field("forget", forget, "value")
    first = [f"{n} {v}" for n, v in zip(names, values, strict=True)]
    second = [f"{v} {n}" for n, v in zip(names, values, strict=True)]
    texts = list(dict.fromkeys(first + second))
    index = {t: i for i, t in enumerate(texts)}
    emb = _encode(data, texts)
    if emb.shape[1] != forget.image.shape[1]:
        raise ValueError(
            f"encode_text returned dim {emb.shape[1]}, forget images have {forget.image.shape[1]}"
        )
    sim_first = pair_similarity(forget.image, emb[torch.tensor([index[t] for t in first])])
    sim_second = pair_similarity(forget.image, emb[torch.tensor([index[t] for t in second])])
    return _mean_result(
        torch.maximum(sim_first, sim_second),
        _meta_field("forget", forget, "key"),
        texts=len(texts),
    )


# --------------------------------------------------------------------------- utility


@register(
    "genknow",
    family="utility",
    target="compromised",
    better="higher",
    splits=("genknow",),
    description="Zero-shot top-1 accuracy on the general-world classification task, "
    "class prompts ensembled over data.class_templates.",
)
@torch.no_grad()
def genknow(data: EvalData) -> MetricResult:
    """Labels: meta "cls" indexing data.classes; a meta "class" must name the same class."""
    split = _get_split(data, "genknow")
    classes = list(data.classes)
    labels = _meta_field("genknow", split, "cls")
    for i, (row, label) in enumerate(zip(split.meta, labels, strict=True)):
        if not isinstance(label, (int, np.integer)) or not 0 <= label < len(classes):
            raise ValueError(
                f"split 'genknow': sample {i} has cls {label!r}; valid: 0..{len(classes) - 1}"
            )
        if "class" in row and row["class"] != classes[label]:
            raise ValueError(
                f"split 'genknow': sample {i} has cls {label} ({classes[label]!r}) "
                f"but class {row['class']!r}"
            )
    class_text = class_embeddings(data, classes, data.class_templates)
    _, correct = zero_shot_accuracy(split.image, class_text, torch.tensor(labels, dtype=torch.long))
    keys = _meta_field("genknow", split, "key")
    return _mean_result(correct, keys, classes=len(classes), chance=1 / len(classes))


def _mean_similarity(data: EvalData, split_name: str) -> MetricResult:
    split = _get_split(data, split_name)
    return _mean_result(
        pair_similarity(split.image, split.text), _meta_field(split_name, split, "key")
    )


def _register_mean_similarity(name: str, split_name: str, description: str) -> None:
    def fn(data: EvalData) -> MetricResult:
        return _mean_similarity(data, split_name)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Mean cosine similarity of each {split_name} image and its caption."
    register(
        name,
        family="utility",
        target="compromised",
        better="higher",
        splits=(split_name,),
        description=description,
    )(fn)


_register_mean_similarity(
    "inter_id_sim",
    "holdout_identity",
    "Mean pair similarity on holdout_identity: personas never in forget (inter-identity damage).",
)
_register_mean_similarity(
    "intra_id_sim",
    "holdout_association",
    "Mean pair similarity on holdout_association: the other attributes of forget personas.",
)
_register_mean_similarity(
    "vis_id_int",
    "retain_joint",
    "Mean pair similarity on the evaluation part of retain_joint: non-sensitive pairs of "
    "forget personas that unlearning never trains on.",
)
_register_mean_similarity(
    "frag_sim",
    "fragile",
    "Mean pair similarity on the fragile set: weakly learned retain_disjoint concepts.",
)

EFFICACY: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.family == "efficacy")
UTILITY: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.family == "utility")
