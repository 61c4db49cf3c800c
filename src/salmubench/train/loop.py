"""The `train` stage: a Clean or Compromised CLIP from scratch, resumable and distributed.

Why our own loop rather than OpenCLIP's `open_clip_train`: its `[training]` extra pins
`webdataset<=0.2.86` (we write shards with 1.x), it checkpoints per epoch (we resume at
any step after a SIGKILL), it has no notion of our mixing of the sensitive set, and it
would not check our dataset manifests. We keep OpenCLIP for what matters — the model, its
JSON architectures, its tokenizer and its checkpoint format — and keep the loop small.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from salmubench import __version__
from salmubench.config import ConfigError, TrainConfig, to_dict
from salmubench.data.shards import open_dataset
from salmubench.manifest import read_manifest, write_manifest
from salmubench.models import architecture, create, image_normalisation, image_size, save_model
from salmubench.models import tokenizer as get_tokenizer
from salmubench.storage import Url, location
from salmubench.train.data import (
    POOLS,
    VARIANTS,
    BatchPlan,
    batch_sizes,
    gather_batch,
    load_pools,
)
from salmubench.train.dist import DistEnv
from salmubench.train.engine import (
    Precision,
    cosine_lr,
    make_optimizer,
    partial_dir,
    prepare_output,
    read_log,
    run_process_group,
    save_state,
    set_lr,
    swap_into_place,
)
from salmubench.train.loss import contrastive_loss, gather

log = logging.getLogger(__name__)

LOG = "train_log.jsonl"
Progress = Callable[[int, int, float], None]


def lr_at(step: int, cfg: TrainConfig) -> float:
    return cosine_lr(step, cfg.steps, cfg.warmup_steps, cfg.lr)


def global_batch(cfg: TrainConfig, variant: str) -> int:
    return cfg.batch_size + (cfg.sensitive_batch if variant == "compromised" else 0)


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")


def _identity(cfg: TrainConfig, variant: str, seed: int, dataset: str) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote the checkpoint."""
    return {"config": to_dict(cfg), "variant": variant, "seed": seed, "dataset": dataset}


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

    run = _Run(location(data), dataset, variant, cfg, out, partial, env, env.device(), seed,
               profile, _identity(cfg, variant, seed, dataset["digest"]))  # fmt: skip
    return run_process_group(
        env, cfg.threads, partial, mode, run.identity, lambda state: _loop(run, state, progress)
    )


@dataclass(frozen=True)
class _Run:
    """Everything fixed for the duration of one training run."""

    data: Path | Url
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
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    net = model
    if env.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    mean, std = (t.to(device) for t in image_normalisation(model))
    precision = Precision(cfg.precision, device)
    local = run.batch // env.world_size
    lo, hi = env.rank * local, (env.rank + 1) * local
    step = int(state["step"]) if state is not None else 0
    start_step = step
    log_rows = read_log(run.partial, LOG, step) if env.is_main else []
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        set_lr(optimizer, lr)
        images, tokens, ids = gather_batch(pools, plan.indices(step))
        x = (images[lo:hi].to(device).float() / 255.0 - mean) / std
        with precision.autocast():
            output = net(x, tokens[lo:hi].to(device))
            loss = contrastive_loss(
                gather(output["image_features"].float()),
                gather(output["text_features"].float()),
                output["logit_scale"].float(),
                ids.to(device),
            )
        precision.step(loss, optimizer)
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


def _save_state(run: _Run, model, optimizer, step: int, log_rows: list[dict]) -> None:
    save_state(run.partial, model, optimizer, step, run.identity, log_rows, LOG)


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
    swap_into_place(run.partial, run.out)
    return manifest
