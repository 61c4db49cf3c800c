"""`salmubench run` and `salmubench pipeline compile|upload|submit|schedule`.

Added to the `salmubench` command through the `salmubench.commands` entry point
(pyproject.toml; the library never imports this package). This module imports only
argparse at load time; kfp is imported when one of these commands runs, so the stage
commands never pay for it (and the library never imports it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from salmubench.cli import non_negative_int, positive_budget

PIPELINE_NAMES = ("benchmark", "unlearn-eval", "reevaluate", "import-official")
# Where `compile` writes; kept here (not imported from .compile) so that building the
# parser never imports kfp: every component body runs `salmubench <stage>` through it.
COMPILED = Path(__file__).resolve().parent / "compiled"


def _fail(command: str, error: Exception) -> int:
    print(f"salmubench {command}: error: {error}", file=sys.stderr)
    return 2


def _attacks(names: list[str]) -> list[str]:
    """`--attacks`: 'all' = every attack (salmubench.vocab.ATTACKS); names are checked by
    `run_local`."""
    from salmubench.vocab import ATTACKS

    return list(ATTACKS) if names == ["all"] else names


def cmd_run(args: argparse.Namespace) -> int:
    from salmubench_pipelines.local import RunFailed, run_local

    from salmubench.config import ConfigError

    try:
        report = run_local(
            args.profile,
            args.out or f"runs/{args.profile}-kfp",
            methods=args.methods,
            seeds=args.seeds,
            worlds=args.worlds if args.worlds is not None else [args.seed],
            budget=args.budget,
            parallelism=args.parallelism,
            pushgateway=args.pushgateway or os.environ.get("SALMUBENCH_PUSHGATEWAY", ""),
            method_files=args.method_file,
            attacks=_attacks(args.attacks),
        )
    except (ConfigError, ValueError) as e:
        return _fail("run", e)
    except RunFailed as e:  # the failed task's log tail is printed already
        print(f"salmubench run: error: {e}", file=sys.stderr)
        return 1
    if args.publish:
        from salmubench_pipelines.local import run_folder

        from salmubench.manifest import ManifestError
        from salmubench.publish import PublishError, publish, summary
        from salmubench.storage import StorageError

        try:
            published = publish([run_folder(report)], run_id=args.run_id,
                                repo=args.publish_repo, remote=args.publish_remote)  # fmt: skip
        except (PublishError, ManifestError, StorageError, ValueError) as e:
            return _fail("run --publish", e)
        print(summary(published))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    if args.image:
        # Read when the components are defined: set before they are imported.
        os.environ["SALMUBENCH_IMAGE"] = args.image
    from salmubench_pipelines.compile import compile_all
    from salmubench_pipelines.definitions import Options

    opts = Options(
        gpus=args.gpus,
        accelerator=args.accelerator,
        s3_secret=args.s3_secret,
        shared_pvc=args.shared_pvc,
        s3_endpoint=args.s3_endpoint,
        publish=args.publish,
        git_secret=args.git_secret,
        caching=not args.no_cache,
        launcher=args.launcher,
        train_nodes=args.train_nodes,
        train_procs_per_node=args.train_procs_per_node,
        train_gpus_per_node=args.train_gpus_per_node,
        job_image=args.job_image,
        trainer_version=args.trainer_version,
        pushgateway=args.pushgateway,
        publish_git_url=args.publish_git_url,
        publish_dvc_remote=args.publish_dvc_remote,
        istio_opt_out=not args.no_istio_opt_out,
    )
    try:
        for path in compile_all(args.out, opts, tuple(args.only or PIPELINE_NAMES)):
            print(path)
    except ValueError as e:
        return _fail("pipeline compile", e)
    return 0


def connection(args: argparse.Namespace):
    """The KFP connection of --host/--namespace/credentials; secrets from files or env."""
    from salmubench_pipelines.client import Connection

    token = os.environ.get("KFP_TOKEN", "")
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    return Connection(
        host=args.host,
        namespace=args.namespace or os.environ.get("KFP_NAMESPACE", ""),
        token=token,
        sa_token=args.sa_token,
        cookies=os.environ.get("KFP_COOKIES", ""),
        check_version=not args.skip_version_check,
    )


def _kfp_errors():
    from salmubench_pipelines.client import KFPError

    return (KFPError, ValueError, FileNotFoundError)


def cmd_upload(args: argparse.Namespace) -> int:
    from salmubench_pipelines.client import upload

    try:
        upload(connection(args), tuple(args.only or PIPELINE_NAMES), args.compiled, args.version)
    except _kfp_errors() as e:
        return _fail("pipeline upload", e)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from salmubench_pipelines.client import parse_params, submit

    try:
        params = parse_params(args.param, args.pipeline, args.compiled)
        submit(
            connection(args),
            args.pipeline,
            params,
            experiment=args.experiment,
            run_name=args.name,
            version=args.version,
            folder=args.compiled,
        )
    except _kfp_errors() as e:
        return _fail("pipeline submit", e)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from salmubench_pipelines.client import check_cron, parse_params, schedule

    try:
        check_cron(args.cron)
        params = parse_params(args.param, args.pipeline, args.compiled)
        schedule(
            connection(args),
            args.cron,
            params,
            name=args.pipeline,
            experiment=args.experiment,
            job_name=args.name,
            version=args.version,
            folder=args.compiled,
        )
    except _kfp_errors() as e:
        return _fail("pipeline schedule", e)
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    """Add `run` and `pipeline ...` to the `salmubench` subcommands."""
    p = sub.add_parser(
        "run",
        help="the main job: the full benchmark pipeline under kfp's local runner",
        parents=[common],
    )
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", help="run folder (default: runs/<profile>-kfp)")
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list")
    p.add_argument(
        "--method-file",
        action="append",
        default=[],
        metavar="PATH.py",
        help="a method file (docs/METHODS.md) whose methods --methods may name; the pipeline "
        "carries its text to the tasks (its method_py parameter); one file",
    )
    p.add_argument(
        "--budget", type=positive_budget, help="passes over forget (default: the profile's)"
    )
    p.add_argument(
        "--parallelism",
        type=non_negative_int,
        default=1,
        help="unlearning runs at once (default 1: each run already uses every core; 0 = all)",
    )
    p.add_argument(
        "--seeds", type=non_negative_int, nargs="+", default=[0], help="unlearning seeds"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="dataset and model seed")
    p.add_argument(
        "--worlds",
        type=non_negative_int,
        nargs="+",
        help="several worlds: one dataset/model seed each (instead of --seed), e.g. 0 1 2; "
        "the report scores each against its own references",
    )
    p.add_argument(
        "--pushgateway",
        help="Prometheus Pushgateway URL (default: $SALMUBENCH_PUSHGATEWAY; none = no telemetry)",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="then push every artifact to the DVC remote and record them on git branch "
        "runs/<run-id> (see `salmubench publish`)",
    )
    p.add_argument(
        "--attacks",
        nargs="+",
        default=[],
        metavar="ATTACK",
        help="relearning attacks on Clean and every unlearned model (docs/ATTACKS.md): 'all' "
        "or names, e.g. persona_split low_precision; default none",
    )
    p.add_argument("--run-id", help="with --publish: the branch name runs/<run-id>")
    p.add_argument("--publish-repo", default=".", help="with --publish: the project checkout")
    p.add_argument("--publish-remote", help="with --publish: DVC remote (default: the default)")
    p.set_defaults(func=cmd_run)

    pipe = sub.add_parser("pipeline", help="compile, upload, submit or schedule the pipelines")
    psub = pipe.add_subparsers(dest="action", required=True, metavar="ACTION")
    host = argparse.ArgumentParser(add_help=False)
    host.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://HOST:8888")
    host.add_argument("--compiled", default=str(COMPILED), help="folder of compiled YAML")
    host.add_argument(
        "--namespace",
        help="profile namespace, required by multi-user Kubeflow (default: $KFP_NAMESPACE)",
    )
    host.add_argument(
        "--token-file",
        help="file holding a bearer token, e.g. from `kubectl create token` (or $KFP_TOKEN); "
        "a dashboard session cookie goes in $KFP_COOKIES",
    )
    host.add_argument(
        "--sa-token",
        action="store_true",
        help="in a pod: the projected ServiceAccount token (audience pipelines.kubeflow.org) "
        "at $KF_PIPELINES_SA_TOKEN_PATH or kfp's default path",
    )
    host.add_argument(
        "--skip-version-check",
        action="store_true",
        help="do not refuse a backend whose healthz tag_name is not a version >= 2.14",
    )
    host.add_argument("--version", help="pipeline version name (default: v<package>-g<git rev>)")

    p = psub.add_parser("compile", help="write the IR YAML of every pipeline", parents=[common])
    p.add_argument("--out", default=str(COMPILED), help="output folder")
    p.add_argument("--only", nargs="+", choices=PIPELINE_NAMES, help="just these pipelines")
    p.add_argument(
        "--gpus", type=int, default=0, help="GPUs requested by each train, unlearn and eval task"
    )
    p.add_argument("--accelerator", default="nvidia.com/gpu", help="GPU resource name")
    p.add_argument(
        "--s3-secret",
        default="salmubench-s3",
        help="Secret holding AWS_ACCESS_KEY_ID/SECRET ('' = none)",
    )
    p.add_argument(
        "--shared-pvc",
        default="",
        help="PVC mounted at /shared on training tasks (needed by trainjob/pytorchjob launchers)",
    )
    p.add_argument(
        "--image", help="container image (default: $SALMUBENCH_IMAGE or the version-tagged image)"
    )
    p.add_argument(
        "--s3-endpoint",
        default="",
        help="S3 endpoint for every task, e.g. http://salmubench-minio.salmubench:9000",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="end the benchmark with a publish task (DVC remote + runs/<run id> branch of "
        "--publish-git-url)",
    )
    p.add_argument(
        "--git-secret",
        default="salmubench-git",
        help="Secret with GIT_USERNAME / GIT_PASSWORD for the publish task",
    )
    p.add_argument("--publish-git-url", default="", help="with --publish: the git repository")
    p.add_argument("--publish-dvc-remote", default="minio", help="with --publish: DVC remote")
    p.add_argument(
        "--launcher",
        default="local",
        choices=("local", "trainjob", "pytorchjob"),
        help="how the benchmark trains Clean/Compromised: in the task's pod (local) or as a "
        "Kubeflow Trainer TrainJob / Training Operator PyTorchJob (needs --shared-pvc)",
    )
    p.add_argument("--train-nodes", type=int, default=1, help="job launchers: pods")
    p.add_argument("--train-procs-per-node", type=int, default=1, help="torchrun processes")
    p.add_argument("--train-gpus-per-node", type=int, default=0, help="job launchers: GPUs")
    p.add_argument("--job-image", default="", help="the job's image (default: --image's)")
    p.add_argument(
        "--trainer-version",
        default="auto",
        help="TrainJob field set: 2.0, 2.1, 2.2, 2.3, or auto (read from the TrainJob CRD)",
    )
    p.add_argument(
        "--no-istio-opt-out",
        action="store_true",
        help="do not label job pods sidecar.istio.io/inject=false (needed for Trainer 2.0)",
    )
    p.add_argument(
        "--pushgateway",
        default="",
        help="Prometheus Pushgateway URL for every stage, e.g. http://salmubench-pushgateway:9091",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="compile every task with caching off (runs of an uploaded version cannot "
        "override caching; reevaluate is never cached)",
    )
    p.set_defaults(func=cmd_compile, command="pipeline compile")

    p = psub.add_parser(
        "upload", help="upload as a new version (package version + git rev)", parents=[common, host]
    )
    p.add_argument("--only", nargs="+", choices=PIPELINE_NAMES, help="just these pipelines")
    p.set_defaults(func=cmd_upload, command="pipeline upload")

    for action, helptext, default in (
        ("submit", "start one run of a compiled pipeline", "benchmark"),
        ("schedule", "a recurring re-evaluation (caching off, one at a time)", "reevaluate"),
    ):
        p = psub.add_parser(action, help=helptext, parents=[common, host])
        p.add_argument("--pipeline", choices=PIPELINE_NAMES, default=default)
        p.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="pipeline parameter (VALUE as JSON if it parses), repeatable",
        )
        p.add_argument("--experiment", default="salmubench", help="KFP experiment name")
        p.add_argument("--name", help="run / recurring run name")
        if action == "submit":
            p.set_defaults(func=cmd_submit, command="pipeline submit")
        else:
            p.add_argument(
                "--cron",
                required=True,
                help="six fields, seconds first: '0 0 3 * * *' = 03:00 daily",
            )
            p.set_defaults(func=cmd_schedule, command="pipeline schedule")
