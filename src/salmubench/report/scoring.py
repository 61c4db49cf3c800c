"""Score each model and judge it (SPEC.md §4): pure functions of eval records and a
`ReportConfig`, so the numbers in a report can be checked by hand (reading eval folders:
`records.py`; the whole leaderboard: `leaderboard.py`). The three scores place a model
between the two references: `forgetting` is the share of the Compromised-to-Clean RetFail
gap it closed, `holdout_kept` the share of the Clean-to-Compromised holdout similarity it kept, and
`genknow_drop` the relative GenKnow it lost against Compromised.

A *world* is one dataset with its own Clean and Compromised model (evals are grouped into
worlds by dataset digest). Scores are computed inside each world, against that world's
references; a row's uncertainty comes from its independent units: the worlds when there
are two or more, else the unlearning seeds of its one world. Every score gets a mean, a
spread (sample standard deviation) and a Student-t confidence interval over those units,
and a failure mode is stated only when its interval clears the threshold; an interval
that straddles it makes the cell "borderline". With a single run there is no interval:
the point verdict is shown, marked as such.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmubench.config import ReportConfig
from salmubench.eval.catalogue import METRIC_NAMES
from salmubench.measures import DIGITS, GAP_EPS, gap_share, rounded
from salmubench.report.paper import (
    PAPER_BY_METHOD,
    PAPER_CLEAN,
    PAPER_COMPROMISED,
    PAPER_LABELS,
)
from salmubench.report.tdist import t_ppf

log = logging.getLogger(__name__)

MODEL_VARIANTS = ("clean", "compromised", "unlearned", "external")
VERDICTS = ("ineffective", "over-generalised", "collapse")
# The paper gives each method one failure mode; when a row shows several, its label is the
# first of these it shows (DirectSimMin erases holdouts too, but the paper calls it collapse).
PRECEDENCE = ("collapse", "over-generalised", "ineffective")
SCORES = ("forgetting", "holdout_kept", "genknow_drop")
# (failure mode, the score it reads, the side of the threshold that fails, the threshold)
RULES = (
    ("ineffective", "forgetting", "below", "min_forgetting"),
    ("over-generalised", "holdout_kept", "below", "min_holdout_kept"),
    ("collapse", "genknow_drop", "above", "max_genknow_drop"),
)
INTERVAL_SOURCES = ("worlds", "seeds", "none")
HOLDOUT = ("inter_id_sim", "intra_id_sim")

DISPLAY = {
    "retfail": "RetFail",
    "retfail_r1": "R@1",
    "assoc_str": "AssocStr",
    "acs": "ACS",
    "idzsc": "IdZSC",
    "core_assoc": "CoreAssoc",
    "genknow": "GenKnow",
    "inter_id_sim": "InterIdSim",
    "intra_id_sim": "IntraIdSim",
    "vis_id_int": "VisIdInt",
    "frag_sim": "FragSim",
    "forgetting": "forgetting",
    "holdout_kept": "holdout kept",
    "genknow_drop": "GenKnow drop",
}


def display(name: str) -> str:
    return DISPLAY.get(name, name)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class EvalRecord:
    """One verified eval folder: which model it measured, on which dataset, and its metrics."""

    path: Path
    digest: str  # the eval folder's own digest
    dataset: str  # digest of the dataset it was evaluated on
    model: dict[str, Any]  # the manifest's model identity (path, digest, variant, method...)
    metrics: dict[str, float]  # metrics.json: the ten metrics and their extras

    @property
    def variant(self) -> str:
        return self.model["variant"]

    @property
    def model_digest(self) -> str:
        return self.model["digest"]


# --------------------------------------------------------------------------- scores


def score(
    x: Mapping[str, float], clean: Mapping[str, float], compromised: Mapping[str, float]
) -> tuple[dict[str, float | None], list[str]]:
    """The three scores of metrics `x` between the references; (scores, why any is None).

    Scores are rounded as shown, and verdicts are judged on them, so a reader who checks a
    verdict against the table never sees it disagree.
    """
    notes = []
    forgetting = gap_share(x["retfail"], compromised["retfail"], clean["retfail"])
    if forgetting is None:
        notes.append(
            f"forgetting undefined: Clean and Compromised have the same RetFail "
            f"({clean['retfail']:.6f}), so there is no gap to close"
        )
    kept = []
    for name in HOLDOUT:
        share = gap_share(x[name], clean[name], compromised[name])
        if share is None:
            notes.append(
                f"{display(name)} left out of holdout kept: Clean and Compromised "
                f"have the same value ({clean[name]:.6f})"
            )
        else:
            kept.append(share)
    holdout_kept = sum(kept) / len(kept) if kept else None
    if compromised["genknow"] < GAP_EPS:
        genknow_drop = None
        notes.append("GenKnow drop undefined: the Compromised GenKnow is 0")
    else:
        genknow_drop = (compromised["genknow"] - x["genknow"]) / compromised["genknow"]
    scores = {
        "forgetting": rounded(forgetting),
        "holdout_kept": rounded(holdout_kept),
        "genknow_drop": rounded(genknow_drop),
    }
    return scores, notes


def judge(scores: Mapping[str, float | None], cfg: ReportConfig) -> list[str]:
    """The failure modes point scores show (SPEC.md §4); an undefined score judges nothing."""
    verdicts = []
    for mode, name, side, attr in RULES:
        x, threshold = scores[name], getattr(cfg, attr)
        if x is not None and (x < threshold if side == "below" else x > threshold):
            verdicts.append(mode)
    return verdicts


def judge_intervals(
    scores: Mapping[str, float | None],
    intervals: Mapping[str, Sequence[float] | None],
    cfg: ReportConfig,
) -> tuple[list[str], list[dict[str, Any]]]:
    """(failure modes whose interval clears the threshold, borderline modes).

    A mode fails when its whole interval lies on the failing side, passes when the whole
    interval lies on the passing side (the threshold itself passes, as with point scores),
    and is borderline otherwise. A score without an interval is judged on its point value.
    """
    verdicts, borderline = [], []
    for mode, name, side, attr in RULES:
        x, threshold, ci = scores[name], getattr(cfg, attr), intervals.get(name)
        if x is None:
            continue
        if ci is None:
            if mode in judge({**{n: None for n in SCORES}, name: x}, cfg):
                verdicts.append(mode)
            continue
        lo, hi = ci
        fails = hi < threshold if side == "below" else lo > threshold
        passes = lo >= threshold if side == "below" else hi <= threshold
        if fails:
            verdicts.append(mode)
        elif not passes:
            borderline.append(
                {"mode": mode, "score": name, "interval": [lo, hi], "threshold": threshold}
            )
    return verdicts, borderline


def primary(verdicts: Sequence[str]) -> str | None:
    """The one failure mode a row is labelled with (PRECEDENCE), None for none."""
    return next((mode for mode in PRECEDENCE if mode in verdicts), None)


def t_interval(values: Sequence[float | None], confidence: float) -> list[float] | None:
    """Student-t confidence interval of the mean of `values`; None below two values."""
    defined = [float(v) for v in values if v is not None]
    if len(defined) < 2:
        return None
    mean, sd = statistics.fmean(defined), statistics.stdev(defined)
    half = t_ppf((1 + confidence) / 2, len(defined) - 1) * sd / math.sqrt(len(defined))
    return [round(mean - half, DIGITS), round(mean + half, DIGITS)]


def thresholds_text(cfg: ReportConfig) -> dict[str, str]:
    """Each verdict's rule in words, as the report prints it."""
    if cfg.min_holdout_kept == 0:
        holdout = "holdout similarity falls below the Clean model's level"
    else:
        holdout = (
            f"less than {cfg.min_holdout_kept:.0%} of the holdout similarity gap "
            "between Clean and Compromised is kept"
        )
    return {
        "ineffective": (
            f"ineffective: the method closes less than {cfg.min_forgetting:.0%} of the RetFail "
            f"gap between the Compromised and the Clean model (forgetting < "
            f"{cfg.min_forgetting:g})"
        ),
        "over-generalised": (
            f"over-generalised: {holdout}, averaged over InterIdSim and IntraIdSim "
            f"(holdout kept < {cfg.min_holdout_kept:g}; 1 = Compromised, 0 = Clean)"
        ),
        "collapse": (
            f"collapse: GenKnow falls by more than {cfg.max_genknow_drop * 100:g}% of the "
            f"Compromised model's value (GenKnow drop > {cfg.max_genknow_drop:g})"
        ),
    }


# --------------------------------------------------------------------------- aggregation


def _mean(values: Sequence[float]) -> float:
    return round(statistics.fmean(values), DIGITS)


def _spread(values: Sequence[float | None]) -> float | None:
    """Sample standard deviation over seeds; None below two defined values."""
    defined = [v for v in values if v is not None]
    return round(statistics.stdev(defined), DIGITS) if len(defined) >= 2 else None


def _common_keys(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = set(dicts[0])
    for d in dicts[1:]:
        keys &= set(d)
    ordered = [name for name in METRIC_NAMES if name in keys]
    return ordered + sorted(keys - set(ordered))


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def model_entry(records: Sequence[EvalRecord]) -> dict[str, Any]:
    """One model (one seed): its metrics averaged over its evals (e.g. several eval seeds)."""
    metrics = [_numeric(r.metrics) for r in records]
    first = records[0].model
    return {
        "model": first["digest"],
        "model_path": first.get("path"),
        "seed": first.get("seed"),
        "evals": [str(r.path) for r in records],
        "metrics": {k: _mean([m[k] for m in metrics]) for k in _common_keys(metrics)},
    }


def row_label(variant: str, method: str | None, budget: float | None, name: str = "") -> str:
    if variant == "clean":
        return "Clean"
    if variant == "compromised":
        return "Compromised"
    if variant == "external":
        return name
    return f"{method} {budget:g}×" if budget is not None else str(method)


def _unit(entries: Sequence[dict[str, Any]], clean, compromised) -> dict[str, Any]:
    """One world's view of a model group: metric means over its seeds, scored in-world."""
    keys = _common_keys([e["metrics"] for e in entries])
    metrics = {k: _mean([e["metrics"][k] for e in entries]) for k in keys}
    scores, notes = score(metrics, clean, compromised)
    return {"metrics": metrics, "scores": scores, "notes": notes}


def independent_units(per_world: Sequence[Any], per_seed: Sequence[Any]) -> tuple[str, list]:
    """(INTERVAL_SOURCES entry, the units a row's spread and interval are taken over): its
    worlds when there are two or more, else the seeds of its one world, else its one run."""
    if len(per_world) >= 2:
        return "worlds", list(per_world)
    if len(per_seed) >= 2:
        return "seeds", list(per_seed)
    return "none", list(per_world)


def summarise(values: Sequence[float | None], cfg: ReportConfig) -> dict[str, Any]:
    """One score over a row's units: mean, sample standard deviation and t-interval (None
    where undefined), as every score of the leaderboard gets them."""
    defined = [v for v in values if v is not None]
    return {
        "mean": _mean(defined) if defined else None,
        "std": _spread(values),
        "ci": t_interval(values, cfg.confidence),
    }


def aggregate_row(
    label: str,
    variant: str,
    method: str | None,
    budget: float | None,
    worlds: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]],
    cfg: ReportConfig,
) -> dict[str, Any]:
    """A leaderboard row from (world, the group's per-seed entries in it) pairs.

    Each world scores its entries against its own references. The row's units are the
    worlds (two or more) or else the seeds of its one world: metrics, scores, their spread
    and confidence intervals are taken over those units.
    """
    per_world, per_seed = [], []
    for world, entries in worlds:
        # Copies: a reference entry is also shown under "references" without per-seed scores.
        entries = sorted(
            (dict(e) for e in entries),
            key=lambda e: (e["seed"] is None, e["seed"] or 0, e["model"]),
        )
        clean, compromised = world["clean"], world["compromised"]
        for entry in entries:
            entry["world"] = world["name"]
            entry["scores"], _ = score(entry["metrics"], clean, compromised)
        per_seed += entries
        unit = _unit(entries, clean, compromised)
        per_world.append({"world": world["name"], "dataset": world["dataset"],
                          "seeds": [e["seed"] for e in entries], **unit})  # fmt: skip
    source, units = independent_units(per_world, per_seed)
    keys = _common_keys([u["metrics"] for u in units])
    mean = {k: _mean([u["metrics"][k] for u in units]) for k in keys}
    spread = len(units) >= 2
    std = {k: _spread([u["metrics"][k] for u in units]) for k in keys} if spread else {}
    summary = {s: summarise([u["scores"][s] for u in units], cfg) for s in SCORES}
    scores = {s: summary[s]["mean"] for s in SCORES}
    scores_std = {s: summary[s]["std"] for s in SCORES} if spread else {}
    intervals = {s: summary[s]["ci"] for s in SCORES}
    notes = list(dict.fromkeys(n for u in per_world for n in u["notes"]))
    is_candidate = variant in ("unlearned", "external")
    verdicts, borderline = judge_intervals(scores, intervals, cfg) if is_candidate else ([], [])
    paper = PAPER_BY_METHOD.get(method) if method else None
    if variant in ("clean", "compromised"):
        paper = PAPER_CLEAN if variant == "clean" else PAPER_COMPROMISED
    return {
        "label": label,
        "variant": variant,
        "method": method,
        "budget": budget,
        "seeds": [e["seed"] for e in per_seed],
        "worlds": [w["world"] for w in per_world],
        "n": len(per_seed),
        "interval_source": source,
        "metrics": mean,
        "std": std,
        "per_world": per_world,
        "per_seed": per_seed,
        "scores": scores,
        "scores_std": scores_std,
        "scores_ci": intervals,
        "verdicts": verdicts,
        "borderline": borderline,
        "primary": primary(verdicts),
        "notes": notes,
        "rank": None,
        "paper": paper.name if paper else None,
        "paper_label": PAPER_LABELS.get(method, "—") if method else None,
    }


def rank_key(row: Mapping[str, Any]) -> tuple:
    """No verdict first, then fewer verdicts, then fewer borderline calls; then most
    forgetting first."""
    forgetting = row["scores"]["forgetting"]
    return (
        len(row["verdicts"]),
        len(row.get("borderline", ())),
        forgetting is None,
        -(forgetting or 0.0),
        row["label"],
    )
