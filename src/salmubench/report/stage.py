"""The `report` stage: eval folders in, one leaderboard folder out.

Writes `leaderboard.json` (every number, per seed, with the thresholds and the paper's
rows; with attack folders, each row's recovery gaps and robust verdict), `leaderboard.md`,
a self-contained `report.html`, the figures as PNG, and the manifest, all through a staged
folder so a half-written report is never visible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from salmubench.config import ReportConfig, to_dict
from salmubench.manifest import check_output, dumps, staged_output, write_manifest
from salmubench.report.html import page
from salmubench.report.leaderboard import build_leaderboard
from salmubench.report.plots import plot_all
from salmubench.report.records import load_attacks, load_evals
from salmubench.report.render import markdown
from salmubench.tuning import check_not_tuned_on, load_tuning

log = logging.getLogger(__name__)

DEFAULT_TITLE = "SALMUBench leaderboard"


def build_report(
    runs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    cfg: ReportConfig | None = None,
    force: bool = False,
    title: str | None = None,
    tuning: str | os.PathLike | None = None,
    attacks: Sequence[str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Judge every evaluated method found in `runs` into report folder `out`; its manifest.

    `tuning`: the tuning.json of the validation world the settings were chosen on; the
    report then shows its sweep, and refuses to report on that world. `attacks`: attack
    folders (or folders holding them) whose recovery gaps make the "robust" column; None =
    those found below `runs`.
    """
    cfg = cfg or ReportConfig()
    cfg.validate()
    if isinstance(runs, (str, os.PathLike)):
        # A lone path would otherwise be iterated character by character.
        runs = [runs]
    if isinstance(attacks, (str, os.PathLike)):
        attacks = [attacks]
    check_output(out, force)  # before reading anything, not after
    sweep = load_tuning(tuning) if tuning is not None else None
    records = load_evals(runs)
    attack_records = load_attacks(runs if attacks is None else attacks)
    title = title or DEFAULT_TITLE
    board = build_leaderboard(records, cfg, title, attack_records)
    if sweep is not None:
        check_not_tuned_on(board["datasets"], sweep)
        board["tuning"] = {"world": sweep["world"], "rule": sweep["rule"],
                           "chosen": sweep["chosen"]}  # fmt: skip
    rows = board["rows"]
    log.info("report on %d evals: %d ranked rows", len(records), len(rows) - 2)
    with staged_output(out, force=force) as tmp:
        (tmp / "leaderboard.json").write_text(dumps(board), encoding="utf-8")
        figures = plot_all(board, tmp, sweep)
        (tmp / "leaderboard.md").write_text(
            markdown(board, title, figures, sweep), encoding="utf-8"
        )
        (tmp / "report.html").write_text(page(board, title, figures, tmp, sweep), encoding="utf-8")
        if sweep is not None:
            (tmp / "tuning.json").write_text(dumps(sweep), encoding="utf-8")
        manifest = write_manifest(
            tmp,
            "report",
            config=to_dict(cfg),
            inputs={
                **{f"eval:{e['path']}": e["digest"] for e in board["evals"]},
                **{
                    f"attack:{a['path']}": a["digest"]
                    for a in board.get("attacks", {}).get("records", [])
                },
            },
            dataset=board["dataset"],
            datasets=board["datasets"],
            title=title,
            references={k: v["model"] for k, v in board["references"].items()},
            methods=sorted({r["method"] for r in rows if r["method"]}),
            leaderboard=[
                {
                    "rank": r["rank"],
                    "label": r["label"],
                    "verdicts": r["verdicts"],
                    **({"method_code": r["method_code"]} if r.get("method_code") else {}),
                }
                for r in rows
                if r["rank"] is not None
            ],
            figures=list(figures),
        )
    return manifest
