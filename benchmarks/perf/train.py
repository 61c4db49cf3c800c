"""train: the real command against a bare loop (our loss, OpenCLIP's), 1 vs 2 processes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perf.common import (
    PASSIVE,
    PY,
    Bench,
    _header,
    ensure_dataset,
    interleave,
    last_json,
    paired,
    run,
    salmubench,
    summarise,
    table,
    worker,
)


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
    from salmubench.engine.dist import DistEnv
    from salmubench.engine.loss import contrastive_loss
    from salmubench.engine.optim import Precision, cosine_lr, make_optimizer, set_lr
    from salmubench.models import create, image_size
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.train.loop import global_batch

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


def step_breakdown(data: str, profile: str, steps: int, precision: str = "fp32") -> dict[str, Any]:
    """Milliseconds per phase of a `salmubench train` step (compromised), the loop's own
    pieces on the real in-memory pools, timed one after the other (first 2 steps dropped).
    `precision` as the train config's (bf16: forward and loss under CPU autocast)."""
    import math

    import torch

    from salmubench.config import stage_config
    from salmubench.engine.dist import DistEnv
    from salmubench.engine.loss import contrastive_loss
    from salmubench.engine.optim import Precision, make_optimizer
    from salmubench.manifest import read_manifest
    from salmubench.models import create, image_normalisation, image_size
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.train.data import VARIANTS, BatchPlan, batch_sizes, gather_batch, load_pools

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
    autocast = Precision(precision, torch.device("cpu")).autocast
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
        with autocast():
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
    return {
        "steps": steps,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "ms_per_step": ms,
        "data_share": round(data_ms / sum(ms.values()), 4),
    }


def suite(ctx: Bench) -> None:
    args = ctx.args
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
    ctx.write(
        "train",
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
    print(doc_train(ctx.result("train")))


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
