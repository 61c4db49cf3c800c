"""Finetuning: keep training the CLIP objective on retain data only (catastrophic
forgetting as unlearning)."""

from salmubench.unlearn.base import Method, Step, clip_loss, register


@register
class Finetune(Method):
    name = "finetune"
    summary = "keep training the CLIP loss on retain data only"
    uses = frozenset({"retain"})

    def loss(self, step: Step):
        r = step.retain
        retain = clip_loss(r.image, r.text, step.logit_scale, r.ids)
        return retain, {"retain": retain}
