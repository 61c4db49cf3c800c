"""CLIPErase adapted to our setting: DELETE's forgetting and retention terms plus unimodal
consistency — retain image and text embeddings stay where the original put them."""

from dataclasses import dataclass

from salmubench.config import _doc
from salmubench.unlearn.base import Method, MethodParams, Step, embedding_drift, register
from salmubench.unlearn.methods.delete import delete_terms


@dataclass(frozen=True)
class Params(MethodParams):
    retain_weight: float = _doc("Weight of the retain distillation term.", default=1.0)
    consistency_weight: float = _doc("Weight of the unimodal consistency term.", default=1.0)


@register
class CLIPErase(Method):
    name = "cliperase"
    summary = "DELETE's terms + unimodal embedding consistency on retain"
    uses = frozenset({"forget", "retain", "original"})
    original_reads = frozenset({"retain"})  # its forget term needs no teacher
    Params = Params

    def loss(self, step: Step):
        forget, retain = delete_terms(step)
        consistency = embedding_drift(step.retain, step.original_retain)
        p = self.params
        total = forget + p.retain_weight * retain + p.consistency_weight * consistency
        return total, {"forget": forget, "retain": retain, "consistency": consistency}
