"""DELETE adapted to CLIP: the forget batch's similarity matrix is pushed to 0 (no image
relates to any of those captions) while the retain batch's similarities stay the original
model's.

`retention="authors"` (default) writes both terms as the authors' CLIP adaptation does (a
co-author's fork of MultiDelete): image→text + text→image MSE of the forget matrix to 0 and
of the retain matrix to the original's. `retention="kl"` is our earlier adaptation: the mean
squared forget similarity (one direction) and a symmetric KL between the retain retrieval
distributions of the model and the original.
"""

from dataclasses import dataclass

import torch

from salmubench.config import _doc
from salmubench.unlearn.base import (
    Method,
    MethodParams,
    Step,
    check_retention,
    distillation,
    register,
    similarity_matrix,
    two_way_mse,
)


@dataclass(frozen=True)
class Params(MethodParams):
    retain_weight: float = _doc("Weight of the retain term.", default=1.0)
    retention: str = _doc(
        "Form of the terms: 'authors' (the authors' code: image→text + text→image MSE of the "
        "forget similarity matrix to 0 and of the retain one to the original's) or 'kl' (our "
        "earlier adaptation: mean squared forget similarity + symmetric KL of the retain "
        "retrieval distributions to the original's).",
        default="authors",
    )

    def validate(self) -> None:
        super().validate()
        check_retention(self.retention)


def delete_terms(step: Step, retention: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(forget similarities to zero, retain similarities to the original's), in the form
    `retention` names — shared with CLIPErase."""
    f, r, orr = step.forget, step.retain, step.original_retain
    forget = similarity_matrix(f.image, f.text)
    retain = similarity_matrix(r.image, r.text)
    original = similarity_matrix(orr.image, orr.text)
    if retention == "authors":
        return two_way_mse(forget, torch.zeros_like(forget)), two_way_mse(retain, original)
    return forget.pow(2).mean(), distillation(retain, original, step.original_logit_scale)


@register
class Delete(Method):
    name = "delete"
    summary = "forget similarity matrix pushed to 0 + retain similarities kept at the original's"
    uses = frozenset({"forget", "retain", "original"})
    original_reads = frozenset({"retain"})  # its forget term needs no teacher
    Params = Params

    def loss(self, step: Step):
        forget, retain = delete_terms(step, self.params.retention)
        return forget + self.params.retain_weight * retain, {"forget": forget, "retain": retain}
