"""Direct similarity minimisation: push the cosine similarity of each forget pair down.
Unbounded below, which is why it over-generalises in the paper (negative holdout similarity)."""

from salmubench.unlearn.base import Method, Step, pair_similarity, register


@register
class DirectSimMin(Method):
    name = "direct_sim_min"
    summary = "minimise the similarity of each forget pair directly"
    uses = frozenset({"forget"})

    def loss(self, step: Step):
        f = step.forget
        similarity = pair_similarity(f.image, f.text).mean()
        return similarity, {"similarity": similarity}
