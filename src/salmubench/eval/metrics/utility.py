"""Utility metrics (SPEC.md §4), read against the Compromised model: GenKnow and the mean
pair similarities of the holdout, retain and fragile splits."""

from __future__ import annotations

import numpy as np
import torch

from salmubench.eval.metrics.base import (
    EvalData,
    MetricResult,
    get_split,
    mean_result,
    mean_similarity,
    meta_field,
    register,
)
from salmubench.eval.metrics.ranking import class_embeddings, zero_shot_accuracy


@register("genknow", splits=("genknow",))
@torch.no_grad()
def genknow(data: EvalData) -> MetricResult:
    """Labels: meta "cls" indexing data.classes; a meta "class" must name the same class."""
    split = get_split(data, "genknow")
    classes = list(data.classes)
    labels = meta_field("genknow", split, "cls")
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
    keys = meta_field("genknow", split, "key")
    return mean_result(correct, keys, classes=len(classes), chance=1 / len(classes))


def _register_mean_similarity(name: str, split_name: str) -> None:
    def fn(data: EvalData) -> MetricResult:
        return mean_similarity(data, split_name)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Mean cosine similarity of each {split_name} image and its caption."
    register(name, splits=(split_name,))(fn)


_register_mean_similarity("inter_id_sim", "holdout_identity")
_register_mean_similarity("intra_id_sim", "holdout_association")
_register_mean_similarity("vis_id_int", "retain_joint")
_register_mean_similarity("frag_sim", "fragile")
