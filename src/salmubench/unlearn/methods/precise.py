"""PRECISE: forget each memorised pair down to the "never seen" level, and nothing else.

The published methods fail in two ways that share a cause. DELETE and CLIPErase push every
forget similarity to 0, below what a model that never saw the pair would give (the paper:
"pushing AssocStr below the Clean level triggers over-generalisation"), and the push
generalises to every face and every sensitive caption: holdouts fall below Clean. The gentler
ones (Finetuning, VLUnlearn) move the whole embedding space and lose much of the holdouts too.
PRECISE bounds the push and pins everything around it:

- **A floor, not zero.** Row i's "never seen" level is estimated from the frozen original
  alone: the `floor_quantile` of the similarities of image i to the *other* forget captions
  of the batch (other personas' values, the same templates) and of caption i to the other
  images. A memorised pair is pushed (a hinge) until it is no more similar than that, and
  then left alone: no gradient once a pair sits at the floor.
- **Which pairs are memorised.** The diagonal (each image and its own caption, and its
  paraphrases), and any other pair of the batch that the original scored `memorised_gap`
  above the floor: in practice the same persona's other forget captions. Nothing about
  personas is read: the original model's similarities say it.
- **Anchors everywhere else.** Every other pair of the forget batch keeps the original's
  similarity (the templates and the other faces stay where they were); each forget image
  keeps its embedding (the face itself is not forgotten: its other attributes, the holdouts,
  hang on it) and its similarity to its own generic caption; the retain batch keeps the
  original's retrieval distributions and embeddings.

It reads the Compromised model and its frozen copy, the forget set with its generic captions
and the retain subset — never the Clean model, a holdout or an evaluated item (the library's
`unlearn/data.py` enforces the last two). Every term has its own weight: 0 switches it off,
which is how the ablation in docs/PRECISE.md removes one term at a time. Measured there: the
forget-batch anchor and the retain-embedding anchor do the work (without the first, holdouts
fall below Clean; without the second, GenKnow collapses); at the chosen rate the pairs never
reach their floor, so the floor changes nothing yet.
"""

from dataclasses import dataclass

import torch

from salmubench.config import ConfigError
from salmubench.unlearn.base import (
    Features,
    Method,
    MethodParams,
    Step,
    distillation,
    embedding_drift,
    pair_similarity,
    param,
    register,
    similarity_matrix,
)

ANCHORS = ("pairs", "means")
PUSHES = ("both", "text")


@dataclass(frozen=True)
class Params(MethodParams):
    floor_quantile: float = param(
        "Quantile of the original's similarities of an image to the other forget captions of "
        "the batch (and of a caption to the other images) that sets the pair's floor, the "
        "'never seen' level it is pushed down to and no further (0.5: the median).",
        default=0.5,
    )
    margin: float = param(
        "How far below the floor a memorised pair is pushed (cosine units); 0 = to the floor.",
        default=0.0,
    )
    memorised_gap: float = param(
        "An off-diagonal forget pair the original scored more than this above the floor is "
        "treated as memorised (pushed to the floor, not anchored): the same persona's other "
        "forget captions.",
        default=0.2,
    )
    push: str = param(
        "Which tower the forget push moves: 'both', or 'text' (the image side of the forget "
        "term is detached: faces are left to the anchors, only the sensitive captions move).",
        default="both",
    )
    anchor_weight: float = param(
        "Weight of the forget-batch anchor: the other (not memorised) pairs' similarities "
        "kept at the original's (see `anchor`).",
        default=10.0,
    )
    anchor: str = param(
        "What the forget-batch anchor keeps: 'pairs' (the MSE of every other pair's "
        "similarity to the original's) or 'means' (the MSE of each image's mean similarity "
        "to the other captions, and each caption's to the other images: the never-seen "
        "level stays put, while a caption may turn away from its own face).",
        default="pairs",
    )
    identity_weight: float = param(
        "Weight of the forget images' embedding drift from the original's (mean 1 - cos).",
        default=1.0,
    )
    generic_weight: float = param(
        "Weight of the MSE of each forget image's similarity to its own generic (visual, "
        "non-sensitive) caption to the original's.",
        default=10.0,
    )
    retain_weight: float = param(
        "Weight of the symmetric KL between the retain batch's retrieval distributions and "
        "the original's.",
        default=1.0,
    )
    unimodal_weight: float = param(
        "Weight of the retain image and text embeddings' drift from the original's (mean "
        "1 - cos). Large: at weight 1 the validation world lost 20% of GenKnow "
        "(docs/PRECISE.md).",
        default=300.0,
    )

    def validate(self) -> None:
        super().validate()
        if self.push not in PUSHES:
            raise ConfigError(f"push={self.push!r}; valid: {', '.join(map(repr, PUSHES))}")
        if self.anchor not in ANCHORS:
            raise ConfigError(f"anchor={self.anchor!r}; valid: {', '.join(map(repr, ANCHORS))}")
        if not 0 < self.floor_quantile < 1:
            raise ConfigError(f"floor_quantile={self.floor_quantile}: must be in (0, 1)")


def memorised_pairs(original: torch.Tensor, ids: torch.Tensor, floor: torch.Tensor, gap: float):
    """[n, n] bool: the pairs of the original's forget similarity matrix that are memorised
    associations: same caption text (the diagonal and paraphrase duplicates), or scored more
    than `gap` above the row's floor."""
    same = ids[:, None] == ids[None, :]
    return same | (original > floor[:, None] + gap)


def floors(original: torch.Tensor, ids: torch.Tensor, quantile: float) -> torch.Tensor:
    """[n] the 'never seen' level of each pair (i, i): the mean of the `quantile` of image
    i's similarities to the other captions and of caption i's to the other images."""
    other = ids[:, None] != ids[None, :]
    masked = original.masked_fill(~other, float("nan"))
    rows = torch.nanquantile(masked, quantile, dim=1)
    cols = torch.nanquantile(masked, quantile, dim=0)
    return (rows + cols) / 2


def _anchor(sims: torch.Tensor, original: torch.Tensor, keep: torch.Tensor, form: str):
    """The forget-batch anchor over the pairs `keep` (see Params.anchor)."""
    if not keep.any():
        return sims.sum() * 0
    if form == "pairs":
        return (sims - original)[keep].pow(2).mean()
    diff = (sims - original) * keep
    rows = diff.sum(1) / keep.sum(1).clamp(min=1)
    cols = diff.sum(0) / keep.sum(0).clamp(min=1)
    return (rows.pow(2).mean() + cols.pow(2).mean()) / 2


def _retention(r: Features, orr: Features, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL of the retain retrieval distributions to the original's, embedding drift)."""
    sims, original = similarity_matrix(r.image, r.text), similarity_matrix(orr.image, orr.text)
    return distillation(sims, original, step.original_logit_scale), embedding_drift(r, orr)


@register
class Precise(Method):
    name = "precise"
    summary = (
        "memorised forget pairs pushed to the original's never-seen level, not below; every "
        "other relation anchored to the original"
    )
    uses = frozenset({"forget", "generic", "retain", "original"})
    Params = Params

    def loss(self, step: Step):
        p = self.params
        f, of = step.forget, step.original_forget
        sims = similarity_matrix(f.image, f.text)
        with torch.no_grad():
            original = similarity_matrix(of.image, of.text)
            floor = floors(original, f.ids, p.floor_quantile)
            memorised = memorised_pairs(original, f.ids, floor, p.memorised_gap)
        # Each memorised pair (i, j) is pushed to row i's floor; only what lies above counts.
        pushed = sims if p.push == "both" else similarity_matrix(f.image.detach(), f.text)
        excess = torch.relu(pushed - (floor[:, None] - p.margin))[memorised]
        # Averaged over the pairs still above their floor, so that the last ones get the
        # same push as the first (a plain mean fades as pairs reach the floor).
        forget = excess.sum() / (excess > 0).sum().clamp(min=1)
        anchor = _anchor(sims, original, ~memorised, p.anchor)
        identity = (1 - pair_similarity(f.image, of.image)).mean()
        generic = (
            (pair_similarity(f.image, f.generic) - pair_similarity(of.image, of.generic))
            .pow(2)
            .mean()
        )
        retain, unimodal = _retention(step.retain, step.original_retain, step)
        total = (
            forget
            + p.anchor_weight * anchor
            + p.identity_weight * identity
            + p.generic_weight * generic
            + p.retain_weight * retain
            + p.unimodal_weight * unimodal
        )
        parts = {"forget": forget, "anchor": anchor, "identity": identity, "generic": generic,
                 "retain": retain, "unimodal": unimodal}  # fmt: skip
        return total, parts
