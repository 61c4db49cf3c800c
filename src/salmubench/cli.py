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
from collections.abc import Callable, Sequence
from pathlib import Path

from salmubench import __version__
from salmubench.config import ConfigError, load_params, stage_config
from salmubench.errors import ModelError
from salmubench.manifest import (
    ManifestError,
    OutputExistsError,
    read_manifest,
    write_atomic,
)
from salmubench.publish import PublishError
from salmubench.storage import StorageError

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


def _progress_bar(total: int, enabled: bool) -> tuple[Callable[[str, int], None], Callable]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", disable=not enabled, dynamic_ncols=True, mininterval=0.5)

    def update(split: str, n: int) -> None:
        bar.set_description(f"synth {split}")
        bar.update(n)

    return update, bar.close


def cmd_synth(args: argparse.Namespace) -> int:
    from salmubench.data.synth import default_workers, synth, total_images

    cfg = stage_config("synth", args.profile, args.set, args.params)
    total = total_images(cfg)
    workers = args.workers or default_workers()
    log.info(
        "synth: profile %s, seed %d, %d personas, %d images of %d px, %d workers -> %s",
        args.profile,
        args.seed,
        cfg.personas,
        total,
        cfg.image_size,
        workers,
        args.out,
    )
    update, close = _progress_bar(total, not args.quiet)
    start = time.perf_counter()
    try:
        manifest = synth(
            cfg,
            args.seed,
            args.out,
            profile=args.profile,
            force=args.force,
            workers=workers,
            progress=update,
        )
    finally:
        close()
    seconds = time.perf_counter() - start
    if not args.quiet:
        _print_dataset_summary(manifest, Path(args.out), seconds, total)
    return 0


def _print_dataset_summary(manifest: dict, out: Path, seconds: float, total: int) -> None:
    counts = manifest["counts"]
    width = max(map(len, counts))
    print(f"\nDataset {out} (profile {manifest['profile']}, seed {manifest['seed']})")
    for split, n in counts.items():
        print(f"  {split:<{width}}  {n:>7}")
    for name, n in manifest["composite_counts"].items():
        print(f"  {name + ' *':<{width}}  {n:>7}")
    groups = ", ".join(f"{g} {n}" for g, n in manifest["personas_per_group"].items())
    print(f"  personas: {groups}; {manifest['countries']} countries")
    print(
        "  * composite of: "
        + "; ".join(f"{c} = {' + '.join(parts)}" for c, parts in manifest["composites"].items())
    )
    print(f"{total} images in {seconds:.1f} s ({total / seconds:.0f} images/s)")
    print(f"preview: {out / 'preview.png'}   digest: {manifest['digest'][:16]}")


def _step_bar(total: int, show: bool, label: str):
    """A progress bar over optimiser steps, and the callback the loops report to."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="step", disable=not show, dynamic_ncols=True,
               mininterval=1)  # fmt: skip

    def update(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.n = step
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()

    return bar, update


def cmd_train(args: argparse.Namespace) -> int:
    from salmubench.train.dist import DistEnv
    from salmubench.train.loop import check_variant, train

    check_variant(args.variant)
    cfg = stage_config("train", args.profile, args.set, args.params)
    env = DistEnv.from_env()
    show = env.is_main and not args.quiet
    log.info(
        "train %s: profile %s, %s, %d steps x %d, %d process(es) -> %s",
        args.variant,
        args.profile,
        cfg.model,
        cfg.steps,
        cfg.batch_size,
        env.world_size,
        args.out,
    )
    bar, update = _step_bar(cfg.steps, show, f"train {args.variant}")
    try:
        manifest = train(
            args.data,
            args.variant,
            cfg,
            args.out,
            seed=args.seed,
            profile=args.profile,
            resume=args.resume,
            force=args.force,
            progress=update,
        )
    finally:
        bar.close()
    if show and manifest:
        t = manifest["training"]
        print(
            f"\n{manifest['variant']} model {args.out}: {manifest['architecture']}, "
            f"{manifest['steps']} steps, final loss {t['final_loss']:.3f}, "
            f"{t['samples_per_second']:.0f} samples/s over {t['seconds']:.0f} s "
            f"(+{t['seconds_loading_data']:.0f} s loading data)"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from salmubench.eval.stage import evaluate

    cfg = stage_config("eval", args.profile, args.set, args.params)
    start = time.perf_counter()
    manifest = evaluate(
        args.data,
        args.model,
        args.out,
        cfg=cfg,
        arch=args.arch,
        seed=args.seed,
        clean=args.clean,
        compromised=args.compromised,
        force=args.force,
    )
    if args.metrics_file:
        target = Path(args.metrics_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, (Path(args.out) / "metrics.json").read_bytes())
    if not args.quiet:
        print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
        t = manifest["timing"]
        print(
            f"{time.perf_counter() - start:.1f} s in all; embedding {t['seconds_embedding']:.1f} s "
            f"({t['images_embedded']} images, {t['texts_embedded']} texts), metrics "
            f"{t['seconds_metrics']:.1f} s -> {args.out}/metrics.json"
        )
    return 0


def _load_method_files(args: argparse.Namespace) -> None:
    """Register the methods of every --method-file (contract checked) before anything runs."""
    from salmubench.unlearn.external import load_method_files

    load_method_files(args.method_file)


def cmd_unlearn(args: argparse.Namespace) -> int:
    from salmubench.train.dist import DistEnv
    from salmubench.unlearn import build_method
    from salmubench.unlearn.loop import unlearn

    _load_method_files(args)
    cfg = stage_config("unlearn", args.profile, args.set, args.params)
    build_method(args.method, cfg.methods.get(args.method))  # unknown method: fail now
    show = DistEnv.from_env().is_main and not args.quiet
    bar, update = _step_bar(0, show, f"unlearn {args.method}")
    try:
        manifest = unlearn(
            args.data,
            args.model,
            args.method,
            cfg,
            args.out,
            arch=args.arch,
            budget=args.budget,
            seed=args.seed,
            profile=args.profile,
            resume=args.resume,
            force=args.force,
            allow_foreign_model=args.allow_foreign_model,
            progress=update,
        )
    finally:
        bar.close()
    if show and manifest:
        u = manifest["unlearning"]
        parts = ", ".join(f"{k} {v:.4f}" for k, v in u["final"].items())
        print(
            f"\n{args.method} -> {args.out}: budget {manifest['budget']:g}x = "
            f"{manifest['steps']} steps (forget batch {manifest['forget_batch']}, retain "
            f"{manifest['retain_batch']}), lr {manifest['lr']:g}, {u['seconds']:.1f} s "
            f"({u['steps_per_second']:.1f} steps/s; +{u['seconds_loading_data']:.1f} s loading "
            f"data); read {', '.join(manifest['reads'])}; final {parts}"
        )
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    import dataclasses

    from salmubench.unlearn import METHODS, method_names
    from salmubench.unlearn.external import REFUSED, origin_text

    _load_method_files(args)
    cfg = stage_config("unlearn", args.profile, (), args.params)
    for name in method_names():
        cls = METHODS[name]
        print(f"{name:<18} {cls.summary}   [uses: {', '.join(sorted(cls.uses))}; "
              f"{origin_text(name)}]")  # fmt: skip
        settings = cfg.methods.get(name) or {}
        for f in dataclasses.fields(cls.Params):
            value = settings.get(f.name, f.default)
            print(f"    {f.name} = {value!r}: {f.metadata.get('help', '')}")
        if cls.search_space:
            print(f"    search_space (tune) = {', '.join(f'{lr:g}' for lr in cls.search_space)}")
    for name, error in REFUSED.items():
        print(f"{name:<18} REFUSED: {error}")
    return 1 if REFUSED else 0


def cmd_new_method(args: argparse.Namespace) -> int:
    from salmubench.unlearn.scaffold import scaffold

    root = scaffold(args.name, args.out)
    print(f"method package {args.name} -> {root}\n  cd {root} && pytest   "
          "# the contract checks\n  pip install -e .   # registers it for every "
          "salmubench command (see docs/METHODS.md)")  # fmt: skip
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from salmubench.report import build_report

    cfg = stage_config("report", args.profile, args.set, args.params)
    build_report(
        args.runs, args.out, cfg=cfg, force=args.force, title=args.title, tuning=args.tuning
    )
    if not args.quiet:
        print((Path(args.out) / "leaderboard.md").read_text(encoding="utf-8"))
        print(f"report: {Path(args.out) / 'report.html'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from salmubench.bench import bench, parse_methods

    _load_method_files(args)
    methods = parse_methods(args.methods)
    worlds = None if args.worlds is None else list(range(args.seed, args.seed + args.worlds))
    bench(
        args.profile,
        args.out,
        methods=methods,
        budget=args.budget,
        seeds=args.seeds,
        data_seed=args.seed,
        worlds=worlds,
        tuning=args.tuning,
        unlearn_overrides=args.set,
        params_path=args.params,
        force=args.force,
        show=not args.quiet,
        step_bar=_bar_callbacks,
    )
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from salmubench.bench import parse_methods
    from salmubench.tune import tune

    _load_method_files(args)
    tune(
        args.profile,
        args.out,
        world=args.world,
        methods=parse_methods(args.methods),
        grid=args.lrs,
        target=args.target,
        full=args.full,
        unlearn_overrides=args.set,
        params_path=args.params,
        force=args.force,
        show=not args.quiet,
        step_bar=_bar_callbacks,
    )
    return 0


def _bar_callbacks(label: str):
    bar, update = _step_bar(0, True, label)
    return update, bar.close


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


def cmd_preview(args: argparse.Namespace) -> int:
    from salmubench.data.preview import render_preview

    manifest = read_manifest(args.data, kind="dataset")
    out = render_preview(
        args.data, args.out, manifest=manifest, per_group=args.per_group, columns=args.columns
    )
    print(out)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.folder, verify=True)
    print(
        f"{args.folder}: {manifest['kind']} OK, {len(manifest['files'])} files verified, "
        f"digest {manifest['digest']}"
    )
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from salmubench.data.synth import total_images

    params = load_params(args.params)
    for name in params["profiles"]:
        cfg = stage_config("synth", name, (), args.params)
        print(
            f"{name:<6} {cfg.personas:>4} personas x {len(cfg.attributes)} attributes x "
            f"{cfg.images_per_association} images, {cfg.image_size} px, "
            f"{total_images(cfg)} images in all"
        )
    return 0


def _s3_url(value: str) -> str:
    from salmubench.storage import Url

    try:
        return Url(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_upload(args: argparse.Namespace) -> int:
    from salmubench.storage import upload_folder

    counts = upload_folder(args.folder, args.url)
    print(f"{args.folder} -> {args.url}: {counts['uploaded']} files uploaded "
          f"({counts['bytes'] / 1e6:.1f} MB), {counts['skipped']} already there")  # fmt: skip
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from salmubench.storage import download_folder

    manifest = download_folder(args.url, args.out, force=args.force)
    print(f"{args.url} -> {args.out}: {manifest['kind']}, {len(manifest['files'])} files "
          f"verified, digest {manifest['digest']}")  # fmt: skip
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from salmubench.publish import publish, summary, write_record

    published = publish(
        args.runs,
        run_id=args.run_id,
        repo=args.repo,
        git_url=args.git_url,
        base=args.base,
        remote=args.remote,
        git_remote=None if args.no_git_push else args.git_remote,
    )
    if args.record:
        write_record(args.record, published)
    print(summary(published))
    return 0


def cmd_remote(args: argparse.Namespace) -> int:
    from salmubench.publish import configure_remote

    for line in configure_remote(args.endpoint, bucket=args.bucket, prefix=args.prefix,
                                 name=args.name, make_default=not args.no_default):  # fmt: skip
        print(line)
    print(
        f"DVC remote {args.name!r} -> s3://{args.bucket}/{args.prefix} at {args.endpoint} "
        "(in .dvc/config.local, not committed). Credentials come from the environment:\n"
        "  export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...\n"
        f"and for `salmubench upload/download` and s3:// datasets:\n"
        f"  export AWS_ENDPOINT_URL_S3={args.endpoint}"
    )
    return 0


def _add_overrides(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _add_method_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method-file", action="append", default=[], metavar="PATH.py",
                   help="register the methods defined in this file (repeatable)")  # fmt: skip


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
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train the Clean or Compromised CLIP", parents=[common])
    p.add_argument("--data", required=True, help="dataset folder (from synth)")
    p.add_argument("--variant", required=True, help="clean or compromised")
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="replace a finished model / restart")
    _add_overrides(p, "override a train value, e.g. --set steps=100 (repeatable)")
    p.set_defaults(func=cmd_train)

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
    p.set_defaults(func=cmd_eval)

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
    p.set_defaults(func=cmd_unlearn)

    p = sub.add_parser("methods", help="list the unlearning methods", parents=[common])
    p.add_argument("--profile", default="tiny", help="profile whose settings to show")
    _add_method_file(p)
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("new-method", help="scaffold an unlearning method package", parents=[common])
    p.add_argument("name", help="method name, a lowercase identifier, e.g. my_method")
    p.add_argument("--out", help="folder to create (default: ./salmubench-<name>)")
    p.set_defaults(func=cmd_new_method)

    p = sub.add_parser("report", help="leaderboard, verdicts, HTML and plots", parents=[common])
    p.add_argument("--runs", nargs="+", required=True, help="eval folders or folders holding them")
    p.add_argument("--out", required=True, help="output report folder")
    p.add_argument("--profile", default="tiny", help="profile whose verdict thresholds to use")
    p.add_argument("--title", help="report title")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    p.add_argument("--tuning", help="the validation world's tuning.json: show its sweep, and "
                   "refuse to report on that world")  # fmt: skip
    _add_overrides(p, "override a threshold, e.g. --set max_genknow_drop=0.05")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "bench",
        help="the whole comparison: dataset, both models, every method, evals, report",
        parents=[common],
    )
    p.add_argument("--profile", required=True, help="scale profile from params.yaml")
    p.add_argument("--out", required=True, help="run folder; finished stages in it are reused")
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list")
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
    _add_method_file(p)
    p.add_argument("--force", action="store_true", help="redo every stage")
    _add_overrides(p, "unlearn setting, e.g. --set methods.delete.retention=kl")
    p.set_defaults(func=cmd_bench)

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
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list")
    p.add_argument("--lrs", type=float, nargs="+", default=None,
                   help="learning-rate grid (default: each method's search_space, else "
                   f"{list(DEFAULT_GRID)})")  # fmt: skip
    _add_method_file(p)
    p.add_argument("--target", type=float, default=TARGET,
                   help="forgetting the chosen lr must reach (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--full",
        action="store_true",
        help="run the whole grid (default: stop one rate past the chosen one)",
    )
    p.add_argument("--force", action="store_true", help="redo every stage")
    _add_overrides(p, "unlearn setting, e.g. --set methods.delete.retention=kl")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "preview", help="write a PNG grid of portraits and captions", parents=[common]
    )
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--per-group", type=_positive_int, default=2, help="personas per group")
    p.add_argument("--columns", type=_positive_int, default=6, help="images per row")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser(
        "verify", help="check a stage folder against its manifest (sha256)", parents=[common]
    )
    p.add_argument("folder")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("profiles", help="list the scale profiles of params.yaml", parents=[common])
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser(
        "upload", help="copy a finished stage folder to s3:// (checksummed)", parents=[common]
    )
    p.add_argument("folder", help="stage folder (with its manifest.json)")
    p.add_argument("url", type=_s3_url, help="s3://BUCKET/PREFIX")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser(
        "download", help="copy a stage folder from s3:// (verified)", parents=[common]
    )
    p.add_argument("url", type=_s3_url, help="s3://BUCKET/PREFIX")
    p.add_argument("out", help="local folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.set_defaults(func=cmd_download)

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
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "remote", help="point the project's DVC remote at a MinIO/S3 endpoint", parents=[common]
    )
    p.add_argument("--endpoint", required=True, help="e.g. http://minio.example:9000")
    p.add_argument("--bucket", default="salmubench", help="bucket (default: salmubench)")
    p.add_argument("--prefix", default="dvc", help="key prefix in the bucket (default: dvc)")
    p.add_argument("--name", default="minio", help="DVC remote name (default: minio)")
    p.add_argument("--no-default", action="store_true", help="do not make it the default")
    p.set_defaults(func=cmd_remote)

    # `run` and `pipeline ...`: their module imports kfp only when one of them runs, so the
    # stage commands (which every component executes) never load it.
    from salmubench_pipelines.cli import add_commands

    add_commands(sub, common)
    return parser


def _telemetry(args: argparse.Namespace, seconds: float) -> None:
    """Push the finished stage's metrics when $SALMUBENCH_PUSHGATEWAY is set (else no-op)."""
    from salmubench import telemetry

    if telemetry.gateway() is not None:
        telemetry.report_stage(args.command, getattr(args, "out", None), seconds)


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
