"""What every optimisation stage shares: optimiser, schedule, precision, resumable state.

`train` and `unlearn` are different loops over the same machinery: AdamW without decay on
gains, biases and the logit scale; linear warm-up then cosine decay; fp32/bf16/fp16
autocast; a `.NAME.partial/` folder holding the resumable state until the finished output
is renamed into place.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import torch

from salmubench import __version__
from salmubench.config import ConfigError
from salmubench.manifest import MANIFEST, OutputExistsError, write_atomic

log = logging.getLogger(__name__)

STATE = "state.pt"
T = TypeVar("T")


def partial_dir(out: Path) -> Path:
    """Where a run in progress lives (stable across restarts, unlike a PID-named temp)."""
    return out.with_name(f".{out.name}.partial")


def cosine_lr(step: int, steps: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, steps - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / span))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "logit_scale" in name or name.endswith(("bias", "positional_embedding")):
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW(
        [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay},
        ],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


class Precision:
    """Autocast for the forward pass and the matching backward/step (GradScaler for fp16)."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.precision, self.device = precision, device

    def autocast(self) -> AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def prepare_output(out: Path, resume: bool, force: bool, what: str = "model") -> str:
    """Decide before any work: 'done' (resume of a finished run), 'resume', or 'fresh'."""
    partial = partial_dir(out)
    if (out / MANIFEST).is_file() and not force:
        if resume:
            return "done"
        raise OutputExistsError(
            f"{out} already holds a finished {what}; pass --force to run again (the old one "
            "is replaced only when the new one is complete)"
        )
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output folder {out} exists, is not empty and is not a {what}")
    if (partial / STATE).is_file():
        if resume:
            return "resume"
        if not force:
            raise OutputExistsError(
                f"an interrupted run of {out} exists ({partial}); pass --resume to continue "
                "it or --force to start over"
            )
    return "fresh"


def load_state(partial: Path, identity: dict[str, Any]) -> dict[str, Any]:
    state = torch.load(partial / STATE, map_location="cpu", weights_only=True)
    if state["identity"] != identity:
        raise ConfigError(
            f"{partial / STATE} was written by a different run (config, inputs or seed "
            "differ); pass --force to start over"
        )
    return state


def save_state(
    partial: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    identity: dict[str, Any],
    log_rows: list[dict],
    log_name: str,
) -> None:
    """The resumable state (weights, optimiser, step, run identity, version), atomically."""
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": step,
        "identity": identity,
        "package_version": __version__,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(partial / STATE, buf.getvalue())
    write_atomic(partial / log_name, "".join(json.dumps(r) + "\n" for r in log_rows))
    log.debug("checkpoint at step %d", step)


def read_log(partial: Path, log_name: str, upto: int) -> list[dict]:
    """Log rows of the interrupted run up to the step it resumes from."""
    path = partial / log_name
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto]


def fresh_partial(partial: Path, mode: str) -> None:
    if mode == "fresh" and partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)


def run_process_group(
    env: Any,
    threads: int,
    partial: Path,
    mode: str,
    identity: dict[str, Any],
    loop: Callable[[dict[str, Any] | None], T],
) -> T:
    """Join the process group, prepare the partial folder (rank 0), load the state of a
    resumed run, run `loop(state)` on every rank, and always leave the group."""
    env.init()
    torch.set_num_threads(env.threads(threads))
    try:
        if env.is_main:
            fresh_partial(partial, mode)
        env.barrier()
        return loop(load_state(partial, identity) if mode == "resume" else None)
    finally:
        env.close()


def swap_into_place(partial: Path, out: Path) -> None:
    """Replace `out` by the finished `partial` folder; the old output goes only after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(partial, out)
