"""The three pipelines, built from the stage components for a set of compile options.

- `salmubench-benchmark`: synth -> train Clean and Compromised -> evaluate both -> per
  (method, seed) in parallel: unlearn -> evaluate -> report.
- `salmubench-unlearn-eval`: one (new) method against an existing dataset, Compromised
  model and reference evaluations, given as artifact URIs.
- `salmubench-reevaluate`: existing checkpoints re-evaluated and reported, caching off
  (a scheduled re-evaluation with unchanged inputs would otherwise compute nothing).

Compile options (`Options`) are what KFP fixes at compile time: the image, GPU requests of
the training tasks, the S3 credentials Secret. Everything else is a pipeline parameter.
"""

from collections.abc import Callable
from dataclasses import dataclass

import yaml
from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Model

from salmubench.config import find_params

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

    gpus: int = 0  # GPUs requested by each training task (the 'local' launcher trains there)
    accelerator: str = "nvidia.com/gpu"  # the resource name of those GPUs
    s3_secret: str = "salmubench-s3"  # Secret with AWS_ACCESS_KEY_ID/SECRET; "" = none
    # PVC mounted at SHARED_MOUNT on the train tasks: how a 'trainjob'/'pytorchjob' launcher
    # hands the dataset to the job's pods and gets the model back. "" = none (local only).
    shared_pvc: str = ""
    params_yaml: str | None = None  # default params text; None = this checkout's params.yaml
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

    def validate(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"gpus={self.gpus}: expected an integer >= 0")
        if self.parallelism < 0:
            raise ValueError(f"parallelism={self.parallelism}: expected an integer >= 0")

    def params_text(self) -> str:
        """The params as ONE line of YAML (flow style): kfp copies parameter defaults
        into the compiled file's header comment line by line, and only the first line of
        a multi-line text gets its '#', which makes the file invalid YAML."""
        text = self.params_yaml
        if text is None:
            text = find_params().read_text(encoding="utf-8")
        # YAML flow style, not json.dumps: PyYAML reads JSON's 5e-05 back as a string.
        data = yaml.safe_load(text)
        return yaml.safe_dump(
            data, default_flow_style=True, width=float("inf"), sort_keys=True
        ).strip()


def _k8s(
    task: dsl.PipelineTask, opts: Options, *, train: bool = False, launcher: bool = False
) -> dsl.PipelineTask:
    """The Kubernetes settings every task gets (ignored by the local runner)."""
    if opts.s3_secret:
        kubernetes.use_secret_as_env(task, secret_name=opts.s3_secret, secret_key_to_env=S3_KEYS)
    if opts.s3_endpoint:
        task.set_env_variable("AWS_ENDPOINT_URL_S3", opts.s3_endpoint)
    kubernetes.use_field_path_as_env(task, "SALMUBENCH_RUN_ID", RUN_ID_FIELD)
    if launcher and opts.shared_pvc:  # only the launcher hands data to other pods
        kubernetes.mount_pvc(task, pvc_name=opts.shared_pvc, mount_path=SHARED_MOUNT)
    if train and opts.gpus:
        task.set_accelerator_type(opts.accelerator).set_accelerator_limit(opts.gpus)
    if not opts.caching:
        task.set_caching_options(False)
    return task


def benchmark(opts: Options = Options()) -> Callable:
    from salmubench_components import stages

    opts.validate()

    @dsl.pipeline(
        name="salmubench-benchmark",
        description="SALMUBench: dataset, Clean and Compromised CLIP, unlearning per method "
        "in parallel, ten-metric evaluation, leaderboard report.",
    )
    def pipeline(
        profile: str = "tiny",
        seed: int = 0,
        methods: str = "all",
        seeds: list[int] = [0],  # noqa: B006 - KFP needs a literal default
        budget: float = 0.0,
        params_yaml: str = opts.params_text(),
        synth_set: list[str] = [],  # noqa: B006
        train_set: list[str] = [],  # noqa: B006
        unlearn_set: list[str] = [],  # noqa: B006
        eval_set: list[str] = [],  # noqa: B006
        launcher: str = "local",
        train_nodes: int = 1,
        train_procs_per_node: int = 1,
        train_gpus_per_node: int = 0,
        job_image: str = "",
        namespace: str = "",
        trainer_version: str = "auto",
        pushgateway: str = "",
        publish_git_url: str = "",
        publish_dvc_remote: str = "minio",
    ) -> Artifact:
        common = {"profile": profile, "params_yaml": params_yaml, "pushgateway": pushgateway}
        runs = _k8s(stages.plan(methods=methods, seeds=seeds).set_display_name("plan runs"), opts)
        data = _k8s(stages.synth(seed=seed, overrides=synth_set, **common), opts)
        data.set_display_name("synth")
        models = {}
        for variant in ("clean", "compromised"):
            t = stages.train(
                data=data.outputs["dataset"],
                variant=variant,
                seed=seed,
                overrides=train_set,
                launcher=launcher,
                nodes=train_nodes,
                procs_per_node=train_procs_per_node,
                gpus_per_node=train_gpus_per_node,
                job_image=job_image,
                namespace=namespace,
                pvc=opts.shared_pvc,
                mount=SHARED_MOUNT,
                trainer_version=trainer_version,
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
        _k8s(ev_clean.set_display_name("eval clean"), opts)
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
        _k8s(ev_comp.set_display_name("eval compromised"), opts)
        with dsl.ParallelFor(
            runs.output, name="per-method-seed", parallelism=opts.parallelism
        ) as run:
            u = stages.unlearn(
                data=data.outputs["dataset"],
                model=models["compromised"].outputs["model"],
                method=run.method,
                seed=run.seed,
                budget=budget,
                overrides=unlearn_set,
                **common,
            )
            _k8s(u.set_display_name("unlearn"), opts, train=True)
            ev = stages.evaluate(
                data=data.outputs["dataset"],
                model=u.outputs["unlearned"],
                clean=ev_clean.outputs["evaluation"],
                compromised=ev_comp.outputs["evaluation"],
                seed=seed,
                overrides=eval_set,
                **common,
            )
            _k8s(ev.set_display_name("eval unlearned"), opts)
        rep = stages.report(
            clean=ev_clean.outputs["evaluation"],
            compromised=ev_comp.outputs["evaluation"],
            evals=dsl.Collected(ev.outputs["evaluation"]),
            **common,
        )
        _k8s(rep.set_display_name("report"), opts)
        if opts.publish:
            pub = stages.publish(
                data=data.outputs["dataset"],
                clean=models["clean"].outputs["model"],
                compromised=models["compromised"].outputs["model"],
                clean_eval=ev_clean.outputs["evaluation"],
                compromised_eval=ev_comp.outputs["evaluation"],
                unlearned=dsl.Collected(u.outputs["unlearned"]),
                evals=dsl.Collected(ev.outputs["evaluation"]),
                report=rep.outputs["folder"],
                git_url=publish_git_url,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                dvc_remote=publish_dvc_remote,
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


def unlearn_eval(opts: Options = Options()) -> Callable:
    from salmubench_components import stages

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
        pushgateway: str = "",
    ):
        common = {"profile": profile, "params_yaml": params_yaml, "pushgateway": pushgateway}
        runs = _k8s(stages.plan(methods=method, seeds=seeds).set_display_name("plan runs"), opts)
        data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
        model = dsl.importer(artifact_uri=compromised_uri, artifact_class=Model, reimport=False)
        ev_clean = dsl.importer(artifact_uri=clean_eval_uri, artifact_class=Artifact)
        ev_comp = dsl.importer(artifact_uri=compromised_eval_uri, artifact_class=Artifact)
        with dsl.ParallelFor(runs.output, name="per-seed", parallelism=opts.parallelism) as run:
            u = stages.unlearn(
                data=data.output,
                model=model.output,
                method=run.method,
                seed=run.seed,
                budget=budget,
                overrides=unlearn_set,
                **common,
            )
            _k8s(u.set_display_name("unlearn"), opts, train=True)
            ev = stages.evaluate(
                data=data.output,
                model=u.outputs["unlearned"],
                clean=ev_clean.output,
                compromised=ev_comp.output,
                seed=seed,
                overrides=eval_set,
                **common,
            )
            _k8s(ev.set_display_name("eval unlearned"), opts)
        rep = stages.report(
            clean=ev_clean.output,
            compromised=ev_comp.output,
            evals=dsl.Collected(ev.outputs["evaluation"]),
            **common,
        )
        _k8s(rep.set_display_name("report"), opts)

    return pipeline


def reevaluate(opts: Options = Options()) -> Callable:
    from salmubench_components import stages

    opts.validate()

    @dsl.pipeline(
        name="salmubench-reevaluate",
        description="Re-evaluate existing checkpoints (Clean, Compromised, unlearned) and "
        "rebuild the report; caching is off so every scheduled run recomputes.",
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
        pushgateway: str = "",
    ):
        common = {"profile": profile, "params_yaml": params_yaml, "pushgateway": pushgateway}
        # reimport: a checkpoint overwritten in place must be read again, not recalled.
        data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=True)
        clean = dsl.importer(artifact_uri=clean_uri, artifact_class=Model, reimport=True)
        comp = dsl.importer(artifact_uri=compromised_uri, artifact_class=Model, reimport=True)
        imported = [data, clean, comp]
        ev_clean = stages.evaluate(
            data=data.output, model=clean.output, seed=seed, overrides=eval_set, **common
        )
        ev_comp = stages.evaluate(
            data=data.output,
            model=comp.output,
            clean=ev_clean.outputs["evaluation"],
            compromised=comp.output,
            seed=seed,
            overrides=eval_set,
            **common,
        )
        tasks = [
            ev_clean.set_display_name("eval clean"),
            ev_comp.set_display_name("eval compromised"),
        ]
        with dsl.ParallelFor(
            unlearned_uris, name="per-checkpoint", parallelism=opts.parallelism
        ) as uri:
            model = dsl.importer(artifact_uri=uri, artifact_class=Model, reimport=True)
            ev = stages.evaluate(
                data=data.output,
                model=model.output,
                clean=ev_clean.outputs["evaluation"],
                compromised=ev_comp.outputs["evaluation"],
                seed=seed,
                overrides=eval_set,
                **common,
            )
            imported.append(model)
            tasks.append(ev.set_display_name("eval unlearned"))
        rep = stages.report(
            clean=ev_clean.outputs["evaluation"],
            compromised=ev_comp.outputs["evaluation"],
            evals=dsl.Collected(ev.outputs["evaluation"]),
            title="SALMUBench re-evaluation",
            **common,
        )
        tasks.append(rep.set_display_name("report"))
        for task in imported:
            task.set_caching_options(False)
        for task in tasks:
            _k8s(task.set_caching_options(False), opts)

    return pipeline


PIPELINES: dict[str, Callable[[Options], Callable]] = {
    "benchmark": benchmark,
    "unlearn-eval": unlearn_eval,
    "reevaluate": reevaluate,
}
