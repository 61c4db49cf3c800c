"""`salmubench drill` and `salmubench monitor ...`: parse, call the package, print
where the result went."""

from __future__ import annotations

import json
import logging

from salmubench import telemetry
from salmubench.monitor.settings import BASELINES_ENV, K_SIGMA, DrillConfig, baselines

log = logging.getLogger(__name__)


def add_commands(sub, common) -> None:
    """`salmubench drill` and `salmubench monitor baseline|push|failed|noise|rules`: parse,
    call one function above, print where the result went."""
    p = sub.add_parser(
        "drill",
        help="re-teach an unlearned model its forget set (should fire the resurfacing alert)",
        parents=[common],
    )
    p.add_argument("--data", required=True, help="the dataset folder the model was unlearned on")
    p.add_argument("--model", required=True, help="the unlearned model folder")
    p.add_argument("--out", required=True, help="the drilled model folder to write")
    for name, field in DrillConfig.__dataclass_fields__.items():
        p.add_argument(f"--{name}", type=type(field.default), default=field.default,
                       help=f"default {field.default}")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_drill)

    # The options of `common` go on each action only: on both levels, the action's defaults
    # would overwrite what was given before it.
    p = sub.add_parser("monitor", help="leakage monitoring: baselines, pushes, rules")
    msub = p.add_subparsers(dest="monitor_command", required=True, metavar="ACTION")
    q = msub.add_parser("baseline", help="record an evaluation as its model's baseline",
                        parents=[common])  # fmt: skip
    q.add_argument("--eval", required=True, help="the evaluation folder of the unlearned model")
    q.add_argument("--store", default=baselines(), required=baselines() is None,
                   help=f"baselines folder or s3:// prefix (${BASELINES_ENV})")  # fmt: skip
    q.add_argument("--force", action="store_true", help="replace the model's baseline")
    q.set_defaults(func=_cmd_baseline)
    q = msub.add_parser("push", help="push a re-evaluation beside its baseline",
                        parents=[common])  # fmt: skip
    q.add_argument("--eval", required=True, help="the evaluation folder of the re-evaluation")
    q.add_argument("--store", default=baselines(), help=f"baselines (default ${BASELINES_ENV})")
    q.add_argument("--gateway", default=telemetry.gateway(), required=telemetry.gateway() is None,
                   help=f"Pushgateway URL (default ${telemetry.GATEWAY_ENV})")  # fmt: skip
    q.set_defaults(func=_cmd_push)
    q = msub.add_parser("failed", help="report a failed re-evaluation of a model (one run "
                        "outside the pipeline)", parents=[common])  # fmt: skip
    q.add_argument("--model", required=True, help="the model folder (or s3:// URL) re-evaluated")
    q.add_argument("--gateway", default=telemetry.gateway(), required=telemetry.gateway() is None,
                   help=f"Pushgateway URL (default ${telemetry.GATEWAY_ENV})")  # fmt: skip
    q.set_defaults(func=_cmd_failed)
    q = msub.add_parser("noise", help="measure each efficacy metric's noise across seeds",
                        parents=[common])  # fmt: skip
    q.add_argument("evals", nargs="+", help="evaluation folders of unlearned models")
    q.add_argument("--k-sigma", type=float, default=K_SIGMA, help=f"default {K_SIGMA:g}")
    q.set_defaults(func=_cmd_noise)
    q = msub.add_parser("rules", help="write the rules, PrometheusRule and dashboard",
                        parents=[common])  # fmt: skip
    q.add_argument("--out", default="k8s/monitoring", help="default k8s/monitoring")
    q.set_defaults(func=_cmd_rules)


def _cmd_drill(args) -> int:
    from salmubench.monitor.relearn import drill

    cfg = DrillConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                      attack=args.attack)  # fmt: skip
    manifest = drill(args.data, args.model, args.out, cfg, force=args.force)
    if not args.quiet:
        d = manifest["drill"]
        print(f"drilled {telemetry.identity(manifest)}: {d['steps']} steps on "
              f"{d['forget_samples']} {d['pool']} samples ({d['attack']}), loss "
              f"{d['first_loss']} -> {d['final_loss']} -> {args.out}")  # fmt: skip
    return 0


def _cmd_baseline(args) -> int:
    from salmubench.monitor.store import record_baseline

    location = record_baseline(args.eval, args.store, force=args.force)
    if not args.quiet:
        print(f"baseline recorded at {location}")
    return 0


def _cmd_push(args) -> int:
    from salmubench.manifest import read_manifest
    from salmubench.monitor.store import report_reevaluation

    ok = report_reevaluation(read_manifest(args.eval, kind="eval"), args.gateway, args.store)
    return 0 if ok else 1


def _cmd_failed(args) -> int:
    from salmubench.monitor.store import report_failure

    labels = report_failure(args.model, args.gateway)
    if not args.quiet:
        print(f"re-evaluation failure of {labels} pushed to {args.gateway}")
    return 0


def _cmd_noise(args) -> int:
    from salmubench.monitor.alerts import measure_noise

    print(json.dumps(measure_noise(args.evals, args.k_sigma), indent=2))
    return 0


def _cmd_rules(args) -> int:
    from salmubench.monitor.files import render_all

    for path in render_all(args.out):
        print(path)
    return 0
