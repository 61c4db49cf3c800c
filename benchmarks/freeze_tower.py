"""Probe (issue #13): where does an unlearning method's GenKnow damage come from?

Runs one method on a validation world with one CLIP tower frozen (its parameters get no
gradient; the unlearning loop is otherwise unchanged), evaluates it and prints forgetting,
holdout kept and GenKnow drop against the world's own references.

    python benchmarks/freeze_tower.py runs/protocol/validation-1000 --freeze text --lr 1e-4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import salmubench.unlearn.loop as loop
from salmubench.config import stage_config
from salmubench.eval.stage import evaluate
from salmubench.report.leaderboard import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", type=Path, help="a validation world folder (from `tune`)")
    parser.add_argument("--freeze", choices=("text", "image"), required=True)
    parser.add_argument("--method", default="delete")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, help="default: <world>/probes/<method>-<freeze>")
    args = parser.parse_args()
    out = args.out or args.world / "probes" / f"{args.method}-freeze-{args.freeze}-lr{args.lr:g}"
    load = loop.load_model

    def load_frozen(path, arch=None):
        loaded = load(path, arch)
        for name, p in loaded.model.named_parameters():
            image = name.startswith("visual.")
            if (args.freeze == "image") == image and name != "logit_scale":
                p.requires_grad_(False)
        return loaded

    loop.load_model = load_frozen  # this probe only: the unlearned model loads one tower frozen
    cfg = stage_config("unlearn", "tiny", [f"methods.{args.method}.lr={args.lr}"])
    if not (out / "model").exists():
        loop.unlearn(args.world / "dataset", args.world / "compromised", args.method, cfg,
                     out / "model")  # fmt: skip
    evaluate(args.world / "dataset", out / "model", out / "eval",
             cfg=stage_config("eval", "tiny"), force=True)  # fmt: skip
    read = lambda p: json.loads(p.read_text(encoding="utf-8"))  # noqa: E731
    s, _ = score(read(out / "eval/metrics.json"), read(args.world / "eval-clean/metrics.json"),
                 read(args.world / "eval-compromised/metrics.json"))  # fmt: skip
    print(f"{args.method} lr {args.lr:g}, {args.freeze} tower frozen: forgetting "
          f"{s['forgetting']:.3f}, holdout kept {s['holdout_kept']:.3f}, GenKnow drop "
          f"{s['genknow_drop']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
