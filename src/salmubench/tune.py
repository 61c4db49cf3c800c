"""Choosing method settings without seeing the test: a validation world and a fixed rule.

A *world* is a dataset seed with its own Clean and Compromised model. Seeds from
`VALIDATION_SEEDS` up are validation worlds: settings are tuned there and nowhere else, and
no leaderboard may use one (`bench` and `report` refuse them, by seed and by dataset digest).
Leaderboard worlds are the seeds below.

The selection rule is fixed here, before any result is seen, and is not a verdict threshold:
per method, the smallest learning rate of the grid whose unlearned model closes at least
`TARGET` of the RetFail gap on the validation world; if none does, the one that closes the
most. It reads only forgetting: holdout damage and GenKnow loss are what the leaderboard must
reveal, so they are recorded for the sweep plot but never used to choose. The whole sweep is
kept (tuning.json) and plotted by the report.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salmubench.config import ConfigError, stage_config, to_dict
from salmubench.manifest import dumps, write_atomic

# The protocol's names, also imported from here by tests and tools.
from salmubench.tuning import (  # noqa: F401
    DEFAULT_GRID,
    REFERENCE_KEYS,
    RULE,
    TARGET,
    VALIDATION_SEEDS,
    check_leaderboard_world,
    check_not_tuned_on,
    check_validation_world,
    choose,
    grid_for,
    is_validation_world,
    load_tuning,
)
from salmubench.vocab import TUNING_FILE

log = logging.getLogger(__name__)


def tune(
    profile: str,
    out: str | os.PathLike,
    *,
    world: int = VALIDATION_SEEDS,
    methods: Sequence[str],
    grid: Sequence[float] | None = None,
    target: float = TARGET,
    full: bool = False,
    unlearn_overrides: Sequence[str] = (),
    params_path: str | os.PathLike | None = None,
    force: bool = False,
    show: bool = True,
    say: Callable[[str], None] = print,
    step_bar: Callable[[str], tuple[Callable, Callable]] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Sweep each method's learning rate on validation world `world` (built in `out` if
    needed) and choose by the rule; writes and returns `out/tuning.json`.

    The grid (default: each method's `search_space`, else DEFAULT_GRID) runs from the smallest
    rate up; unless `full`, a method stops one rate past the chosen one (larger rates cannot
    change the choice). Finished runs are reused. `jobs` > 1: methods swept side by side
    (`bench`'s `jobs`).
    """
    from salmubench.bench import World, _Stages, build_world, stage_configs, unlearn_and_evaluate
    from salmubench.report.leaderboard import score
    from salmubench.stagerun import check_jobs
    from salmubench.unlearn import build_method

    check_validation_world(world)
    if not 0 < target <= 1:
        raise ConfigError(f"target={target}: must be in (0, 1]")
    grids = {m: grid_for(m, grid) for m in methods}
    for m, rates in grids.items():  # the grids actually run, a method's own included
        if not rates or any(not lr > 0 for lr in rates):
            raise ConfigError(f"{m}: grid {rates}: give positive learning rates")
    cfg = stage_configs(profile, params_path, None, unlearn_overrides)
    for m in methods:
        build_method(m, cfg["unlearn"].methods.get(m))
    out = Path(out)
    stages = _Stages(5 + 2 * sum(map(len, grids.values())), show, say, step_bar, force,
                     jobs=check_jobs(jobs))  # fmt: skip

    def sweep(method: str, runs: list[dict[str, Any]]) -> None:  # rates from the smallest up
        for lr in grids[method]:
            overrides = [*unlearn_overrides, f"methods.{method}.lr={lr}"]
            ucfg = stage_config("unlearn", profile, overrides, params_path)
            name = f"{method}-lr{lr:g}"
            target_eval = out / "tuning" / f"eval-{name}"
            unlearn_and_evaluate(w, method, 0, ucfg, out / "tuning" / name, target_eval, cfg,
                                 stages, profile)  # fmt: skip
            metrics = json.loads((target_eval / "metrics.json").read_text())
            scores, _ = score(metrics, refs["clean"], refs["compromised"])
            runs.append({"lr": lr, "scores": scores, "metrics": metrics})
            if not full and any(
                r["lr"] < lr and (r["scores"]["forgetting"] or -1.0) >= target for r in runs
            ):
                break  # one rate past the chosen one: the rest cannot change the choice

    try:
        w = build_world(World(world, out), profile, cfg, stages)
        refs = {v: json.loads((w.eval(v) / "metrics.json").read_text())
                for v in ("clean", "compromised")}  # fmt: skip
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        start = time.perf_counter()
        stages.map(lambda m: sweep(m, results[m]), methods)
    finally:
        stages.close()
    chosen = {m: choose(results[m], target) for m in methods}

    record = {
        "profile": profile,
        "world": {"name": f"world {world}", "seed": world, "dataset": w.digest},
        "budget": cfg["unlearn"].budget,
        "rule": RULE.format(target=target),
        "target": target,
        "grid": sorted(set(grid)) if grid else None,  # None: each method's own, see grids
        "grids": grids,  # per method: a method's own search_space when no grid was given
        "unlearn_overrides": list(unlearn_overrides),
        "thresholds": to_dict(cfg["report"]),
        "references": {v: {k: refs[v][k] for k in REFERENCE_KEYS} for v in refs},
        "results": results,
        "chosen": chosen,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_atomic(out / TUNING_FILE, dumps(record))
    if show:
        say(f"rule: {record['rule']}")
        for method, lr in chosen.items():
            row = next(r for r in results[method] if r["lr"] == lr)
            s = row["scores"]
            say(f"  {method:<18} lr {lr:<8g} forgetting {s['forgetting']:.3f}  holdout kept "
                f"{s['holdout_kept']:.3f}  GenKnow drop {s['genknow_drop']:.3f}")  # fmt: skip
        say(f"-> {out / TUNING_FILE}")
    return record
