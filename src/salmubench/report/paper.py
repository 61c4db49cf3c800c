"""The paper's main table (SPEC.md §5, 5× budget), kept so every report can set its verdicts
beside the paper's.

The paper's models are ViT-B/16 at full scale, so absolute values are not comparable with a
small profile; the derived scores (shares of the Clean-Compromised gap) and the verdicts are.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_BUDGET = 5.0
PAPER_METRICS = ("retfail", "genknow", "inter_id_sim", "intra_id_sim")
PAPER_SOURCE = "SALMUBench paper, main table (5× budget), ViT-B/16"


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's main table, as printed (three decimals)."""

    name: str  # as the paper prints it
    method: str | None  # our registry name; None for the Clean and Compromised references
    retfail: float
    genknow: float
    inter_id_sim: float
    intra_id_sim: float

    @property
    def metrics(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PAPER_METRICS}


PAPER_CLEAN = PaperRow("Clean", None, 0.001, 0.633, 0.143, 0.143)
PAPER_COMPROMISED = PaperRow("Compromised", None, 0.236, 0.638, 0.321, 0.321)
# generic_captions and grad_diff have no row in the paper's table.
PAPER_METHODS: tuple[PaperRow, ...] = (
    PaperRow("CLIPErase", "cliperase", 0.001, 0.634, 0.024, 0.024),
    PaperRow("DELETE", "delete", 0.001, 0.632, 0.023, 0.023),
    PaperRow("VLUnlearn", "vlunlearn", 0.001, 0.638, 0.210, 0.210),
    PaperRow("Finetuning", "finetune", 0.003, 0.638, 0.209, 0.209),
    PaperRow("NegGrad", "neg_grad", 0.009, 0.630, 0.063, 0.061),
    PaperRow("Shuffled", "shuffled_captions", 0.004, 0.548, 0.212, 0.212),
    PaperRow("DirectSimMin", "direct_sim_min", 0.001, 0.615, -0.420, -0.425),
)
PAPER_BY_METHOD: dict[str, PaperRow] = {row.method: row for row in PAPER_METHODS if row.method}

# The failure mode the paper itself states for each method (SPEC.md §5: its taxonomy, as
# written). Generic Captions has no row in the main table but is called ineffective;
# Finetuning and VLUnlearn get no failure mode (they forget and keep GenKnow, while losing
# about two thirds of the holdout gap); grad_diff is not in the paper.
PAPER_LABELS: dict[str, str | None] = {
    "cliperase": "over-generalised",
    "delete": "over-generalised",
    "neg_grad": "over-generalised",
    "shuffled_captions": "collapse",
    "direct_sim_min": "collapse",
    "generic_captions": "ineffective",
    "finetune": None,
    "vlunlearn": None,
}
