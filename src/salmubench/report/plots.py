"""The report's figures: the forgetting/holdout trade-off, all metrics, and ours vs paper."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from salmubench.eval.plot import COLOURS
from salmubench.report.leaderboard import display
from salmubench.report.paper import PAPER_METRICS

log = logging.getLogger(__name__)

DPI = 110
# Figures are inputs to the report's digest: no timestamp or version in the PNG metadata.
PNG_METADATA = {"Software": None}
FIGURES = {
    "tradeoff.png": "Forgetting (share of the RetFail gap closed) against holdout kept (share of "
    "the holdout similarity kept); shaded: the ineffective and over-generalised regions; "
    "colour: GenKnow drop, ✕ = collapse; bars: confidence intervals.",
    "metrics.png": "Every metric per model: efficacy (target: Clean) and utility (target: "
    "Compromised); error bars: standard deviation over seeds.",
    "sweep.png": "The tuning sweep on the validation world, per method: forgetting, holdout "
    "kept and GenKnow drop against the learning rate; the chosen rate is marked.",
    "recovery.png": "Recovery gap per method and relearning attack: the share of the memorised "
    "RetFail gap an attack restores beyond what it gives Clean (worst case over its sweep); "
    "bars: confidence intervals; dashed: the not-robust threshold.",
    "paper.png": "Ours against the paper's main table (5× budget) for the four metrics it "
    "reports; absolute values differ with scale, compare the shapes.",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    fig.savefig(out, dpi=DPI, metadata=PNG_METADATA)
    _pyplot().close(fig)
    return out


def _series_colours(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_tradeoff(board: Mapping[str, Any], out: str | Path) -> Path:
    """Forgetting (x) against holdout kept (y): one point per method, references at (1, 0)
    and (0, 1), failure regions shaded."""
    plt = _pyplot()
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    th = board["thresholds"]
    placed = []
    for row in board["rows"]:
        x, y = row["scores"]["forgetting"], row["scores"]["holdout_kept"]
        if x is None or y is None:
            log.info("%s: not placed on the trade-off plot (a score is undefined)", row["label"])
        else:
            placed.append((row, x, y))
    fig, ax = plt.subplots(figsize=(8, 6), constrained_layout=True)
    xs = [1.0, 0.0, th["min_forgetting"], *(x for _, x, _ in placed)]
    ys = [0.0, 1.0, th["min_holdout_kept"], *(y for _, _, y in placed)]
    pad = 0.12
    x0, x1 = min(-0.1, min(xs) - pad), max(1.15, max(xs) + pad)
    y0, y1 = min(-0.1, min(ys) - pad), max(1.15, max(ys) + pad)
    drops = [r["scores"]["genknow_drop"] for r, _, _ in placed if r["rank"] is not None]
    top = max([2 * th["max_genknow_drop"], *(d for d in drops if d is not None)])
    norm = Normalize(vmin=0.0, vmax=top)
    cmap = plt.get_cmap("viridis_r")
    for row, x, y in placed:
        # Labels point inwards, and neighbours alternate above/below, so they rarely collide.
        right = x > (x0 + x1) / 2
        above = row["rank"] is None or row["rank"] % 2 == 1
        label = dict(
            xytext=(-7 if right else 7, 6 if above else -12),
            textcoords="offset points",
            ha="right" if right else "left",
        )
        if row["rank"] is None:
            colour = COLOURS[row["variant"]]
            ax.scatter([x], [y], s=160, marker="*", color=colour, zorder=4, edgecolor="black")
            ax.annotate(row["label"], (x, y), fontsize=9, color=colour, fontweight="bold", **label)
            continue
        drop = row["scores"]["genknow_drop"]
        collapse = "collapse" in row["verdicts"]
        colour = "lightgrey" if drop is None else cmap(norm(max(drop, 0.0)))
        ci = row.get("scores_ci", {})
        if ci.get("forgetting") is not None or ci.get("holdout_kept") is not None:
            ax.errorbar(
                [x],
                [y],
                xerr=_err(x, ci.get("forgetting")),
                yerr=_err(y, ci.get("holdout_kept")),
                fmt="none",
                ecolor="grey",
                elinewidth=1,
                capsize=3,
                zorder=2,
            )
        ax.scatter(
            [x],
            [y],
            s=90 if collapse else 60,
            marker="X" if collapse else "o",
            color=colour,
            edgecolor="red" if collapse else "black",
            linewidth=1.5 if collapse else 0.6,
            zorder=3,
        )
        ax.annotate(f"{row['rank']}. {row['label']}", (x, y), fontsize=8, **label)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axvspan(x0, th["min_forgetting"], color="#f2c14e", alpha=0.18, lw=0)
    ax.axhspan(y0, th["min_holdout_kept"], color="#9b5de5", alpha=0.15, lw=0)
    ax.axvline(th["min_forgetting"], color="#b8860b", ls="--", lw=1)
    ax.axhline(th["min_holdout_kept"], color="#6a3d9a", ls="--", lw=1)
    legend = [
        Patch(
            color="#f2c14e", alpha=0.4, label=f"ineffective (forgetting < {th['min_forgetting']:g})"
        ),
        Patch(
            color="#9b5de5",
            alpha=0.35,
            label=f"over-generalised (holdout kept < {th['min_holdout_kept']:g})",
        ),
        Line2D(
            [],
            [],
            marker="X",
            ls="",
            color="grey",
            markeredgecolor="red",
            markersize=9,
            label=f"collapse (GenKnow drop > {th['max_genknow_drop']:g})",
        ),
    ]
    ax.legend(handles=legend, loc="best", fontsize=8, framealpha=0.9)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, ax=ax, shrink=0.8)
    bar.set_label("GenKnow drop")
    bar.ax.axhline(th["max_genknow_drop"], color="red", lw=1.5)
    ax.set_xlabel("forgetting (share of the RetFail gap closed; 1 = Clean)")
    ax.set_ylabel("holdout kept (1 = Compromised, 0 = Clean)")
    ax.set_title("Forgetting against over-generalisation")
    ax.grid(alpha=0.3)
    return _save(fig, Path(out))


def _err(x: float, ci: Sequence[float] | None) -> Any:
    """An asymmetric error bar from a confidence interval around `x`."""
    return None if ci is None else [[max(x - ci[0], 0.0)], [max(ci[1] - x, 0.0)]]


def _grouped_bars(
    ax: Any,
    names: Sequence[str],
    series: Sequence[tuple[str, Mapping[str, float], Mapping[str, float | None], Any]],
) -> None:
    width = 0.8 / max(len(series), 1)
    for k, (label, values, std, colour) in enumerate(series):
        xs, hs, es = [], [], []
        for i, name in enumerate(names):
            if values.get(name) is not None:
                xs.append(i - 0.4 + (k + 0.5) * width)
                hs.append(values[name])
                es.append(std.get(name) or 0.0)
        if xs:
            ax.bar(
                xs,
                hs,
                width,
                yerr=es if any(es) else None,
                label=label,
                color=colour,
                error_kw={"elinewidth": 0.8, "capsize": 1.5},
            )
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([display(n) for n in names], rotation=30, ha="right")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)


def _row_colours(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    others = _series_colours(sum(r["rank"] is not None for r in rows))
    it = iter(others)
    return [COLOURS[r["variant"]] if r["rank"] is None else next(it) for r in rows]


def plot_metrics(board: Mapping[str, Any], out: str | Path) -> Path:
    """Grouped bars per metric for every row; efficacy left, utility right."""
    plt = _pyplot()
    rows = board["rows"]
    colours = _row_colours(rows)
    width = max(11.0, 4 + 0.35 * len(rows) * 5)
    fig, axes = plt.subplots(1, 2, figsize=(min(width, 24), 4.8), constrained_layout=True)
    for ax, family in zip(axes, ("efficacy", "utility"), strict=True):
        names = [n for n, m in board["metrics"].items() if m["family"] == family]
        series = [
            (r["label"], r["metrics"], r["std"], c) for r, c in zip(rows, colours, strict=True)
        ]
        _grouped_bars(ax, names, series)
        target = "Clean" if family == "efficacy" else "Compromised"
        ax.set_title(f"{family} (target: {target})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    return _save(fig, Path(out))


def plot_paper(board: Mapping[str, Any], out: str | Path) -> Path:
    """Ours next to the paper's numbers for the four metrics the paper reports."""
    plt = _pyplot()
    paper = {p["name"]: p for p in board["paper"]["rows"]}
    groups: list[tuple[str, Mapping[str, float] | None, Mapping[str, float] | None]] = []
    covered = set()
    for row in board["rows"]:
        p = paper.get(row["paper"]) if row["paper"] else None
        if p is not None:
            covered.add(p["name"])
        groups.append((row["label"], row["metrics"], p["metrics"] if p else None))
    for name, p in paper.items():
        if name not in covered:
            groups.append((f"{name} (paper only)", None, p["metrics"]))
    fig, grid = plt.subplots(
        2, 2, figsize=(max(10.0, 4 + 0.7 * len(groups)), 8), constrained_layout=True
    )
    axes = grid.ravel()
    width = 0.38
    for ax, metric in zip(axes, PAPER_METRICS, strict=True):
        for i, (_, ours, theirs) in enumerate(groups):
            if ours is not None and metric in ours:
                ax.bar(
                    i - width / 2,
                    ours[metric],
                    width,
                    color=COLOURS["model"],
                    label="ours" if i == 0 else None,
                )
            if theirs is not None:
                ax.bar(
                    i + width / 2,
                    theirs[metric],
                    width,
                    color="#9a9a9a",
                    label="paper" if i == 0 else None,
                )
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g[0] for g in groups], rotation=45, ha="right", fontsize=7)
        ax.set_title(display(metric))
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Ours vs {board['paper']['source']}", fontsize=10)
    return _save(fig, Path(out))


def plot_sweep(tuning: Mapping[str, Any], out: str | Path) -> Path:
    """One panel per method: its three scores against the learning rate on the validation
    world, the selection target and the chosen rate marked."""
    plt = _pyplot()
    methods = list(tuning["results"])
    cols = min(3, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, constrained_layout=True
    )
    styles = {"forgetting": ("#1f77b4", "o"), "holdout_kept": ("#6a3d9a", "s")}
    for ax, method in zip(axes.ravel(), methods, strict=False):
        results = sorted(tuning["results"][method], key=lambda r: r["lr"])
        lrs = [r["lr"] for r in results]
        for name, (colour, marker) in styles.items():
            ys = [r["scores"][name] for r in results]
            ax.plot(lrs, ys, marker=marker, color=colour, label=display(name))
        twin = ax.twinx()
        drops = [r["scores"]["genknow_drop"] for r in results]
        twin.plot(lrs, drops, marker="^", color="#d62728", label=display("genknow_drop"))
        twin.axhline(tuning["thresholds"]["max_genknow_drop"], color="#d62728", ls=":", lw=1)
        twin.tick_params(axis="y", colors="#d62728", labelsize=7)
        ax.axhline(tuning["target"], color="#1f77b4", ls=":", lw=1)
        ax.axhline(0, color="#6a3d9a", ls=":", lw=1)
        ax.axvline(tuning["chosen"][method], color="black", lw=1.2, alpha=0.6)
        ax.set_xscale("log")
        ax.set_title(method, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(methods) :]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="^", color="#d62728"))
    labels.append(f"{display('genknow_drop')} (right axis)")
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(
        f"Tuning sweep on {tuning['world']['name']} (vertical line: chosen lr; dotted: the "
        f"forgetting target {tuning['target']:g}, Clean level, collapse threshold)",
        fontsize=9,
    )
    return _save(fig, Path(out))


def plot_recovery(board: Mapping[str, Any], out: str | Path) -> Path:
    """Grouped bars: per attacked method, its mean RetFail recovery gap under each attack,
    with its confidence interval; the max_recovery threshold dashed."""
    plt = _pyplot()
    attacks = board["attacks"]["names"]
    rows = [r for r in board["rows"] if r.get("attacks")]
    colours = _series_colours(len(attacks))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(rows) + 3), 4.8), constrained_layout=True)
    width = 0.8 / max(len(attacks), 1)
    for k, attack in enumerate(attacks):
        xs, hs, errs = [], [], [[], []]
        for i, row in enumerate(rows):
            gap = row["attacks"].get(attack, {}).get("retfail")
            if gap is None or gap["mean"] is None:
                continue
            xs.append(i - 0.4 + (k + 0.5) * width)
            hs.append(gap["mean"])
            lo, hi = _err(gap["mean"], gap["ci"]) or [[0.0], [0.0]]
            errs[0] += lo
            errs[1] += hi
        if xs:
            ax.bar(xs, hs, width, yerr=errs if any(errs[0] + errs[1]) else None, label=attack,
                   color=colours[k],
                   error_kw={"elinewidth": 0.9, "capsize": 2})  # fmt: skip
    threshold = board["attacks"]["max_recovery"]
    ax.axhline(threshold, color="red", ls="--", lw=1, label=f"not robust above {threshold:g}")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['label']}\n({(r['robust'] or {}).get('verdict') or '—'})"
                        for r in rows], fontsize=8)  # fmt: skip
    ax.set_ylabel("RetFail recovery gap (1 = the whole memorised gap)")
    ax.set_title("Does the forgetting last? Recovery under relearning attacks")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, Path(out))


def plot_all(
    board: Mapping[str, Any], folder: str | Path, tuning: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Write every figure into `folder`; {file name: caption} in display order."""
    folder = Path(folder)
    plot_tradeoff(board, folder / "tradeoff.png")
    plot_metrics(board, folder / "metrics.png")
    plot_paper(board, folder / "paper.png")
    optional = {"sweep.png", "recovery.png"}
    figures = {k: v for k, v in FIGURES.items() if k not in optional}
    if board.get("attacks"):
        plot_recovery(board, folder / "recovery.png")
        figures["recovery.png"] = FIGURES["recovery.png"]
    if tuning:
        plot_sweep(tuning, folder / "sweep.png")
        figures["sweep.png"] = FIGURES["sweep.png"]
    return figures
