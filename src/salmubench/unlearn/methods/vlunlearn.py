"""VLUnlearn: MultiDelete (Cheng & Amiri, 2024) adapted to CLIP.

Modality decoupling: the model's forget-batch similarity matrix is matched to the
original model's matrix on shuffled pairs (every image against someone else's caption),
so a true pair looks like an unrelated one. Multimodal retention: retain pairs keep the
original's joint representation. Unimodal retention: retain image and text embeddings stay
where the original put them.

`retention="authors"` (default) is the authors' CLIP adaptation (a co-author's fork of
MultiDelete): decoupling as an image→text + text→image MSE (`two_way_mse`: the text→image
matrix and its target are the image→text ones transposed, so this is twice one MSE), the
multimodal term as the MSE of the fused embedding normalize((image + text) / 2) to the
original's, the unimodal term as the image embeddings' MSE plus the text embeddings'.
`retention="kl"` is our earlier adaptation: decoupling as one MSE, the multimodal term as
the MSE of the retain similarity matrix to the original's, the unimodal term as the mean
(1 - cos) to the original's embeddings (no KL here: the name is shared with DELETE and
CLIPErase, whose earlier form it also selects). Unlike the authors' `randperm`, the shuffle
is a derangement: no forget image keeps its own caption in the target.
"""

from dataclasses import dataclass

from salmubench.config import _doc
from salmubench.unlearn.base import (
    Method,
    MethodParams,
    Step,
    check_retention,
    derangement,
    embedding_drift,
    fused_embedding,
    mse_to_original,
    register,
    similarity_matrix,
    two_way_mse,
    unimodal_mse,
)


@dataclass(frozen=True)
class Params(MethodParams):
    multimodal_weight: float = _doc(
        "Weight of the multimodal retention term: the fused retain embedding's MSE to the "
        "original's ('authors') or the retain similarity matrix's ('kl').",
        default=1.0,
    )
    unimodal_weight: float = _doc(
        "Weight of the unimodal retention term: the retain image and text embeddings' MSE to "
        "the original's, summed ('authors'), or their mean (1 - cos) ('kl').",
        default=1.0,
    )
    retention: str = _doc(
        "Form of the terms: 'authors' (the authors' code: two-way MSE decoupling, fused- and "
        "unimodal-embedding MSEs) or 'kl' (our earlier adaptation: one-way MSE decoupling, "
        "similarity-matrix MSE, mean (1 - cos)); see the module docstring.",
        default="authors",
    )

    def validate(self) -> None:
        super().validate()
        check_retention(self.retention)


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
        sims = similarity_matrix(f.image, f.text)
        if self.params.retention == "authors":
            decouple = two_way_mse(sims, target)
            multimodal = mse_to_original(fused_embedding(r), fused_embedding(orr))
            unimodal = unimodal_mse(r, orr)
        else:
            decouple = mse_to_original(sims, target)
            multimodal = mse_to_original(
                similarity_matrix(r.image, r.text), similarity_matrix(orr.image, orr.text)
            )
            unimodal = embedding_drift(r, orr)
        p = self.params
        total = decouple + p.multimodal_weight * multimodal + p.unimodal_weight * unimodal
        return total, {"decouple": decouple, "multimodal": multimodal, "unimodal": unimodal}
