"""The tuning protocol (SPEC.md §5): which worlds are for validation and which for the
leaderboard, the grid of learning rates, the rule that chooses one, and reading a sweep's
tuning.json. `salmubench tune` (`tune.py`) runs the sweep; bench and report check against it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from salmubench.config import ConfigError
from salmubench.manifest import ManifestError
from salmubench.vocab import TUNING_FILE

VALIDATION_SEEDS = 1000  # world seeds >= this are validation worlds
TARGET = 0.9
DEFAULT_GRID = (3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
RULE = (
    "per method, the smallest learning rate of the grid that closes at least {target:.0%} of "
    "the RetFail gap between the Compromised and the Clean model (forgetting >= {target:g}) on "
    "the validation world; if none does, the one that closes the most. Holdout and GenKnow "
    "scores are recorded, never used to choose."
)
REFERENCE_KEYS = ("retfail", "genknow", "inter_id_sim", "intra_id_sim")


def is_validation_world(seed: int) -> bool:
    return seed >= VALIDATION_SEEDS


def check_validation_world(seed: int) -> None:
    if not is_validation_world(seed):
        raise ConfigError(
            f"world {seed} is a leaderboard world: settings may only be tuned on a validation "
            f"world (seed >= {VALIDATION_SEEDS}, e.g. --world {VALIDATION_SEEDS})"
        )


def check_leaderboard_world(seed: int) -> None:
    if is_validation_world(seed):
        raise ConfigError(
            f"world {seed} is a validation world (seed >= {VALIDATION_SEEDS}): settings are "
            f"tuned on it, so it may not be reported on; use seeds below {VALIDATION_SEEDS}"
        )


def choose(rows: Sequence[Mapping[str, Any]], target: float = TARGET) -> float:
    """The rule: smallest lr with forgetting >= target, else the lr that forgets most
    (the smaller on a tie). `rows`: {"lr", "scores": {"forgetting", ...}}."""
    if not rows:
        raise ValueError("no sweep rows to choose from")
    ordered = sorted(rows, key=lambda r: r["lr"])
    for r in ordered:
        f = r["scores"]["forgetting"]
        if f is not None and f >= target:
            return r["lr"]
    return max(ordered, key=lambda r: (r["scores"]["forgetting"] or float("-inf"), -r["lr"]))["lr"]


def load_tuning(path: str | os.PathLike) -> dict[str, Any]:
    """A tuning.json (the file, or a folder holding one), checked for what reports read."""
    path = Path(path)
    if path.is_dir():
        path = path / TUNING_FILE
    if not path.is_file():
        raise ManifestError(
            f"{path}: no tuning file (expected {TUNING_FILE} from `salmubench tune`)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("world", "rule", "target", "chosen", "results", "thresholds")
               if k not in data]  # fmt: skip
    if missing:
        raise ManifestError(f"{path}: not a tuning file, it lacks {', '.join(missing)}")
    return data


def check_not_tuned_on(datasets: Iterable[str], tuning: Mapping[str, Any]) -> None:
    """Refuse to report on the world the settings were tuned on."""
    tuned = tuning["world"]["dataset"]
    if tuned in set(datasets):
        raise ConfigError(
            f"the evals include the validation world {tuning['world']['name']} (dataset "
            f"{tuned[:12]}), on which the settings were tuned; report on other worlds"
        )


def grid_for(method: str, grid: Sequence[float] | None = None) -> list[float]:
    """The learning rates tried for `method`: `grid` if given, else the method's own
    `search_space`, else DEFAULT_GRID (smallest first)."""
    from salmubench.unlearn import get_method

    return sorted(set(grid or get_method(method).search_space or DEFAULT_GRID))
