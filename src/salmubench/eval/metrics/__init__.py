"""The ten SALMUBench metrics (SPEC.md §4) as pure functions of L2-normalised embeddings.

The evaluator embeds every split once and hands each metric an `EvalData`; a metric reads
the splits it declares, computes with torch (float32, no autograd) and returns one
`MetricResult`: a headline value plus one value per evaluated item. Metrics live in the
`METRICS` registry, in the order of SPEC.md §4; `compute_all` runs them in that order. What
each metric is (family, target, direction, description) is declared once, without torch, in
`eval/catalogue.py`, which the report reads; the registry follows it (`check_registry`).

Efficacy metrics are read on `forget` against the Clean model's values; utility metrics
against the Compromised model's. Of retain_joint and retain_disjoint an `EvalData` serves only
the evaluation part (`salmubench.data.evaluated`), so no metric reads an item that
unlearning may train on; the metrics themselves never look at the partition.
`Metric.better` says which direction means more forgetting (efficacy) or more retained
(utility).

One module per metric family (`efficacy`, `utility`), on shared ground (`base`: data
protocol, registry, data access) and pure helpers (`ranking`). Importing this package
registers every metric, efficacy first (the order of SPEC.md §4).
"""

from salmubench.eval.catalogue import EFFICACY, UTILITY
from salmubench.eval.metrics import efficacy, utility  # noqa: F401  (registers, in order)
from salmubench.eval.metrics.base import (
    DIRECTIONS,
    FAMILIES,
    METRICS,
    TARGETS,
    EvalData,
    EvalSettings,
    Metric,
    MetricResult,
    Split,
    check_registry,
    compute_all,
    describe_metrics,
    get_metric,
    register,
)
from salmubench.eval.metrics.efficacy import retfail_gallery, retfail_gallery_sizes
from salmubench.eval.metrics.ranking import (
    ProbeOutcome,
    class_embeddings,
    probe_accuracy,
    retrieval_ranks,
    zero_shot_accuracy,
)
from salmubench.measures import pair_similarity

check_registry()

__all__ = [
    "DIRECTIONS",
    "EFFICACY",
    "FAMILIES",
    "METRICS",
    "TARGETS",
    "UTILITY",
    "EvalData",
    "EvalSettings",
    "Metric",
    "MetricResult",
    "ProbeOutcome",
    "Split",
    "class_embeddings",
    "compute_all",
    "describe_metrics",
    "get_metric",
    "pair_similarity",
    "probe_accuracy",
    "register",
    "retfail_gallery",
    "retfail_gallery_sizes",
    "retrieval_ranks",
    "zero_shot_accuracy",
]
