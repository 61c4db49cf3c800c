"""The `train` stage: a Clean or Compromised CLIP from scratch, resumable and distributed.

Why our own loop rather than OpenCLIP's `open_clip_train`: its `[training]` extra pins
`webdataset<=0.2.86` (we write shards with 1.x), it checkpoints per epoch (we resume at
any step after a SIGKILL), it has no notion of our mixing of the sensitive set, and it
would not check our dataset manifests. We keep OpenCLIP for what matters — the model, its
JSON architectures, its tokenizer and its checkpoint format — and keep the loop small.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from salmubench import __version__
from salmubench.config import ConfigError, TrainConfig, to_dict
from salmubench.data.shards import open_dataset
from salmubench.engine.dist import DistEnv, gather
from salmubench.engine.loop import Progress, Result, Settings, run_steps
from salmubench.engine.loop import Run as LoopRun
from salmubench.engine.loss import contrastive_loss
from salmubench.engine.pools import BatchPlan
from salmubench.engine.state import (
    partial_dir,
    prepare_output,
    run_process_group,
    swap_into_place,
)
from salmubench.manifest import read_manifest, write_manifest
from salmubench.models import architecture, create, image_normalisation, image_size, save_model
from salmubench.models import tokenizer as get_tokenizer
from salmubench.s3 import Url, location
from salmubench.train.data import (
    MEMORY_LIMIT_BYTES,
    batch_sizes,
    estimated_bytes,
    gather_batch,
    load_pools,
)
from salmubench.train.stream import StepBatches, batches, choose_loader, index_pools, list_shards
from salmubench.vocab import POOLS, TRAIN_LOG, VARIANTS

log = logging.getLogger(__name__)


def global_batch(cfg: TrainConfig, variant: str) -> int:
    return cfg.batch_size + (cfg.sensitive_batch if variant == "compromised" else 0)


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")


def _identity(
    cfg: TrainConfig, variant: str, seed: int, dataset: str, world: dict[str, Any] | None
) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote the checkpoint. Not the
    loader: both give the same batches, so a run may resume with the other one."""
    config = {k: v for k, v in to_dict(cfg).items() if k not in ("loader", "loader_workers")}
    out = {"config": config, "variant": variant, "seed": seed, "dataset": dataset}
    if world is not None:  # an external general world: its shard list too
        out["general_world"] = world["digest"]
    return out


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
    loader = choose_loader(cfg, estimated_bytes(dataset, splits), MEMORY_LIMIT_BYTES)
    external, world = list_shards(cfg.general_world_uri) if cfg.general_world_uri else ([], None)
    t_index = time.perf_counter()
    # Streaming: every shard's headers, before any process group or partial folder, so a
    # bad shard (no caption, not an image, truncated) fails here, named.
    indexes = index_pools(data, dataset, VARIANTS[variant], external) if loader == "stream" else {}
    seconds_index = time.perf_counter() - t_index
    partial = partial_dir(out)

    run = _Run(location(data), dataset, variant, cfg, out, partial, env, env.device(), seed,
               profile, _identity(cfg, variant, seed, dataset["digest"], world), loader,
               indexes, world, seconds_index)  # fmt: skip
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
    loader: str  # memory or stream
    indexes: dict[str, Any]  # stream: each pool's sample index (`data.tarindex.Index`)
    general_world: dict[str, Any] | None  # an external general world's record, or None
    seconds_index: float  # spent indexing the shards (stream)

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
    local = run.batch // env.world_size
    lo, hi = env.rank * local, (env.rank + 1) * local
    per_step = batch_sizes(cfg.batch_size, run.variant, cfg.sensitive_batch, cfg.retain_fraction)
    start = int(state["step"]) if state is not None else 0
    fetch, plan, shards = _batches(run, image_size(model), per_step, start, (lo, hi))
    seconds_load = time.perf_counter() - t_load + run.seconds_index
    mean, std = (t.to(device) for t in image_normalisation(model))
    waited = [0.0]

    def batch_loss(net: torch.nn.Module, step: int) -> tuple[torch.Tensor, dict]:
        t0 = time.perf_counter()
        images, tokens, ids = fetch(step)
        waited[0] += time.perf_counter() - t0
        x = (images.to(device).float() / 255.0 - mean) / std
        output = net(x, tokens.to(device))
        loss = contrastive_loss(
            gather(output["image_features"].float()),
            gather(output["text_features"].float()),
            output["logit_scale"].float(),
            ids.to(device),
        )
        return loss, {}

    settings = Settings(cfg.steps, cfg.lr, cfg.warmup_steps, cfg.weight_decay, cfg.precision,
                        cfg.log_every, cfg.checkpoint_every, TRAIN_LOG)  # fmt: skip
    where = LoopRun(env, device, run.partial, run.identity, run.batch)
    result = run_steps(model, batch_loss, settings, where, state, progress)
    result.stats["seconds_loading_data"] = round(seconds_load, 2)
    result.stats["seconds_waiting_for_data"] = round(waited[0], 2)
    manifest = _publish(run, result, plan, shards) if env.is_main else {}
    env.barrier()
    return manifest


def _batches(
    run: _Run, size: int, per_step: dict[str, int], start: int, rows: tuple[int, int]
) -> tuple[Any, BatchPlan, int]:
    """`fetch(step)` -> (this rank's images and tokens, the global batch's caption ids) from
    either loader, the batch plan and the number of shards read. Both loaders give the
    same batches: the plan is the same function of (pool sizes, seed, step)."""
    cfg, pools, (lo, hi) = run.cfg, VARIANTS[run.variant], rows
    tokenize = get_tokenizer(cfg.model)
    if run.loader == "memory":
        decoded = load_pools(run.data, run.dataset, pools, tokenize, size)
        plan = BatchPlan({p: len(pool) for p, pool in decoded.items()}, per_step, run.seed)
        shards = sum(len(run.dataset["shards"][s]) for p in pools for s in POOLS[p])

        def from_memory(step: int) -> tuple[torch.Tensor, ...]:
            images, tokens, ids = gather_batch(decoded, plan.indices(step))
            return images[lo:hi], tokens[lo:hi], ids

        return from_memory, plan, shards
    indexes = run.indexes
    plan = BatchPlan({p: len(index) for p, index in indexes.items()}, per_step, run.seed)
    steps = StepBatches(indexes, plan, start, cfg.steps, lo, hi, tokenize, size)
    it = batches(steps, cfg.loader_workers)

    def streamed(step: int) -> tuple[torch.Tensor, ...]:
        at, images, tokens, ids = next(it)
        if at != step:  # the loop and the loader disagree: never train on another batch
            raise RuntimeError(f"the streaming loader delivered step {at} for step {step}")
        return images, tokens, gather(ids.to(run.device)).cpu()

    return streamed, plan, sum(len(index.shards) for index in indexes.values())


def _publish(run: _Run, result: Result, plan: BatchPlan, shards: int) -> dict[str, Any]:
    """Final weights and manifest into the partial folder, then rename it into place."""
    cfg = run.cfg
    meta = {"variant": run.variant, "architecture": cfg.model, "steps": cfg.steps,
            "package_version": __version__, "dataset": run.dataset["digest"]}  # fmt: skip
    save_model(run.partial, result.model, cfg.model, meta)
    final = result.final(20)
    stats = {**result.stats, "final_loss": final.get("loss", float("nan"))}
    manifest = write_manifest(
        run.partial,
        "model",
        config=to_dict(cfg),
        inputs={"dataset": run.dataset["digest"]}
        | ({"general_world": run.general_world["digest"]} if run.general_world else {}),
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
        data_loader={
            "loader": run.loader,
            "shards": shards,
            "workers": cfg.loader_workers if run.loader == "stream" else 0,
        },
        general_world=run.general_world,
        training=stats,
    )
    swap_into_place(run.partial, run.out)
    return manifest
