"""Distributed training from a pipeline: TrainJob / PyTorchJob as data, then follow it.

Everything that decides what runs is a pure function over plain values (the command, the
custom resource, the reading of `status.conditions`), so tests check them without a
cluster. `launch` is the only part that talks to Kubernetes or spawns processes.

Both kinds run the same command, `torchrun -m salmubench train ...`: the operators inject
the rendezvous settings as `PET_*` variables (plus MASTER_ADDR/RANK/... for PyTorchJob),
which torchrun reads, and the library reads rank and world size from the environment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
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
    env: tuple[tuple[str, str], ...] = ()
    runtime: str = DEFAULT_RUNTIME

    def validate(self) -> None:
        if self.nodes < 1 or self.procs_per_node < 1 or self.gpus_per_node < 0:
            raise ValueError(
                f"nodes={self.nodes}, procs_per_node={self.procs_per_node}, "
                f"gpus_per_node={self.gpus_per_node}: need nodes >= 1, procs >= 1, gpus >= 0"
            )
        if self.image.endswith(":latest"):
            raise ValueError(f"image {self.image!r}: use an immutable tag, not :latest")


def _resources(gpus: int) -> dict[str, Any]:
    return {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}


def _volumes(spec: JobSpec) -> tuple[list[dict], list[dict]]:
    if not spec.pvc:
        return [], []
    return (
        [{"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": spec.pvc}}],
        [{"name": SHARED_VOLUME, "mountPath": spec.mount}],
    )


def build_pytorchjob(spec: JobSpec) -> dict[str, Any]:
    """A Training Operator v1 PyTorchJob: container `pytorch`, one Master, nodes-1 Workers."""
    spec.validate()
    volumes, mounts = _volumes(spec)

    def replica(count: int) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "pytorch",  # the operator finds the training container by this name
            "image": spec.image,
            "command": list(spec.command),
            "env": [{"name": k, "value": v} for k, v in spec.env],
            "resources": _resources(spec.gpus_per_node),
        }
        if mounts:
            container["volumeMounts"] = mounts
        pod: dict[str, Any] = {"containers": [container]}
        if volumes:
            pod["volumes"] = volumes
        return {"replicas": count, "restartPolicy": "Never", "template": {"spec": pod}}

    replicas = {"Master": replica(1)}
    if spec.nodes > 1:
        replicas["Worker"] = replica(spec.nodes - 1)
    group, version, _, kind = PYTORCHJOB
    return {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "spec": {
            # nprocPerNode makes the operator set PET_NPROC_PER_NODE for torchrun.
            "nprocPerNode": str(spec.procs_per_node),
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": replicas,
        },
    }


def build_trainjob(spec: JobSpec) -> dict[str, Any]:
    """A Kubeflow Trainer v2 TrainJob on the torch runtime; never sets reserved PET_* env."""
    spec.validate()
    reserved = [k for k, _ in spec.env if k.startswith("PET_")]
    if reserved:
        raise ValueError(f"env {reserved} is reserved: Trainer injects PET_* itself")
    trainer: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "numNodes": spec.nodes,
        "numProcPerNode": spec.procs_per_node,
    }
    if spec.env:
        trainer["env"] = [{"name": k, "value": v} for k, v in spec.env]
    if spec.gpus_per_node:
        trainer["resourcesPerNode"] = _resources(spec.gpus_per_node)
    body: dict[str, Any] = {
        "runtimeRef": {
            "name": spec.runtime,
            "apiGroup": TRAINJOB[0],
            "kind": "ClusterTrainingRuntime",
        },
        "trainer": trainer,
    }
    volumes, mounts = _volumes(spec)
    if volumes:
        body["podTemplateOverrides"] = [
            {
                "targetJobs": [{"name": "node"}],
                "spec": {
                    "volumes": volumes,
                    "containers": [{"name": "node", "volumeMounts": mounts}],
                },
            }
        ]
    group, version, _, kind = TRAINJOB
    return {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "spec": body,
    }


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


def _custom_objects_api():
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def run_cluster(
    launcher: str,
    *,
    data: str,
    out: str,
    variant: str,
    profile: str,
    seed: int,
    overrides: Sequence[str],
    params_text: str,
    image: str,
    namespace: str,
    nodes: int,
    procs_per_node: int,
    gpus_per_node: int,
    pvc: str,
    mount: str,
    unique: str,
    poll_seconds: float = 10.0,
) -> dict[str, Any]:
    """Stage inputs on the shared claim, create the job, follow it, copy the model back."""
    if not pvc:
        raise ValueError(
            f"launcher {launcher!r} needs a shared PersistentVolumeClaim (pvc) mounted at "
            f"{mount!r} in this pod and the job's pods, to hand over the dataset and model"
        )
    name = job_name(f"salmubench-{variant}", unique)
    work = Path(mount) / name
    shutil.copytree(data, work / "dataset", dirs_exist_ok=True)
    params = None
    if params_text:
        (work / "params.yaml").write_text(params_text, encoding="utf-8")
        params = str(work / "params.yaml")
    args = train_args(
        str(work / "dataset"), str(work / "model"), variant, profile, seed, overrides, params
    )
    spec = JobSpec(
        name=name,
        namespace=namespace or _namespace(),
        image=image,
        command=torchrun_command(args),
        nodes=nodes,
        procs_per_node=procs_per_node,
        gpus_per_node=gpus_per_node,
        pvc=pvc,
        mount=mount,
    )
    body = build_job(launcher, spec)
    group, version, plural, kind = TRAINJOB if launcher == "trainjob" else PYTORCHJOB
    api = _custom_objects_api()
    api.create_namespaced_custom_object(group, version, spec.namespace, plural, body)
    log.info("created %s %s/%s", kind, spec.namespace, name)

    def get_status():
        obj = api.get_namespaced_custom_object(group, version, spec.namespace, plural, name)
        return obj.get("status")

    follow(get_status, kind, poll_seconds=poll_seconds)
    shutil.copytree(work / "model", out, dirs_exist_ok=True)
    return body


def launch(
    launcher: str,
    *,
    data: str,
    out: str,
    variant: str,
    profile: str,
    seed: int,
    overrides: Sequence[str] = (),
    params_yaml: str = "",
    nodes: int = 1,
    procs_per_node: int = 1,
    gpus_per_node: int = 0,
    image: str = "",
    namespace: str = "",
    pvc: str = "",
    mount: str = "/shared",
) -> None:
    """The train component's body: `salmubench train` via torchrun, here or as a job."""
    from salmubench_components import IMAGE
    from salmubench_components.shell import params_file

    check_launcher(launcher)
    if launcher == "local" and nodes != 1:
        raise ValueError(
            f"nodes={nodes} with launcher 'local': one machine only; use launcher "
            "'trainjob' or 'pytorchjob' for several nodes"
        )
    print(f"[salmubench] train {variant} started ({launcher})", flush=True)
    start = time.perf_counter()
    if launcher == "local":
        path = params_file(params_yaml)
        try:
            args = train_args(data, out, variant, profile, seed, overrides, path)
            run_local(args, procs_per_node)
        finally:
            if path:
                os.unlink(path)
    else:
        run_cluster(
            launcher,
            data=data,
            out=out,
            variant=variant,
            profile=profile,
            seed=seed,
            overrides=overrides,
            params_text=params_yaml,
            image=image or IMAGE,
            namespace=namespace,
            nodes=nodes,
            procs_per_node=procs_per_node,
            gpus_per_node=gpus_per_node,
            pvc=pvc,
            mount=mount,
            # Unique per run (the pod's run label) so two runs never collide on a name.
            unique=os.environ.get("SALMUBENCH_RUN_ID") or uuid.uuid4().hex[:8],
        )
    seconds = time.perf_counter() - start
    print(f"[salmubench] train {variant} finished in {seconds:.1f} s", flush=True)


def _namespace() -> str:
    """The pod's own namespace (service account mount), else 'kubeflow'."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return (
        path.read_text().strip() if path.is_file() else os.environ.get("POD_NAMESPACE", "kubeflow")
    )
