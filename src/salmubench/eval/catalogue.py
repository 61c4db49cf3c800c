"""What each of the ten SALMUBench metrics is, declared once and without computing it: its
name, family, target, direction and description, in the order of SPEC.md §4.

The metric functions (`eval/metrics/`) register against these entries by name and their
registry follows this order (checked when they load); the report reads the entries from
here, so that it imports no torch (tests/test_torch_free.py).
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("efficacy", "utility")
TARGETS = ("clean", "compromised")
DIRECTIONS = ("lower", "higher")


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric."""

    name: str  # e.g. "retfail"
    family: str  # "efficacy" (on forget, target Clean) or "utility" (target Compromised)
    target: str  # "clean" | "compromised": whose value a perfect unlearning reproduces
    better: str  # "lower" | "higher": more forgetting (efficacy) / more retained (utility)
    description: str

    def __post_init__(self) -> None:
        for what, value, valid in (
            ("family", self.family, FAMILIES),
            ("target", self.target, TARGETS),
            ("better", self.better, DIRECTIONS),
        ):
            check_choice(what, value, valid)


def check_choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _efficacy(name: str, description: str) -> MetricInfo:
    return MetricInfo(name, "efficacy", "clean", "lower", description)


def _utility(name: str, description: str) -> MetricInfo:
    return MetricInfo(name, "utility", "compromised", "higher", description)


CATALOGUE: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        _efficacy(
            "retfail",
            "MRR of each forget image's true caption in a seeded gallery of distractors "
            "from forget and evaluated retain_disjoint, in the paper's proportions (3.3% of "
            "forget captions, as many retain ones); captions of the row's own association "
            "(same persona and attribute, other wording) do not compete (our choice); extra "
            "r1 = recall@1.",
        ),
        _efficacy("assoc_str", "Mean cosine similarity of each forget image and its caption."),
        _efficacy(
            "acs",
            "Held-out accuracy of a logistic-regression probe on image*text products "
            "separating true forget pairs from deranged ones (chance 0.5).",
        ),
        _efficacy(
            "idzsc",
            "Zero-shot top-1 accuracy naming the persona of each forget_identity image "
            "among all forget_identity persona names.",
        ),
        _efficacy(
            "core_assoc",
            'Mean over forget rows of max similarity of the image to "{name} {value}" '
            'and "{value} {name}".',
        ),
        _utility(
            "genknow",
            "Zero-shot top-1 accuracy on the general-world classification task, class "
            "prompts ensembled over data.class_templates.",
        ),
        _utility(
            "inter_id_sim",
            "Mean pair similarity on holdout_identity: personas never in forget "
            "(inter-identity damage).",
        ),
        _utility(
            "intra_id_sim",
            "Mean pair similarity on holdout_association: the other attributes of forget personas.",
        ),
        _utility(
            "vis_id_int",
            "Mean pair similarity on the evaluation part of retain_joint: non-sensitive "
            "pairs of forget personas that unlearning never trains on.",
        ),
        _utility(
            "frag_sim",
            "Mean pair similarity on the fragile set: weakly learned retain_disjoint concepts.",
        ),
    )
}

# The metric names, and those of each family, in catalogue (SPEC.md §4) order.
METRIC_NAMES: tuple[str, ...] = tuple(CATALOGUE)
EFFICACY: tuple[str, ...] = tuple(n for n, m in CATALOGUE.items() if m.family == "efficacy")
UTILITY: tuple[str, ...] = tuple(n for n, m in CATALOGUE.items() if m.family == "utility")


def describe_metrics() -> dict[str, dict[str, str]]:
    """What summaries and leaderboards record of each metric, in catalogue order."""
    return {
        n: {"family": m.family, "target": m.target, "better": m.better,
            "description": m.description}
        for n, m in CATALOGUE.items()
    }  # fmt: skip


def metric_info(name: str) -> MetricInfo:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; valid: {', '.join(CATALOGUE)}") from None
