"""`salmubench bench`: the whole comparison in one process, as a chain of the stage functions.

dataset -> Clean, Compromised -> their evals -> every (method, seed) unlearned and
evaluated -> (with --attacks) relearning attacks on Clean and every unlearned model ->
report. Each stage writes its usual folder under the run folder; a finished folder whose
manifest shows the same config and inputs is reused (so adding a method or a seed re-runs
only what is new), anything else is rebuilt. The Kubeflow pipeline runs the
same stage functions as separate components; this is the one-process path for a laptop.

With an `External` source the world is given instead of built: an existing dataset (e.g.
the released SALMUBench data, from `salmubench import --official`) and its Clean and
Compromised models (model folders or OpenCLIP checkpoint files with their architecture,
e.g. the official ViT-B/16 weights); only the evaluations, unlearning runs and the report
are run. `External` also carries how to evaluate: device, batch size, GenKnow source.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmubench.bench_attacks import attack_world
from salmubench.config import ConfigError, stage_config, to_dict
from salmubench.manifest import dumps, read_manifest, write_atomic

# _Stages and _reusable: imported from here by tune.py and benchmarks/ablate.py.
from salmubench.stagerun import Call, _reusable, _Stages, check_jobs, model_digest

log = logging.getLogger(__name__)


STAGE_CONFIGS = ("synth", "train", "eval", "unlearn", "report")


@dataclass(frozen=True)
class External:
    """A run on an existing dataset and models (`data` None: synthesised worlds), and the
    evaluation options: device, batch size, GenKnow from an ImageNet-style folder."""

    data: str | os.PathLike | None = None
    clean: str | os.PathLike | None = None
    compromised: str | os.PathLike | None = None
    arch: str | None = None  # of checkpoint files, e.g. ViT-B-16
    device: str = "auto"
    batch_size: int | None = None  # evaluation batch (default: the profile's)
    genknow_imagenet: str | os.PathLike | None = None
    genknow_templates: str = "openai"

    OPTIONS = ("data", "clean", "compromised", "arch", "device", "batch_size",
               "genknow_imagenet", "genknow_templates")  # fmt: skip

    @classmethod
    def from_options(cls, *, worlds: int | None = None, **options: Any) -> External | None:
        """From `bench`'s options (checked): None when they are all defaults."""
        given = {f"--{k}": options[k] for k in ("data", "clean", "compromised")}
        if not any(given.values()):
            if options["arch"] or options["genknow_imagenet"]:
                raise ConfigError(
                    "--arch and --genknow-imagenet go with --data, --clean and --compromised "
                    "(a run on an existing dataset)"
                )
            device_only = options["device"] != "auto" or options["batch_size"]
            return cls(device=options["device"], batch_size=options["batch_size"]) if (
                device_only) else None  # fmt: skip
        missing = [k for k, v in given.items() if not v]
        if missing:
            raise ConfigError(
                f"bench on an existing dataset needs {', '.join(given)}; missing "
                f"{', '.join(missing)}"
            )
        if worlds is not None:
            raise ConfigError("--worlds synthesises datasets; with --data there is one world")
        return cls(**options)

    def eval_options(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "genknow_imagenet": self.genknow_imagenet,
            "genknow_templates": self.genknow_templates,
        }


@dataclass
class World:
    """One world's folders: a dataset, its Clean and Compromised models and their evals."""

    seed: int
    folder: Path
    digest: str = ""
    external: External = field(default_factory=External)

    @property
    def data(self) -> Path:
        if self.external.data is not None:
            return Path(self.external.data)
        return self.folder / "dataset"

    def model(self, variant: str) -> Path:
        given = {"clean": self.external.clean, "compromised": self.external.compromised}
        if self.external.data is not None and given.get(variant) is not None:
            return Path(given[variant])  # type: ignore[arg-type]
        return self.folder / variant

    def eval(self, variant: str) -> Path:
        return self.folder / f"eval-{variant}"

    def attack(self, model: str, attack: str) -> Path:
        """The attack folder of `model` ("clean", or an unlearned folder's name)."""
        return self.folder / "attacks" / model / attack


def world_folder(out: str | os.PathLike, seed: int) -> Path:
    """Where world `seed` lives in a multi-world run folder."""
    return Path(out) / f"world-{seed}"


def stage_configs(
    profile: str,
    params_path: str | os.PathLike | None,
    budget: float | None,
    unlearn_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Every stage's config; `unlearn_overrides` (KEY=VALUE) apply to the unlearn stage."""
    from salmubench.unlearn.loop import with_budget

    cfg = {
        s: stage_config(s, profile, unlearn_overrides if s == "unlearn" else (), params_path)
        for s in STAGE_CONFIGS
    }
    if budget is not None:
        cfg["unlearn"] = with_budget(cfg["unlearn"], budget)
    return cfg


def build_world(world: World, profile: str, cfg: dict[str, Any], stages: _Stages) -> World:
    """Synthesise the dataset, train Clean and Compromised, evaluate both (5 stages);
    finished folders with the same config and inputs are reused."""
    from salmubench.data.synth import synth
    from salmubench.train.loop import train

    tag = f"world {world.seed}: " if stages.tag_worlds else ""
    if world.external.data is not None:
        return given_world(world, cfg, stages)
    stages.run(
        f"{tag}synth",
        Call(synth, (cfg["synth"], world.seed, world.data), {"profile": profile, "force": True}),
        _reusable(world.data, "dataset", config=to_dict(cfg["synth"]), seed=world.seed),
    )
    world.digest = read_manifest(world.data, kind="dataset")["digest"]

    def train_model(variant: str) -> None:  # Clean is evaluated while Compromised trains
        folder = world.model(variant)
        stages.run(
            f"{tag}train {variant}",
            Call(train, (world.data, variant, cfg["train"], folder),
                 {"seed": world.seed, "profile": profile, "force": True}, bar=True),
            _reusable(folder, "model", config=to_dict(cfg["train"]), variant=variant,
                      seed=world.seed, inputs={"dataset": world.digest}),
        )  # fmt: skip
        if variant == "clean":
            evaluate_model(world, f"{tag}eval clean", world.model("clean"), world.eval("clean"),
                           cfg, stages, reference=False)  # fmt: skip

    stages.map(train_model, ("clean", "compromised"))
    # The Compromised model is its own reference: recognised by digest, embedded once.
    evaluate_model(world, f"{tag}eval compromised", world.model("compromised"),
                   world.eval("compromised"), cfg, stages)  # fmt: skip
    return world


def given_world(world: World, cfg: dict[str, Any], stages: _Stages) -> World:
    """An existing dataset and models: checked before any work, then both evaluated."""
    from salmubench.data.shards import open_dataset
    from salmubench.eval.stage import REQUIRED_SPLITS

    required = [
        s for s in REQUIRED_SPLITS if s != "genknow" or world.external.genknow_imagenet is None
    ]
    dataset = open_dataset(world.data, required)
    missing = [s for s in cfg["unlearn"].retain if not dataset["shards"].get(s)]
    if missing:
        present = [s for s in cfg["unlearn"].retain if s not in missing]
        raise ConfigError(
            f"{world.data} has no {', '.join(missing)} for unlearning's retain data; "
            f"retain on what it has: --set retain=[{','.join(present)}]"
        )
    for variant in ("clean", "compromised"):
        model = world.model(variant)
        if not model.exists():
            raise ConfigError(f"--{variant} {model}: does not exist")
        if model.is_file() and world.external.arch is None:
            raise ConfigError(f"--{variant} {model} is a checkpoint file: name its --arch")
    world.digest = dataset["digest"]
    evaluate_model(world, "eval clean", world.model("clean"), world.eval("clean"), cfg,
                   stages, reference=False)  # fmt: skip
    evaluate_model(world, "eval compromised", world.model("compromised"),
                   world.eval("compromised"), cfg, stages)  # fmt: skip
    return world


def evaluate_model(
    world: World,
    name: str,
    model: Path,
    target: Path,
    cfg: dict[str, Any],
    stages: _Stages,
    reference: bool = True,
) -> Path:
    """Evaluate `model` in `world` into `target` (with the references' targets when
    `reference`), unless a finished eval of the same model and settings is there."""
    from salmubench.eval.stage import evaluate

    refs = {}
    if reference:
        # The Compromised model is its own reference (recognised by digest, embedded once);
        # every other model reads the finished Compromised eval instead of re-embedding it.
        own = model == world.model("compromised")
        refs = {"clean": world.eval("clean"),
                "compromised": model if own else world.eval("compromised")}  # fmt: skip
    ecfg = cfg["eval"]
    if world.external.batch_size is not None:
        ecfg = dataclasses.replace(ecfg, batch_size=world.external.batch_size)
    arch = world.external.arch if model.is_file() else None
    # A checkpoint file given as the Clean or Compromised model stands for that role.
    role = next((v for v in ("clean", "compromised") if model.is_file()
                 and model == world.model(v)), None)  # fmt: skip
    stages.run(
        name,
        Call(evaluate, (world.data, model, target),
             {"cfg": ecfg, "seed": world.seed, "force": True, "arch": arch, "role": role,
              **world.external.eval_options(), **refs}),
        _reusable(target, "eval", config=to_dict(ecfg), seed=world.seed,
                  inputs={"dataset": world.digest, "model": model_digest(model)}),
    )  # fmt: skip
    return target


def unlearn_and_evaluate(
    world: World,
    method: str,
    seed: int,
    ucfg: Any,
    target: Path,
    eval_target: Path,
    cfg: dict[str, Any],
    stages: _Stages,
    profile: str,
) -> Path:
    """Unlearn `method` from the world's Compromised model into `target`, then evaluate
    it into `eval_target` (2 stages; reused when finished with the same settings)."""
    from salmubench.unlearn import build_method
    from salmubench.unlearn.base import method_code
    from salmubench.unlearn.loop import recorded_config, run_config, unlearn

    params = dataclasses.asdict(build_method(method, ucfg.methods.get(method)).params)
    # A method from outside the package is re-run when its code changes (built-ins follow
    # the package version, so existing runs of them stay reusable).
    code = method_code(method)
    same_code = {} if code["origin"] == "built-in" else {"method_code": code}
    source = model_digest(world.model("compromised"))
    compromised = world.model("compromised")
    arch = world.external.arch if compromised.is_file() else None
    tag = f"world {world.seed}: " if stages.tag_worlds else ""
    label = f"{tag}{target.name}"
    stages.run(
        f"unlearn {label}",
        Call(unlearn, (world.data, compromised, method, ucfg, target),
             {"arch": arch, "seed": seed, "profile": profile, "force": True,
              "device": world.external.device}, bar=True),
        _reusable(target, "model", config=recorded_config(run_config(ucfg, method)), method=method,
                  method_params=params, seed=seed, **same_code,
                  inputs={"dataset": world.digest, "model": source}),
    )  # fmt: skip
    return evaluate_model(world, f"eval {label}", target, eval_target, cfg, stages)


def bench(
    profile: str,
    out: str | os.PathLike,
    *,
    methods: Sequence[str],
    budget: float | None = None,
    seeds: Sequence[int] = (0,),
    data_seed: int = 0,
    worlds: Sequence[int] | None = None,
    tuning: str | os.PathLike | None = None,
    attacks: Sequence[str] = (),
    unlearn_overrides: Sequence[str] = (),
    params_path: str | os.PathLike | None = None,
    external: External | None = None,
    force: bool = False,
    show: bool = True,
    say: Callable[[str], None] = print,
    step_bar: Callable[[str], tuple[Callable, Callable]] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run (or complete) the comparison of `methods` under `profile` in run folder `out`.

    One world (`data_seed`) lives in `out` itself. With `worlds` (a list of dataset and
    model seeds), each world lives in `out/world-<seed>/` and one report over all of them
    goes to `out/report`: scores per world, means, spreads and intervals over worlds.
    `tuning` is the validation world's tuning.json: its sweep is shown in the report, and
    a leaderboard on that world is refused. Validation-world seeds are refused here.

    `say` prints a line per stage; `step_bar(label)` -> (update, close) shows the steps of
    trainings and unlearning runs. `external`: an existing dataset and models instead of
    a synthesised world (one world), and the evaluation options. `attacks`: relearning
    attacks run on every unlearned model once a world's models exist (Clean once per
    attack as the reference), in `<world>/attacks/`; the report then has a "robust"
    column. `jobs` > 1: independent stages (Clean beside Compromised, the runs of
    methods, the worlds) side by side in `jobs` worker processes of `CPUs // jobs` threads
    each (`stagerun`). Returns the report's manifest.
    """
    from salmubench.report import build_report
    from salmubench.tuning import check_leaderboard_world, load_tuning
    from salmubench.unlearn import build_method

    if not seeds:
        raise ConfigError("seeds: give at least one unlearning seed")
    external = external or External()
    if external.data is not None and worlds is not None:
        raise ConfigError("worlds: a run on an existing dataset (--data) has one world")
    multi = worlds is not None
    world_seeds = list(dict.fromkeys(worlds)) if multi else [data_seed]
    if not world_seeds:
        raise ConfigError("worlds: give at least one world seed")
    for seed in world_seeds:
        check_leaderboard_world(seed)
    if tuning is not None:
        load_tuning(tuning)  # a bad file fails before hours of work, not after
    from salmubench.vocab import ATTACKS

    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ConfigError(f"attacks: unknown {', '.join(unknown)}; valid: {', '.join(ATTACKS)}")
    given = {"clean": external.clean, "compromised": external.compromised}
    files = [f"--{v} {p}" for v, p in given.items() if p is not None and Path(p).is_file()]
    if attacks and files:
        raise ConfigError(
            f"attacks: {', '.join(files)} is a checkpoint file; an attack needs model folders "
            "whose manifests name the dataset they were trained on (the Clean reference and "
            "the gap's scale are read on that dataset)"
        )
    cfg = stage_configs(profile, params_path, budget, unlearn_overrides)
    if attacks:
        cfg["attack"] = stage_config("attack", profile, (), params_path)
    ucfg = cfg["unlearn"]
    for m in methods:  # every method's settings are validated before any work
        build_method(m, ucfg.methods.get(m))
    out = Path(out)
    per_world = (5 if external.data is None else 2) + 2 * len(methods) * len(seeds)
    per_world += len(attacks) * (1 + len(methods) * len(seeds))
    stages = _Stages(len(world_seeds) * per_world + 1, show, say, step_bar, force,
                     jobs=check_jobs(jobs))  # fmt: skip
    stages.tag_worlds = multi
    start = time.perf_counter()
    runs = [(method, s, f"{method}-b{ucfg.budget:g}-s{s}") for method in methods for s in seeds]

    def run_world(seed: int) -> tuple[list[Path], list[Path]]:
        """One world's stages; returns its eval folders and attack folders."""
        world = build_world(
            World(seed, world_folder(out, seed) if multi else out, external=external),
            profile,
            cfg,
            stages,
        )
        unlearned = [world.folder / "unlearned" / name for _, _, name in runs]
        evals = [world.folder / "evals" / name for _, _, name in runs]
        stages.map(lambda k: unlearn_and_evaluate(world, runs[k][0], runs[k][1], ucfg,
                                                  unlearned[k], evals[k], cfg, stages, profile),
                   range(len(runs)))  # fmt: skip
        attacked = attack_world(world, unlearned, attacks, cfg, stages) if attacks else []
        return [world.eval("clean"), world.eval("compromised"), *evals], attacked

    try:
        done = stages.map(run_world, world_seeds)
    finally:
        stages.close()
    evals = [e for world_evals, _ in done for e in world_evals]
    attacked = [a for _, world_attacks in done for a in world_attacks]
    where = f"worlds {', '.join(map(str, world_seeds))}" if multi else f"world {data_seed}"
    title = (f"SALMUBench {profile}: {len(methods)} methods, budget {ucfg.budget:g}x, "
             f"{where}, seeds {', '.join(map(str, seeds))}")  # fmt: skip
    report = stages.run(
        "report",
        lambda _: build_report(evals, out / "report", cfg=cfg["report"], force=True, title=title,
                               tuning=tuning, attacks=attacked),
    )  # fmt: skip
    seconds = round(time.perf_counter() - start, 2)
    summary = {
        "profile": profile,
        "methods": list(methods),
        "budget": ucfg.budget,
        "seeds": list(seeds),
        "worlds": world_seeds,
        "seconds_total": seconds,
        "jobs": jobs,
        "stages": stages.timings,
    }
    if attacks:
        summary["attacks"] = list(attacks)
    write_atomic(out / "bench.json", dumps(summary))
    if show:
        say((out / "report" / "leaderboard.md").read_text(encoding="utf-8"))
        ran = len(stages.timings)
        say(f"{seconds:.0f} s in all ({ran} stages run) -> {out / 'report' / 'report.html'}")
    return report
