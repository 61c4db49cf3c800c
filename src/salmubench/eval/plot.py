"""A picture of one evaluation: each metric next to the Clean and Compromised references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"clean": "#4c9f70", "compromised": "#c8553d", "model": "#3a6ea5"}


def plot_targets(rows: dict[str, dict[str, Any]], out: str | Path, title: str) -> Path:
    """Grouped bars per metric (Clean, Compromised, this model); efficacy left, utility right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = ("efficacy", "utility")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, family in zip(axes, families, strict=True):
        names = [n for n, r in rows.items() if r["family"] == family]
        width = 0.27
        for k, (label, key) in enumerate(
            (("Clean", "clean"), ("Compromised", "compromised"), ("this model", "value"))
        ):
            values = [rows[n].get(key) for n in names]
            xs = [i + (k - 1) * width for i in range(len(names))]
            present = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
            if present:
                ax.bar([x for x, _ in present], [v for _, v in present], width, label=label,
                       color=COLOURS["model" if key == "value" else key])  # fmt: skip
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        target = "Clean" if family == "efficacy" else "Compromised"
        ax.set_title(f"{family} (target: {target})")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
