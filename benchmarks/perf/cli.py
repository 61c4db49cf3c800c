"""The suite's command line: the suites in an explicit table, and the hidden worker
subcommands that the suites run in fresh processes (`common.worker`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import perf
from perf import e2e, evaltask, evaluate, gpu, jobs, runner, synth, train, unlearn, world
from perf.common import DOC, RESULTS, ROOT, Bench
from perf.doc import render_doc

# name -> the suite; in the order `all` runs them: e2e before eval and unlearn, which then
# use its fully trained Compromised model, and before world, which reads its stage times.
# `gpu`, `jobs` and `runner` (two fresh benches per round) are never part of `all`.
SUITES: dict[str, Callable[[Bench], None]] = {
    "synth": synth.suite,
    "train": train.suite,
    "e2e": e2e.suite,
    "eval": evaluate.suite,
    "evaltask": evaltask.suite,
    "unlearn": unlearn.suite,
    "gpu": gpu.suite,
    "world": world.suite,
    "jobs": jobs.suite,
    "runner": runner.suite,
}
IN_ALL = ("synth", "train", "e2e", "eval", "evaltask", "unlearn", "world")


def _bare(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("_")
    p.add_argument("--profile", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--loss", choices=("ours", "openclip"), required=True)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    print(json.dumps(train.bare_loop(a.profile, a.steps, a.loss, a.threads)))
    return 0


def _naive_eval(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("_")
    for name in ("--data", "--model", "--profile"):
        p.add_argument(name, required=True)
    a = p.parse_args(argv)
    print(json.dumps(evaluate.naive_eval(a.data, a.model, a.profile)))
    return 0


def _eval_inprocess(argv: list[str]) -> int:
    print(json.dumps(evaltask.in_process(argv[1:])))
    return 0


def _breakdown(argv: list[str]) -> int:
    precision = argv[4] if len(argv) > 4 else "fp32"
    print(json.dumps(train.step_breakdown(argv[1], argv[2], int(argv[3]), precision)))
    return 0


def _render_sample(argv: list[str]) -> int:
    print(json.dumps(synth.render_sample(argv[1], int(argv[2]))))
    return 0


def _methods(argv: list[str]) -> int:
    from salmubench.unlearn import METHODS, method_names

    reads = {
        n: {"uses": sorted(METHODS[n].uses), "original_reads": sorted(METHODS[n].original_reads)}
        for n in method_names()
    }
    print(json.dumps(reads))
    return 0


def _unlearn_reads(argv: list[str]) -> int:
    return unlearn.unlearn_with_reads(argv[1], argv[2], argv[3:])


# The hidden subcommands `common.worker` starts (argv[0] is the name).
WORKERS: dict[str, Callable[[list[str]], int]] = {
    "_bare": _bare,
    "_naive_eval": _naive_eval,
    "_eval_inprocess": _eval_inprocess,
    "_breakdown": _breakdown,
    "_render_sample": _render_sample,
    "_methods": _methods,
    "_unlearn_reads": _unlearn_reads,
}


def parser() -> argparse.ArgumentParser:
    doc = perf.__doc__ or ""
    p = argparse.ArgumentParser(
        prog="benchmarks/perf.py",
        description=doc.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(doc.splitlines()[1:]),
    )
    p.add_argument("suites", nargs="+", choices=(*SUITES, "all", "doc"))
    p.add_argument("--profile", default="tiny")
    p.add_argument("--repeat", type=int, default=3, help="rounds per comparison")
    p.add_argument(
        "--work", default=None, help="inputs kept between runs (default runs/perf-PROFILE)"
    )
    p.add_argument("--data", help="an existing dataset of the profile (default: built once)")
    p.add_argument("--model", help="a Compromised model for eval/unlearn (default: the e2e "
                   "run's, else one trained for --model-steps)")  # fmt: skip
    p.add_argument("--model-steps", type=int, default=100)
    p.add_argument("--train-steps", type=int, default=30, help="steps per training run")
    p.add_argument("--budget", type=float, default=1.0, help="unlearning budget per run")
    p.add_argument("--cpu-clock", action="store_true", help="unlearn: 1 thread, steps per CPU "
                   "second (robust to a busy machine); writes perf-unlearn-cpu-*.json")  # fmt: skip
    p.add_argument("--methods", nargs="*", help="default: every registered method")
    p.add_argument("--sample", type=int, default=20,
                   help="images per kind rendered to extrapolate synth")  # fmt: skip
    p.add_argument("--results", default=str(RESULTS), help="where the JSON goes")
    p.add_argument("--gpu-steps", type=int, default=0, help="gpu: steps (0 = profile's)")
    p.add_argument("--allow-cpu", action="store_true", help="gpu: run without a GPU")
    p.add_argument("--doc", default=str(DOC), help="where `doc` writes the markdown")
    p.add_argument("--world", help="world: a bench world folder whose eval manifests to read")
    p.add_argument("--against", help="evaltask: the code before, a src folder (PYTHONPATH)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="jobs: values compared")
    p.add_argument("--worlds", type=int, default=0, help="jobs: bench --worlds N (0: one world)")
    p.add_argument("--clean-eval", help="evaltask: Clean's eval folder, the reference (as bench)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in WORKERS:
        return WORKERS[argv[0]](argv)
    p = parser()
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.work = args.work or str(ROOT / "runs" / f"perf-{args.profile}")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    bench = Bench(args, argv, Path(args.results))
    chosen = [s for s in SUITES if s in args.suites or ("all" in args.suites and s in IN_ALL)]
    started = time.perf_counter()
    for name in chosen:
        print(f"== {name} ({args.profile}, {args.repeat} round(s)) ==", flush=True)
        SUITES[name](bench)
    if "all" in args.suites or "doc" in args.suites:
        Path(args.doc).write_text(render_doc(bench.results, args.profile))
        print(f"wrote {args.doc}")
    if chosen:
        print(f"{time.perf_counter() - started:.0f} s in all")
    return 0
