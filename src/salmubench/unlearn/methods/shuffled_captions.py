"""Shuffled captions: train each forget image against another forget pair's caption, so
the true association is overwritten by a random one."""

from salmubench.unlearn.base import Method, Step, clip_loss, derangement, register


@register
class ShuffledCaptions(Method):
    name = "shuffled_captions"
    summary = "train forget images against randomly re-paired forget captions"
    uses = frozenset({"forget"})

    def loss(self, step: Step):
        f = step.forget
        perm = derangement(len(f.ids), step.generator).to(f.text.device)
        shuffled = clip_loss(f.image, f.text[perm], step.logit_scale, f.ids[perm])
        return shuffled, {"shuffled": shuffled}
