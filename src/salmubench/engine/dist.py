"""Launcher-independent distributed setup: rank and world size come from the environment.

The same command runs as one process, under `torchrun --nproc_per_node=N` (gloo on CPU,
NCCL on GPUs), or inside a PyTorchJob/TrainJob: torchrun and the operators set RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT. Features are
gathered over processes (`gather`), so 1 and N processes compute the same loss.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from salmubench.stagerun import available_cpus


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> DistEnv:
        def get(name: str, default: int) -> int:
            raw = os.environ.get(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None

        world = get("WORLD_SIZE", 1)
        return cls(
            rank=get("RANK", 0),
            world_size=world,
            local_rank=get("LOCAL_RANK", 0),
            local_world_size=get("LOCAL_WORLD_SIZE", world),
        )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    def init(self) -> None:
        """Join the process group (no-op for one process)."""
        if self.distributed and not torch_dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(self.device())
            torch_dist.init_process_group(backend=backend, init_method="env://")

    def barrier(self) -> None:
        if self.distributed and torch_dist.is_initialized():
            torch_dist.barrier()

    def close(self) -> None:
        if self.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()

    def threads(self, requested: int) -> int:
        """Torch threads per process: as asked, or the CPUs shared among local processes."""
        if requested > 0:
            return requested
        return max(1, len(available_cpus()) // max(1, self.local_world_size))


def gather(features: torch.Tensor) -> torch.Tensor:
    """All ranks' features, concatenated in rank order, with gradients flowing back."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return features
    if torch_dist.get_world_size() == 1:
        return features
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        # Deprecated in favour of a private API; it is what OpenCLIP's ClipLoss uses too.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(features), dim=0)
