"""The recovery gap (pure): how much an attack restores on a model beyond what it gives Clean.

For each sweep point and score s (RetFail, AssocStr), with every value read on the same
scored forget items:

    gap = [(s after the attack) - (s before)]_model - [(s after) - (s before)]_Clean
          / (s of Compromised - s of Clean)

so 0 = the attack teaches the unlearned model no more than a model that never saw the
data, 1 = it restores the whole memorised association on top of that. The score of an
attack is its worst case over the sweep (the point with the largest RetFail gap).
"""

from __future__ import annotations

from typing import Any

SCORES = ("retfail", "assoc_str")
# The record an attack folder holds (read by the report, which imports no torch).
ATTACK_FILE = "attack.json"
# The settings each attack reads: a reference attack folder stays reusable when only
# settings it never read change (e.g. a new weight precision leaves persona_split alone),
# and the report compares an attack's records on these alone.
READS = {
    "persona_split": ("lrs", "steps", "batch", "seed", "split_fraction"),
    "retain_only": ("lrs", "steps", "batch", "seed", "retain_size"),
    "generic_captions": ("lrs", "steps", "batch", "seed"),
    "low_precision": ("precisions",),
}


def settings_read(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The part of an attack's settings (`to_dict(AttackConfig)`) that attack `name` reads."""
    return {k: config.get(k) for k in READS[name]}


def gaps(model: dict[str, Any], clean: dict[str, Any], compromised: dict[str, float]) -> dict:
    """`model` and `clean`: attack records {"before": {score: v}, "points": [{"point": name,
    "scores": {score: v}, ...}]} over the same sweep; `compromised`: {score: v} on the same
    items. Returns {"points": [{"point", score: gap...}], "worst": {...}, "scale": {...}}."""
    clean_points = {p["point"]: p for p in clean["points"]}
    missing = [p["point"] for p in model["points"] if p["point"] not in clean_points]
    if missing:
        raise ValueError(f"the Clean record lacks sweep points {missing}: run the same attack")
    scale = {s: compromised[s] - clean["before"][s] for s in SCORES}
    rows = []
    for p in model["points"]:
        c = clean_points[p["point"]]
        row: dict[str, Any] = {"point": p["point"]}
        for s in SCORES:
            restored = p["scores"][s] - model["before"][s]
            baseline = c["scores"][s] - clean["before"][s]
            row[s] = round((restored - baseline) / scale[s], 6) if scale[s] > 0 else None
            row[f"{s}_after"] = p["scores"][s]
        rows.append(row)
    scored = [r for r in rows if r["retfail"] is not None]
    worst = max(scored, key=lambda r: r["retfail"]) if scored else None
    return {"points": rows, "worst": worst, "scale": {s: round(v, 6) for s, v in scale.items()}}
