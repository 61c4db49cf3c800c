"""The one step loop: train and unlearn give it a model, a batch → loss function and their
settings; it owns the optimiser, schedule, precision, DDP, checkpoints, log and progress.

A stage's `batch_loss(net, step)` builds the batch of `step` (a pure function of seed and
step, so a resumed run continues exactly), runs the forward pass through `net` (the model,
DDP-wrapped when distributed) and returns (loss, named parts for the log). It runs inside
the precision's autocast; the loop does the backward pass, the optimiser step and clamps
the logit scale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from salmubench.engine.dist import DistEnv
from salmubench.engine.optim import Precision, cosine_lr, make_optimizer, set_lr
from salmubench.engine.state import read_log, save_state

BatchLoss = Callable[[torch.nn.Module, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class Settings:
    """What the loop needs of a stage's config."""

    steps: int
    lr: float  # peak of the warm-up + cosine schedule
    warmup_steps: int
    weight_decay: float
    precision: str
    log_every: int
    checkpoint_every: int
    log_name: str  # the JSON Lines log in the output folder


@dataclass(frozen=True)
class Run:
    """Where the loop runs and what identifies it (a resumed run must match)."""

    env: DistEnv
    device: torch.device
    partial: Path
    identity: dict[str, Any]
    # The global batch, for throughput in samples/s (None: steps/s only).
    samples_per_step: int | None = None


@dataclass
class Result:
    """The trained model and what the loop measured; the final state is already saved."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    log_rows: list[dict[str, Any]]
    history: list[dict[str, float]]  # per step of this process's run: loss and its parts
    stats: dict[str, Any] = field(default_factory=dict)

    def final(self, last: int) -> dict[str, float]:
        """Mean of each logged quantity over the last `last` steps of this run."""
        tail = self.history[-min(len(self.history), last) :]
        return {k: round(sum(h[k] for h in tail) / len(tail), 5) for k in tail[0]} if tail else {}


def run_steps(
    model: torch.nn.Module,
    batch_loss: BatchLoss,
    settings: Settings,
    run: Run,
    state: dict[str, Any] | None,
    progress: Progress | None = None,
) -> Result:
    """Steps from the resumed step (or 0) to `settings.steps`; checkpoints every
    `checkpoint_every` steps and after the last one (rank 0), every rank at every barrier."""
    env, device = run.env, run.device
    optimizer = make_optimizer(model, settings.lr, settings.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    net = model
    if env.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    precision = Precision(settings.precision, device)
    step = int(state["step"]) if state is not None else 0
    start_step = step
    log_rows = read_log(run.partial, settings.log_name, step) if env.is_main else []
    history: list[dict[str, float]] = []

    def checkpoint(at: int) -> None:
        save_state(run.partial, model, optimizer, at, run.identity, log_rows, settings.log_name)

    model.train()
    t0 = time.perf_counter()
    while step < settings.steps:
        lr = cosine_lr(step, settings.steps, settings.warmup_steps, settings.lr)
        set_lr(optimizer, lr)
        with precision.autocast():
            loss, parts = batch_loss(net, step)
        precision.step(loss, optimizer)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        history.append({"loss": loss.item(), **{k: v.item() for k, v in parts.items()}})
        if env.is_main and (step % settings.log_every == 0 or step == settings.steps):
            seconds = time.perf_counter() - t0
            recent = history[-settings.log_every :]
            row: dict[str, Any] = {"step": step, "lr": lr}
            row.update({k: round(sum(h[k] for h in recent) / len(recent), 5) for k in recent[0]})
            row["logit_scale"] = round(model.logit_scale.detach().exp().item(), 3)
            row["steps_per_second"] = round((step - start_step) / seconds, 3)
            if run.samples_per_step is not None:
                row["samples_per_second"] = round(
                    (step - start_step) * run.samples_per_step / seconds, 1
                )
            log_rows.append(row)
        if progress is not None and env.is_main:
            progress(step, settings.steps, history[-1]["loss"])
        if step % settings.checkpoint_every == 0 and step < settings.steps:
            if env.is_main:
                checkpoint(step)
            env.barrier()  # every rank waits until the checkpoint is on disk
    seconds = round(time.perf_counter() - t0, 2)
    if env.is_main:
        checkpoint(settings.steps)
    stats = {
        "steps_this_run": step - start_step,
        "seconds": seconds,
        "steps_per_second": round((step - start_step) / max(seconds, 1e-9), 3),
    }
    if run.samples_per_step is not None:
        stats["samples_per_second"] = round(
            (step - start_step) * run.samples_per_step / max(seconds, 1e-9), 1
        )
    return Result(model, optimizer, log_rows, history, stats)
