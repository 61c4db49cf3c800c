"""One KFP v2 lightweight component per stage, each a thin shell over `salmubench <stage>`.

Bodies only turn artifact paths into folders and call the stage command (via
`salmubench_components.shell.run_stage`); the image has salmubench preinstalled, so
nothing is pip-installed at run time (`install_kfp_package=False`). Every body imports
what it needs inside itself: KFP ships the function's source alone to the container.

Common parameters: `profile`, `seed`, `overrides` (the stage's `--set KEY=VALUE` list),
`params_yaml` (the text of params.yaml; empty = the image's default lookup), and for
telemetry `pushgateway` (URL, empty = off). The run id for telemetry comes from the
environment (`SALMUBENCH_RUN_ID`, set by the pipelines from the pod's run label) rather than
a parameter, so that it does not change every task's cache key.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output
from salmubench_components import IMAGE, LEAN_IMAGE

# Every stage folder is written whole by the stage; `--force` because KFP may hand us an
# output path that already exists (a retried task), and the stages refuse to overwrite
# without it.


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan(methods: str, seeds: list[int], world: int = 0, method_py: str = "") -> list[dict]:
    """The (method, seed) runs of one world: 'all' or a comma list, validated against the
    registry (plus the methods of `method_py`, a method file's text). Each run carries its
    world's seed: kfp's local runner (2.17) hands a task inside a nested ParallelFor the
    inner loop's item for an outer loop variable, so the inner loop reads the world from
    its own items."""
    from salmubench_components.shell import method_file

    from salmubench.unlearn import parse_methods
    from salmubench.unlearn.external import load_method_file

    if method_py.strip():
        load_method_file(method_file(method_py))
    if not seeds:
        raise ValueError("seeds: give at least one unlearning seed, e.g. [0]")
    return [{"method": m, "seed": s, "world": world} for m in parse_methods(methods)
            for s in seeds]  # fmt: skip


# synth needs no torch: it runs in the lean image (docker/Dockerfile.lean, issue #18).
@dsl.component(base_image=LEAN_IMAGE, install_kfp_package=False)
def synth(
    dataset: Output[Dataset],
    profile: str,
    seed: int = 0,
    overrides: list[str] = [],  # noqa: B006 - KFP needs a literal default
    params_yaml: str = "",
    pushgateway: str = "",
):
    """`salmubench synth`: the synthetic SALMU dataset."""
    from salmubench_components.shell import run_stage

    run_stage(
        ["synth", "--profile", profile, "--seed", str(seed), "--out", dataset.path, "--force"],
        overrides=overrides,
        params_yaml=params_yaml,
        pushgateway=pushgateway,
    )
    dataset.metadata.update({"profile": profile, "seed": seed})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def import_official(
    official: Input[Dataset],
    dataset: Output[Dataset],
    genknow_per_class: int = 0,
    genknow_classes: int = 0,
    params_yaml: str = "",
    pushgateway: str = "",
):
    """`salmubench import --official`: the released SALMUBench splits (docs/OFFICIAL.md) as
    one of our dataset folders; `genknow_per_class` > 0 also renders our synthetic GenKnow
    task (`genknow_classes` > 0: only its first K classes)."""
    from salmubench_components.shell import run_stage

    args = ["import", "--official", official.path, "--out", dataset.path, "--force"]
    if genknow_per_class:
        args += ["--genknow-per-class", str(genknow_per_class)]
    if genknow_classes:
        args += ["--genknow-classes", str(genknow_classes)]
    run_stage(args, params_yaml=params_yaml, pushgateway=pushgateway)
    dataset.metadata.update({"source": "official", "genknow_per_class": genknow_per_class})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    data: Input[Dataset],
    model: Output[Model],
    variant: str,
    profile: str,
    seed: int = 0,
    overrides: list[str] = [],  # noqa: B006 - KFP needs a literal default
    params_yaml: str = "",
    launcher: str = "local",
    nodes: int = 1,
    procs_per_node: int = 1,
    gpus_per_node: int = 0,
    job_image: str = "",
    namespace: str = "",
    pvc: str = "",
    mount: str = "/shared",
    pushgateway: str = "",
    trainer_version: str = "auto",
    s3_secret: str = "",
    istio_opt_out: bool = True,
):
    """`salmubench train` under torchrun: here (launcher 'local') or as a TrainJob/PyTorchJob.

    'local' runs `torchrun --standalone --nproc_per_node=procs_per_node` in this container;
    'trainjob'/'pytorchjob' create that custom resource (nodes x procs_per_node processes,
    gpus_per_node GPUs each) sharing the claim `pvc` mounted at `mount`, follow it to the
    end and fail with the job's own reason. The job's pods get the Pushgateway, S3 endpoint
    and run id of this pod, the S3 credentials from Secret `s3_secret`, and opt out of Istio.
    `trainer_version` ('auto' = read from the TrainJob CRD) picks TrainJob's field set.
    """
    from salmubench_components.launcher import launch
    from salmubench_components.shell import telemetry_env

    telemetry_env(pushgateway)
    launch(
        launcher,
        data=data.path,
        out=model.path,
        variant=variant,
        profile=profile,
        seed=seed,
        overrides=overrides,
        params_yaml=params_yaml,
        nodes=nodes,
        procs_per_node=procs_per_node,
        gpus_per_node=gpus_per_node,
        image=job_image,
        namespace=namespace,
        pvc=pvc,
        mount=mount,
        trainer_version=trainer_version,
        s3_secret=s3_secret,
        istio_opt_out=istio_opt_out,
    )
    model.metadata.update({"variant": variant, "profile": profile, "seed": seed})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def unlearn(
    data: Input[Dataset],
    model: Input[Model],
    unlearned: Output[Model],
    method: str,
    profile: str,
    seed: int = 0,
    budget: float = 0.0,
    overrides: list[str] = [],  # noqa: B006 - KFP needs a literal default
    params_yaml: str = "",
    pushgateway: str = "",
    method_py: str = "",
    arch: str = "",
    device: str = "auto",
    batch_size: int = 0,
):
    """`salmubench unlearn`: one method from the Compromised model; budget 0 = the profile's.
    `method_py`: the text of a method file defining `method` (else a registered method).
    `model` may be a checkpoint file of architecture `arch` (`--arch`, e.g. ViT-B-16);
    `device` auto/cpu/cuda; `batch_size` > 0 sets the forget and retain batches."""
    from salmubench_components.shell import run_stage

    args = [
        "unlearn",
        "--data",
        data.path,
        "--model",
        model.path,
        "--method",
        method,
        "--profile",
        profile,
        "--seed",
        str(seed),
        "--out",
        unlearned.path,
        "--force",
    ]
    if budget:
        args += ["--budget", repr(float(budget))]
    if arch:
        args += ["--arch", arch]
    if device != "auto":
        args += ["--device", device]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    run_stage(args, overrides=overrides, params_yaml=params_yaml, pushgateway=pushgateway,
              method_py=method_py)  # fmt: skip
    unlearned.metadata.update({"method": method, "seed": seed, "budget": budget or "profile"})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    data: Input[Dataset],
    model: Input[Model],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    profile: str,
    seed: int = 0,
    clean: Input[Artifact] = None,
    compromised: Input[Artifact] = None,
    overrides: list[str] = [],  # noqa: B006 - KFP needs a literal default
    params_yaml: str = "",
    pushgateway: str = "",
    arch: str = "",
    role: str = "",
    device: str = "auto",
    batch_size: int = 0,
    genknow_imagenet: Input[Dataset] = None,
    genknow_templates: str = "openai",
    preprocess: str = "auto",
):
    """`salmubench eval`: the ten metrics; the eval folder plus a Metrics artifact.

    `clean`/`compromised` are the reference evaluations or models (absent for the Clean
    model's own evaluation). For a checkpoint file (docs/OFFICIAL.md): `arch` (`--arch`)
    and `role` clean/compromised (`--role`, passed only with `arch`). `device`
    auto/cpu/cuda, `batch_size` (0 = the profile's), `genknow_imagenet` an ImageNet-style
    folder for GenKnow with OpenCLIP's `genknow_templates` (openai/simple), `preprocess`
    auto/squash/openclip.
    """
    import json
    from pathlib import Path

    from salmubench_components.shell import run_stage

    from salmubench.eval.metrics import METRICS

    args = [
        "eval",
        "--data",
        data.path,
        "--model",
        model.path,
        "--profile",
        profile,
        "--seed",
        str(seed),
        "--out",
        evaluation.path,
        "--force",
        "--quiet",
    ]
    if clean is not None:
        args += ["--clean", clean.path]
    if compromised is not None:
        args += ["--compromised", compromised.path]
    if arch:
        args += ["--arch", arch]
    if role and arch:  # a role names what a checkpoint file (given with arch) stands for
        args += ["--role", role]
    if device != "auto":
        args += ["--device", device]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    if genknow_imagenet is not None:
        args += ["--genknow-imagenet", genknow_imagenet.path]
    if genknow_templates != "openai":  # checked by the command (openai, simple)
        args += ["--genknow-templates", genknow_templates]
    if preprocess != "auto":
        args += ["--preprocess", preprocess]
    run_stage(args, overrides=overrides, params_yaml=params_yaml, pushgateway=pushgateway)
    values = json.loads((Path(evaluation.path) / "metrics.json").read_text(encoding="utf-8"))
    for name in METRICS:  # the ten registered metrics, in the registry's order
        metrics.log_metric(name, values[name])
    print("[salmubench] " + ", ".join(f"{n} {values[n]:.4f}" for n in METRICS), flush=True)


# report needs no torch (nor scipy): it runs in the lean image too.
@dsl.component(base_image=LEAN_IMAGE, install_kfp_package=False)
def report(
    evals: Input[list[Artifact]],
    folder: Output[Artifact],
    html: Output[HTML],
    leaderboard: Output[Markdown],
    profile: str,
    title: str = "",
    overrides: list[str] = [],  # noqa: B006 - KFP needs a literal default
    params_yaml: str = "",
    pushgateway: str = "",
    clean: Input[Artifact] = None,
    compromised: Input[Artifact] = None,
):
    """`salmubench report`: leaderboard, verdicts, HTML and plots from the evaluations.

    `evals`: eval folders, or folders holding them (a world's bundle: its Clean,
    Compromised and unlearned evaluations); the report groups them into worlds by dataset.
    `clean`/`compromised`: the references, when not inside `evals`. The whole report
    folder is `folder`; `html` (self-contained report.html) and `leaderboard`
    (leaderboard.md) are what the KFP dashboard renders.
    """
    import shutil
    from pathlib import Path

    from salmubench_components.shell import run_stage

    runs = [a.path for a in (clean, compromised) if a is not None]
    runs += [e.path for e in evals]
    args = ["report", "--runs", *runs, "--profile", profile, "--out", folder.path, "--force"]
    if title:
        args += ["--title", title]
    run_stage(args, overrides=overrides, params_yaml=params_yaml, pushgateway=pushgateway)
    shutil.copyfile(Path(folder.path) / "report.html", html.path)
    shutil.copyfile(Path(folder.path) / "leaderboard.md", leaderboard.path)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish(
    worlds: Input[list[Artifact]],
    report: Input[Artifact],
    record: Output[Artifact],
    git_url: str,
    run_id: str,
    dvc_remote: str = "minio",
    git_base: str = "main",
):
    """`salmubench publish`: the run's artifacts to the DVC remote, their versions to git.

    `worlds`: one folder per world holding its dataset, models and evaluations
    (`world_artifacts`). Clones `git_url` (credentials: GIT_USERNAME/GIT_PASSWORD from a
    Secret), pushes every artifact with DVC (S3 credentials from a Secret) and pushes
    branch `runs/<run_id>`; `git checkout runs/<run_id> && dvc pull` then restores them.
    """
    from salmubench_components.shell import run_stage

    folders = [w.path for w in worlds] + [report.path]
    run_stage(
        ["publish", *folders, "--git-url", git_url, "--run-id", run_id,
         "--remote", dvc_remote, "--base", git_base, "--record", record.path]
    )  # fmt: skip


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def world_evals(
    clean: Input[Artifact],
    compromised: Input[Artifact],
    evals: Input[list[Artifact]],
    folder: Output[Artifact],
    seed: int,
):
    """One world's evaluations (Clean, Compromised, every unlearned run) as one folder."""
    from salmubench_components.shell import bundle_folders

    named = [("clean", clean.path), ("compromised", compromised.path)]
    named += [(f"unlearned-{i:03d}", e.path) for i, e in enumerate(evals)]
    bundle_folders(named, folder.path)
    folder.metadata.update({"world": seed, "evaluations": len(named)})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def world_artifacts(
    data: Input[Dataset],
    clean: Input[Model],
    compromised: Input[Model],
    unlearned: Input[list[Model]],
    evals: Input[Artifact],
    folder: Output[Artifact],
    seed: int,
):
    """Everything one world made (dataset, models, evaluations) as one folder, to publish."""
    from pathlib import Path

    from salmubench_components.shell import bundle_folders

    named = [("data", data.path), ("clean", clean.path), ("compromised", compromised.path)]
    named += [(f"unlearned-{i:03d}", m.path) for i, m in enumerate(unlearned)]
    named += [(f"evals/{p.name}", str(p)) for p in sorted(Path(evals.path).iterdir())]
    bundle_folders(named, folder.path)
    folder.metadata.update({"world": seed})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_attacks(attacks: list[str]) -> int:
    """Validates the relearning attacks of a run (docs/ATTACKS.md) before any of them
    starts; the number of them, which switches the attack stage on (> 0) or off (0).
    Against the vocabulary alone: the attack stage's module would import torch (seconds)."""
    from salmubench.vocab import ATTACKS

    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"attacks: unknown {unknown}; valid: {', '.join(ATTACKS)}")
    twice = sorted({a for a in attacks if attacks.count(a) > 1})
    if twice:
        raise ValueError(f"attacks {attacks}: {twice} given more than once")
    return len(attacks)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def world_models(unlearned: Input[list[Model]], folder: Output[Model], attacks: int):
    """One world's unlearned models as one folder, `<method>-s<seed>` each (from the model's
    own manifest): what the attack loop reads its models from, since a task in one
    ParallelFor cannot take a single output of a task in another. `attacks` = 0 (the
    attack stage is off): an empty folder, nothing copied."""
    from salmubench_components.shell import bundle_folders, run_key

    from salmubench.manifest import read_manifest

    named = []
    for m in unlearned if attacks else []:
        manifest = read_manifest(m.path)
        named.append((run_key(manifest["method"], manifest["seed"]), m.path))
    bundle_folders(named, folder.path)
    folder.metadata.update({"models": sorted(n for n, _ in named)})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def attack(
    data: Input[Dataset],
    model: Input[Model],
    folder: Output[Artifact],
    recovery: Output[Metrics],
    profile: str,
    attack: str = "",
    method: str = "",
    seed: int = 0,
    clean: Input[Artifact] = None,
    compromised: Input[Model] = None,
    overrides: list[str] = [],  # noqa: B006 - KFP needs a literal default
    params_yaml: str = "",
    pushgateway: str = "",
):
    """`salmubench attack`: one relearning attack on one model (docs/ATTACKS.md).

    `model`: a model folder (e.g. Clean, for the reference attack), or with `method` a
    folder of unlearned models (`world_models`) whose `<method>-s<seed>` is attacked.
    `clean`: the Clean model's finished attack folder (the reference of the recovery gap);
    `attack` "" = the attack of that folder: kfp's local runner (2.17) hands a task inside
    a nested ParallelFor the inner loop's item for a parameter from the outer loop, while
    artifacts arrive intact. `compromised`: the Compromised model (the gap's scale).
    `recovery` (what the dashboard shows): the attacked model's RetFail and AssocStr before
    the attack and, with both references, the recovery gap's worst case over the sweep.
    """
    import json
    from pathlib import Path

    from salmubench_components.shell import attack_target, run_key, run_stage

    from salmubench.manifest import read_manifest

    target = attack_target(model.path, method, seed)
    if not attack:
        if clean is None:
            raise ValueError("attack: name an attack, or give the Clean reference attack")
        attack = read_manifest(clean.path)["attack"]
    who = run_key(method, seed) if method else read_manifest(target).get("variant", "model")
    print(f"[salmubench] attack {attack} on {who}", flush=True)  # names the task locally
    args = ["attack", "--data", data.path, "--model", target, "--attack", attack,
            "--profile", profile, "--out", folder.path, "--force", "--quiet"]  # fmt: skip
    if clean is not None:
        args += ["--clean", clean.path]
    if compromised is not None:
        args += ["--compromised", compromised.path]
    run_stage(args, overrides=overrides, params_yaml=params_yaml, pushgateway=pushgateway)
    record = json.loads((Path(folder.path) / "attack.json").read_text(encoding="utf-8"))
    for score, value in record["model"]["before"].items():
        recovery.log_metric(f"{score}_before", value)
    worst = (record.get("recovery") or {}).get("worst") or {}
    for score in ("retfail", "assoc_str"):
        if worst.get(score) is not None:
            recovery.log_metric(f"recovery_{score}", worst[score])
    folder.metadata.update({"attack": attack, "model": who, "worst": worst.get("point", "")})
    print(f"[salmubench] attack {attack} on {who}: worst case {json.dumps(worst)}", flush=True)


# Fetching by URI (a parameter) instead of dsl.importer: an importer inside a ParallelFor
# is not supported (kubeflow/pipelines#10860), and the local runner runs these too.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fetch_dataset(uri: str, dataset: Output[Dataset]):
    """A dataset folder by URI (s3:// or a path), verified, as this task's artifact."""
    from salmubench_components.shell import fetch_folder

    manifest = fetch_folder(uri, dataset.path)
    dataset.metadata.update({"source": uri, "digest": manifest["digest"]})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fetch_model(uri: str, model: Output[Model]):
    """A model folder (Clean, Compromised or unlearned) by URI, verified; or a checkpoint
    file (an external model: docs/OFFICIAL.md), recorded by its sha256."""
    from salmubench_components.shell import fetch_folder

    manifest = fetch_folder(uri, model.path)
    model.metadata.update({"source": uri, "digest": manifest["digest"]})
