"""CLIPErase adapted to our setting: DELETE's forgetting and retention terms plus unimodal
consistency — retain image and text embeddings stay where the original put them.

`retention="authors"` (default) is the authors' CLIP adaptation: DELETE's MSE terms plus the
MSE of the retain image embeddings to the original's plus that of the text embeddings.
`retention="kl"` is our earlier adaptation: DELETE's "kl" terms plus the mean (1 - cos)
between the retain embeddings and the original's.
"""

from dataclasses import dataclass

from salmubench.config import _doc
from salmubench.unlearn.base import (
    Method,
    MethodParams,
    Step,
    check_retention,
    embedding_drift,
    register,
    unimodal_mse,
)
from salmubench.unlearn.methods.delete import delete_terms


@dataclass(frozen=True)
class Params(MethodParams):
    retain_weight: float = _doc("Weight of DELETE's retain term.", default=1.0)
    consistency_weight: float = _doc("Weight of the unimodal consistency term.", default=1.0)
    retention: str = _doc(
        "Form of the terms: 'authors' (the authors' code: DELETE's 'authors' MSEs + MSE of the "
        "retain image and of the retain text embeddings to the original's) or 'kl' (our "
        "earlier adaptation: DELETE's 'kl' terms + mean (1 - cos) of the retain embeddings "
        "to the original's).",
        default="authors",
    )

    def validate(self) -> None:
        super().validate()
        check_retention(self.retention)


@register
class CLIPErase(Method):
    name = "cliperase"
    summary = "DELETE's terms + unimodal embedding consistency on retain"
    uses = frozenset({"forget", "retain", "original"})
    original_reads = frozenset({"retain"})  # its forget term needs no teacher
    Params = Params

    def loss(self, step: Step):
        p = self.params
        forget, retain = delete_terms(step, p.retention)
        drift = unimodal_mse if p.retention == "authors" else embedding_drift
        consistency = drift(step.retain, step.original_retain)
        total = forget + p.retain_weight * retain + p.consistency_weight * consistency
        return total, {"forget": forget, "retain": retain, "consistency": consistency}
