"""Generic captions: train each forget image against its own non-sensitive visual caption
("a photo of a woman with short red hair..."), replacing the sensitive text."""

from salmubench.unlearn.base import Method, Step, clip_loss, register


@register
class GenericCaptions(Method):
    name = "generic_captions"
    summary = "train forget images against their non-sensitive visual captions"
    uses = frozenset({"forget", "generic"})

    def loss(self, step: Step):
        f = step.forget
        generic = clip_loss(f.image, f.generic, step.logit_scale, f.generic_ids)
        return generic, {"generic": generic}
