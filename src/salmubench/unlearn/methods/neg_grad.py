"""NegGrad: gradient ascent on the CLIP loss of the forget pairs."""

from salmubench.unlearn.base import Method, Step, clip_loss, register


@register
class NegGrad(Method):
    name = "neg_grad"
    summary = "gradient ascent on the CLIP loss of forget pairs"
    uses = frozenset({"forget"})

    def loss(self, step: Step):
        f = step.forget
        forget = clip_loss(f.image, f.text, step.logit_scale, f.ids)
        return -forget, {"forget": forget}
