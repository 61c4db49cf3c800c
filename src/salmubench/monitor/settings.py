"""What the CLI's parser needs of the monitor, and nothing else: the baseline store's
environment variable, the noise multiplier and the drill's settings. Kept apart so that
building the parser (every stage command does) imports no more of the monitor than this."""

from __future__ import annotations

import os
from dataclasses import dataclass

from salmubench.config import ConfigError

BASELINES_ENV = "SALMUBENCH_BASELINES"
K_SIGMA = 3.0  # a one-sided 3-sigma rise: ~0.13 % false alarms per series under Gaussian noise


def baselines() -> str | None:
    """The baseline store the re-evaluation reads ($SALMUBENCH_BASELINES), or None."""
    return os.environ.get(BASELINES_ENV) or None


@dataclass(frozen=True)
class DrillConfig:
    """How hard the drill re-teaches the forget set, and with which relearning attack."""

    steps: int = 30  # optimiser steps on forget batches
    batch: int = 32  # forget samples per step
    lr: float = 1.0e-3  # AdamW learning rate (constant: a drill, not a schedule)
    seed: int = 0  # which forget samples each step draws (and the persona split)
    # full: every forget pair; or a fine-tuning attack of `salmubench attack` (docs/ATTACKS.md)
    attack: str = "full"

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 2:
            raise ConfigError(
                f"drill steps={self.steps}, batch={self.batch}: need steps >= 1 and batch >= 2 "
                "(the contrastive loss needs two samples)"
            )
        if not self.lr > 0:
            raise ConfigError(f"drill lr={self.lr}: expected a positive learning rate")
        if self.attack not in DRILL_ATTACKS:
            raise ConfigError(f"drill attack={self.attack!r}; valid: {', '.join(DRILL_ATTACKS)}")


# The drill's attacks: the whole forget set, or the fine-tuning attacks (vocab.ATTACKS)
DRILL_ATTACKS = ("full", "persona_split", "generic_captions", "retain_only")
