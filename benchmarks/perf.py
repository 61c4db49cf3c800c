"""The performance suite: every stage timed side by side against a reference, medians of N.

    python benchmarks/perf.py all --repeat 3          # every suite on tiny, then the doc
    python benchmarks/perf.py train eval --repeat 5   # some suites
    python benchmarks/perf.py doc                     # docs/BENCHMARKS.md from the JSON

Suites (each prints a table and writes benchmarks/results/perf-<suite>-<profile>.json):

- synth:   `salmubench synth` with 1 and all workers (images/s per core), and the render
           cost per image measured on a sample, extrapolated to the paper profile;
- train:   `salmubench train` (the real command, its loop) vs a bare forward/backward loop
           of the same model on in-memory tensors (our loss), vs the same loop with
           OpenCLIP's ClipLoss (OpenCLIP's trainer step without its data pipeline), and
           1 vs 2 processes under torchrun (and 1 process at 1 thread);
- eval:    `salmubench eval` (embedding vs the ten metrics) vs a naive evaluator that
           re-embeds every split a metric reads, per metric;
- unlearn: `salmubench unlearn` steps/s for every method; DELETE and CLIPErase also with
           the original model embedding the forget batch too (the behaviour before
           `Method.original_reads`), side by side;
- e2e:     `salmubench bench` on a fresh folder, once (not repeated: it is the long one);
- doc:     render docs/BENCHMARKS.md from the JSON results.

Every measurement is a fresh process (peak RSS from wait4 of that process tree); the
variants of a comparison run interleaved (A, B, A, B, ...), and ratios are medians of
per-round ratios, so a noisy neighbour disturbs both sides alike. `os.getloadavg()` is
recorded around every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
SUITES = ("synth", "train", "eval", "unlearn", "e2e")
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
PY = sys.executable


# ----------------------------------------------------------------------------- plumbing


_MACHINE: dict[str, Any] = {}


def machine() -> dict[str, Any]:
    """The machine, and torch's view of it (asked of a child: this process stays small)."""
    if not _MACHINE:
        probe = (
            "import json, torch; print(json.dumps({'torch': torch.__version__, "
            "'torch_threads': torch.get_num_threads(), 'gpu': torch.cuda.get_device_name(0) "
            "if torch.cuda.is_available() else None}))"
        )
        info = json.loads(
            subprocess.run([PY, "-c", probe], check=True, capture_output=True, text=True).stdout
        )
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:
            cpus = os.cpu_count() or 1
        _MACHINE.update(
            cpus=cpus,
            platform=platform.platform(),
            processor=platform.processor() or platform.machine(),
            python=platform.python_version(),
            **info,
        )
    return dict(_MACHINE)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# Started by `run` in a lean interpreter: fork()s and exec()s the command, waits for it and
# writes its peak RSS (KiB) to argv[1]. Linux carries the exec()ing process's old memory
# high-water mark into ru_maxrss, and subprocess's vfork shares the caller's memory: a
# command started directly by a process holding torch (pytest, a notebook) would report
# the caller's peak, not its own. Through this small process it reports its own.
TRAMPOLINE = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` to completion: wall seconds, peak RSS (MiB) of its largest process (as
    wait4 reports it for the command's process tree), the load average before and after,
    and its stdout (stderr shown only on failure)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        before = load()
        start = time.perf_counter()
        code = subprocess.call(
            [PY, "-S", "-c", TRAMPOLINE, rss.name, *cmd], stdout=out, stderr=err, env=env, cwd=ROOT
        )
        seconds = time.perf_counter() - start
        peak_kib = int(rss.read() or 0)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}")
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "load_before": before,
        "load_after": load(),
        "stdout": stdout,
    }


def salmubench(*args: str) -> list[str]:
    return [PY, "-m", "salmubench", *args]


def worker(*args: str) -> list[str]:
    return [PY, str(Path(__file__).resolve()), *args]


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 4)


def summarise(rows: list[dict], key: str) -> dict[str, Any]:
    values = [r[key] for r in rows]
    return {"median": median(values), "all": values}


def interleave(rounds: int, variants: dict[str, Callable[[], dict]]) -> dict[str, list[dict]]:
    """Run each variant once per round, in a rotating order (A B C, B C A, ...)."""
    names = list(variants)
    rows: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            row = variants[name]()
            row.pop("stdout", None)
            row["round"] = r
            rows[name].append(row)
            print(
                f"  round {r + 1}/{rounds} {name}: "
                + ", ".join(
                    f"{k} {v}" for k, v in row.items() if k not in ("round", "load_before")
                ),
                flush=True,
            )
    return rows


def paired(a: list[dict], b: list[dict], key_a: str, key_b: str | None = None) -> dict:
    """Per-round ratio a/b (same round = measured side by side), median and all."""
    values = [x[key_a] / y[key_b or key_a] for x, y in zip(a, b, strict=True)]
    return {"median": median(values), "all": [round(v, 4) for v in values]}


def write(suite: str, profile: str, argv: Sequence[str], data: dict[str, Any]) -> Path:
    result = {
        "benchmark": suite,
        "profile": profile,
        "command": "python benchmarks/perf.py " + " ".join(argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **data,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"perf-{suite}-{profile}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (also what the terminal shows)."""
    cells = [[str(c) for c in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"
    if isinstance(x, int):
        return f"{x:,}"
    return "" if x is None else str(x)


# ----------------------------------------------------------------------------- inputs


def ensure_dataset(args) -> Path:
    """--data, or a dataset of the profile in the work folder (built once, then reused)."""
    if args.data:
        return Path(args.data)
    from salmubench.config import stage_config, to_dict
    from salmubench.manifest import ManifestError, read_manifest

    out = Path(args.work) / "dataset"
    try:
        manifest = read_manifest(out, kind="dataset")
        if manifest["config"] == to_dict(stage_config("synth", args.profile)):
            return out
    except ManifestError:
        pass
    print(f"building the {args.profile} dataset in {out} (once) ...", flush=True)
    run(salmubench("synth", "--profile", args.profile, "--out", str(out), "--force", "-q"))
    return out


def ensure_model(args, data: Path) -> Path:
    """--model; else the e2e run's Compromised model (the profile's full recipe) if there
    is one; else a Compromised model trained for --model-steps steps (recorded)."""
    if args.model:
        return Path(args.model)
    from salmubench.manifest import ManifestError, read_manifest

    for candidate in (Path(args.work) / "e2e" / "compromised", Path(args.work) / "compromised"):
        try:
            manifest = read_manifest(candidate, kind="model")
        except ManifestError:
            continue
        if manifest["inputs"]["dataset"] == read_manifest(data, kind="dataset")["digest"]:
            return candidate
    out = Path(args.work) / "compromised"
    steps = args.model_steps
    print(f"training a {steps}-step Compromised model in {out} (once) ...", flush=True)
    run(
        salmubench(
            "train",
            "--data",
            str(data),
            "--variant",
            "compromised",
            "--profile",
            args.profile,
            "--out",
            str(out),
            "--force",
            "-q",
            "--set",
            f"steps={steps}",
            "--set",
            f"checkpoint_every={steps}",
            "--set",
            f"warmup_steps={min(steps - 1, 50)}",
        )
    )
    return out


def model_info(path: Path) -> dict[str, Any]:
    from salmubench.manifest import read_manifest

    m = read_manifest(path, kind="model")
    return {
        "path": str(path),
        "architecture": m["architecture"],
        "steps": m["steps"],
        "variant": m["variant"],
    }


# ----------------------------------------------------------------------------- synth


def render_sample(profile: str, sample: int) -> dict[str, Any]:
    """Render `sample` images of each kind at the profile's settings on one core; the
    profile's totals follow from its own counts of portraits and scenes (its plan)."""
    import numpy as np

    from salmubench.config import stage_config
    from salmubench.data import portraits, scenes
    from salmubench.data.synth import plan, render

    cfg = stage_config("synth", profile)
    _, items = plan(cfg, 0)
    kinds = {"portrait": 0, "scene": 0}
    for split, split_items in items.items():
        if split != "fragile":
            for it in split_items:
                kinds[it.render[0]] += 1
    rng = np.random.default_rng(0)
    ms = {}
    for kind in kinds:
        jobs = []
        for _ in range(sample):
            if kind == "portrait":
                traits = portraits.sample_traits(rng, "female")
                spec = ("portrait", traits, portraits.sample_nuisance(rng), None)
            else:
                spec = ("scene", scenes.sample_scene(rng))
            jobs.append((spec, cfg.image_size, cfg.supersample, cfg.image_format))
        start = time.perf_counter()
        for job in jobs:
            render(job)
        ms[kind] = (time.perf_counter() - start) / len(jobs) * 1000
    core_seconds = sum(kinds[k] * ms[k] / 1000 for k in kinds)
    return {
        "profile": profile,
        "image_size": cfg.image_size,
        "format": cfg.image_format,
        "sample_per_kind": sample,
        "ms_per_image": {k: round(v, 3) for k, v in ms.items()},
        "images": kinds,
        "render_core_seconds": round(core_seconds, 1),
        "images_per_second_per_core": round(sum(kinds.values()) / core_seconds, 1),
    }


def suite_synth(args, argv) -> None:
    cores = machine()["cpus"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"

        def synth(workers: int) -> Callable[[], dict]:
            def go() -> dict:
                row = run(
                    salmubench(
                        "synth",
                        "--profile",
                        args.profile,
                        "--out",
                        str(out),
                        "--force",
                        "-q",
                        "--workers",
                        str(workers),
                    )
                )
                from salmubench.manifest import read_manifest

                counts = read_manifest(out)["counts"]
                row["images"] = sum(v for k, v in counts.items() if k != "fragile")
                row["images_per_second"] = round(row["images"] / row["seconds"], 1)
                row["images_per_second_per_core"] = round(row["images_per_second"] / workers, 1)
                return row

            return go

        variants = {f"{w} worker(s)": synth(w) for w in sorted({1, cores})}
        rows = interleave(args.repeat, variants)

    extrapolated = []
    for profile in dict.fromkeys([args.profile, "paper"]):
        sample = run(worker("_render_sample", profile, str(args.sample)))
        extrapolated.append(last_json(sample["stdout"]))
        extrapolated[-1]["hours_on_this_machine"] = round(
            extrapolated[-1]["render_core_seconds"] / cores / 3600, 3
        )
    measured = {
        n: {
            k: summarise(r, k)
            for k in ("seconds", "images_per_second", "images_per_second_per_core", "peak_rss_mib")
        }
        for n, r in rows.items()
    }
    for name, r in rows.items():
        measured[name]["images"] = r[0]["images"]
    write(
        "synth",
        args.profile,
        argv,
        {
            "repeat": args.repeat,
            "runs": rows,
            "summary": measured,
            "extrapolated": extrapolated,
        },
    )
    print(doc_synth(load_result("synth", args.profile)))


# ----------------------------------------------------------------------------- train


def bare_loop(profile: str, steps: int, loss_kind: str, threads: int) -> dict[str, Any]:
    """The same model, optimiser and global batch as `salmubench train --variant
    compromised`, on random tensors already in memory (already normalised): the
    forward/backward/step alone. loss_kind "ours" = our duplicate-aware contrastive loss
    (on unique ids: plain InfoNCE), "openclip" = open_clip.loss.ClipLoss, i.e. the step
    body of OpenCLIP's trainer (`open_clip_train.train.train_one_epoch`) without its
    data pipeline."""
    import math

    import torch

    from salmubench.config import stage_config
    from salmubench.models import create, image_size
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.train.dist import DistEnv
    from salmubench.train.engine import Precision, cosine_lr, make_optimizer, set_lr
    from salmubench.train.loop import global_batch
    from salmubench.train.loss import contrastive_loss

    cfg = stage_config("train", profile)
    torch.set_num_threads(DistEnv().threads(threads))
    torch.manual_seed(0)
    model = create(cfg.model)
    size, batch = image_size(model), global_batch(cfg, "compromised")
    context = get_tokenizer(cfg.model)(["x"]).shape[1]
    x = torch.randn(batch, 3, size, size)
    tokens = torch.randint(1, 49000, (batch, context))
    ids = torch.arange(batch)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    precision = Precision(cfg.precision, torch.device("cpu"))
    if loss_kind == "openclip":
        from open_clip.loss import ClipLoss

        clip_loss = ClipLoss()
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        set_lr(optimizer, cosine_lr(step, cfg.steps, cfg.warmup_steps, cfg.lr))
        with precision.autocast():
            out = model(x, tokens)
            if loss_kind == "openclip":
                loss = clip_loss(out["image_features"], out["text_features"], out["logit_scale"])
            else:
                loss = contrastive_loss(
                    out["image_features"].float(),
                    out["text_features"].float(),
                    out["logit_scale"].float(),
                    ids,
                )
        precision.step(loss, optimizer)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss.item()
    seconds = time.perf_counter() - start
    return {
        "samples_per_second": round(steps * batch / seconds, 1),
        "loop_seconds": round(seconds, 3),
    }


def step_breakdown(data: str, profile: str, steps: int) -> dict[str, Any]:
    """Milliseconds per phase of a `salmubench train` step (compromised), the loop's own
    pieces on the real in-memory pools, timed one after the other (first 2 steps dropped)."""
    import math

    import torch

    from salmubench.config import stage_config
    from salmubench.manifest import read_manifest
    from salmubench.models import create, image_normalisation, image_size
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.train.data import VARIANTS, BatchPlan, batch_sizes, gather_batch, load_pools
    from salmubench.train.dist import DistEnv
    from salmubench.train.engine import make_optimizer
    from salmubench.train.loss import contrastive_loss

    cfg = stage_config("train", profile)
    torch.set_num_threads(DistEnv().threads(cfg.threads))
    torch.manual_seed(0)
    model = create(cfg.model)
    pools = load_pools(
        data,
        read_manifest(data),
        VARIANTS["compromised"],
        get_tokenizer(cfg.model),
        image_size(model),
    )
    per_step = batch_sizes(cfg.batch_size, "compromised", cfg.sensitive_batch, cfg.retain_fraction)
    plan = BatchPlan({p: len(pool) for p, pool in pools.items()}, per_step, 0)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    mean, std = image_normalisation(model)
    phases = ("batch plan", "gather", "normalise", "forward", "loss", "backward", "optimiser")
    total = dict.fromkeys(phases, 0.0)
    model.train()
    for step in range(steps + 2):
        t = [time.perf_counter()]
        indices = plan.indices(step)
        t.append(time.perf_counter())
        images, tokens, ids = gather_batch(pools, indices)
        t.append(time.perf_counter())
        x = (images.float() / 255.0 - mean) / std
        t.append(time.perf_counter())
        out = model(x, tokens)
        t.append(time.perf_counter())
        loss = contrastive_loss(
            out["image_features"].float(),
            out["text_features"].float(),
            out["logit_scale"].float(),
            ids,
        )
        t.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss.item()
        t.append(time.perf_counter())
        if step >= 2:
            for i, phase in enumerate(phases):
                total[phase] += t[i + 1] - t[i]
    ms = {k: round(v / steps * 1000, 2) for k, v in total.items()}
    data_ms = ms["batch plan"] + ms["gather"] + ms["normalise"]
    return {"steps": steps, "ms_per_step": ms, "data_share": round(data_ms / sum(ms.values()), 4)}


def suite_train(args, argv) -> None:
    from salmubench.config import stage_config
    from salmubench.manifest import read_manifest

    data = ensure_dataset(args)
    cfg = stage_config("train", args.profile)
    steps = args.train_steps
    overrides = [
        "--set",
        f"steps={steps}",
        "--set",
        f"checkpoint_every={steps}",
        "--set",
        f"warmup_steps={min(cfg.warmup_steps, steps - 1)}",
    ]
    tmp = Path(tempfile.mkdtemp(prefix="perf-train-"))

    def command(processes: int, threads: int = 0, env: dict | None = None) -> Callable[[], dict]:
        def go() -> dict:
            out = tmp / f"model-{processes}-{threads}-{len(env or {})}"
            cmd = [
                "train",
                "--data",
                str(data),
                "--variant",
                "compromised",
                "--profile",
                args.profile,
                "--out",
                str(out),
                "--force",
                "-q",
                *overrides,
                "--set",
                f"threads={threads}",
            ]
            if processes == 1:
                row = run(salmubench(*cmd), env={**os.environ, **(env or {})})
            else:
                row = run(
                    [
                        PY,
                        "-m",
                        "torch.distributed.run",
                        "--standalone",
                        f"--nproc_per_node={processes}",
                        "--module",
                        "salmubench",
                        *cmd,
                    ]
                )
            t = read_manifest(out, kind="model")["training"]
            row.update(
                samples_per_second=t["samples_per_second"],
                loop_seconds=t["seconds"],
                seconds_loading_data=t["seconds_loading_data"],
            )
            return row

        return go

    def bare(kind: str) -> Callable[[], dict]:
        def go() -> dict:
            row = run(
                worker("_bare", "--profile", args.profile, "--steps", str(steps), "--loss", kind)
            )
            row.update(last_json(row["stdout"]))
            return row

        return go

    variants = {
        "salmubench train": command(1),
        "bare loop (our loss)": bare("ours"),
        "bare loop (OpenCLIP ClipLoss)": bare("openclip"),
        "torchrun 2 processes": command(2),
        "salmubench train, 1 thread": command(1, threads=1),
        # libgomp's threads spin while waiting; on a shared machine a descheduled partner
        # stalls the other: PASSIVE makes them sleep instead.
        "salmubench train, OMP_WAIT_POLICY=PASSIVE": command(1, env=PASSIVE),
    }
    try:
        rows = interleave(args.repeat, variants)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    breakdown = run(worker("_breakdown", str(data), args.profile, str(min(steps, 10))))
    breakdown.update(last_json(breakdown.pop("stdout")))
    print("  step breakdown:", breakdown, flush=True)
    cmd, bare_ours = rows["salmubench train"], rows["bare loop (our loss)"]
    summary = {
        n: {k: summarise(r, k) for k in ("samples_per_second", "seconds", "peak_rss_mib")}
        for n, r in rows.items()
    }
    ratios = {
        "command_vs_bare": paired(cmd, bare_ours, "samples_per_second"),
        "command_vs_openclip_loop": paired(
            cmd, rows["bare loop (OpenCLIP ClipLoss)"], "samples_per_second"
        ),
        "two_processes_vs_one": paired(rows["torchrun 2 processes"], cmd, "samples_per_second"),
        "passive_vs_default": paired(
            rows["salmubench train, OMP_WAIT_POLICY=PASSIVE"], cmd, "samples_per_second"
        ),
        "one_thread_vs_two": paired(rows["salmubench train, 1 thread"], cmd, "samples_per_second"),
        "two_processes_vs_one_thread": paired(
            rows["torchrun 2 processes"], rows["salmubench train, 1 thread"], "samples_per_second"
        ),
    }
    write(
        "train",
        args.profile,
        argv,
        {
            "repeat": args.repeat,
            "settings": {
                "variant": "compromised",
                "steps": steps,
                "model": cfg.model,
                "global_batch": cfg.batch_size + cfg.sensitive_batch,
                "precision": cfg.precision,
                "dataset": str(data),
            },
            "runs": rows,
            "summary": summary,
            "ratios": ratios,
            "step_breakdown": breakdown,
        },
    )
    print(doc_train(load_result("train", args.profile)))


# ----------------------------------------------------------------------------- eval


def naive_eval(data: str, model: str, profile: str) -> dict[str, Any]:
    """Each metric with a fresh evaluator: every split it reads decoded and embedded anew."""
    from salmubench.config import stage_config
    from salmubench.data.shards import open_dataset
    from salmubench.eval.embed import DatasetEmbeddings
    from salmubench.eval.metrics import METRICS, EvalSettings
    from salmubench.eval.stage import REQUIRED_SPLITS, flatten
    from salmubench.models import load_model

    cfg = stage_config("eval", profile)
    dataset = open_dataset(data, REQUIRED_SPLITS)
    loaded = load_model(model)
    settings = EvalSettings(
        seed=0, retfail_distractors=cfg.retfail_distractors, acs_test_fraction=cfg.acs_test_fraction
    )
    start = time.perf_counter()
    results, images = {}, 0
    for name, metric in METRICS.items():
        emb = DatasetEmbeddings(loaded, data, dataset, settings, batch_size=cfg.batch_size)
        results[name] = metric.fn(emb)
        images += emb.counts["images"]
    return {
        "seconds_total": round(time.perf_counter() - start, 3),
        "images_embedded": images,
        "metrics": flatten(results),
    }


def suite_eval(args, argv) -> None:
    data = ensure_dataset(args)
    model = ensure_model(args, data)
    tmp = Path(tempfile.mkdtemp(prefix="perf-eval-"))
    values: dict[str, dict] = {}

    def ours() -> dict:
        out = tmp / "eval"
        row = run(
            salmubench(
                "eval",
                "--data",
                str(data),
                "--model",
                str(model),
                "--profile",
                args.profile,
                "--out",
                str(out),
                "--force",
                "-q",
            )
        )
        summary = json.loads((out / "summary.json").read_text())
        values["ours"] = json.loads((out / "metrics.json").read_text())
        row.update(summary["timing"])
        row["metrics_vs_embedding"] = round(row["seconds_metrics"] / row["seconds_embedding"], 4)
        return row

    def naive() -> dict:
        row = run(
            worker(
                "_naive_eval", "--data", str(data), "--model", str(model), "--profile", args.profile
            )
        )
        result = last_json(row["stdout"])
        values["naive"] = result.pop("metrics")
        row.update(result)
        return row

    try:
        rows = interleave(args.repeat, {"salmubench eval": ours, "naive evaluator": naive})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, b = rows["salmubench eval"], rows["naive evaluator"]
    keys = (
        "seconds_total",
        "seconds_decode",
        "seconds_embedding",
        "seconds_metrics",
        "metrics_vs_embedding",
        "seconds",
        "peak_rss_mib",
    )
    summary = {
        "salmubench eval": {k: summarise(a, k) for k in keys},
        "naive evaluator": {
            k: summarise(b, k) for k in ("seconds_total", "seconds", "peak_rss_mib")
        },
    }
    summary["salmubench eval"]["images_embedded"] = a[0]["images_embedded"]
    summary["salmubench eval"]["texts_embedded"] = a[0]["texts_embedded"]
    summary["naive evaluator"]["images_embedded"] = b[0]["images_embedded"]
    same = values["ours"] == values["naive"]
    write(
        "eval",
        args.profile,
        argv,
        {
            "repeat": args.repeat,
            "model": model_info(model),
            "dataset": str(data),
            "runs": rows,
            "summary": summary,
            "ratios": {"naive_vs_ours": paired(b, a, "seconds_total")},
            "naive_gives_the_same_metrics": same,
        },
    )
    if not same:
        raise SystemExit("the naive evaluator's metrics differ from salmubench eval's")
    print(doc_eval(load_result("eval", args.profile)))


# ----------------------------------------------------------------------------- unlearn


def suite_unlearn(args, argv) -> None:
    from salmubench.manifest import read_manifest

    data = ensure_dataset(args)
    model = ensure_model(args, data)
    tmp = Path(tempfile.mkdtemp(prefix="perf-unlearn-"))
    declared = last_json(run(worker("_methods"))["stdout"])
    methods = args.methods or list(declared)

    def method_run(name: str, reads: str | None = None) -> Callable[[], dict]:
        def go() -> dict:
            out = tmp / f"{name}-{reads or 'declared'}"
            cmd = [
                "unlearn",
                "--data",
                str(data),
                "--model",
                str(model),
                "--method",
                name,
                "--profile",
                args.profile,
                "--budget",
                str(args.budget),
                "--out",
                str(out),
                "--force",
                "-q",
            ]
            if args.cpu_clock:
                # One thread, and the loop's clock is this process's CPU time: the work
                # of a step, whatever the neighbours do to the wall clock.
                row = run(
                    worker("_unlearn_reads", reads or "declared", "cpu", *cmd, "--set", "threads=1")
                )
            elif reads is None:
                row = run(salmubench(*cmd))
            else:
                row = run(worker("_unlearn_reads", reads, "wall", *cmd))
            u = read_manifest(out, kind="model")["unlearning"]
            row.update(
                steps=read_manifest(out)["steps"],
                steps_per_second=u["steps_per_second"],
                loop_seconds=u["seconds"],
                seconds_loading_data=u["seconds_loading_data"],
            )
            return row

        return go

    # Each "before" variant runs right after its method (pairs stay adjacent in every round).
    variants, before = {}, {}
    for m in methods:
        variants[m] = method_run(m)
        reads = declared[m]["original_reads"]
        if "original" in declared[m]["uses"] and reads != ["forget", "retain"]:
            before[m] = f"{m} (original embeds forget too)"
            variants[before[m]] = method_run(m, "forget,retain")
    try:
        rows = interleave(args.repeat, variants)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        n: {k: summarise(r, k) for k in ("steps_per_second", "seconds", "peak_rss_mib")}
        for n, r in rows.items()
    }
    ratios = {m: paired(rows[m], rows[b], "steps_per_second") for m, b in before.items()}
    suite = "unlearn-cpu" if args.cpu_clock else "unlearn"
    write(
        suite,
        args.profile,
        argv,
        {
            "clock": "cpu, 1 thread" if args.cpu_clock else "wall",
            "repeat": args.repeat,
            "budget": args.budget,
            "model": model_info(model),
            "dataset": str(data),
            "steps": rows[methods[0]][0]["steps"],
            "runs": rows,
            "summary": summary,
            "before_after": before,
            "ratios": {"declared_vs_original_embeds_all": ratios},
        },
    )
    print(doc_unlearn(load_result(suite, args.profile)))


def unlearn_with_reads(reads: str, clock: str, argv: list[str]) -> int:
    """The real `salmubench unlearn`, with every method's original_reads overridden (unless
    `reads` is "declared") and, for clock "cpu", its timings in CPU seconds."""
    from salmubench.cli import main
    from salmubench.unlearn import METHODS, method_names

    method_names()
    if reads != "declared":
        for cls in METHODS.values():
            cls.original_reads = frozenset(reads.split(","))
    if clock == "cpu":
        time.perf_counter = time.process_time
    return main(argv)


# ----------------------------------------------------------------------------- e2e


def suite_e2e(args, argv) -> None:
    out = Path(args.work) / "e2e"
    if out.exists():
        shutil.rmtree(out)  # a fresh run: nothing reused
    row = run(salmubench("bench", "--profile", args.profile, "--out", str(out), "-q"))
    row.pop("stdout")
    bench = json.loads((out / "bench.json").read_text())
    write(
        "e2e",
        args.profile,
        argv,
        {
            "command_run": f"salmubench bench --profile {args.profile} --out {out} -q",
            "run": row,
            "bench": bench,
            "target_seconds": 20 * 60 if args.profile == "tiny" else None,
        },
    )
    print(doc_e2e(load_result("e2e", args.profile)))


# ----------------------------------------------------------------------------- gpu


def suite_gpu(args, argv) -> None:
    """One prepared run for a GPU machine (benchmarks/gpu_small.sh): synth, the Compromised
    model trained with bf16 autocast, and its evaluation; samples/s and seconds of each."""
    from salmubench.manifest import read_manifest

    if machine()["gpu"] is None and not args.allow_cpu:
        raise SystemExit("no CUDA device: this suite is for a GPU machine (--allow-cpu to try)")
    data = ensure_dataset(args)
    work = Path(args.work)
    model, evaluation = work / "gpu-compromised", work / "gpu-eval"
    steps = ["--set", f"steps={args.gpu_steps}"] if args.gpu_steps else []
    train = run(
        salmubench(
            "train",
            "--data",
            str(data),
            "--variant",
            "compromised",
            "--profile",
            args.profile,
            "--out",
            str(model),
            "--force",
            "-q",
            "--set",
            "precision=bf16",
            *steps,
        )
    )
    m = read_manifest(model, kind="model")
    train.pop("stdout")
    train.update(m["training"], steps=m["steps"], global_batch=m["global_batch"])
    ev = run(
        salmubench(
            "eval",
            "--data",
            str(data),
            "--model",
            str(model),
            "--profile",
            args.profile,
            "--out",
            str(evaluation),
            "--force",
            "-q",
        )
    )
    ev.pop("stdout")
    ev.update(json.loads((evaluation / "summary.json").read_text())["timing"])
    write(
        "gpu",
        args.profile,
        argv,
        {
            "precision": "bf16",
            "train": train,
            "eval": ev,
            "dataset": str(data),
            "metrics": json.loads((evaluation / "metrics.json").read_text()),
        },
    )
    print(
        table(
            ("step", "seconds (process)", "samples/s", "peak RSS MiB"),
            [
                (
                    "train compromised (bf16)",
                    train["seconds"],
                    train["samples_per_second"],
                    train["peak_rss_mib"],
                ),
                ("eval", ev["seconds"], "", ev["peak_rss_mib"]),
            ],
        )
    )


# ----------------------------------------------------------------------------- doc


def load_result(suite: str, profile: str) -> dict[str, Any] | None:
    path = RESULTS / f"perf-{suite}-{profile}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def max_load(r: dict[str, Any]) -> float:
    """The highest 1-minute load average seen before or after any run of a result."""
    runs = [row for rows in r.get("runs", {}).values() for row in rows] or [r.get("run", {})]
    return max(
        [row[k][0] for row in runs for k in ("load_before", "load_after") if k in row] or [0.0]
    )


def _header(r: dict[str, Any]) -> str:
    m = r["machine"]
    runs = [row for rows in r.get("runs", {}).values() for row in rows] or [r.get("run", {})]
    loads = [row["load_before"][0] for row in runs if "load_before" in row]
    load_text = (
        f"1-min load average {min(loads):.2f}–{max(loads):.2f} during the runs" if loads else ""
    )
    return (
        f"`{r['command']}` — {r['date']}, {m['cpus']} CPUs ({m['processor']}), "
        f"{'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'}, Python {m['python']}, torch "
        f"{m['torch']}; median of {r.get('repeat', 1)}; {load_text}; "
        f"JSON: `benchmarks/results/perf-{r['benchmark']}-{r['profile']}.json`"
    )


def doc_synth(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py synth`_"
    rows = [
        (
            n,
            s["images"],
            s["seconds"]["median"],
            s["images_per_second"]["median"],
            s["images_per_second_per_core"]["median"],
            s["peak_rss_mib"]["median"],
        )
        for n, s in r["summary"].items()
    ]
    ext = [
        (
            e["profile"],
            f"{e['image_size']} px {e['format']}",
            e["sample_per_kind"],
            e["ms_per_image"]["portrait"],
            e["ms_per_image"]["scene"],
            e["images"]["portrait"] + e["images"]["scene"],
            e["images_per_second_per_core"],
            e["hours_on_this_machine"],
        )
        for e in r["extrapolated"]
    ]
    return "\n\n".join(
        [
            _header(r),
            table(
                (
                    "synth --profile " + r["profile"],
                    "images",
                    "seconds",
                    "images/s",
                    "images/s per core",
                    "peak RSS MiB",
                ),
                rows,
            ),
            "Extrapolated (render + encode only, one core, from a measured sample of each kind; "
            "the totals are the profile's own image counts × the sample's ms per image):",
            table(
                (
                    "profile",
                    "image",
                    "sample per kind",
                    "ms/portrait",
                    "ms/scene",
                    "images in profile",
                    "images/s per core",
                    f"hours on {r['machine']['cpus']} cores",
                ),
                ext,
            ),
        ]
    )


def doc_train(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py train`_"
    s, q = r["settings"], r["ratios"]
    rows = [
        (n, v["samples_per_second"]["median"], v["seconds"]["median"], v["peak_rss_mib"]["median"])
        for n, v in r["summary"].items()
    ]
    return "\n\n".join(
        [
            _header(r),
            f"Compromised variant, {s['model']}, global batch {s['global_batch']}, {s['steps']} "
            f"steps, precision {s['precision']}. samples/s = steps × global batch / seconds of the "
            "step loop (the command's own figure from its manifest; the same clock in the bare "
            "loops); seconds = the whole process (start-up, data loading, saving).",
            table(("run", "samples/s", "seconds (process)", "peak RSS MiB"), rows),
            table(
                ("ratio (per-round, median)", "value", "all rounds"),
                [
                    (label, q[key]["median"], q[key]["all"])
                    for label, key in (
                        ("salmubench train / bare loop (our loss)", "command_vs_bare"),
                        (
                            "salmubench train / bare loop (OpenCLIP ClipLoss)",
                            "command_vs_openclip_loop",
                        ),
                        ("2 processes / 1 process (2 threads)", "two_processes_vs_one"),
                        ("2 processes / 1 process at 1 thread", "two_processes_vs_one_thread"),
                        ("1 thread / 2 threads (1 process)", "one_thread_vs_two"),
                        (
                            "OMP_WAIT_POLICY=PASSIVE / default (1 process, 2 threads)",
                            "passive_vs_default",
                        ),
                    )
                ],
            ),
            doc_breakdown(r),
        ]
    )


def doc_breakdown(r: dict) -> str:
    b = r.get("step_breakdown")
    if not b:
        return ""
    ms = b["ms_per_step"]
    source = f"`{b['command']}`" if "command" in b else "`_breakdown` worker of the same run"
    return (
        f"Where a step of the command goes ({source}: the loop's own pieces on the real "
        f"in-memory pools, {b['steps']} steps, timed in turn; load "
        f"{b['load_before'][0]:.2f}): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
        + f" — data (plan + gather + normalise) is **{b['data_share']:.1%}** of a step."
    )


def doc_eval(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py eval`_"
    a, b = r["summary"]["salmubench eval"], r["summary"]["naive evaluator"]
    m = r["model"]
    return "\n\n".join(
        [
            _header(r),
            f"Model `{m['path']}` ({m['architecture']}, {m['steps']} steps). Seconds inside "
            "the process, from the evaluator's own clock (model loading excluded, as in the "
            "naive one).",
            table(
                (
                    "run",
                    "decode s",
                    "embedding s",
                    "metrics s",
                    "total s",
                    "images embedded",
                    "process s",
                    "peak RSS MiB",
                ),
                [
                    (
                        "salmubench eval",
                        a["seconds_decode"]["median"],
                        a["seconds_embedding"]["median"],
                        a["seconds_metrics"]["median"],
                        a["seconds_total"]["median"],
                        a["images_embedded"],
                        a["seconds"]["median"],
                        a["peak_rss_mib"]["median"],
                    ),
                    (
                        "naive (re-embeds per metric)",
                        "",
                        "",
                        "",
                        b["seconds_total"]["median"],
                        b["images_embedded"],
                        b["seconds"]["median"],
                        b["peak_rss_mib"]["median"],
                    ),
                ],
            ),
            f"Metric time / embedding time: **{a['metrics_vs_embedding']['median']:.1%}** "
            f"(rounds: {a['metrics_vs_embedding']['all']}); naive / ours: "
            f"**{r['ratios']['naive_vs_ours']['median']:.2f}×** (rounds: "
            f"{r['ratios']['naive_vs_ours']['all']}); the naive evaluator's ten metrics equal "
            f"ours: {r['naive_gives_the_same_metrics']}.",
        ]
    )


def doc_unlearn(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py unlearn`_"
    m = r["model"]
    rows = [
        (n, v["steps_per_second"]["median"], v["seconds"]["median"], v["peak_rss_mib"]["median"])
        for n, v in r["summary"].items()
    ]
    ratios = r["ratios"]["declared_vs_original_embeds_all"]
    clock = r.get("clock", "wall")
    unit = "steps per CPU second, 1 thread" if clock.startswith("cpu") else "steps/s"
    return "\n\n".join(
        [
            _header(r),
            f"Budget {r['budget']:g}× = {r['steps']} steps from `{m['path']}`; {unit} from the "
            "command's manifest (the step loop); seconds = the whole process (wall clock).",
            table(("method", unit, "seconds (process)", "peak RSS MiB"), rows),
            table(
                (
                    "original embeds only what the method reads, vs forget too",
                    "speed-up",
                    "all rounds",
                ),
                [(k, v["median"], v["all"]) for k, v in ratios.items()],
            ),
        ]
    )


def doc_e2e(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py e2e`_"
    b, run_ = r["bench"], r["run"]
    stages = b["stages"]
    groups = {"synth": 0.0, "train": 0.0, "eval": 0.0, "unlearn": 0.0, "report": 0.0}
    for name, sec in stages.items():
        groups[name.split()[0]] += sec
    target = r.get("target_seconds")
    verdict = ""
    if target:
        verdict = (
            f" — target < {target / 60:.0f} min: "
            f"**{'met' if run_['seconds'] < target else 'NOT met'}**"
        )
    return "\n\n".join(
        [
            _header(r),
            f"`{r['command_run']}` on a fresh folder: **{run_['seconds'] / 60:.1f} min** "
            f"({run_['seconds']:.0f} s, peak RSS {run_['peak_rss_mib']:.0f} MiB){verdict}.",
            table(
                ("stage group", "seconds", "stages"),
                [
                    (g, round(s, 1), sum(1 for n in stages if n.split()[0] == g))
                    for g, s in groups.items()
                ],
            ),
            table(("stage", "seconds"), list(stages.items())),
        ]
    )


def doc_targets(profile: str) -> str:
    """The issue's targets against the latest results, one row each."""
    train, ev, e2e = (load_result(s, profile) for s in ("train", "eval", "e2e"))
    gpu = load_result("gpu", "small")

    def verdict(ok: bool | None, r: dict | None = None) -> str:
        text = "not measured" if ok is None else "**met**" if ok else "**NOT met**"
        busy = r is not None and max_load(r) > r["machine"]["cpus"]
        if busy:  # more runnable threads than cores: the neighbours' work is in the figure
            text += (
                f" (under load {max_load(r):.1f} on {r['machine']['cpus']} cores: not conclusive)"
            )
        return text

    rows = []
    if train:
        r = train["ratios"]["command_vs_bare"]["median"]
        rows.append(("training ≥ 90% of the bare loop", f"{r:.1%}", verdict(r >= 0.9, train)))
        r2 = train["ratios"]["two_processes_vs_one"]["median"]
        r1 = train["ratios"]["two_processes_vs_one_thread"]["median"]
        rows.append(
            (
                "2 processes ≥ 1.5× 1 process (where the machine allows)",
                f"{r2:.2f}× (vs 1 process at 1 thread: {r1:.2f}×)",
                verdict(r2 >= 1.5, train) + " — see below",
            )
        )
    else:
        rows.append(("training ≥ 90% of the bare loop", "", verdict(None)))
    if ev:
        r = ev["summary"]["salmubench eval"]["metrics_vs_embedding"]["median"]
        rows.append(("metrics ≤ 10% of embedding time", f"{r:.1%}", verdict(r <= 0.10, ev)))
    else:
        rows.append(("metrics ≤ 10% of embedding time", "", verdict(None)))
    if e2e:
        sec = e2e["run"]["seconds"]
        rows.append(
            ("tiny end to end < 20 min on 2 cores", f"{sec / 60:.1f} min", verdict(sec < 20 * 60))
        )
    else:
        rows.append(("tiny end to end < 20 min on 2 cores", "", verdict(None)))
    if gpu:
        t = gpu["train"]
        rows.append(
            (
                "small profile on a GPU, bf16",
                f"{t['samples_per_second']:,.0f} samples/s, "
                f"train {t['seconds']:.0f} s, eval {gpu['eval']['seconds']:.0f} s "
                f"({gpu['machine']['gpu']})",
                "measured",
            )
        )
    else:
        rows.append(
            (
                "small profile on a GPU, bf16",
                "no GPU was lent to this task",
                "not measured: `bash benchmarks/gpu_small.sh`",
            )
        )
    return table(("target", "measured", "verdict"), rows)


def render_doc(profile: str) -> str:
    """docs/BENCHMARKS.md: the fixed text around the tables rendered from the JSON."""
    template = (Path(__file__).resolve().parent / "BENCHMARKS.template.md").read_text()
    parts = {
        "targets": doc_targets(profile),
        "synth": doc_synth(load_result("synth", profile)),
        "train": doc_train(load_result("train", profile)),
        "eval": doc_eval(load_result("eval", profile)),
        "unlearn": doc_unlearn(load_result("unlearn", profile)),
        "unlearn_cpu": doc_unlearn(load_result("unlearn-cpu", profile)).replace(
            "perf.py unlearn`", "perf.py unlearn --cpu-clock`"
        ),
        "e2e": doc_e2e(load_result("e2e", profile)),
    }
    for name, text in parts.items():
        template = template.replace("{{" + name + "}}", text)
    return template


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    global RESULTS
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_bare":
        p = argparse.ArgumentParser()
        p.add_argument("_")
        p.add_argument("--profile", required=True)
        p.add_argument("--steps", type=int, required=True)
        p.add_argument("--loss", choices=("ours", "openclip"), required=True)
        p.add_argument("--threads", type=int, default=0)
        a = p.parse_args(argv)
        print(json.dumps(bare_loop(a.profile, a.steps, a.loss, a.threads)))
        return 0
    if argv and argv[0] == "_naive_eval":
        p = argparse.ArgumentParser()
        p.add_argument("_")
        for name in ("--data", "--model", "--profile"):
            p.add_argument(name, required=True)
        a = p.parse_args(argv)
        print(json.dumps(naive_eval(a.data, a.model, a.profile)))
        return 0
    if argv and argv[0] == "_breakdown":
        print(json.dumps(step_breakdown(argv[1], argv[2], int(argv[3]))))
        return 0
    if argv and argv[0] == "_render_sample":
        print(json.dumps(render_sample(argv[1], int(argv[2]))))
        return 0
    if argv and argv[0] == "_methods":
        from salmubench.unlearn import METHODS, method_names

        names = method_names()
        print(
            json.dumps(
                {
                    n: {
                        "uses": sorted(METHODS[n].uses),
                        "original_reads": sorted(METHODS[n].original_reads),
                    }
                    for n in names
                }
            )
        )
        return 0
    if argv and argv[0] == "_unlearn_reads":
        return unlearn_with_reads(argv[1], argv[2], argv[3:])

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("suites", nargs="+", choices=(*SUITES, "all", "doc", "gpu"))
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per comparison")
    parser.add_argument(
        "--work", default=None, help="inputs kept between runs (default runs/perf-PROFILE)"
    )
    parser.add_argument("--data", help="an existing dataset of the profile (default: built once)")
    parser.add_argument(
        "--model",
        help="a Compromised model for eval/unlearn (default: the "
        "e2e run's, else one trained for --model-steps)",
    )
    parser.add_argument("--model-steps", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=30, help="steps per training run")
    parser.add_argument("--budget", type=float, default=1.0, help="unlearning budget per run")
    parser.add_argument(
        "--cpu-clock",
        action="store_true",
        help="unlearn: 1 thread, steps per "
        "CPU second (robust to a busy machine); writes perf-unlearn-cpu-*.json",
    )
    parser.add_argument("--methods", nargs="*", help="default: every registered method")
    parser.add_argument(
        "--sample", type=int, default=20, help="images per kind rendered to extrapolate synth"
    )
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON goes")
    parser.add_argument("--gpu-steps", type=int, default=0, help="gpu: steps (0 = profile's)")
    parser.add_argument("--allow-cpu", action="store_true", help="gpu: run without a GPU")
    parser.add_argument("--doc", default=str(DOC), help="where `doc` writes the markdown")
    args = parser.parse_args(argv)
    RESULTS = Path(args.results)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.work = args.work or str(ROOT / "runs" / f"perf-{args.profile}")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    # `all`: e2e before eval and unlearn, which then use its fully trained Compromised model.
    order = ("synth", "train", "e2e", "eval", "unlearn", "gpu")
    suites = [s for s in order if s in args.suites or ("all" in args.suites and s in SUITES)]
    started = time.perf_counter()
    for suite in suites:
        print(f"== {suite} ({args.profile}, {args.repeat} round(s)) ==", flush=True)
        globals()[f"suite_{suite}"](args, argv)
    if "all" in args.suites or "doc" in args.suites:
        Path(args.doc).write_text(render_doc(args.profile))
        print(f"wrote {args.doc}")
    if suites:
        print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
