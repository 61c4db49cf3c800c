"""Gradient difference (NegGrad+): ascent on forget pairs, descent on retain pairs."""

from dataclasses import dataclass

from salmubench.config import _doc
from salmubench.unlearn.base import Method, MethodParams, Step, clip_loss, register


@dataclass(frozen=True)
class Params(MethodParams):
    retain_weight: float = _doc("Weight of the retain descent term.", default=1.0)


@register
class GradDiff(Method):
    name = "grad_diff"
    summary = "ascent on forget + descent on retain (NegGrad+)"
    uses = frozenset({"forget", "retain"})
    Params = Params

    def loss(self, step: Step):
        f, r = step.forget, step.retain
        forget = clip_loss(f.image, f.text, step.logit_scale, f.ids)
        retain = clip_loss(r.image, r.text, step.logit_scale, r.ids)
        return -forget + self.params.retain_weight * retain, {"forget": forget, "retain": retain}
