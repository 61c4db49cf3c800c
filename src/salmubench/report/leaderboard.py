"""The leaderboard: eval records grouped into worlds, seeds aggregated, every row scored
and judged against its world's references, with the paper's rows alongside (SPEC.md §4).

A pure function of eval records (`records.py` reads them) and a `ReportConfig`; the scores
and verdicts themselves are `scoring.py`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from salmubench.config import ReportConfig
from salmubench.eval.catalogue import describe_metrics
from salmubench.manifest import ManifestError
from salmubench.measures import rounded
from salmubench.report.paper import (
    PAPER_BUDGET,
    PAPER_CLEAN,
    PAPER_COMPROMISED,
    PAPER_LABELS,
    PAPER_METHODS,
    PAPER_SOURCE,
)
from salmubench.report.robust import AttackRecord, attach_attacks

# judge_intervals, t_interval, SCORES, PRECEDENCE, VERDICTS: re-exported for the tests and
# tools that import them from here.
from salmubench.report.scoring import (  # noqa: F401
    HOLDOUT,
    PRECEDENCE,
    SCORES,
    VERDICTS,
    EvalRecord,
    aggregate_row,
    display,
    judge,
    judge_intervals,
    model_entry,
    primary,
    rank_key,
    row_label,
    score,
    t_interval,
    thresholds_text,
)

log = logging.getLogger(__name__)


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
    records: Sequence[EvalRecord],
    cfg: ReportConfig,
    title: str = "",
    attacks: Sequence[AttackRecord] = (),
) -> dict[str, Any]:
    """The whole report as data: worlds, references, ranked rows, the paper's rows; with
    `attacks` (relearning attack records), each row's recovery gaps and robust verdict."""
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
        label = row_label(variant, method, budget, labels.get(key, ""))
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
    robustness = attach_attacks(ranked, worlds, attacks, cfg)
    if robustness is not None:
        warnings += robustness.pop("warnings")
    architectures = sorted({str(r.model.get("architecture")) for r in records})
    if len(architectures) > 1:
        warnings.append(f"the evals cover several architectures ({', '.join(architectures)})")
    ordered = [rows[("clean",)], rows[("compromised",)], *ranked]
    board = {
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
        "metrics": describe_metrics(),
        "warnings": warnings,
    }
    if robustness is not None:
        board["thresholds"]["max_recovery"] = cfg.max_recovery
        board["rules"]["robust"] = robustness["rule"]
        board["attacks"] = robustness
    return board


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
