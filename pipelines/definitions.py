"""The four pipelines, built from the stage components for a set of compile options.

- `salmubench-benchmark`: per world (dataset/model seed) in parallel: synth -> train Clean
  and Compromised -> evaluate both -> per (method, seed) in parallel: unlearn -> evaluate;
  then one report over every world. With `attacks` (default: all four), each world also
  runs every relearning attack once on Clean and then on every unlearned model (a
  ParallelFor over attacks, nested: over the unlearned models), docs/ATTACKS.md.
- `salmubench-unlearn-eval`: one (new) method against an existing dataset, Compromised
  model and reference evaluations, given as artifact URIs.
- `salmubench-reevaluate`: existing checkpoints re-evaluated and reported, caching off
  (a scheduled re-evaluation with unchanged inputs would otherwise compute nothing).
- `salmubench-import-official`: the released SALMUBench splits imported as a dataset folder
  (docs/OFFICIAL.md), for the two pipelines above.

Compile options (`Options`) are what a site fixes once, at compile time: the image, GPUs,
Secrets, the shared claim, the training launcher and its size, the Pushgateway, where runs
are published. The pipeline parameters are what a person picks per run in the dashboard's
run form: profile, worlds, methods, seeds, budget (and, for experts, a params.yaml text and
per-stage `--set` overrides; empty = the image's own params.yaml).

Methods from outside the package (docs/METHODS.md) reach the benchmark and unlearn-eval
pipelines per run, without recompiling: `method_image` is the image of the tasks that load
methods (`plan`, `unlearn`; default: the components' image), e.g. one built `FROM` ours plus
a method package (docker/Dockerfile.method); `method_py` is a method file's text, written to
a file in those tasks and loaded like `--method-file`.
"""

from collections.abc import Callable
from dataclasses import dataclass

import yaml
from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Model

from salmubench.vocab import ATTACKS

S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
}
# KFP v2 labels every task pod with its run id: telemetry groups by it without the id
# becoming a parameter (which would change every cache key on every run).
RUN_ID_FIELD = "metadata.labels['pipeline/runid']"
SHARED_MOUNT = "/shared"


@dataclass(frozen=True)
class Options:
    """Compile-time settings of the pipelines."""

    gpus: int = 0  # GPUs of each train, unlearn and evaluate task (local launcher: trains there)
    accelerator: str = "nvidia.com/gpu"  # the resource name of those GPUs
    s3_secret: str = "salmubench-s3"  # Secret with AWS_ACCESS_KEY_ID/SECRET; "" = none
    # PVC mounted at SHARED_MOUNT on the train tasks: how a 'trainjob'/'pytorchjob' launcher
    # hands the dataset to the job's pods and gets the model back. "" = none (local only).
    shared_pvc: str = ""
    # The default of each pipeline's `params_yaml` parameter: "" = the params.yaml the image
    # was built with (the same commit as the components), so the compiled pipelines do not
    # change with every edit of params.yaml; a text here is embedded (one line).
    params_yaml: str = ""
    # Unlearning runs at once: 0 = all (a cluster schedules them); the local runner on a
    # laptop uses 1, since each run already uses every core.
    parallelism: int = 0
    # In-cluster S3 endpoint for every task (AWS_ENDPOINT_URL_S3): s3:// datasets and the
    # DVC remote. "" = the SDK default (AWS) or what the image sets.
    s3_endpoint: str = ""
    # Add a final `publish` task (cluster runs): artifacts to the DVC remote, versions to a
    # runs/<run id> branch of the `publish_git_url` parameter's repository.
    publish: bool = False
    git_secret: str = "salmubench-git"  # Secret with GIT_USERNAME / GIT_PASSWORD (a token)
    # False: every task of every pipeline compiled with caching off. A run of an uploaded
    # version cannot override caching (KFP applies that only to inline specs), so this is
    # where a never-cached version is made; `reevaluate` is never cached regardless.
    caching: bool = True
    # Label the TrainJob/PyTorchJob pods sidecar.istio.io/inject=false (Kubeflow profile
    # namespaces inject Istio; a sidecar hangs the rendezvous, kubeflow/trainer#2794).
    istio_opt_out: bool = True
    # How the benchmark trains Clean/Compromised: 'local' (torchrun in the task's pod),
    # 'trainjob' (Kubeflow Trainer v2) or 'pytorchjob' (Training Operator v1), sized by
    # train_nodes x train_procs_per_node processes with train_gpus_per_node GPUs each.
    launcher: str = "local"
    train_nodes: int = 1
    train_procs_per_node: int = 1
    train_gpus_per_node: int = 0
    job_image: str = ""  # the training job's image ("" = the components' image)
    trainer_version: str = "auto"  # TrainJob field set: 2.0-2.3, auto = from the CRD
    pushgateway: str = ""  # Prometheus Pushgateway URL for every stage ("" = none)
    # With a Pushgateway, `reevaluate` pushes each unlearned model's efficacy beside the
    # baseline recorded here (`salmubench monitor baseline`; docs/MONITORING.md).
    baselines: str = "s3://salmubench/monitoring/baselines"
    publish_git_url: str = ""  # with publish: the git repository of the runs/<id> branches
    publish_dvc_remote: str = "minio"  # with publish: the DVC remote pushed to

    def validate(self) -> None:
        from salmubench_components.launcher import check_launcher, check_trainer_version

        check_launcher(self.launcher)
        if self.trainer_version != "auto":
            check_trainer_version(self.trainer_version)
        if self.launcher != "local" and not self.shared_pvc:
            raise ValueError(
                f"launcher {self.launcher!r} needs shared_pvc (--shared-pvc): the job's pods "
                "get the dataset and return the model through it"
            )
        if self.launcher == "local" and self.train_nodes != 1:
            raise ValueError(
                f"train_nodes={self.train_nodes} with launcher 'local': use 'trainjob' or "
                "'pytorchjob' for several nodes"
            )
        if min(self.train_nodes, self.train_procs_per_node) < 1 or self.train_gpus_per_node < 0:
            raise ValueError(
                f"train_nodes={self.train_nodes}, train_procs_per_node="
                f"{self.train_procs_per_node}, train_gpus_per_node={self.train_gpus_per_node}: "
                "need nodes >= 1, procs >= 1, gpus >= 0"
            )
        if self.publish and not self.publish_git_url:
            raise ValueError("publish needs publish_git_url (--publish-git-url): where "
                             "the runs/<run id> branches are pushed")  # fmt: skip
        if self.gpus < 0:
            raise ValueError(f"gpus={self.gpus}: expected an integer >= 0")
        if self.parallelism < 0:
            raise ValueError(f"parallelism={self.parallelism}: expected an integer >= 0")

    def params_text(self) -> str:
        """The params as ONE line of YAML (flow style): kfp copies parameter defaults
        into the compiled file's header comment line by line, and only the first line of
        a multi-line text gets its '#', which makes the file invalid YAML."""
        text = self.params_yaml
        if not text.strip():
            return ""
        # YAML flow style, not json.dumps: PyYAML reads JSON's 5e-05 back as a string.
        data = yaml.safe_load(text)
        return yaml.safe_dump(
            data, default_flow_style=True, width=float("inf"), sort_keys=True
        ).strip()


def _k8s(
    task: dsl.PipelineTask,
    opts: Options,
    *,
    train: bool = False,
    launcher: bool = False,
    gpu: bool = False,
) -> dsl.PipelineTask:
    """The Kubernetes settings every task gets (ignored by the local runner). `opts.gpus`
    GPUs go to training and unlearning (`train`) and to evaluations (`gpu`): embedding the
    released ViT-B/16's ~77k images is an evaluation's cost (docs/OFFICIAL.md)."""
    if opts.s3_secret:
        kubernetes.use_secret_as_env(task, secret_name=opts.s3_secret, secret_key_to_env=S3_KEYS)
    if opts.s3_endpoint:
        task.set_env_variable("AWS_ENDPOINT_URL_S3", opts.s3_endpoint)
    kubernetes.use_field_path_as_env(task, "SALMUBENCH_RUN_ID", RUN_ID_FIELD)
    if launcher and opts.shared_pvc:  # only the launcher hands data to other pods
        kubernetes.mount_pvc(task, pvc_name=opts.shared_pvc, mount_path=SHARED_MOUNT)
    if (train or gpu) and opts.gpus:
        task.set_accelerator_type(opts.accelerator).set_accelerator_limit(opts.gpus)
    if not opts.caching:
        task.set_caching_options(False)
    return task


def benchmark(opts: Options = Options()) -> Callable:
    from salmubench_components import IMAGE, stages

    opts.validate()

    @dsl.pipeline(
        name="salmubench-benchmark",
        description="SALMUBench: per world (a dataset seed with its own Clean and Compromised "
        "CLIP) in parallel: dataset, both models, unlearning per method and seed in "
        "parallel, ten-metric evaluation, relearning attacks on Clean and every unlearned "
        "model; one leaderboard report over every world.",
    )
    def pipeline(
        profile: str = "tiny",
        worlds: list[int] = [0],  # noqa: B006 - KFP needs a literal default
        methods: str = "all",
        seeds: list[int] = [0],  # noqa: B006
        budget: float = 0.0,
        params_yaml: str = opts.params_text(),
        synth_set: list[str] = [],  # noqa: B006
        train_set: list[str] = [],  # noqa: B006
        unlearn_set: list[str] = [],  # noqa: B006
        eval_set: list[str] = [],  # noqa: B006
        method_py: str = "",
        method_image: str = IMAGE,
        attacks: list[str] = list(ATTACKS),  # noqa: B006 - [] = no attack stage
        attack_set: list[str] = [],  # noqa: B006
    ) -> Artifact:
        common = {
            "profile": profile,
            "params_yaml": params_yaml,
            "pushgateway": opts.pushgateway,
        }
        external = {"method_py": method_py, "method_image": method_image}
        attack = {"attacks": attacks, "attack_set": attack_set}
        # Two levels of ParallelFor, each fanned in by the level above it: KFP's local
        # runner cannot fan in across both at once (a list of lists), so each world's
        # evaluations (and, to publish, its artifacts) leave the world as one bundle.
        with dsl.ParallelFor(worlds, name="per-world", parallelism=opts.parallelism) as seed:
            world = _world(stages, opts, common, seed, methods, seeds, budget,
                           synth_set, train_set, unlearn_set, eval_set, external,
                           attack)  # fmt: skip
        rep = stages.report(evals=dsl.Collected(world["evals"].outputs["folder"]), **common)
        _k8s(rep.set_display_name("report"), opts)
        if opts.publish:
            pub = stages.publish(
                worlds=dsl.Collected(world["artifacts"].outputs["folder"]),
                report=rep.outputs["folder"],
                git_url=opts.publish_git_url,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                dvc_remote=opts.publish_dvc_remote,
            )
            _k8s(pub.set_display_name("publish"), opts)
            if opts.git_secret:
                kubernetes.use_secret_as_env(
                    pub,
                    secret_name=opts.git_secret,
                    secret_key_to_env={
                        "GIT_USERNAME": "GIT_USERNAME",
                        "GIT_PASSWORD": "GIT_PASSWORD",
                    },
                )
        return rep.outputs["folder"]

    return pipeline


def _methods_task(task: dsl.PipelineTask, method_image) -> dsl.PipelineTask:
    """A task that loads methods (`plan`, `unlearn`) runs in the run's `method_image`: ours
    by default, or ours plus a method package. kfp resolves the parameter at run time (KFP
    backend >= 2.4; the local runner runs every task in this environment regardless)."""
    return task.set_container_image(method_image)


def _world(stages, opts: Options, common: dict, seed, methods, seeds, budget, synth_set,
           train_set, unlearn_set, eval_set, external: dict,
           attack: dict) -> dict[str, dsl.PipelineTask]:  # fmt: skip
    """One world's chain: synth -> Clean/Compromised -> their evals -> per (method, seed):
    unlearn -> eval; its evaluations bundled (and its artifacts, when publishing); then
    the relearning attacks (`_attacks`).

    Inside the inner loop the world's seed is read from the run (`run.world`), never from
    the outer loop variable (see `stages.plan`). `external`: the run's `method_py` and
    `method_image` (methods from outside the package); `attack`: the run's `attacks` and
    `attack_set`."""
    runs = stages.plan(methods=methods, seeds=seeds, world=seed, method_py=external["method_py"])
    _k8s(_methods_task(runs, external["method_image"]).set_display_name("plan runs"), opts)
    data = _k8s(stages.synth(seed=seed, overrides=synth_set, **common), opts)
    data.set_display_name("synth")
    models = {}
    for variant in ("clean", "compromised"):
        t = stages.train(
            data=data.outputs["dataset"],
            variant=variant,
            seed=seed,
            overrides=train_set,
            launcher=opts.launcher,
            nodes=opts.train_nodes,
            procs_per_node=opts.train_procs_per_node,
            gpus_per_node=opts.train_gpus_per_node,
            job_image=opts.job_image,
            pvc=opts.shared_pvc,
            mount=SHARED_MOUNT,
            trainer_version=opts.trainer_version,
            s3_secret=opts.s3_secret,
            istio_opt_out=opts.istio_opt_out,
            **common,
        )
        models[variant] = _k8s(
            t.set_display_name(f"train {variant}"), opts, train=True, launcher=True
        )
    ev_clean = stages.evaluate(
        data=data.outputs["dataset"],
        model=models["clean"].outputs["model"],
        seed=seed,
        overrides=eval_set,
        **common,
    )
    _k8s(ev_clean.set_display_name("eval clean"), opts, gpu=True)
    # The Compromised model is its own Compromised reference (as `salmubench bench`).
    ev_comp = stages.evaluate(
        data=data.outputs["dataset"],
        model=models["compromised"].outputs["model"],
        clean=ev_clean.outputs["evaluation"],
        compromised=models["compromised"].outputs["model"],
        seed=seed,
        overrides=eval_set,
        **common,
    )
    _k8s(ev_comp.set_display_name("eval compromised"), opts, gpu=True)
    with dsl.ParallelFor(runs.output, name="per-method-seed", parallelism=opts.parallelism) as run:
        u = stages.unlearn(
            data=data.outputs["dataset"],
            model=models["compromised"].outputs["model"],
            method=run.method,
            seed=run.seed,
            budget=budget,
            overrides=unlearn_set,
            method_py=external["method_py"],
            **common,
        )
        _k8s(_methods_task(u, external["method_image"]).set_display_name("unlearn"), opts,
             train=True)  # fmt: skip
        ev = stages.evaluate(
            data=data.outputs["dataset"],
            model=u.outputs["unlearned"],
            clean=ev_clean.outputs["evaluation"],
            compromised=ev_comp.outputs["evaluation"],
            seed=run.world,
            overrides=eval_set,
            **common,
        )
        _k8s(ev.set_display_name("eval unlearned"), opts, gpu=True)
    evals = stages.world_evals(
        clean=ev_clean.outputs["evaluation"],
        compromised=ev_comp.outputs["evaluation"],
        evals=dsl.Collected(ev.outputs["evaluation"]),
        seed=seed,
    )
    world = {"evals": _k8s(evals.set_display_name("world evaluations"), opts)}
    if opts.publish:
        bundle = stages.world_artifacts(
            data=data.outputs["dataset"],
            clean=models["clean"].outputs["model"],
            compromised=models["compromised"].outputs["model"],
            unlearned=dsl.Collected(u.outputs["unlearned"]),
            evals=evals.outputs["folder"],
            seed=seed,
        )
        world["artifacts"] = _k8s(bundle.set_display_name("world artifacts"), opts)
    _attacks(stages, opts, common, data, models, runs, u, **attack)
    return world


def _attacks(stages, opts: Options, common: dict, data, models: dict, runs, unlearned,
             attacks, attack_set) -> None:  # fmt: skip
    """One world's relearning attacks (docs/ATTACKS.md): per attack, once on Clean (the
    reference), then on every unlearned model with that reference and the Compromised
    model: a ParallelFor over attacks, and inside it one over the world's runs.

    The shape kfp allows (2.17; each limit reproduced with a toy pipeline, pipelines/README):
    - A task cannot take ONE output of a task in another ParallelFor, only all of them
      (`dsl.Collected`), and the compiler fails on a `dsl.Collected` consumed inside another
      ParallelFor or inside a `dsl.If` (kubeflow/pipelines#9808): so the world's unlearned
      models reach the attack loop as one bundle (`world_models`, made before the `dsl.If`;
      empty when the stage is off), and each attack's Clean reference is a task of the same
      iteration as the attacks that read it (the models' loop nested in the attacks' loop).
    - `attacks` = [] switches the stage off: a `dsl.If` on the validated number of attacks
      (`plan_attacks`); a condition must compare a primitive, and the local runner resolves
      only a task's single `Output`, hence the count as the task's one output.
    - The local runner hands the inner loop's item to a parameter from the outer loop's
      task, so an unlearned model's attack takes its attack name from its Clean reference
      folder (an artifact, `attack=""`), never from the outer loop.
    """
    count = stages.plan_attacks(attacks=attacks)
    _k8s(count.set_display_name("plan attacks"), opts)
    bundle = stages.world_models(
        unlearned=dsl.Collected(unlearned.outputs["unlearned"]), attacks=count.output
    )
    _k8s(bundle.set_display_name("world models"), opts)
    with (
        dsl.If(count.output > 0, name="attacks-on"),
        dsl.ParallelFor(attacks, name="per-attack", parallelism=opts.parallelism) as name,
    ):
        ref = stages.attack(
            data=data.outputs["dataset"],
            model=models["clean"].outputs["model"],
            attack=name,
            overrides=attack_set,
            **common,
        )
        _k8s(ref.set_display_name("attack clean"), opts, train=True)
        with dsl.ParallelFor(runs.output, name="per-model", parallelism=opts.parallelism) as run:
            at = stages.attack(
                data=data.outputs["dataset"],
                model=bundle.outputs["folder"],
                method=run.method,
                seed=run.seed,
                clean=ref.outputs["folder"],
                compromised=models["compromised"].outputs["model"],
                overrides=attack_set,
                **common,
            )
            _k8s(at.set_display_name("attack unlearned"), opts, train=True)


def unlearn_eval(opts: Options = Options()) -> Callable:
    from salmubench_components import IMAGE, stages

    opts.validate()

    @dsl.pipeline(
        name="salmubench-unlearn-eval",
        description="One unlearning method against an existing dataset and Compromised "
        "model: unlearn per seed, evaluate against the reference evaluations, report.",
    )
    def pipeline(
        method: str,
        dataset_uri: str,
        compromised_uri: str,
        clean_eval_uri: str,
        compromised_eval_uri: str,
        profile: str = "tiny",
        seed: int = 0,
        seeds: list[int] = [0],  # noqa: B006 - KFP needs a literal default
        budget: float = 0.0,
        params_yaml: str = opts.params_text(),
        unlearn_set: list[str] = [],  # noqa: B006
        eval_set: list[str] = [],  # noqa: B006
        method_py: str = "",
        method_image: str = IMAGE,
        arch: str = "",
        device: str = "auto",
        batch_size: int = 0,
        genknow_imagenet_uri: str = "",
        genknow_templates: str = "openai",
        preprocess: str = "auto",
    ):
        # method_py: the text of a method file (docs/METHODS.md), for a method the image
        # does not have; empty = a registered method (built-in or the image's packages).
        # method_image: the image of plan and unlearn (ours, or ours plus a method package).
        # External checkpoints (docs/OFFICIAL.md): compromised_uri may name a checkpoint
        # file of architecture `arch`; genknow_imagenet_uri an ImageNet-style folder.
        common = {"profile": profile, "params_yaml": params_yaml, "pushgateway": opts.pushgateway}
        runs = stages.plan(methods=method, seeds=seeds, method_py=method_py)
        _k8s(_methods_task(runs, method_image).set_display_name("plan runs"), opts)
        data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
        model = dsl.importer(artifact_uri=compromised_uri, artifact_class=Model, reimport=False)
        ev_clean = dsl.importer(artifact_uri=clean_eval_uri, artifact_class=Artifact)
        ev_comp = dsl.importer(artifact_uri=compromised_eval_uri, artifact_class=Artifact)

        def unlearn_and_evaluate(genknow_imagenet) -> None:
            """Per run: unlearn -> evaluate; then the report."""
            imagenet = {} if genknow_imagenet is None else {"genknow_imagenet": genknow_imagenet}
            with dsl.ParallelFor(runs.output, name="per-seed",
                                 parallelism=opts.parallelism) as run:  # fmt: skip
                u = stages.unlearn(
                    data=data.output,
                    model=model.output,
                    method=run.method,
                    seed=run.seed,
                    budget=budget,
                    overrides=unlearn_set,
                    method_py=method_py,
                    arch=arch,
                    device=device,
                    batch_size=batch_size,
                    **common,
                )
                _k8s(_methods_task(u, method_image).set_display_name("unlearn"), opts,
                     train=True)  # fmt: skip
                ev = stages.evaluate(
                    data=data.output,
                    model=u.outputs["unlearned"],
                    clean=ev_clean.output,
                    compromised=ev_comp.output,
                    seed=seed,
                    overrides=eval_set,
                    device=device,
                    batch_size=batch_size,
                    genknow_templates=genknow_templates,
                    preprocess=preprocess,
                    **imagenet,
                    **common,
                )
                _k8s(ev.set_display_name("eval unlearned"), opts, gpu=True)
            rep = stages.report(
                clean=ev_clean.output,
                compromised=ev_comp.output,
                evals=dsl.Collected(ev.outputs["evaluation"]),
                **common,
            )
            _k8s(rep.set_display_name("report"), opts)

        # An importer cannot take an empty URI, and a task inside a condition hands its
        # output to no task outside it: the loop and report sit in both branches (one runs).
        with dsl.If(genknow_imagenet_uri != "", name="genknow-imagenet"):
            imagenet = dsl.importer(
                artifact_uri=genknow_imagenet_uri, artifact_class=Dataset, reimport=False
            )
            unlearn_and_evaluate(imagenet.output)
        with dsl.Else(name="genknow-of-dataset"):
            unlearn_and_evaluate(None)

    return pipeline


def reevaluate(opts: Options = Options()) -> Callable:
    from salmubench_components import stages

    opts.validate()

    @dsl.pipeline(
        name="salmubench-reevaluate",
        description="Re-evaluate existing checkpoints (Clean, Compromised, unlearned) named "
        "by URI and rebuild the report; caching is off so every scheduled run reads the "
        "checkpoints as they are now and recomputes.",
    )
    def pipeline(
        dataset_uri: str,
        clean_uri: str,
        compromised_uri: str,
        unlearned_uris: list[str],
        profile: str = "tiny",
        seed: int = 0,
        params_yaml: str = opts.params_text(),
        eval_set: list[str] = [],  # noqa: B006 - KFP needs a literal default
        arch: str = "",
        device: str = "auto",
        batch_size: int = 0,
        preprocess: str = "auto",
    ) -> Artifact:
        # arch: clean_uri and compromised_uri are checkpoint files of this architecture
        # (e.g. the released ViT-B/16s, docs/OFFICIAL.md), evaluated as --role clean and
        # --role compromised; "" = our model folders.
        common = {"profile": profile, "params_yaml": params_yaml, "pushgateway": opts.pushgateway}
        common.update(device=device, batch_size=batch_size, preprocess=preprocess)
        # Fetch tasks, not importers: an importer cannot sit inside the ParallelFor
        # (kubeflow/pipelines#10860), and a fetch reads the bytes stored now.
        data = stages.fetch_dataset(uri=dataset_uri).set_display_name("fetch dataset")
        clean = stages.fetch_model(uri=clean_uri).set_display_name("fetch clean")
        comp = stages.fetch_model(uri=compromised_uri).set_display_name("fetch compromised")
        ev_clean = stages.evaluate(
            data=data.outputs["dataset"],
            model=clean.outputs["model"],
            seed=seed,
            overrides=eval_set,
            arch=arch,
            role="clean",
            **common,
        )
        ev_comp = stages.evaluate(
            data=data.outputs["dataset"],
            model=comp.outputs["model"],
            clean=ev_clean.outputs["evaluation"],
            compromised=comp.outputs["model"],
            seed=seed,
            overrides=eval_set,
            arch=arch,
            role="compromised",
            **common,
        )
        tasks = [
            data,
            clean,
            comp,
            ev_clean.set_display_name("eval clean"),
            ev_comp.set_display_name("eval compromised"),
        ]
        with dsl.ParallelFor(
            unlearned_uris, name="per-checkpoint", parallelism=opts.parallelism
        ) as uri:
            model = stages.fetch_model(uri=uri).set_display_name("fetch unlearned")
            ev = stages.evaluate(
                data=data.outputs["dataset"],
                model=model.outputs["model"],
                clean=ev_clean.outputs["evaluation"],
                compromised=ev_comp.outputs["evaluation"],
                seed=seed,
                overrides=eval_set,
                **common,
            )
            if opts.pushgateway and opts.baselines:
                ev.set_env_variable("SALMUBENCH_BASELINES", opts.baselines)
            tasks += [model, ev.set_display_name("eval unlearned")]
        rep = stages.report(
            clean=ev_clean.outputs["evaluation"],
            compromised=ev_comp.outputs["evaluation"],
            evals=dsl.Collected(ev.outputs["evaluation"]),
            title="SALMUBench re-evaluation",
            profile=profile,
            params_yaml=params_yaml,
            pushgateway=opts.pushgateway,
        )
        tasks.append(rep.set_display_name("report"))
        for task in tasks:
            evaluation = task.component_spec.name == "evaluate"
            _k8s(task.set_caching_options(False), opts, gpu=evaluation)
        return rep.outputs["folder"]

    return pipeline


def import_official(opts: Options = Options()) -> Callable:
    from salmubench_components import stages

    opts.validate()

    @dsl.pipeline(
        name="salmubench-import-official",
        description="The released SALMUBench splits (a folder or prefix named by URI) "
        "imported as one of our dataset folders: the `dataset_uri` of the unlearn-eval "
        "and reevaluate pipelines (docs/OFFICIAL.md).",
    )
    def pipeline(
        official_uri: str,
        genknow_per_class: int = 0,
        genknow_classes: int = 0,
        params_yaml: str = opts.params_text(),
    ) -> Dataset:
        release = dsl.importer(artifact_uri=official_uri, artifact_class=Dataset, reimport=False)
        task = stages.import_official(
            official=release.output,
            genknow_per_class=genknow_per_class,
            genknow_classes=genknow_classes,
            params_yaml=params_yaml,
            pushgateway=opts.pushgateway,
        )
        _k8s(task.set_display_name("import official"), opts)
        return task.outputs["dataset"]

    return pipeline


PIPELINES: dict[str, Callable[[Options], Callable]] = {
    "benchmark": benchmark,
    "unlearn-eval": unlearn_eval,
    "reevaluate": reevaluate,
    "import-official": import_official,
}
