"""Collect eval folders, aggregate seeds, score each method and judge it (SPEC.md §4).

Everything here is a pure function of eval records and a `ReportConfig`, so the numbers
in a report can be checked by hand. The three scores place a model between the two
references: `forgetting` is the share of the Compromised-to-Clean RetFail gap it closed,
`holdout_kept` the share of the Clean-to-Compromised holdout similarity it kept, and
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

import json
import logging
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmubench.config import ReportConfig
from salmubench.eval.metrics import METRICS
from salmubench.manifest import MANIFEST, ManifestError, read_manifest
from salmubench.measures import DIGITS, GAP_EPS, gap_share, rounded
from salmubench.report.paper import (
    PAPER_BUDGET,
    PAPER_BY_METHOD,
    PAPER_CLEAN,
    PAPER_COMPROMISED,
    PAPER_LABELS,
    PAPER_METHODS,
    PAPER_SOURCE,
)
from salmubench.vocab import METRICS_FILE

log = logging.getLogger(__name__)

VARIANTS = ("clean", "compromised", "unlearned", "external")
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


# --------------------------------------------------------------------------- collection


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


def find_eval_folders(path: str | os.PathLike) -> list[Path]:
    """`path` itself if it is an eval folder, else every eval folder below it (sorted).

    Hidden folders (temporary stage outputs) are skipped, and no stage folder is descended
    into: its manifest covers every file in it, so nothing else can live there.
    """
    root = Path(path)
    if not root.exists():
        raise ManifestError(
            f"{root}: no such file or folder (expected an eval folder or a "
            "folder that contains eval folders)"
        )
    if not root.is_dir():
        raise ManifestError(f"{root}: is a file; expected an eval folder or a folder of them")
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if MANIFEST in files:
            kind = read_manifest(here)["kind"]
            if kind == "eval":
                found.append(here)
            else:
                log.debug("%s: a %r folder, not an eval; skipped", here, kind)
            dirs.clear()
            continue
        if METRICS_FILE in files:
            log.warning(
                "%s: has %s but no %s (an unfinished eval?); skipped", here, METRICS_FILE, MANIFEST
            )
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    if not found:
        raise ManifestError(
            f"{root}: contains no eval folder (a folder whose {MANIFEST} has "
            '"kind": "eval"); run `salmubench eval` first'
        )
    return sorted(found)


def load_eval(folder: str | os.PathLike) -> EvalRecord:
    """Read one eval folder, verifying every file against its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder, kind="eval", verify=True)
    model = manifest.get("model")
    dataset = manifest.get("inputs", {}).get("dataset")
    if not isinstance(model, dict) or "digest" not in model or not dataset:
        raise ManifestError(
            f"{folder}: the eval manifest lacks the model identity or the "
            "dataset digest (written by an older salmubench?)"
        )
    variant = model.get("variant")
    if variant not in VARIANTS:
        raise ManifestError(
            f"{folder}: unknown model variant {variant!r}; valid: {', '.join(VARIANTS)}"
        )
    if variant == "unlearned" and not model.get("method"):
        raise ManifestError(f"{folder}: an unlearned model without a method name")
    path = folder / METRICS_FILE
    if not path.is_file():
        raise ManifestError(f"{folder}: no {METRICS_FILE}")
    metrics = json.loads(path.read_text(encoding="utf-8"))
    missing = [name for name in METRICS if name not in metrics]
    if missing:
        raise ManifestError(
            f"{folder}: {METRICS_FILE} lacks {', '.join(missing)}; every "
            f"registered metric is required ({', '.join(METRICS)})"
        )
    return EvalRecord(folder, manifest["digest"], dataset, dict(model), metrics)


def load_evals(runs: Iterable[str | os.PathLike]) -> list[EvalRecord]:
    """Every eval folder named by or found below `runs`, each read once, in path order."""
    folders: dict[Path, Path] = {}
    for run in runs:
        for folder in find_eval_folders(run):
            folders.setdefault(folder.resolve(), folder)
    if not folders:
        raise ManifestError("no runs given: pass eval folders or folders that contain them")
    return [load_eval(folder) for _, folder in sorted(folders.items())]


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
    from scipy.stats import t

    defined = [float(v) for v in values if v is not None]
    if len(defined) < 2:
        return None
    mean, sd = statistics.fmean(defined), statistics.stdev(defined)
    half = float(t.ppf((1 + confidence) / 2, len(defined) - 1)) * sd / math.sqrt(len(defined))
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
    ordered = [name for name in METRICS if name in keys]
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


def _label(variant: str, method: str | None, budget: float | None, name: str = "") -> str:
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
    if len(per_world) >= 2:
        source, units = "worlds", per_world
    elif len(per_seed) >= 2:
        source, units = "seeds", per_seed
    else:
        source, units = "none", per_world
    keys = _common_keys([u["metrics"] for u in units])
    mean = {k: _mean([u["metrics"][k] for u in units]) for k in keys}
    spread = len(units) >= 2
    std = {k: _spread([u["metrics"][k] for u in units]) for k in keys} if spread else {}
    values = {s: [u["scores"][s] for u in units] for s in SCORES}
    defined = {s: [v for v in vs if v is not None] for s, vs in values.items()}
    scores = {s: _mean(vs) if vs else None for s, vs in defined.items()}
    scores_std = {s: _spread(values[s]) for s in SCORES} if spread else {}
    intervals = {s: t_interval(values[s], cfg.confidence) for s in SCORES}
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


def _one_reference(records: Sequence[EvalRecord], variant: str) -> list[EvalRecord]:
    found = [r for r in records if r.variant == variant]
    digests = sorted({r.model_digest for r in found})
    if not digests:
        counts: dict[str, int] = {}
        for r in records:
            counts[r.variant] = counts.get(r.variant, 0) + 1
        seen = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        raise ManifestError(
            f"no eval of a {variant.capitalize()} model among the runs (found {seen} "
            f"eval(s)); evaluate the {variant} model and pass its eval folder too: every "
            "score is a share of the Clean-Compromised gap"
        )
    if len(digests) > 1:
        detail = "; ".join(
            f"{d[:12]} ({', '.join(str(r.path) for r in found if r.model_digest == d)})"
            for d in digests
        )
        raise ManifestError(
            f"exactly one {variant.capitalize()} model is required, found {len(digests)}: {detail}"
        )
    return found


def split_worlds(records: Sequence[EvalRecord]) -> dict[str, list[EvalRecord]]:
    """The evals grouped into worlds by the digest of the dataset they were run on."""
    by_dataset: dict[str, list[EvalRecord]] = {}
    for r in records:
        by_dataset.setdefault(r.dataset, []).append(r)
    return by_dataset


def _world_name(dataset: str, clean: dict[str, Any]) -> str:
    """A world is named by its Clean model's seed (= its dataset seed under bench)."""
    seed = clean.get("seed")
    return f"world {seed}" if seed is not None else f"world {dataset[:8]}"


def _group_key(record: EvalRecord) -> tuple:
    m = record.model
    if record.variant == "unlearned":
        budget = m.get("budget")
        return ("unlearned", m["method"], None if budget is None else float(budget))
    if record.variant == "external":
        return ("external", record.model_digest)
    return (record.variant,)


def _entries(records: Sequence[EvalRecord]) -> list[dict[str, Any]]:
    by_model: dict[str, list[EvalRecord]] = {}
    for r in records:
        by_model.setdefault(r.model_digest, []).append(r)
    entries = [model_entry(rs) for _, rs in sorted(by_model.items())]
    seeds: dict[Any, dict[str, Any]] = {}
    for e in entries:
        if e["seed"] is not None and e["seed"] in seeds:
            other = seeds[e["seed"]]
            raise ManifestError(
                f"two different models claim the same seed {e['seed']} for the same method "
                f"and budget: {', '.join(other['evals'])} (model {other['model'][:12]}) and "
                f"{', '.join(e['evals'])} (model {e['model'][:12]}); keep one, or report them "
                "separately"
            )
        seeds[e["seed"]] = e
    return entries


def _external_labels(groups: Mapping[tuple, list[EvalRecord]]) -> dict[tuple, str]:
    names: dict[tuple, str] = {}
    for key, rs in groups.items():
        if key[0] == "external":
            names[key] = Path(str(rs[0].model.get("path") or key[1][:12])).name
    counts = {n: list(names.values()).count(n) for n in names.values()}
    # Two checkpoints with the same file name stay apart by digest.
    return {k: (f"{n} ({k[1][:8]})" if counts[n] > 1 else n) for k, n in names.items()}


def _add_method_code(row: dict[str, Any], records: Sequence[EvalRecord]) -> None:
    """The row's method origin and code digest (`method_code`, from its models' manifests),
    with a note when its runs come from different versions of the code."""
    codes = {json.dumps(r.model["method_code"], sort_keys=True): r.model["method_code"]
             for r in records if r.model.get("method_code")}  # fmt: skip
    if not codes:
        return
    ordered = [codes[k] for k in sorted(codes)]
    row["method_code"] = ordered[0]
    if len(ordered) > 1:
        digests = ", ".join(c["code_digest"][:12] for c in ordered)
        row["notes"].append(f"its runs come from {len(ordered)} versions of the method's code "
                            f"({digests}); report them separately")  # fmt: skip


def paper_rows(cfg: ReportConfig) -> list[dict[str, Any]]:
    """The paper's main table, scored and judged by the same rules as ours (point values:
    the paper gives none of its spread), beside the label the paper itself states."""
    clean, compromised = PAPER_CLEAN.metrics, PAPER_COMPROMISED.metrics
    rows = []
    for row in (PAPER_CLEAN, PAPER_COMPROMISED, *PAPER_METHODS):
        scores, notes = score(row.metrics, clean, compromised)
        verdicts = judge(scores, cfg) if row.method else []
        stated = PAPER_LABELS.get(row.method) if row.method else None
        rows.append(
            {
                "name": row.name,
                "method": row.method,
                "variant": "unlearned" if row.method else row.name.lower(),
                "metrics": row.metrics,
                "scores": scores,
                "verdicts": verdicts,
                "label": primary(verdicts),
                "paper_label": stated,
                "notes": notes,
            }
        )
    return rows


def label_text(label: str | None) -> str:
    return label or "none"


def paper_agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per method the paper labels with a failure mode: its label, ours, and whether they
    agree: "yes" (our label is the paper's), "partly" (we state the paper's mode too, but
    also a more severe one that becomes our label), "borderline" (the paper's mode is
    borderline here and we state no other), else "no"."""
    out: dict[str, Any] = {}
    for row in rows:
        stated = PAPER_LABELS.get(row["method"]) if row["method"] else None
        if row["rank"] is None or stated is None:
            continue
        borderline = [b["mode"] for b in row["borderline"]]
        if row["primary"] == stated:
            agree = "yes"
        elif stated in row["verdicts"]:
            agree = "partly"
        elif row["primary"] is None and stated in borderline:
            agree = "borderline"
        else:
            agree = "no"
        out[row["method"]] = {"paper": stated, "ours": row["primary"], "agree": agree}
    counts = {k: sum(v["agree"] == k for v in out.values()) for k in ("partly", "borderline")}
    return {
        "labelled": len(out),
        "reproduced": sum(v["agree"] == "yes" for v in out.values()),
        **counts,
        "methods": out,
    }


def build_leaderboard(
    records: Sequence[EvalRecord], cfg: ReportConfig, title: str = ""
) -> dict[str, Any]:
    """The whole report as data: worlds, references, ranked rows, the paper's rows."""
    if not records:
        raise ManifestError("no eval folders to report on")
    worlds, warnings = [], []
    groups: dict[tuple, list[tuple[dict[str, Any], list[EvalRecord]]]] = {}
    by_dataset = split_worlds(records)
    for dataset, world_records in by_dataset.items():
        refs = {v: model_entry(_one_reference(world_records, v)) for v in ("clean", "compromised")}
        clean, compromised = refs["clean"]["metrics"], refs["compromised"]["metrics"]
        world = {
            "name": _world_name(dataset, refs["clean"]),
            "dataset": dataset,
            "clean": clean,
            "compromised": compromised,
            "references": refs,
        }
        worlds.append(world)
        prefix = f"{world['name']}: " if len(by_dataset) > 1 else ""
        warnings += [prefix + w for w in _reference_warnings(clean, compromised)]
        in_world: dict[tuple, list[EvalRecord]] = {}
        for r in world_records:
            in_world.setdefault(_group_key(r), []).append(r)
        for key, rs in in_world.items():
            groups.setdefault(key, []).append((world, rs))
    names = [w["name"] for w in worlds]
    if len(set(names)) < len(names):
        for w in worlds:
            w["name"] = f"{w['name']} ({w['dataset'][:8]})"
    worlds.sort(key=lambda w: w["name"])
    for w in warnings:
        log.warning("%s", w)
    labels = _external_labels({k: [r for _, rs in v for r in rs] for k, v in groups.items()})
    rows: dict[tuple, dict[str, Any]] = {}
    for key, pairs in groups.items():
        variant = key[0]
        method = key[1] if variant == "unlearned" else None
        budget = key[2] if variant == "unlearned" else None
        label = _label(variant, method, budget, labels.get(key, ""))
        pairs = sorted(pairs, key=lambda p: p[0]["name"])
        if variant in ("clean", "compromised"):
            per_world = [(w, [w["references"][variant]]) for w, _ in pairs]
        else:
            per_world = [(w, _entries(rs)) for w, rs in pairs]
        rows[key] = aggregate_row(label, variant, method, budget, per_world, cfg)
        _add_method_code(rows[key], [r for _, rs in pairs for r in rs])
        if variant not in ("clean", "compromised") and len(pairs) < len(worlds):
            rows[key]["notes"].append(f"evaluated in {len(pairs)} of {len(worlds)} worlds")
    ranked = sorted((r for k, r in rows.items() if k[0] not in ("clean", "compromised")),
                    key=rank_key)  # fmt: skip
    for i, row in enumerate(ranked, 1):
        row["rank"] = i
        for note in row["notes"]:
            log.warning("%s: %s", row["label"], note)
    architectures = sorted({str(r.model.get("architecture")) for r in records})
    if len(architectures) > 1:
        warnings.append(f"the evals cover several architectures ({', '.join(architectures)})")
    ordered = [rows[("clean",)], rows[("compromised",)], *ranked]
    return {
        "title": title,
        "dataset": worlds[0]["dataset"] if len(worlds) == 1 else None,
        "datasets": [w["dataset"] for w in worlds],
        "confidence": cfg.confidence,
        "thresholds": {
            "min_forgetting": cfg.min_forgetting,
            "min_holdout_kept": cfg.min_holdout_kept,
            "max_genknow_drop": cfg.max_genknow_drop,
        },
        "rules": thresholds_text(cfg),
        "worlds": [_world_summary(w) for w in worlds],
        "references": {
            variant: {
                "model": worlds[0]["references"][variant]["model"]
                if len(worlds) == 1
                else [w["references"][variant]["model"] for w in worlds],
                "model_path": worlds[0]["references"][variant]["model_path"],
                "evals": [e for w in worlds for e in w["references"][variant]["evals"]],
                "metrics": rows[(variant,)]["metrics"],
            }
            for variant in ("clean", "compromised")
        },
        "rows": ordered,
        "paper": {
            "source": PAPER_SOURCE,
            "budget": PAPER_BUDGET,
            "rows": paper_rows(cfg),
            "agreement": paper_agreement(ordered),
        },
        "evals": [
            {
                "path": str(r.path),
                "digest": r.digest,
                "model": r.model_digest,
                "variant": r.variant,
                "row": rows[_group_key(r)]["label"],
            }
            for r in records
        ],
        "architectures": architectures,
        "metrics": {
            n: {
                "family": m.family,
                "target": m.target,
                "better": m.better,
                "description": m.description,
            }
            for n, m in METRICS.items()
        },
        "warnings": warnings,
    }


def _world_summary(world: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader checks per world: did Compromised memorise, and at what GenKnow cost."""
    clean, compromised = world["clean"], world["compromised"]
    ratio = compromised["retfail"] / clean["retfail"] if clean["retfail"] > 0 else None
    return {
        "name": world["name"],
        "dataset": world["dataset"],
        "clean": dict(clean),
        "compromised": dict(compromised),
        "retfail_ratio": rounded(ratio),
        "genknow_difference": rounded(compromised["genknow"] - clean["genknow"]),
    }


def _reference_warnings(clean: Mapping[str, float], compromised: Mapping[str, float]) -> list:
    warnings = []
    if compromised["retfail"] <= clean["retfail"]:
        warnings.append(
            f"the Compromised RetFail ({compromised['retfail']:.4f}) is not above the Clean "
            f"one ({clean['retfail']:.4f}): the Compromised model did not memorise the forget "
            "set, so forgetting scores are not meaningful"
        )
    for name in HOLDOUT:
        if compromised[name] <= clean[name]:
            warnings.append(
                f"the Compromised {display(name)} ({compromised[name]:.4f}) is not above the "
                f"Clean one ({clean[name]:.4f}): holdout kept is not meaningful"
            )
    return warnings
