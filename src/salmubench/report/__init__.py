"""The `report` stage: a leaderboard of unlearning methods judged by the paper's three
failure modes (ineffective, over-generalised, collapse), set beside the paper's own table."""

from salmubench.report.leaderboard import build_leaderboard
from salmubench.report.records import load_evals
from salmubench.report.scoring import EvalRecord
from salmubench.report.stage import build_report

__all__ = ["EvalRecord", "build_leaderboard", "build_report", "load_evals"]
