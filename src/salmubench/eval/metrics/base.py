"""The metrics' shared ground: what a metric reads (`Split`, `EvalData`, `EvalSettings`),
what it returns (`MetricResult`), the `METRICS` registry (each metric's family, target,
direction and description come from its entry in `eval/catalogue.py`), and the data access
every metric family uses."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

# The paper's RetFail proportions (1,000 of 30,468 forget captions; 1:1 retain), kept at any
# scale; their one home is the eval config.
from salmubench.config import RETFAIL_FORGET_FRACTION, RETFAIL_RETAIN_PER_FORGET
from salmubench.eval.catalogue import (  # noqa: F401  (re-exported: the metrics' vocabulary)
    CATALOGUE,
    DIRECTIONS,
    FAMILIES,
    TARGETS,
    check_choice,
    describe_metrics,
)
from salmubench.measures import pair_similarity
from salmubench.vocab import METRIC_SPLITS

log = logging.getLogger(__name__)

IDZSC_TEMPLATES = ("a photo of {}.", "{}")

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
    name: str, *, splits: tuple[str, ...]
) -> Callable[[Callable[[EvalData], MetricResult]], Callable[[EvalData], MetricResult]]:
    """Decorator: register `fn(data) -> MetricResult` as metric `name`, which reads `splits`;
    its family, target, direction and description are its catalogue entry's
    (`eval/catalogue.py`). Names are unique and must be in the catalogue."""
    if name not in CATALOGUE:
        raise ValueError(
            f"metric {name!r} is not in the catalogue (salmubench/eval/catalogue.py): declare "
            f"it there first; declared: {', '.join(CATALOGUE)}"
        )
    for split in splits:
        check_choice("split", split, METRIC_SPLITS)
    info = CATALOGUE[name]

    def decorate(fn: Callable[[EvalData], MetricResult]) -> Callable[[EvalData], MetricResult]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(
            name, info.family, info.target, info.better, tuple(splits), fn, info.description
        )
        return fn

    return decorate


def check_registry() -> None:
    """Every catalogue metric is registered, in catalogue order (`compute_all`'s order)."""
    if list(METRICS) != list(CATALOGUE):
        raise ValueError(
            f"registered metrics {list(METRICS)} differ from the catalogue's "
            f"{list(CATALOGUE)} (salmubench/eval/catalogue.py): register each catalogue "
            "metric once, in its order"
        )


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


# --------------------------------------------------------------------------- data access


def get_split(data: EvalData, name: str) -> Split:
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


def meta_field(split_name: str, split: Split, key: str) -> list[Any]:
    values = []
    for i, row in enumerate(split.meta):
        if key not in row:
            raise ValueError(
                f"split {split_name!r}: sample {i} has no {key!r} in its metadata; "
                f"it has: {', '.join(sorted(row))}"
            )
        values.append(row[key])
    return values


def encode(data: EvalData, texts: list[str]) -> torch.Tensor:
    emb = data.encode_text(texts)
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or emb.shape[0] != len(texts):
        shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
        raise ValueError(
            f"encode_text must return [{len(texts)}, D] for {len(texts)} texts, got {shape}"
        )
    return emb.to(torch.float32)


def mean_result(per_item: torch.Tensor, keys: list[str], **extra: float | int) -> MetricResult:
    values = per_item.to(torch.float64)
    return MetricResult(float(values.mean()), values.tolist(), keys, dict(extra))


def mean_similarity(data: EvalData, split_name: str) -> MetricResult:
    """Mean cosine similarity of each (image, own caption) pair of a split."""
    split = get_split(data, split_name)
    return mean_result(
        pair_similarity(split.image, split.text), meta_field(split_name, split, "key")
    )
