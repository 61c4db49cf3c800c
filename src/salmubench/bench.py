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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmubench.config import ConfigError, stage_config, to_dict
from salmubench.manifest import ManifestError, dumps, read_manifest, write_atomic

log = logging.getLogger(__name__)


STAGE_CONFIGS = ("synth", "train", "eval", "unlearn", "report")


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


@dataclass
class _Stages:
    """Runs stages in order: numbered progress lines, timings, reuse of finished folders."""

    total: int
    show: bool
    say: Callable[[str], None]
    step_bar: Callable[[str], tuple[Callable, Callable]] | None
    force: bool
    done: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[..., Any], current: dict | None = None) -> Any:
        """`fn(progress)` unless `current` (a reusable finished manifest) says it is done."""
        self.done += 1
        prefix = f"[{self.done:>2}/{self.total}] {name}"
        if current is not None and not self.force:
            if self.show:
                self.say(f"{prefix}: up to date, reused")
            return current
        if self.show:
            self.say(f"{prefix} ...")
        start = time.perf_counter()
        update, close = (None, lambda: None)
        if self.step_bar is not None and self.show:
            update, close = self.step_bar(name)
        try:
            result = fn(update)
        finally:
            close()
        self.timings[name] = round(time.perf_counter() - start, 2)
        if self.show:
            self.say(f"{prefix}: {self.timings[name]:.1f} s")
        return result


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
    step_bar: Callable[[str], tuple[Callable, Callable]] | None = None,
) -> dict[str, Any]:
    """Run (or complete) the comparison of `methods` under `profile` in run folder `out`.

    `say` prints a line per stage; `step_bar(label)` -> (update, close) shows the steps of
    trainings and unlearning runs. Returns the report's manifest.
    """
    from salmubench.data.synth import synth
    from salmubench.eval.stage import evaluate
    from salmubench.report import build_report
    from salmubench.train.loop import train
    from salmubench.unlearn import build_method
    from salmubench.unlearn.loop import run_config, unlearn, with_budget

    cfg = {s: stage_config(s, profile, (), params_path) for s in STAGE_CONFIGS}
    ucfg = cfg["unlearn"]
    if budget is not None:
        ucfg = with_budget(ucfg, budget)
    params = {m: dataclasses.asdict(build_method(m, ucfg.methods.get(m)).params) for m in methods}
    if not seeds:
        raise ConfigError("seeds: give at least one unlearning seed")
    out = Path(out)
    data, eval_clean, eval_compromised = (
        out / "dataset",
        out / "eval-clean",
        out / "eval-compromised",
    )
    models = {v: out / v for v in ("clean", "compromised")}
    stages = _Stages(6 + 2 * len(methods) * len(seeds), show, say, step_bar, force)
    start = time.perf_counter()

    stages.run(
        "synth",
        lambda _: synth(cfg["synth"], data_seed, data, profile=profile, force=True),
        _reusable(data, "dataset", config=to_dict(cfg["synth"]), seed=data_seed),
    )
    digest = read_manifest(data, kind="dataset")["digest"]
    for variant, folder in models.items():
        stages.run(
            f"train {variant}",
            lambda bar, v=variant, f=folder: train(
                data, v, cfg["train"], f, seed=data_seed, profile=profile, force=True, progress=bar
            ),
            _reusable(folder, "model", config=to_dict(cfg["train"]), variant=variant,
                      seed=data_seed, inputs={"dataset": digest}),
        )  # fmt: skip

    def evaluation(name: str, model: Path, target: Path, compromised: Path | None) -> None:
        refs = {"clean": eval_clean, "compromised": compromised} if compromised else {}
        stages.run(
            name,
            lambda _: evaluate(data, model, target, cfg=cfg["eval"], seed=data_seed, force=True,
                               **refs),
            _reusable(target, "eval", config=to_dict(cfg["eval"]), seed=data_seed,
                      inputs={"dataset": digest,
                              "model": read_manifest(model, kind="model")["digest"]}),
        )  # fmt: skip

    evaluation("eval clean", models["clean"], eval_clean, None)
    # The Compromised model is its own reference: recognised by digest, embedded once.
    evaluation("eval compromised", models["compromised"], eval_compromised, models["compromised"])
    source = read_manifest(models["compromised"], kind="model")["digest"]
    evals = [eval_clean, eval_compromised]
    for method in methods:
        for seed in seeds:
            name = f"{method}-b{ucfg.budget:g}-s{seed}"
            target = out / "unlearned" / name
            stages.run(
                f"unlearn {name}",
                lambda bar, m=method, s=seed, t=target: unlearn(
                    data, models["compromised"], m, ucfg, t, seed=s, profile=profile,
                    force=True, progress=bar),
                _reusable(target, "model", config=to_dict(run_config(ucfg, method)),
                          method=method, method_params=params[method], seed=seed,
                          inputs={"dataset": digest, "model": source}),
            )  # fmt: skip
            evals.append(out / "evals" / name)
            evaluation(f"eval {name}", target, evals[-1], eval_compromised)
    title = (f"SALMUBench {profile}: {len(methods)} methods, budget {ucfg.budget:g}x, "
             f"seeds {', '.join(map(str, seeds))}")  # fmt: skip
    report = stages.run(
        "report",
        lambda _: build_report(evals, out / "report", cfg=cfg["report"], force=True, title=title),
    )
    seconds = round(time.perf_counter() - start, 2)
    summary = {
        "profile": profile,
        "methods": list(methods),
        "budget": ucfg.budget,
        "seeds": list(seeds),
        "seconds_total": seconds,
        "stages": stages.timings,
    }
    write_atomic(out / "bench.json", dumps(summary))
    if show:
        say((out / "report" / "leaderboard.md").read_text(encoding="utf-8"))
        ran = len(stages.timings)
        say(f"{seconds:.0f} s in all ({ran} stages run) -> {out / 'report' / 'report.html'}")
    return report
