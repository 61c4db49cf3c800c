"""The method contract's types: what a method may ask for, what its loss sees (`Step`,
`Features`), its hyper-parameters (`MethodParams`) and the `Method` base class."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from salmubench.config import ConfigError, _doc

# What a method may ask for: the forget batch, its generic (non-sensitive) captions, the
# retain batch, and the frozen Compromised model's features of the same batches.
INPUTS = ("forget", "generic", "retain", "original")
# The batches the frozen original model may embed (`Method.original_reads`).
GROUPS = ("forget", "retain")


@dataclass
class Features:
    """One batch embedded by one model. Row i of every tensor is sample i."""

    image: torch.Tensor  # [n, D]
    text: torch.Tensor  # [n, D], the sample's own caption
    ids: torch.Tensor  # [n] caption ids: equal ids = identical text
    generic: torch.Tensor | None = None  # [n, D], the visual caption (forget only)
    generic_ids: torch.Tensor | None = None


@dataclass
class Step:
    """What a method's loss sees at one optimiser step."""

    index: int
    forget: Features | None
    retain: Features | None
    original_forget: Features | None  # no gradient; None unless "forget" in original_reads
    original_retain: Features | None  # None unless "retain" in original_reads
    logit_scale: torch.Tensor  # the model's, exp'd
    original_logit_scale: torch.Tensor
    generator: torch.Generator  # seeded by (seed, step): identical on every process


@dataclass(frozen=True)
class MethodParams:
    """Hyper-parameters every method has."""

    lr: float | None = _doc(
        "Learning rate of this method; None = the unlearn config's lr.", default=None
    )

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value < 0:
                raise ConfigError(f"{f.name}={value}: must be >= 0")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr={self.lr}: must be positive")


class Method:
    """Base class: subclasses set `name`, `summary`, `uses`, `Params` and `loss`, and
    `original_reads` if they use the original model's features of only some batches."""

    name: ClassVar[str]
    summary: ClassVar[str]
    uses: ClassVar[frozenset[str]]
    # Which batches the frozen original embeds, of those the method uses (if it uses
    # "original"): a method that reads only `original_retain` (DELETE, CLIPErase)
    # declares {"retain"}, and the forget batch is never pushed through the original.
    original_reads: ClassVar[frozenset[str]] = frozenset(GROUPS)
    Params: ClassVar[type[MethodParams]] = MethodParams
    # The learning rates `salmubench tune` tries for this method (None: its default grid).
    search_space: ClassVar[tuple[float, ...] | None] = None

    def __init__(self, params: MethodParams) -> None:
        self.params = params

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss to minimise, named parts for the log)."""
        raise NotImplementedError


def param(help: str, *, default: Any) -> Any:
    """A documented, defaulted hyper-parameter field of a method's `Params` dataclass."""
    return _doc(help, default=default)
