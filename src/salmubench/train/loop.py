"""The `train` stage: a Clean or Compromised CLIP from scratch, resumable and distributed.

Why our own loop rather than OpenCLIP's `open_clip_train`: its `[training]` extra pins
`webdataset<=0.2.86` (we write shards with 1.x), it checkpoints per epoch (we resume at
any step after a SIGKILL), it has no notion of our mixing of the sensitive set, and it
would not check our dataset manifests. We keep OpenCLIP for what matters — the model, its
JSON architectures, its tokenizer and its checkpoint format — and keep the loop small.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from salmubench import __version__
from salmubench.config import ConfigError, TrainConfig, to_dict
from salmubench.data.shards import open_dataset
from salmubench.manifest import (
    MANIFEST,
    OutputExistsError,
    read_manifest,
    write_atomic,
    write_manifest,
)
from salmubench.models import architecture, create, image_normalisation, image_size, save_model
from salmubench.models import tokenizer as get_tokenizer
from salmubench.train.data import (
    POOLS,
    VARIANTS,
    BatchPlan,
    batch_sizes,
    gather_batch,
    load_pools,
)
from salmubench.train.dist import DistEnv
from salmubench.train.loss import contrastive_loss, gather

log = logging.getLogger(__name__)

STATE = "state.pt"
LOG = "train_log.jsonl"
Progress = Callable[[int, int, float], None]


def partial_dir(out: Path) -> Path:
    """Where a run in progress lives (stable across restarts, unlike a PID-named temp)."""
    return out.with_name(f".{out.name}.partial")


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "logit_scale" in name or name.endswith(("bias", "positional_embedding")):
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW(
        [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": cfg.weight_decay},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def global_batch(cfg: TrainConfig, variant: str) -> int:
    return cfg.batch_size + (cfg.sensitive_batch if variant == "compromised" else 0)


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")


def _identity(cfg: TrainConfig, variant: str, seed: int, dataset: str) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote the checkpoint."""
    return {"config": to_dict(cfg), "variant": variant, "seed": seed, "dataset": dataset}


def prepare_output(out: Path, resume: bool, force: bool) -> str:
    """Decide before any work: 'done' (resume of a finished run), 'resume', or 'fresh'."""
    partial = partial_dir(out)
    if (out / MANIFEST).is_file() and not force:
        if resume:
            return "done"
        raise OutputExistsError(
            f"{out} already holds a finished model; pass --force to train again (the old one "
            "is replaced only when the new one is complete)"
        )
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output folder {out} exists, is not empty and is not a model")
    if (partial / STATE).is_file():
        if resume:
            return "resume"
        if not force:
            raise OutputExistsError(
                f"an interrupted run of {out} exists ({partial}); pass --resume to continue "
                "it or --force to start over"
            )
    return "fresh"


def train(
    data: str | os.PathLike,
    variant: str,
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    profile: str = "custom",
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train and publish a model folder at `out`; return its manifest."""
    check_variant(variant)
    out = Path(out)
    env = DistEnv.from_env()
    arch = cfg.model
    architecture(arch)  # unknown architecture: fail now
    total = global_batch(cfg, variant)
    if total % env.world_size:
        raise ConfigError(
            f"the global batch of {total} ({variant}) is not divisible by the "
            f"{env.world_size} processes; change batch_size or sensitive_batch"
        )
    mode = prepare_output(out, resume, force)
    if mode == "done":
        log.info("%s is already complete; nothing to resume", out)
        return read_manifest(out, kind="model")
    splits = [s for pool in VARIANTS[variant] for s in POOLS[pool]]
    dataset = open_dataset(data, splits)  # checksums and splits, before any training
    partial = partial_dir(out)

    env.init()
    torch.set_num_threads(env.threads(cfg.threads))
    try:
        if env.is_main:
            if mode == "fresh" and partial.exists():
                shutil.rmtree(partial)
            partial.mkdir(parents=True, exist_ok=True)
        env.barrier()
        run = _Run(Path(data), dataset, variant, cfg, out, partial, env, env.device(), seed,
                   profile, _identity(cfg, variant, seed, dataset["digest"]))  # fmt: skip
        state = None
        if mode == "resume":
            state = torch.load(partial / STATE, map_location="cpu", weights_only=True)
            if state["identity"] != run.identity:
                raise ConfigError(
                    f"{partial / STATE} was written by a different run (config, variant, seed "
                    "or dataset differ); pass --force to start over"
                )
        return _loop(run, state, progress)
    finally:
        env.close()


@dataclass(frozen=True)
class _Run:
    """Everything fixed for the duration of one training run."""

    data: Path
    dataset: dict[str, Any]
    variant: str
    cfg: TrainConfig
    out: Path
    partial: Path
    env: DistEnv
    device: torch.device
    seed: int
    profile: str
    identity: dict[str, Any]

    @property
    def batch(self) -> int:
        return global_batch(self.cfg, self.variant)


def _loop(run: _Run, state: dict[str, Any] | None, progress: Progress | None) -> dict[str, Any]:
    cfg, env, device = run.cfg, run.env, run.device
    torch.manual_seed(run.seed)
    model = create(cfg.model).to(device)
    if state is not None:
        model.load_state_dict(state["model"])
    t_load = time.perf_counter()
    pools = load_pools(run.data, run.dataset, VARIANTS[run.variant], get_tokenizer(cfg.model),
                       image_size(model))  # fmt: skip
    seconds_load = time.perf_counter() - t_load
    per_step = batch_sizes(cfg.batch_size, run.variant, cfg.sensitive_batch, cfg.retain_fraction)
    plan = BatchPlan({p: len(pool) for p, pool in pools.items()}, per_step, run.seed)
    optimizer = _optimizer(model, cfg)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    net = model
    if env.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    mean, std = (t.to(device) for t in image_normalisation(model))
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
        else torch.autocast("cuda", dtype=torch.float16) if cfg.precision == "fp16"
        else nullcontext()
    )  # fmt: skip
    local = run.batch // env.world_size
    lo, hi = env.rank * local, (env.rank + 1) * local
    step = int(state["step"]) if state is not None else 0
    start_step = step
    log_rows = _read_log(run.partial, step) if env.is_main else []
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, tokens, ids = gather_batch(pools, plan.indices(step))
        x = (images[lo:hi].to(device).float() / 255.0 - mean) / std
        with autocast:
            output = net(x, tokens[lo:hi].to(device))
            loss = contrastive_loss(
                gather(output["image_features"].float()),
                gather(output["text_features"].float()),
                output["logit_scale"].float(),
                ids.to(device),
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        losses.append(loss.item())
        if env.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
            recent = losses[-cfg.log_every :]
            log_rows.append({
                "step": step,
                "loss": round(sum(recent) / len(recent), 5),
                "lr": lr,
                "logit_scale": round(model.logit_scale.detach().exp().item(), 3),
                "samples_per_second": round(
                    (step - start_step) * run.batch / (time.perf_counter() - t0), 1
                ),
            })  # fmt: skip
        if progress is not None and env.is_main:
            progress(step, cfg.steps, losses[-1])
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            if env.is_main:
                _save_state(run, model, optimizer, step, log_rows)
            env.barrier()  # every rank waits until the checkpoint is on disk
    stats = {
        "steps_this_run": step - start_step,
        "seconds": round(time.perf_counter() - t0, 2),
        "seconds_loading_data": round(seconds_load, 2),
    }
    manifest = _publish(run, model, optimizer, log_rows, losses, stats, plan) if env.is_main else {}
    env.barrier()
    return manifest


def _read_log(partial: Path, upto: int) -> list[dict]:
    """Log rows of the interrupted run up to the step it resumes from."""
    path = partial / LOG
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto]


def _save_state(run: _Run, model, optimizer, step: int, log_rows: list[dict]) -> None:
    """The resumable state (weights, optimiser, step, run identity, version), atomically."""
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": step,
        "identity": run.identity,
        "package_version": __version__,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(run.partial / STATE, buf.getvalue())
    write_atomic(run.partial / LOG, "".join(json.dumps(r) + "\n" for r in log_rows))
    log.debug("checkpoint at step %d", step)


def _publish(run: _Run, model, optimizer, log_rows, losses, stats, plan) -> dict[str, Any]:
    """Final weights, state and manifest into the partial folder, then rename it into place."""
    cfg = run.cfg
    meta = {"variant": run.variant, "architecture": cfg.model, "steps": cfg.steps,
            "package_version": __version__, "dataset": run.dataset["digest"]}  # fmt: skip
    save_model(run.partial, model, cfg.model, meta)
    _save_state(run, model, optimizer, cfg.steps, log_rows)
    tail = losses[-min(len(losses), 20) :] or [float("nan")]
    stats = {
        **stats,
        "samples_per_second": round(
            stats["steps_this_run"] * run.batch / max(stats["seconds"], 1e-9), 1
        ),
        "final_loss": round(sum(tail) / len(tail), 5),
    }
    manifest = write_manifest(
        run.partial,
        "model",
        config=to_dict(cfg),
        inputs={"dataset": run.dataset["digest"]},
        architecture=cfg.model,
        variant=run.variant,
        profile=run.profile,
        seed=run.seed,
        dataset_profile=run.dataset.get("profile"),
        steps=cfg.steps,
        world_size=run.env.world_size,
        global_batch=run.batch,
        samples_seen=cfg.steps * run.batch,
        epochs=plan.epochs(cfg.steps),
        training=stats,
    )
    if run.out.exists():
        old = run.out.with_name(f".{run.out.name}.old-{os.getpid()}")
        os.replace(run.out, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(run.partial, run.out)
    return manifest
