"""VLUnlearn: MultiDelete (Cheng & Amiri, 2024) adapted to CLIP.

Modality decoupling: the model's forget-batch similarity matrix is matched to the
original model's matrix on shuffled pairs (every image against someone else's caption),
so a true pair looks like an unrelated one. Multimodal retention: the retain batch's
similarity matrix stays the original's. Unimodal retention: retain image and text
embeddings stay where the original put them.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from salmubench.config import _doc
from salmubench.unlearn.base import (
    Method,
    MethodParams,
    Step,
    derangement,
    embedding_drift,
    register,
    similarity_matrix,
)


@dataclass(frozen=True)
class Params(MethodParams):
    multimodal_weight: float = _doc("Weight of the retain similarity-matrix term.", default=1.0)
    unimodal_weight: float = _doc("Weight of the retain embedding-drift term.", default=1.0)


@register
class VLUnlearn(Method):
    name = "vlunlearn"
    summary = "forget sims matched to the original's on shuffled pairs + retention on retain"
    uses = frozenset({"forget", "retain", "original"})
    Params = Params

    def loss(self, step: Step):
        f, r = step.forget, step.retain
        of, orr = step.original_forget, step.original_retain
        perm = derangement(len(f.ids), step.generator).to(f.text.device)
        target = similarity_matrix(of.image, of.text[perm])
        decouple = F.mse_loss(similarity_matrix(f.image, f.text), target)
        multimodal = F.mse_loss(
            similarity_matrix(r.image, r.text), similarity_matrix(orr.image, orr.text)
        )
        unimodal = embedding_drift(r, orr)
        p = self.params
        total = decouple + p.multimodal_weight * multimodal + p.unimodal_weight * unimodal
        return total, {"decouple": decouple, "multimodal": multimodal, "unimodal": unimodal}
