"""`salmubench attack`: parse, call the stage, print the sweep and the recovery gap."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from salmubench.vocab import ATTACKS


def add_commands(sub, common) -> None:
    p = sub.add_parser(
        "attack",
        help="try to bring a model's forgotten associations back (relearning attack)",
        parents=[common],
    )
    p.add_argument("--data", required=True, help="the dataset folder the model belongs to")
    p.add_argument("--model", required=True, help="the model folder to attack (e.g. unlearned)")
    p.add_argument("--attack", required=True, choices=ATTACKS, help="which attack")
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="the attack folder to write")
    p.add_argument("--clean", help="the Clean model folder (or its finished attack folder): "
                   "attacked the same way, the reference of the recovery gap")  # fmt: skip
    p.add_argument("--compromised", help="the Compromised model folder: the gap's scale")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an attack value, e.g. --set lrs=[1e-4] (repeatable)")  # fmt: skip
    p.set_defaults(func=_cmd_attack)


def _cmd_attack(args: argparse.Namespace) -> int:
    from salmubench.attack.stage import ATTACK_FILE, attack
    from salmubench.config import stage_config

    cfg = stage_config("attack", args.profile, args.set, args.params)
    eval_cfg = stage_config("eval", args.profile, (), args.params)
    retain = stage_config("unlearn", args.profile, (), args.params).retain
    attack(args.data, args.model, args.out, name=args.attack, cfg=cfg, eval_cfg=eval_cfg,
           retain=retain, clean=args.clean, compromised=args.compromised,
           force=args.force)  # fmt: skip
    if not args.quiet:
        record = json.loads((Path(args.out) / ATTACK_FILE).read_text(encoding="utf-8"))
        print(_summary(record, args.out))
    return 0


def _summary(record: dict, out: str) -> str:
    m = record["model"]
    lines = [f"attack {record['attack']} on {m.get('variant')} {m.get('method') or ''} "
             f"({record['trains_on']})",
             f"  before:  RetFail {m['before']['retfail']:.4f}  AssocStr "
             f"{m['before']['assoc_str']:.4f}"]  # fmt: skip
    gap = {r["point"]: r for r in (record.get("recovery") or {}).get("points", [])}
    for p in m["points"]:
        g = gap.get(p["point"])
        extra = f"  recovery gap {g['retfail']:+.3f}" if g and g["retfail"] is not None else ""
        lines.append(f"  {p['point']:<22} RetFail {p['scores']['retfail']:.4f}  AssocStr "
                     f"{p['scores']['assoc_str']:.4f}{extra}")  # fmt: skip
    worst = (record.get("recovery") or {}).get("worst")
    if worst:
        lines.append(f"  worst case: {worst['point']}: {worst['retfail']:+.3f} of the memorised "
                     "RetFail gap restored beyond Clean")  # fmt: skip
    lines.append(f"-> {out}")
    return "\n".join(lines)
