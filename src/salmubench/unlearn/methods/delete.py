"""DELETE adapted to CLIP: the forget batch's similarity matrix is pushed to 0 (no image
relates to any of those captions) while the retain batch's retrieval distributions are
distilled from the original model."""

from dataclasses import dataclass

import torch

from salmubench.config import _doc
from salmubench.unlearn.base import (
    Method,
    MethodParams,
    Step,
    distillation,
    register,
    similarity_matrix,
)


@dataclass(frozen=True)
class Params(MethodParams):
    retain_weight: float = _doc("Weight of the retain distillation term.", default=1.0)


def delete_terms(step: Step) -> tuple[torch.Tensor, torch.Tensor]:
    """(forget similarities to zero, retain distillation) — shared with CLIPErase."""
    f, r, orr = step.forget, step.retain, step.original_retain
    forget = similarity_matrix(f.image, f.text).pow(2).mean()
    retain = distillation(
        similarity_matrix(r.image, r.text),
        similarity_matrix(orr.image, orr.text),
        step.original_logit_scale,
    )
    return forget, retain


@register
class Delete(Method):
    name = "delete"
    summary = "forget similarity matrix pushed to 0 + retain distillation from the original"
    uses = frozenset({"forget", "retain", "original"})
    original_reads = frozenset({"retain"})  # its forget term needs no teacher
    Params = Params

    def loss(self, step: Step):
        forget, retain = delete_terms(step)
        return forget + self.params.retain_weight * retain, {"forget": forget, "retain": retain}
