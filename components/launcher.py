"""Distributed training from a pipeline: TrainJob / PyTorchJob as data, then follow it.

Everything that decides what runs is a pure function over plain values (the command, the
custom resource, the reading of `status.conditions`), so tests check them without a
cluster. The custom resources are built from the operators' own published models
(`kubeflow-training` for PyTorchJob, `kubeflow-trainer-api` for TrainJob), created with
fieldValidation=Strict and deleted when they end. `launch` is the only part that talks to
Kubernetes or spawns processes.

Both kinds run the same command, `torchrun -m salmubench train ...`: the operators inject
the rendezvous settings as `PET_*` variables (plus MASTER_ADDR/RANK/... for PyTorchJob),
which torchrun reads, and the library reads rank and world size from the environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LAUNCHERS = ("local", "trainjob", "pytorchjob")
TRAINJOB = ("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
PYTORCHJOB = ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
# Condition types that end a job, per kind (TrainJob: Complete/Failed via its JobSet;
# PyTorchJob: Succeeded/Failed, the Training Operator v1 job conditions).
DONE = {"TrainJob": ("Complete", "Failed"), "PyTorchJob": ("Succeeded", "Failed")}
DEFAULT_RUNTIME = "torch-distributed"  # the ClusterTrainingRuntime Trainer v2 ships
SHARED_VOLUME = "shared"
_NAME = re.compile(r"[^a-z0-9-]+")


class JobFailed(RuntimeError):
    """The training job ended in failure; the message is the job's own reason."""


def check_launcher(launcher: str) -> str:
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid: {', '.join(LAUNCHERS)}")
    return launcher


def train_args(
    data: str,
    out: str,
    variant: str,
    profile: str,
    seed: int,
    overrides: Sequence[str] = (),
    params: str | None = None,
) -> list[str]:
    """The `salmubench train ...` arguments: the same stage command as everywhere."""
    args = [
        "train",
        "--data",
        data,
        "--variant",
        variant,
        "--profile",
        profile,
        "--seed",
        str(seed),
        "--out",
        out,
        "--force",
    ]
    if params:
        args += ["--params", params]
    for item in overrides:
        args += ["--set", item]
    return args


def torchrun_command(args: Sequence[str], *, standalone_nproc: int | None = None) -> list[str]:
    """`torchrun [--standalone --nproc_per_node=N] -m salmubench <args>`.

    In a cluster no rendezvous flags are given: the operator's PET_* variables carry them,
    so one command serves every replica of both job kinds.
    """
    cmd = ["torchrun"]
    if standalone_nproc is not None:
        cmd += ["--standalone", f"--nproc_per_node={standalone_nproc}"]
    return [*cmd, "-m", "salmubench", *args]


# The longest names the operators derive from a job name, for up to 1000 nodes:
# PyTorchJob Services/pods `<name>-worker-<i>` (Training Operator v1 checks each is a DNS-1035
# label); TrainJob -> JobSet `<name>`, Jobs `<name>-<replicated job>-<j>`, pods
# `<name>-node-<j>-<i>-<5 random>` (the JobSet webhook validates these lengths on create),
# and Trainer runtimes may add replicated jobs named `dataset-initializer`/`model-initializer`.
DERIVED_SUFFIXES = ("-worker-998", "-node-0-999-abcde", "-dataset-initializer-0-0-abcde")
NAME_MAX = 63 - max(map(len, DERIVED_SUFFIXES))  # 33: every derived name stays <= 63
HASH_CHARS = 10


def job_name(prefix: str, unique: str) -> str:
    """`<prefix>-<hash>`: a DNS-1035 label of <= NAME_MAX characters for any `unique`.

    `unique` (a KFP run id, a 36-character UUID) goes in whole through a sha256 suffix, so
    two runs never share a name; the readable prefix is cut to fit, never the hash.
    """
    digest = hashlib.sha256(f"{prefix}/{unique}".encode()).hexdigest()[:HASH_CHARS]
    head = _NAME.sub("-", prefix.lower()).strip("-")
    head = head[: NAME_MAX - HASH_CHARS - 1].strip("-")
    if not head or not head[0].isalpha():  # DNS-1035: a letter first
        head = "j" + head[: NAME_MAX - HASH_CHARS - 2]
    return f"{head}-{digest}"


# The TrainJob field that carries per-job pod settings differs between Trainer releases
# (kubeflow-trainer-api X.Y models): podSpecOverrides in 2.0, podTemplateOverrides in 2.1,
# runtimePatches from 2.2. Under the API server's default field validation an unknown field
# is dropped silently (the volume mount would vanish), hence a version, and Strict creates.
TRAINER_VERSIONS = ("2.0", "2.1", "2.2", "2.3")
OVERRIDE_FIELD = {
    "2.0": "podSpecOverrides",
    "2.1": "podTemplateOverrides",
    "2.2": "runtimePatches",
    "2.3": "runtimePatches",
}
PATCH_MANAGER = "salmubench.io/launcher"  # who owns our runtimePatches entry (2.2+)
TRAINER_NODE = "node"  # the replicated job and container of Trainer's torch runtimes
# In Kubeflow profile namespaces Istio injects a sidecar into every pod; the job's pods
# must opt out or the rendezvous hangs (kubeflow/trainer#2794).
ISTIO_OPT_OUT = {"sidecar.istio.io/inject": "false"}
JOB_TTL_SECONDS = 3600  # PyTorchJob: removed an hour after it ends, if the delete missed


def check_trainer_version(version: str) -> str:
    if version not in TRAINER_VERSIONS:
        raise ValueError(
            f"unknown Trainer version {version!r}; valid: {', '.join(TRAINER_VERSIONS)} "
            "(or 'auto' in a cluster: read from the TrainJob CRD)"
        )
    return version


@dataclass(frozen=True)
class JobSpec:
    """What one training job needs, independent of the custom resource that carries it."""

    name: str
    namespace: str
    image: str
    command: list[str]
    nodes: int = 1  # pods (PyTorchJob: 1 Master + nodes-1 Workers)
    procs_per_node: int = 1
    gpus_per_node: int = 0
    pvc: str = ""  # claim holding the dataset and receiving the model
    mount: str = "/shared"
    env: tuple[tuple[str, str], ...] = ()  # plain values (endpoints, run id)
    # (env var, Secret, key): credentials by reference, never copied into the job
    secret_env: tuple[tuple[str, str, str], ...] = ()
    runtime: str = DEFAULT_RUNTIME
    trainer_version: str = TRAINER_VERSIONS[-1]
    istio_opt_out: bool = True

    def validate(self) -> None:
        if self.nodes < 1 or self.procs_per_node < 1 or self.gpus_per_node < 0:
            raise ValueError(
                f"nodes={self.nodes}, procs_per_node={self.procs_per_node}, "
                f"gpus_per_node={self.gpus_per_node}: need nodes >= 1, procs >= 1, gpus >= 0"
            )
        if self.nodes > 1000:
            raise ValueError(f"nodes={self.nodes}: at most 1000 (derived names must fit)")
        if self.image.endswith(":latest"):
            raise ValueError(f"image {self.image!r}: use an immutable tag, not :latest")
        if len(self.name) > NAME_MAX:
            raise ValueError(
                f"job name {self.name!r} has {len(self.name)} characters: at most {NAME_MAX}, "
                "so that the names the operators derive stay <= 63 (use job_name())"
            )
        check_trainer_version(self.trainer_version)


def _k8s_pod_parts(spec: JobSpec):
    """(env, volumes, mounts, resources) as kubernetes client models (PyTorchJob)."""
    from kubernetes import client as k8s

    env = [k8s.V1EnvVar(name=k, value=v) for k, v in spec.env]
    env += [
        k8s.V1EnvVar(
            name=var,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key)
            ),
        )
        for var, secret, key in spec.secret_env
    ]
    volumes = mounts = None
    if spec.pvc:
        volumes = [
            k8s.V1Volume(
                name=SHARED_VOLUME,
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=spec.pvc
                ),
            )
        ]
        mounts = [k8s.V1VolumeMount(name=SHARED_VOLUME, mount_path=spec.mount)]
    limits = {"nvidia.com/gpu": str(spec.gpus_per_node)} if spec.gpus_per_node else None
    return env or None, volumes, mounts, k8s.V1ResourceRequirements(limits=limits)


def build_pytorchjob(spec: JobSpec) -> dict[str, Any]:
    """A Training Operator v1 PyTorchJob from its published models (kubeflow-training).

    Container `pytorch` (the operator's name for it), one Master and nodes-1 Workers; the
    job's pods opt out of Istio; the job is removed JOB_TTL_SECONDS after it ends.
    """
    from kubeflow.training import models as kt
    from kubeflow.training.constants import constants
    from kubernetes import client as k8s

    spec.validate()
    env, volumes, mounts, resources = _k8s_pod_parts(spec)
    labels = dict(ISTIO_OPT_OUT) if spec.istio_opt_out else None

    def replica(count: int):
        container = k8s.V1Container(
            name=constants.PYTORCHJOB_CONTAINER,
            image=spec.image,
            command=list(spec.command),
            env=env,
            resources=resources,
            volume_mounts=mounts,
        )
        return kt.KubeflowOrgV1ReplicaSpec(
            replicas=count,
            restart_policy="Never",
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels, annotations=labels),
                spec=k8s.V1PodSpec(containers=[container], volumes=volumes),
            ),
        )

    replicas = {"Master": replica(1)}
    if spec.nodes > 1:
        replicas["Worker"] = replica(spec.nodes - 1)
    group, version, _, kind = PYTORCHJOB
    job = kt.KubeflowOrgV1PyTorchJob(
        api_version=f"{group}/{version}",
        kind=kind,
        metadata=k8s.V1ObjectMeta(name=spec.name, namespace=spec.namespace),
        spec=kt.KubeflowOrgV1PyTorchJobSpec(
            # nprocPerNode makes the operator set PET_NPROC_PER_NODE for torchrun.
            nproc_per_node=str(spec.procs_per_node),
            run_policy=kt.KubeflowOrgV1RunPolicy(
                backoff_limit=0,
                clean_pod_policy="None",
                ttl_seconds_after_finished=JOB_TTL_SECONDS,
            ),
            pytorch_replica_specs=replicas,
        ),
    )
    return k8s.ApiClient().sanitize_for_serialization(job)


def build_trainjob(spec: JobSpec) -> dict[str, Any]:
    """A Kubeflow Trainer v2 TrainJob from its published models (kubeflow-trainer-api).

    The fields common to 2.0-2.3 (runtimeRef, trainer) and the 2.2+ runtimePatches are
    built from the models; for 2.0/2.1 the same pod settings are carried in that release's
    own override field. `make lint` checks the result against each release's models.
    Never sets the PET_* variables Trainer injects itself.
    """
    from kubeflow_trainer_api import models as ta

    spec.validate()
    reserved = [k for k, _ in spec.env if k.startswith("PET_")]
    reserved += [k for k, _, _ in spec.secret_env if k.startswith("PET_")]
    if reserved:
        raise ValueError(f"env {reserved} is reserved: Trainer injects PET_* itself")
    version = spec.trainer_version
    if version == "2.0" and spec.istio_opt_out:
        raise ValueError(
            "Trainer 2.0 cannot label a TrainJob's pods (podSpecOverrides has no pod "
            "metadata), so the Istio sidecar opt-out is impossible per job: use Trainer "
            ">= 2.1, launcher 'pytorchjob', or a runtime whose pod template sets "
            "sidecar.istio.io/inject=false and istio_opt_out=False"
        )
    env = [ta.IoK8sApiCoreV1EnvVar(name=k, value=v) for k, v in spec.env]
    env += [
        ta.IoK8sApiCoreV1EnvVar(
            name=var,
            value_from=ta.IoK8sApiCoreV1EnvVarSource(
                secret_key_ref=ta.IoK8sApiCoreV1SecretKeySelector(name=secret, key=key)
            ),
        )
        for var, secret, key in spec.secret_env
    ]
    trainer = ta.TrainerV1alpha1Trainer(
        image=spec.image,
        command=list(spec.command),
        num_nodes=spec.nodes,
        num_proc_per_node=spec.procs_per_node,
        env=env or None,
        resources_per_node=_trainer_resources(spec.gpus_per_node),
    )
    pod = _trainjob_pod_patch(spec)
    body = ta.TrainerV1alpha1TrainJobSpec(
        runtime_ref=ta.TrainerV1alpha1RuntimeRef(
            name=spec.runtime, api_group=TRAINJOB[0], kind="ClusterTrainingRuntime"
        ),
        trainer=trainer,
        runtime_patches=[_runtime_patch(pod)] if pod and version in ("2.2", "2.3") else None,
    ).to_dict()
    if pod and version == "2.1":
        body["podTemplateOverrides"] = [{"targetJobs": [{"name": TRAINER_NODE}], **pod.to_dict()}]
    elif pod and version == "2.0":
        body["podSpecOverrides"] = [{"targetJobs": [{"name": TRAINER_NODE}], **pod.spec.to_dict()}]
    group, api_version, _, kind = TRAINJOB
    job = ta.TrainerV1alpha1TrainJob(
        api_version=f"{group}/{api_version}",
        kind=kind,
        metadata=ta.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=spec.name, namespace=spec.namespace
        ),
    ).to_dict()
    return {**job, "spec": body}


def _trainer_resources(gpus: int):
    from kubeflow_trainer_api import models as ta

    if not gpus:
        return None
    quantity = ta.IoK8sApimachineryPkgApiResourceQuantity(str(gpus))
    return ta.IoK8sApiCoreV1ResourceRequirements(limits={"nvidia.com/gpu": quantity})


def _trainjob_pod_patch(spec: JobSpec):
    """The node pods' labels, volume and mount (a PodTemplatePatch), or None if none."""
    from kubeflow_trainer_api import models as ta

    if not spec.pvc and not spec.istio_opt_out:
        return None
    pod_spec = None
    if spec.pvc:
        pod_spec = ta.TrainerV1alpha1PodSpecPatch(
            volumes=[
                ta.IoK8sApiCoreV1Volume(
                    name=SHARED_VOLUME,
                    persistent_volume_claim=ta.IoK8sApiCoreV1PersistentVolumeClaimVolumeSource(
                        claim_name=spec.pvc
                    ),
                )
            ],
            containers=[
                ta.TrainerV1alpha1ContainerPatch(
                    name=TRAINER_NODE,
                    volume_mounts=[
                        ta.IoK8sApiCoreV1VolumeMount(name=SHARED_VOLUME, mount_path=spec.mount)
                    ],
                )
            ],
        )
    labels = dict(ISTIO_OPT_OUT) if spec.istio_opt_out else None
    return ta.TrainerV1alpha1PodTemplatePatch(
        metadata=ta.IoK8sApimachineryPkgApisMetaV1ObjectMeta(labels=labels, annotations=labels)
        if labels
        else None,
        spec=pod_spec,
    )


def _runtime_patch(pod):
    from kubeflow_trainer_api import models as ta

    return ta.TrainerV1alpha1RuntimePatch(
        manager=PATCH_MANAGER,
        training_runtime_spec=ta.TrainerV1alpha1TrainingRuntimeSpecPatch(
            template=ta.TrainerV1alpha1JobSetTemplatePatch(
                spec=ta.TrainerV1alpha1JobSetSpecPatch(
                    replicated_jobs=[
                        ta.TrainerV1alpha1ReplicatedJobPatch(
                            name=TRAINER_NODE,
                            template=ta.TrainerV1alpha1JobTemplatePatch(
                                spec=ta.TrainerV1alpha1JobSpecPatch(template=pod)
                            ),
                        )
                    ]
                )
            )
        ),
    )


def build_job(launcher: str, spec: JobSpec) -> dict[str, Any]:
    check_launcher(launcher)
    if launcher == "local":
        raise ValueError("launcher 'local' builds no custom resource; it runs torchrun here")
    return build_trainjob(spec) if launcher == "trainjob" else build_pytorchjob(spec)


def job_state(kind: str, status: dict[str, Any] | None) -> tuple[str, str]:
    """('running' | 'succeeded' | 'failed', message) from a job's `status` dict.

    A terminal condition counts only while its status is "True"; the message of a failure
    is the job's own `reason: message`, so the pipeline shows why, not just that, it failed.
    """
    if kind not in DONE:
        raise ValueError(f"unknown job kind {kind!r}; valid: {', '.join(DONE)}")
    ok, bad = DONE[kind]
    conditions = (status or {}).get("conditions") or []
    for cond in conditions:
        if cond.get("type") == bad and str(cond.get("status")) == "True":
            reason = cond.get("reason") or "Failed"
            return "failed", f"{reason}: {cond.get('message') or 'no message'}"
    for cond in conditions:
        if cond.get("type") == ok and str(cond.get("status")) == "True":
            return "succeeded", cond.get("message") or cond.get("reason") or ok
    latest = conditions[-1] if conditions else {}
    return "running", latest.get("reason") or latest.get("type") or "pending"


def follow(
    get_status: Callable[[], dict[str, Any] | None],
    kind: str,
    *,
    poll_seconds: float = 10.0,
    timeout_seconds: float = 24 * 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll `get_status()` until the job ends; its success message, or raise JobFailed."""
    waited = 0.0
    last = None
    while True:
        state, message = job_state(kind, get_status())
        if message != last:
            log.info("%s: %s (%s)", kind, state, message)
            last = message
        if state == "succeeded":
            return message
        if state == "failed":
            raise JobFailed(f"{kind} failed: {message}")
        if waited >= timeout_seconds:
            raise JobFailed(f"{kind} still running after {timeout_seconds:.0f} s: {message}")
        sleep(poll_seconds)
        waited += poll_seconds


def run_local(args: Sequence[str], nproc: int) -> None:
    """`torchrun --standalone --nproc_per_node=N -m salmubench train ...` as a subprocess."""
    cmd = torchrun_command(args, standalone_nproc=nproc)
    # torchrun from the running interpreter's environment, whatever PATH holds.
    cmd[0] = str(Path(sys.executable).with_name("torchrun"))
    log.info("running %s", " ".join(cmd))
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise RuntimeError(f"torchrun exited with status {code}: {' '.join(cmd)}")


def _kubernetes():
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi(), client.ApiextensionsV1Api()


def trainer_version_from_crd(crd: dict[str, Any]) -> str:
    """The Trainer field set a TrainJob CRD (its served v1alpha1 schema) accepts."""
    for version in crd.get("spec", {}).get("versions", []):
        if version.get("name") != TRAINJOB[1]:
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema", {})
        fields = schema.get("properties", {}).get("spec", {}).get("properties", {})
        for release in reversed(TRAINER_VERSIONS):
            if OVERRIDE_FIELD[release] in fields:
                return release
        raise ValueError(
            f"TrainJob CRD has none of {sorted(set(OVERRIDE_FIELD.values()))} in spec "
            f"(fields: {sorted(fields)}): a Trainer release this launcher does not know; "
            f"set trainer_version to one of {', '.join(TRAINER_VERSIONS)}"
        )
    raise ValueError(f"TrainJob CRD serves no {TRAINJOB[1]} version")


def detect_trainer_version(extensions) -> str:
    """Read the installed TrainJob CRD; needs `get` on that CRD (k8s/base/rbac)."""
    from kubernetes.client.exceptions import ApiException

    name = f"{TRAINJOB[2]}.{TRAINJOB[0]}"
    try:
        crd = extensions.read_custom_resource_definition(name)
    except ApiException as e:
        raise ValueError(
            f"cannot read CRD {name} to pick the TrainJob fields (HTTP {e.status} "
            f"{e.reason}): grant the launcher `get` on it, or set trainer_version to one of "
            f"{', '.join(TRAINER_VERSIONS)}"
        ) from e
    data = crd if isinstance(crd, dict) else extensions.api_client.sanitize_for_serialization(crd)
    return trainer_version_from_crd(data)


class _Cancelled(Exception):
    """SIGTERM (KFP cancelled the run or deleted the pod): delete the job, then stop."""


def submit_and_follow(
    api,
    kind: str,
    body: dict[str, Any],
    *,
    poll_seconds: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Create the job (fieldValidation=Strict), follow it, and delete it however it ends.

    A job of the same name left by an earlier attempt of this task (a KFP retry) is
    deleted first: it belongs to the same run and variant, and a 409 would fail the retry.
    Strict validation makes the API server reject a field this operator version lacks,
    instead of silently dropping it.
    """
    from kubernetes.client.exceptions import ApiException

    group, version, plural, _ = TRAINJOB if kind == "TrainJob" else PYTORCHJOB
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    args = (group, version, namespace, plural)

    def create():
        api.create_namespaced_custom_object(*args, body, field_validation="Strict")

    try:
        create()
    except ApiException as e:
        if e.status != 409:
            raise JobFailed(f"{kind} {namespace}/{name} rejected: {e.status} {e.body}") from e
        log.info("%s %s/%s exists (an earlier attempt): replacing it", kind, namespace, name)
        _delete(api, args, name, wait=True, sleep=sleep)
        create()
    log.info("created %s %s/%s", kind, namespace, name)

    def get_status():
        return api.get_namespaced_custom_object(*args, name).get("status")

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise _Cancelled()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, on_term)
    try:
        return follow(get_status, kind, poll_seconds=poll_seconds, sleep=sleep)
    except _Cancelled:
        raise JobFailed(f"{kind} {namespace}/{name}: cancelled, job deleted") from None
    finally:
        _delete(api, args, name, wait=False, sleep=sleep)
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _delete(api, args, name: str, *, wait: bool, sleep, timeout_seconds: float = 120) -> None:
    """Delete a job with its pods (foreground); with `wait`, until it is gone."""
    from kubernetes.client.exceptions import ApiException

    try:
        api.delete_namespaced_custom_object(*args, name, propagation_policy="Foreground")
    except ApiException as e:
        if e.status != 404:
            log.warning("could not delete %s: %s %s", name, e.status, e.reason)
        return
    waited = 0.0
    while wait:
        try:
            api.get_namespaced_custom_object(*args, name)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        if waited >= timeout_seconds:
            raise JobFailed(f"{name} still exists {timeout_seconds:.0f} s after its deletion")
        sleep(2.0)
        waited += 2.0


# What the job's pods get from the launcher pod: telemetry and storage endpoints, the run
# id; the S3 credentials by reference to the same Secret.
PASSED_ENV = ("SALMUBENCH_PUSHGATEWAY", "SALMUBENCH_RUN_ID", "AWS_ENDPOINT_URL_S3")
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def job_env(environ: dict[str, str], s3_secret: str):
    """(env, secret_env) for the job's pods, from the launcher pod's environment."""
    env = tuple((k, environ[k]) for k in PASSED_ENV if environ.get(k))
    secret_env = tuple((k, s3_secret, k) for k in S3_SECRET_KEYS) if s3_secret else ()
    return env, secret_env


@dataclass(frozen=True)
class TrainRequest:
    """One training as the train component receives it: what to train, and where and how
    to run it. The one list of these settings: the component passes them by name."""

    data: str  # the dataset folder
    out: str  # the model folder to write
    variant: str  # clean | compromised
    profile: str
    seed: int = 0
    overrides: Sequence[str] = ()  # `--set key=value` items
    params_yaml: str = ""  # the text of a params.yaml ("" = the image's own)
    launcher: str = "local"  # local | trainjob | pytorchjob
    nodes: int = 1
    procs_per_node: int = 1
    gpus_per_node: int = 0
    image: str = ""  # the job's image ("" = this component's)
    namespace: str = ""  # the job's namespace ("" = this pod's)
    pvc: str = ""  # the claim shared with the job's pods (a cluster launcher needs one)
    mount: str = "/shared"  # where that claim is mounted, here and in the job's pods
    trainer_version: str = "auto"  # TrainJob's field set ("auto" = read from its CRD)
    s3_secret: str = ""  # the Secret the job's pods read S3 credentials from
    istio_opt_out: bool = True  # the job's pods skip Istio's sidecar (rendezvous hangs)

    def validate(self) -> TrainRequest:
        """Refuse what cannot run, before any work, even when local."""
        check_launcher(self.launcher)
        if self.trainer_version != "auto":
            check_trainer_version(self.trainer_version)
        if self.launcher == "local" and self.nodes != 1:
            raise ValueError(
                f"nodes={self.nodes} with launcher 'local': one machine only; use launcher "
                "'trainjob' or 'pytorchjob' for several nodes"
            )
        if self.launcher != "local" and not self.pvc:
            raise ValueError(
                f"launcher {self.launcher!r} needs a shared PersistentVolumeClaim (pvc) "
                f"mounted at {self.mount!r} in this pod and the job's pods, to hand over the "
                "dataset and model"
            )
        return self

    def train_args(self, data: str, out: str, params: str | None) -> list[str]:
        """The stage command for these folders (here, or as the job's pods see them)."""
        return train_args(data, out, self.variant, self.profile, self.seed, self.overrides,
                          params)  # fmt: skip


def run_cluster(
    request: TrainRequest, *, unique: str, poll_seconds: float = 10.0
) -> dict[str, Any]:
    """Stage inputs on the shared claim, create the job, follow it, copy the model back."""
    r = request.validate()
    trainer_version = r.trainer_version
    name = job_name(f"salmubench-{r.variant}", unique)
    api, extensions = _kubernetes()
    if r.launcher == "trainjob" and trainer_version == "auto":
        trainer_version = detect_trainer_version(extensions)
        log.info("Trainer field set %s (from the TrainJob CRD)", trainer_version)
    work = Path(r.mount) / name
    shutil.copytree(r.data, work / "dataset", dirs_exist_ok=True)
    params = None
    if r.params_yaml:
        (work / "params.yaml").write_text(r.params_yaml, encoding="utf-8")
        params = str(work / "params.yaml")
    args = r.train_args(str(work / "dataset"), str(work / "model"), params)
    env, secret_env = job_env(dict(os.environ), r.s3_secret)
    spec = JobSpec(
        name=name,
        namespace=r.namespace or _namespace(),
        image=r.image,
        command=torchrun_command(args),
        nodes=r.nodes,
        procs_per_node=r.procs_per_node,
        gpus_per_node=r.gpus_per_node,
        pvc=r.pvc,
        mount=r.mount,
        env=env,
        secret_env=secret_env,
        trainer_version=trainer_version if r.launcher == "trainjob" else TRAINER_VERSIONS[-1],
        istio_opt_out=r.istio_opt_out,
    )
    body = build_job(r.launcher, spec)
    submit_and_follow(api, body["kind"], body, poll_seconds=poll_seconds)
    shutil.copytree(work / "model", r.out, dirs_exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)  # the claim is shared: leave nothing behind
    return body


def launch(launcher: str, **settings: Any) -> None:
    """The train component's body: `salmubench train` via torchrun, here or as a job.

    `settings`: the fields of `TrainRequest` by name (an unknown one is a TypeError).
    """
    from salmubench_components import IMAGE
    from salmubench_components.shell import params_file

    request = TrainRequest(launcher=launcher, **settings).validate()
    print(f"[salmubench] train {request.variant} started ({launcher})", flush=True)
    start = time.perf_counter()
    if launcher == "local":
        path = params_file(request.params_yaml)
        try:
            run_local(request.train_args(request.data, request.out, path), request.procs_per_node)
        finally:
            if path:
                os.unlink(path)
    else:
        # The run id (the pod's run label): two runs never share a name, a retried task of
        # the same run does (and replaces its earlier job).
        unique = os.environ.get("SALMUBENCH_RUN_ID") or uuid.uuid4().hex
        run_cluster(dataclasses.replace(request, image=request.image or IMAGE), unique=unique)
    seconds = time.perf_counter() - start
    print(f"[salmubench] train {request.variant} finished in {seconds:.1f} s", flush=True)


def _namespace() -> str:
    """The pod's own namespace (service account mount), else 'kubeflow'."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return (
        path.read_text().strip() if path.is_file() else os.environ.get("POD_NAMESPACE", "kubeflow")
    )
