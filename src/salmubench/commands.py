"""The handlers of `salmubench <command>`: each validates what it can, shows progress, calls
one library function and prints a summary (the parser and the error handling: `cli.py`)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

from salmubench.config import load_params, stage_config, with_batch_size
from salmubench.manifest import read_manifest, write_atomic

log = logging.getLogger("salmubench")


def _progress_bar(
    total: int, enabled: bool, stage: str = "synth"
) -> tuple[Callable[[str, int], None], Callable]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", disable=not enabled, dynamic_ncols=True, mininterval=0.5)

    def update(split: str, n: int) -> None:
        bar.set_description(f"{stage} {split}")
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


def _run_options(args: argparse.Namespace) -> dict:
    """The options every resumable stage (train, unlearn) takes from its command line."""
    return {"seed": args.seed, "profile": args.profile, "resume": args.resume,
            "force": args.force}  # fmt: skip


def _with_bar(total: int, show: bool, label: str, run: Callable[[Callable], dict]) -> dict:
    """`run(progress)` under a step progress bar (closed whatever happens)."""
    bar, update = _step_bar(total, show, label)
    try:
        return run(update)
    finally:
        bar.close()


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
    from salmubench.engine.dist import DistEnv
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

    def run(progress: Callable) -> dict:
        options = _run_options(args)
        return train(args.data, args.variant, cfg, args.out, **options, progress=progress)

    manifest = _with_bar(cfg.steps, show, f"train {args.variant}", run)
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
    cfg = with_batch_size(cfg, args.batch_size, "batch_size")
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
        **_eval_device_options(args),
        preprocess=args.preprocess,
        role=args.role,
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
    from salmubench.engine.dist import DistEnv
    from salmubench.unlearn import build_method
    from salmubench.unlearn.loop import unlearn

    _load_method_files(args)
    cfg = stage_config("unlearn", args.profile, args.set, args.params)
    cfg = with_batch_size(cfg, args.batch_size, "forget_batch", "retain_batch")
    build_method(args.method, cfg.methods.get(args.method))  # unknown method: fail now
    show = DistEnv.from_env().is_main and not args.quiet

    def run(progress: Callable) -> dict:
        return unlearn(
            args.data,
            args.model,
            args.method,
            cfg,
            args.out,
            arch=args.arch,
            budget=args.budget,
            allow_foreign_model=args.allow_foreign_model,
            device=args.device,
            **_run_options(args),
            progress=progress,
        )

    manifest = _with_bar(0, show, f"unlearn {args.method}", run)
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
    from salmubench.unlearn.external import origin_text
    from salmubench.unlearn.registry import REFUSED

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
    from salmubench.bench import bench
    from salmubench.bench_attacks import parse_attacks
    from salmubench.unlearn import parse_methods

    _load_method_files(args)
    methods = parse_methods(args.methods)
    attacks = parse_attacks(args.attacks)
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
        attacks=attacks,
        external=_bench_external(args),
        **_comparison_options(args),
    )
    return 0


# --- official release and devices (issue #19) -------------------------------------------


def _eval_device_options(args: argparse.Namespace) -> dict:
    return {"device": args.device, "genknow_imagenet": args.genknow_imagenet,
            "genknow_templates": args.genknow_templates}  # fmt: skip


def _bench_external(args: argparse.Namespace):
    """`bench --data --clean --compromised` (an existing dataset and models) and devices."""
    from salmubench.bench import External

    return External.from_options(**{k: getattr(args, k) for k in External.OPTIONS},
                                 worlds=args.worlds)  # fmt: skip


def cmd_import(args: argparse.Namespace) -> int:
    from salmubench.data.official import GenknowTask, describe_import, import_official

    start = time.perf_counter()
    update, close = _progress_bar(0, not args.quiet, "import")
    try:
        genknow = GenknowTask(per_class=args.genknow_per_class, classes=args.genknow_classes)
        manifest = import_official(args.official, args.out, shard_size=args.shard_size,
                                   genknow=genknow, force=args.force, progress=update)  # fmt: skip
    finally:
        close()
    if not args.quiet:
        print(describe_import(manifest, args.out, time.perf_counter() - start))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from salmubench.tune import tune
    from salmubench.unlearn import parse_methods

    _load_method_files(args)
    tune(
        args.profile,
        args.out,
        world=args.world,
        methods=parse_methods(args.methods),
        grid=args.lrs,
        target=args.target,
        full=args.full,
        **_comparison_options(args),
    )
    return 0


def _comparison_options(args: argparse.Namespace) -> dict:
    """The options `bench` and `tune` (runs of many stages) take from their command line."""
    return {"unlearn_overrides": args.set, "params_path": args.params, "force": args.force,
            "show": not args.quiet, "step_bar": _bar_callbacks, "jobs": args.jobs}  # fmt: skip


def _bar_callbacks(label: str):
    bar, update = _step_bar(0, True, label)
    return update, bar.close


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
    from salmubench.train.profiles import describe

    for name in load_params(args.params)["profiles"]:
        print(describe(name, args.params))
    return 0


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
    from salmubench.vcs import configure_remote

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
