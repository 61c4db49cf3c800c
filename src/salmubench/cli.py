"""`salmubench <stage>`: the one command every orchestrator calls (CLI, DVC, KFP, jobs).

The CLI parses arguments, validates them before any work, shows progress, calls one
library function and prints a summary. Errors a user can fix exit with status 2 and a
message naming the bad value and what would be valid.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from importlib.metadata import entry_points

from salmubench import __version__, commands
from salmubench.config import ConfigError
from salmubench.errors import ModelError
from salmubench.manifest import (
    ManifestError,
    OutputExistsError,
)
from salmubench.publish import PublishError
from salmubench.s3 import StorageError

# The entry-point group through which shells add commands: `add(subparsers, common)`.
COMMANDS_GROUP = "salmubench.commands"

log = logging.getLogger("salmubench")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; expected an integer >= 0")
    return value


def _positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not allowed; expected an integer >= 1")
    return value


def positive_budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{value:g} is not a valid budget; expected a positive number of passes over the "
            "forget split (1 = one pass)"
        )
    return value


def _s3_url(value: str) -> str:
    from salmubench.s3 import Url

    try:
        return Url(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_overrides(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _add_method_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method-file", action="append", default=[], metavar="PATH.py",
                   help="register the methods defined in this file (repeatable)")  # fmt: skip


def _add_runs_of_methods(p: argparse.ArgumentParser) -> None:
    """What `bench` and `tune` share: which methods they run, and how."""
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list")
    _add_method_file(p)
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--jobs", type=_positive_int, default=1, help="stages side by side, each "
                   "with CPUs/JOBS threads (default 1; docs/BENCHMARKS.md)")  # fmt: skip
    _add_overrides(p, "unlearn setting, e.g. --set methods.delete.retention=kl")


# --- official release and devices (issue #19) -------------------------------------------


def _add_device_options(p: argparse.ArgumentParser, batch_help: str) -> None:
    """--device and --batch-size, as `eval`, `unlearn` and `bench` take them."""
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto (CUDA when visible), cpu, or cuda (refused if none is visible)",
    )
    p.add_argument("--batch-size", type=_positive_int, help=batch_help)


def _add_genknow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--genknow-imagenet",
        metavar="DIR",
        help="GenKnow = ImageNet-1k zero-shot on this ImageNet-style folder (class "
        "subfolders), with OpenCLIP's class names and templates",
    )
    p.add_argument("--genknow-templates", choices=("openai", "simple"), default="openai",
                   help="OpenCLIP's templates: openai (80, default) or simple (7)")  # fmt: skip


def _add_import_command(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        help="convert the released SALMUBench data into a dataset folder",
        parents=[common],
    )
    p.add_argument(
        "--official",
        required=True,
        metavar="DIR",
        help="the release folder (metadata JSONs and data/<split>-*.parquet)",
    )
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--shard-size", type=_positive_int, default=5000, help="samples per shard")
    p.add_argument(
        "--genknow-per-class",
        type=non_negative_int,
        default=0,
        help="also render our synthetic GenKnow task, N images per class (default 0: "
        "none; evaluate with --genknow-imagenet)",
    )
    p.add_argument(
        "--genknow-classes",
        type=_positive_int,
        help="with --genknow-per-class: only the first N of its 80 classes (default: all)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing dataset folder")
    p.set_defaults(func=commands.cmd_import)


# -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salmubench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"salmubench {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    common.add_argument("--params", help="params file (default: $SALMUBENCH_PARAMS, ./params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="build the synthetic SALMU dataset", parents=[common])
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty output folder (only once the new one is complete)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="rendering processes (default: the CPUs available)",
    )
    _add_overrides(p, "override a profile value, e.g. --set personas=40 (repeatable)")
    p.set_defaults(func=commands.cmd_synth)

    p = sub.add_parser("train", help="train the Clean or Compromised CLIP", parents=[common])
    p.add_argument("--data", required=True, help="dataset folder (from synth)")
    p.add_argument("--variant", required=True, help="clean or compromised")
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="replace a finished model / restart")
    _add_overrides(p, "override a train value, e.g. --set steps=100 (repeatable)")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("eval", help="the ten metrics of one model", parents=[common])
    p.add_argument("--data", required=True, help="dataset folder (from synth)")
    p.add_argument("--model", required=True, help="model folder, or an OpenCLIP checkpoint file")
    p.add_argument("--arch", help="architecture of a bare checkpoint file, e.g. ViT-B-16")
    p.add_argument("--out", required=True, help="output eval folder")
    p.add_argument("--profile", default="tiny", help="profile whose eval settings to use")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--clean", help="Clean reference: metrics.json, eval folder or model")
    p.add_argument("--compromised", help="Compromised reference: metrics.json, eval or model")
    p.add_argument("--force", action="store_true", help="replace an existing eval folder")
    p.add_argument("--metrics-file", help="also write metrics.json here (e.g. for DVC metrics)")
    _add_overrides(p, "override an eval setting, e.g. --set retfail_distractors=500")
    _add_device_options(p, "embedding batch size (default: the profile's)")
    _add_genknow_options(p)
    p.add_argument(
        "--preprocess",
        choices=("auto", "squash", "openclip"),
        default="auto",
        help="auto: OpenCLIP's transform for a checkpoint file, ours for our models",
    )
    p.add_argument(
        "--role",
        choices=("clean", "compromised"),
        help="what a checkpoint file stands for in a report (e.g. the official Clean or "
        "Compromised ViT-B/16); default: external",
    )
    p.set_defaults(func=commands.cmd_eval)

    p = sub.add_parser(
        "unlearn", help="apply an unlearning method to the Compromised model", parents=[common]
    )
    p.add_argument("--data", required=True, help="dataset folder (from synth)")
    p.add_argument("--model", required=True, help="Compromised model folder or checkpoint file")
    p.add_argument("--arch", help="architecture of a bare checkpoint file, e.g. ViT-B-16")
    p.add_argument("--method", required=True, help="method name (see `salmubench methods`)")
    _add_method_file(p)
    p.add_argument("--budget", type=positive_budget, help="forget passes (default: the profile's)")
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="replace a finished model / restart")
    p.add_argument(
        "--allow-foreign-model",
        action="store_true",
        help="unlearn a model that is not the Compromised model of --data (refused otherwise)",
    )
    _add_overrides(p, "override an unlearn value, e.g. --set methods.neg_grad.lr=1e-5")
    _add_device_options(p, "forget (and retain) pairs per step (default: the profile's)")
    p.set_defaults(func=commands.cmd_unlearn)

    _add_import_command(sub, common)

    p = sub.add_parser("methods", help="list the unlearning methods", parents=[common])
    p.add_argument("--profile", default="tiny", help="profile whose settings to show")
    _add_method_file(p)
    p.set_defaults(func=commands.cmd_methods)

    p = sub.add_parser("new-method", help="scaffold an unlearning method package", parents=[common])
    p.add_argument("name", help="method name, a lowercase identifier, e.g. my_method")
    p.add_argument("--out", help="folder to create (default: ./salmubench-<name>)")
    p.set_defaults(func=commands.cmd_new_method)

    p = sub.add_parser("report", help="leaderboard, verdicts, HTML and plots", parents=[common])
    p.add_argument("--runs", nargs="+", required=True, help="eval folders or folders holding them")
    p.add_argument("--out", required=True, help="output report folder")
    p.add_argument("--profile", default="tiny", help="profile whose verdict thresholds to use")
    p.add_argument("--title", help="report title")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    p.add_argument("--tuning", help="the validation world's tuning.json: show its sweep, and "
                   "refuse to report on that world")  # fmt: skip
    _add_overrides(p, "override a threshold, e.g. --set max_genknow_drop=0.05")
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser(
        "bench",
        help="the whole comparison: dataset, both models, every method, evals, report",
        parents=[common],
    )
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="run folder; finished stages in it are reused")
    p.add_argument("--budget", type=positive_budget, help="forget passes (default: the profile's)")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0],
                   help="unlearning seeds (the report shows the spread)")  # fmt: skip
    p.add_argument("--seed", type=non_negative_int, default=0, help="dataset and model seed")
    p.add_argument(
        "--worlds",
        type=_positive_int,
        help="run N worlds (dataset + Clean + Compromised seeds SEED..SEED+N-1), each in "
        "OUT/world-<seed>; one report over all, with intervals over worlds",
    )
    p.add_argument("--tuning", help="the validation world's tuning.json (from `salmubench tune`)")
    p.add_argument("--attacks", default="none", help="relearning attacks on every unlearned "
                   "model (the 'robust' column): none (default), all, or a list")  # fmt: skip
    _add_runs_of_methods(p)
    p.add_argument(
        "--data",
        help="an existing dataset (e.g. from `import --official`) instead "
        "of synthesising one; needs --clean and --compromised",
    )
    p.add_argument("--clean", help="with --data: the Clean model (model folder or checkpoint)")
    p.add_argument("--compromised", help="with --data: the Compromised model to unlearn")
    p.add_argument("--arch", help="architecture of checkpoint files, e.g. ViT-B-16")
    _add_device_options(p, "evaluation batch size (default: the profile's)")
    _add_genknow_options(p)
    p.set_defaults(func=commands.cmd_bench)

    from salmubench.tune import DEFAULT_GRID, TARGET, VALIDATION_SEEDS

    p = sub.add_parser(
        "tune",
        help="choose each method's learning rate on a validation world, by a fixed rule",
        parents=[common],
    )
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="the validation world's folder (built if needed)")
    p.add_argument(
        "--world",
        type=non_negative_int,
        default=VALIDATION_SEEDS,
        help=f"validation world seed (>= {VALIDATION_SEEDS}; default %(default)s)",
    )
    p.add_argument("--lrs", type=float, nargs="+", default=None,
                   help="learning-rate grid (default: each method's search_space, else "
                   f"{list(DEFAULT_GRID)})")  # fmt: skip
    p.add_argument("--target", type=float, default=TARGET,
                   help="forgetting the chosen lr must reach (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--full",
        action="store_true",
        help="run the whole grid (default: stop one rate past the chosen one)",
    )
    _add_runs_of_methods(p)
    p.set_defaults(func=commands.cmd_tune)

    p = sub.add_parser(
        "preview", help="write a PNG grid of portraits and captions", parents=[common]
    )
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--per-group", type=_positive_int, default=2, help="personas per group")
    p.add_argument("--columns", type=_positive_int, default=6, help="images per row")
    p.set_defaults(func=commands.cmd_preview)

    p = sub.add_parser(
        "verify", help="check a stage folder against its manifest (sha256)", parents=[common]
    )
    p.add_argument("folder")
    p.set_defaults(func=commands.cmd_verify)

    p = sub.add_parser("profiles", help="list the scale profiles of params.yaml", parents=[common])
    p.set_defaults(func=commands.cmd_profiles)

    p = sub.add_parser(
        "upload", help="copy a finished stage folder to s3:// (checksummed)", parents=[common]
    )
    p.add_argument("folder", help="stage folder (with its manifest.json)")
    p.add_argument("url", type=_s3_url, help="s3://BUCKET/PREFIX")
    p.set_defaults(func=commands.cmd_upload)

    p = sub.add_parser(
        "download", help="copy a stage folder from s3:// (verified)", parents=[common]
    )
    p.add_argument("url", type=_s3_url, help="s3://BUCKET/PREFIX")
    p.add_argument("out", help="local folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.set_defaults(func=commands.cmd_download)

    p = sub.add_parser(
        "publish",
        help="push a run's stage folders to the DVC remote and record them on a git branch",
        parents=[common],
    )
    p.add_argument("runs", nargs="+", help="run folders (searched for finished stage folders)")
    p.add_argument("--run-id", help="names the branch runs/<run-id> (default: profile-time-digest)")
    p.add_argument("--repo", default=".", help="the project's git checkout (default: .)")
    p.add_argument("--git-url", help="clone this repository instead of using --repo (clusters)")
    p.add_argument("--base", default="HEAD", help="commit to branch from (default: HEAD)")
    p.add_argument("--remote", help="DVC remote (default: the project's default remote)")
    p.add_argument("--git-remote", default="origin", help="git remote to push the branch to")
    p.add_argument("--no-git-push", action="store_true", help="keep the branch local")
    p.add_argument("--record", help="also write {branch, commit, ...} as JSON here")
    p.set_defaults(func=commands.cmd_publish)

    p = sub.add_parser(
        "remote", help="point the project's DVC remote at a MinIO/S3 endpoint", parents=[common]
    )
    p.add_argument("--endpoint", required=True, help="e.g. http://minio.example:9000")
    p.add_argument("--bucket", default="salmubench", help="bucket (default: salmubench)")
    p.add_argument("--prefix", default="dvc", help="key prefix in the bucket (default: dvc)")
    p.add_argument("--name", default="minio", help="DVC remote name (default: minio)")
    p.add_argument("--no-default", action="store_true", help="do not make it the default")
    p.set_defaults(func=commands.cmd_remote)

    # `attack`: relearning attacks (salmubench.attack)
    from salmubench.attack.commands import add_commands as add_attack_commands

    add_attack_commands(sub, common)

    # `drill` and `monitor ...`: leakage monitoring (docs/MONITORING.md)
    from salmubench.monitor.commands import add_commands as add_monitor_commands

    add_monitor_commands(sub, common)

    # Commands of the shells (`run` and `pipeline ...`, from the pipelines package): each
    # entry point of the group adds its subcommands; the library never imports a shell.
    for command in entry_points(group=COMMANDS_GROUP):
        command.load()(sub, common)
    return parser


def _telemetry(args: argparse.Namespace, seconds: float) -> None:
    """Push the finished stage's metrics when $SALMUBENCH_PUSHGATEWAY is set (else no-op)."""
    from salmubench import telemetry

    url = telemetry.gateway()
    if url is None:
        return
    pushed = telemetry.report_stage(args.command, getattr(args, "out", None), seconds)
    if pushed and args.command == "eval":
        # A monitored re-evaluation ($SALMUBENCH_BASELINES set): its efficacy beside the
        # model's baseline (docs/MONITORING.md).
        from salmubench import monitor
        from salmubench.manifest import read_manifest

        if monitor.baselines() is not None:
            monitor.report_reevaluation(read_manifest(args.out), url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our loggers at the chosen level; third-party ones (OpenCLIP logs to the root logger)
    # only when they warn.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("salmubench").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    )
    try:
        start = time.perf_counter()
        code = args.func(args)
        if code == 0:
            _telemetry(args, time.perf_counter() - start)
        return code
    except (ConfigError, ManifestError, OutputExistsError, ModelError, StorageError,
            PublishError) as e:  # fmt: skip
        print(f"salmubench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"salmubench {args.command}: interrupted; no partial output was published",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
