"""Streaming training (issue #21): peak memory as the dataset grows, and speed against the
in-memory loader.

    python benchmarks/stream_memory.py memory      # micro model; datasets 1x, 4x, 16x
    python benchmarks/stream_memory.py throughput  # tiny: streaming vs in-memory steps/s
    python benchmarks/stream_memory.py loader --data D --profile small --workers 1 2 4

`memory` builds three micro-profile datasets whose general world is 1x, 4x and 16x
`--base` images in shards of `--shard-size` (so 16x has many shards), trains the same
micro Compromised model on each with `loader=stream` (and, for contrast, `loader=memory`),
and records the peak memory of the whole process tree (the trainer and its loader workers:
the sum of their proportional set sizes, sampled every 20 ms from /proc, so pages the
forked workers share with the trainer count once) and the trainer's own peak RSS
(ru_maxrss). `throughput` builds
the tiny dataset and alternates streaming and in-memory runs of `--steps` steps, reading
the loop's own steps/s (data loading before step 0 is not in it) and the time the step
loop waited for data. Every run is `python -m salmubench train` in a fresh process.
`loader` runs the streaming loader alone on a dataset (the profile's Compromised batches,
its model's image size and tokenizer, no training) with each `--workers` count, and
reports the steps/s it delivers: what a trainer on a fast accelerator can draw at most,
so a step is data-bound when it is shorter than 1 / that.

Writes benchmarks/results/stream-<mode>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from salmubench.manifest import read_manifest

RESULTS = Path(__file__).resolve().parent / "results"


def _tree_pss(pid: int) -> int:
    """Proportional set size of `pid` and every descendant, now, in bytes: pages shared
    between the trainer and its forked loader workers count once, not once per process."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(argv: list[str], sample: bool = True) -> dict:
    """One command in a fresh process: wall seconds, peak PSS of its process tree (sampled
    every 20 ms, if `sample`) and peak RSS of the process itself (ru_maxrss), in MiB.
    Sampling reads /proc/PID/smaps_rollup, which walks the page tables under the process's
    memory lock: it slowed a tiny training's steps by about 40% here, so speed runs do not."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "salmubench", *argv],
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_pss(proc.pid)) if sample else 0
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{err.read()[-3000:]}")
    return {"seconds": round(time.perf_counter() - t0, 2),
            "peak_tree_pss_mib": round(peak / 2**20, 1) if sample else None,
            "peak_trainer_mib": round(usage.ru_maxrss / 1024, 1)}  # fmt: skip


def synth(out: Path, general: int, shard_size: int) -> Path:
    if not (out / "manifest.json").exists():
        run(["synth", "--profile", "micro", "--out", str(out), "-q", "--force",
             "--set", f"general_world={general}", "--set", f"shard_size={shard_size}"])  # fmt: skip
    return out


def train(data: Path, out: Path, loader: str, extra: list[str], sample: bool = True) -> dict:
    result = run(["train", "--data", str(data), "--variant", "compromised", "--profile",
                  extra[0], "--out", str(out), "--force", "-q", "--set", f"loader={loader}",
                  *[a for s in extra[1:] for a in ("--set", s)]], sample)  # fmt: skip
    manifest = read_manifest(out, kind="model")
    training = manifest["training"]
    result.update(steps_per_second=training["steps_per_second"],
                  seconds_waiting_for_data=training.get("seconds_waiting_for_data"),
                  seconds_loading_data=training["seconds_loading_data"],
                  shards=manifest["data_loader"]["shards"])  # fmt: skip
    return result


def memory(args: argparse.Namespace, work: Path) -> dict:
    rows = []
    for factor in (1, 4, 16):
        data = synth(work / f"data-{factor}x", args.base * factor, args.shard_size)
        images = sum(read_manifest(data)["counts"].values())
        for loader in ("stream", "memory"):
            r = train(data, work / f"m-{factor}-{loader}", loader, ["micro", f"steps={args.steps}"])
            rows.append({"factor": factor, "images": images, "loader": loader, **r})
            print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


def throughput(args: argparse.Namespace, work: Path) -> dict:
    data = work / "tiny"
    if not (data / "manifest.json").exists():
        run(["synth", "--profile", "tiny", "--out", str(data), "-q", "--force"])
    rows = []
    for r in range(args.rounds):
        for loader in ("stream", "memory") if r % 2 == 0 else ("memory", "stream"):
            extra = ["tiny", f"steps={args.steps}", f"log_every={args.steps}"]
            timed = train(data, work / f"t-{loader}", loader, extra, sample=False)
            row = {"round": r, "loader": loader, **timed}
            rows.append(row)
            print(json.dumps(row), flush=True)
    ratio = [s["steps_per_second"] / m["steps_per_second"] for s, m in zip(
        [x for x in rows if x["loader"] == "stream"], [x for x in rows if x["loader"] == "memory"],
        strict=True)]  # fmt: skip
    return {"rows": rows, "stream_over_memory": [round(x, 3) for x in ratio],
            "median_ratio": round(statistics.median(ratio), 3)}  # fmt: skip


def loader(args: argparse.Namespace, work: Path) -> dict:
    """The streaming loader alone: steps/s it delivers with each worker count."""
    import torch

    from salmubench.config import stage_config
    from salmubench.engine.pools import BatchPlan
    from salmubench.models import create, image_size, tokenizer
    from salmubench.train.data import batch_sizes
    from salmubench.train.stream import StepBatches, batches, index_pools
    from salmubench.vocab import VARIANTS

    cfg = stage_config("train", args.profile)
    manifest = read_manifest(args.data, kind="dataset")
    t0 = time.perf_counter()
    indexes = index_pools(args.data, manifest, VARIANTS["compromised"])
    seconds_index = time.perf_counter() - t0
    per_step = batch_sizes(cfg.batch_size, "compromised", cfg.sensitive_batch,
                           cfg.retain_fraction)  # fmt: skip
    plan = BatchPlan({p: len(i) for p, i in indexes.items()}, per_step, 0)
    size, tokenize = image_size(create(cfg.model)), tokenizer(cfg.model)
    batch = sum(per_step.values())
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) - 1))  # as a trainer would
    rows = []
    for workers in args.workers:
        steps = StepBatches(indexes, plan, 0, args.steps + 2, 0, batch, tokenize, size)
        it = batches(steps, workers)
        next(it), next(it)  # workers started and first batches in: not the rate
        t0 = time.perf_counter()
        for _ in range(args.steps):
            next(it)
        seconds = time.perf_counter() - t0
        rows.append({"workers": workers, "steps": args.steps, "batch": batch,
                     "steps_per_second": round(args.steps / seconds, 3),
                     "samples_per_second": round(args.steps * batch / seconds, 1)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return {"profile": args.profile, "data": str(args.data), "image_size": size,
            "seconds_index": round(seconds_index, 2), "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("memory", "throughput", "loader"))
    parser.add_argument("--base", type=int, default=2000, help="general-world images at 1x")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4, help="throughput: alternating rounds")
    parser.add_argument("--work", type=Path, help="keep datasets here (default: a temp dir)")
    parser.add_argument("--data", type=Path, help="loader: the dataset to read")
    parser.add_argument("--profile", default="small", help="loader: batches and model")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="loader")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        modes = {"memory": memory, "throughput": throughput, "loader": loader}
        if args.mode == "loader" and args.data is None:
            parser.error("loader needs --data (a dataset folder)")
        result = modes[args.mode](args, work)
    result.update(command=" ".join(sys.argv), machine=platform.node(), cpus=os.cpu_count(),
                  affinity=len(os.sched_getaffinity(0)),
                  threads=os.environ.get("OMP_NUM_THREADS"))  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"stream-{args.mode}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
