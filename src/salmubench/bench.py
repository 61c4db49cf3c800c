"""`salmubench bench`: the whole comparison in one process, as a chain of the stage functions.

dataset -> Clean, Compromised -> their evals -> every (method, seed) unlearned and
evaluated -> report. Each stage writes its usual folder under the run folder; a finished
folder whose manifest shows the same config and inputs is reused (so adding a method or
a seed re-runs only what is new), anything else is rebuilt. The Kubeflow pipeline runs the
same stage functions as separate components; this is the one-process path for a laptop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salmubench.config import ConfigError, stage_config, to_dict
from salmubench.manifest import ManifestError, dumps, read_manifest, write_atomic

log = logging.getLogger(__name__)


def parse_methods(text: str) -> list[str]:
    """'all' or a comma-separated list of registered method names, validated."""
    from salmubench.unlearn import method_names

    names = method_names()
    if text.strip() == "all":
        return names
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in names]
    if unknown or not chosen:
        raise ConfigError(f"unknown method(s) {unknown or text!r}; valid: all, {', '.join(names)}")
    return list(dict.fromkeys(chosen))


def _reusable(folder: Path, kind: str, **expected: Any) -> dict[str, Any] | None:
    """The manifest of a finished `folder` whose fields equal `expected`, else None."""
    try:
        manifest = read_manifest(folder, kind=kind)
    except ManifestError:
        return None
    for key, value in expected.items():
        if manifest.get(key) != value:
            log.info("%s: %s changed; rebuilding", folder, key)
            return None
    return manifest


def bench(
    profile: str,
    out: str | os.PathLike,
    *,
    methods: Sequence[str],
    budget: float | None = None,
    seeds: Sequence[int] = (0,),
    data_seed: int = 0,
    params_path: str | os.PathLike | None = None,
    force: bool = False,
    show: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or complete) the comparison of `methods` under `profile` in run folder `out`."""
    from salmubench.data.synth import synth
    from salmubench.eval.stage import evaluate
    from salmubench.report import build_report
    from salmubench.train.loop import train
    from salmubench.unlearn import build_method
    from salmubench.unlearn.loop import unlearn

    cfgs = {s: stage_config(s, profile, (), params_path) for s in
            ("synth", "train", "eval", "unlearn", "report")}  # fmt: skip
    ucfg = cfgs["unlearn"]
    if budget is not None:
        if not budget > 0:
            raise ConfigError(f"budget={budget!r}: must be a positive number of forget passes")
        ucfg = dataclasses.replace(ucfg, budget=float(budget))
    impls = {m: build_method(m, ucfg.methods.get(m)) for m in methods}  # validate all first
    if not seeds:
        raise ConfigError("seeds: give at least one unlearning seed")
    out = Path(out)
    paths = {"dataset": out / "dataset", "clean": out / "clean", "compromised": out / "compromised"}
    total = 3 + 2 + 2 * len(methods) * len(seeds) + 1
    timings: dict[str, float] = {}
    done = 0
    start = time.perf_counter()

    def stage(name: str, run: Callable[[], Any], reused: bool) -> Any:
        nonlocal done
        done += 1
        if reused:
            if show:
                say(f"[{done:>2}/{total}] {name}: up to date, reused")
            return None
        if show:
            say(f"[{done:>2}/{total}] {name} ...")
        t = time.perf_counter()
        result = run()
        timings[name] = round(time.perf_counter() - t, 2)
        if show:
            say(f"[{done:>2}/{total}] {name}: {timings[name]:.1f} s")
        return result

    ds = None if force else _reusable(paths["dataset"], "dataset", config=to_dict(cfgs["synth"]),
                                      seed=data_seed)  # fmt: skip
    stage("synth", lambda: synth(cfgs["synth"], data_seed, paths["dataset"], profile=profile,
                                 force=True), ds is not None)  # fmt: skip
    digest = read_manifest(paths["dataset"], kind="dataset")["digest"]
    for variant in ("clean", "compromised"):
        model = None if force else _reusable(
            paths[variant], "model", config=to_dict(cfgs["train"]), variant=variant,
            seed=data_seed, inputs={"dataset": digest})  # fmt: skip
        stage(f"train {variant}", lambda v=variant: train(
            paths["dataset"], v, cfgs["train"], paths[v], seed=data_seed, profile=profile,
            force=True), model is not None)  # fmt: skip

    def eval_stage(name: str, model: Path, target: Path, refs: bool) -> None:
        model_digest = read_manifest(model, kind="model")["digest"]
        current = None if force else _reusable(
            target, "eval", config=to_dict(cfgs["eval"]), seed=data_seed,
            inputs={"dataset": digest, "model": model_digest})  # fmt: skip
        kwargs = (
            {"clean": out / "eval-clean", "compromised": out / "eval-compromised"} if refs else {}
        )
        stage(name, lambda: evaluate(paths["dataset"], model, target, cfg=cfgs["eval"],
                                     seed=data_seed, force=True, **kwargs),
              current is not None)  # fmt: skip

    eval_stage("eval clean", paths["clean"], out / "eval-clean", False)
    eval_stage("eval compromised", paths["compromised"], out / "eval-compromised", True)
    source = read_manifest(paths["compromised"], kind="model")["digest"]
    evals = [out / "eval-clean", out / "eval-compromised"]
    for method in methods:
        params = dataclasses.asdict(impls[method].params)
        for seed in seeds:
            name = f"{method}-b{ucfg.budget:g}-s{seed}"
            target = out / "unlearned" / name
            current = None if force else _reusable(
                target, "model", config=to_dict(ucfg), method=method, method_params=params,
                seed=seed, inputs={"dataset": digest, "model": source})  # fmt: skip
            stage(f"unlearn {name}", lambda m=method, s=seed, t=target: unlearn(
                paths["dataset"], paths["compromised"], m, ucfg, t, seed=s, profile=profile,
                force=True), current is not None)  # fmt: skip
            evals.append(out / "evals" / name)
            eval_stage(f"eval {name}", target, evals[-1], True)
    report = stage("report", lambda: build_report(evals, out / "report", cfg=cfgs["report"],
                   force=True, title=f"SALMUBench {profile}: {len(methods)} methods, budget "
                   f"{ucfg.budget:g}x, seeds {', '.join(map(str, seeds))}"), False)  # fmt: skip
    seconds = round(time.perf_counter() - start, 2)
    summary = {"profile": profile, "methods": list(methods), "budget": ucfg.budget,
               "seeds": list(seeds), "seconds_total": seconds, "stages": timings}  # fmt: skip
    write_atomic(out / "bench.json", dumps(summary))
    if show:
        say((out / "report" / "leaderboard.md").read_text(encoding="utf-8"))
        html = out / "report" / "report.html"
        say(f"{seconds:.0f} s in all ({len(timings)} stages run) -> {html}")
    return report
