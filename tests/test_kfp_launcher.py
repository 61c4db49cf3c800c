"""The training launcher: TrainJob / PyTorchJob specs and the reading of job status."""

from __future__ import annotations

import dataclasses
import inspect
import re
import uuid

import pytest
from kubernetes.client.exceptions import ApiException
from salmubench_components.launcher import (
    NAME_MAX,
    OVERRIDE_FIELD,
    PASSED_ENV,
    TRAINER_VERSIONS,
    JobFailed,
    JobSpec,
    TrainRequest,
    build_job,
    build_pytorchjob,
    build_trainjob,
    check_launcher,
    follow,
    job_env,
    job_name,
    job_state,
    launch,
    submit_and_follow,
    torchrun_command,
    train_args,
    trainer_version_from_crd,
)


def _spec(**kw) -> JobSpec:
    args = train_args(
        "/shared/j/dataset",
        "/shared/j/model",
        "compromised",
        "tiny",
        0,
        ["steps=100"],
        "/shared/j/params.yaml",
    )
    base = dict(
        name="salmubench-compromised-abc",
        namespace="ml",
        image="reg/salmubench:0.1.0",
        command=torchrun_command(args),
        nodes=3,
        procs_per_node=2,
        gpus_per_node=1,
        pvc="salmubench-shared",
    )
    return JobSpec(**{**base, **kw})


def _runs_salmubench_train(command: list[str]) -> None:
    assert command[0] == "torchrun"
    i = command.index("-m")
    assert command[i + 1 : i + 3] == ["salmubench", "train"]
    assert command[command.index("--variant") + 1] == "compromised"
    assert "--force" in command and command[command.index("--set") + 1] == "steps=100"


def test_pytorchjob_has_one_master_and_pytorch_containers():
    job = build_pytorchjob(_spec())
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas["Worker"]["replicas"] == 2  # nodes=3: one Master + two Workers
    assert job["spec"]["nprocPerNode"] == "2"
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        [container] = pod["containers"]
        assert container["name"] == "pytorch"
        assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
        _runs_salmubench_train(container["command"])
        assert container["volumeMounts"][0]["mountPath"] == "/shared"
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "salmubench-shared"
    # One node only: no Worker replica at all (the operator rejects replicas: 0 elsewhere).
    assert set(build_pytorchjob(_spec(nodes=1))["spec"]["pytorchReplicaSpecs"]) == {"Master"}


def test_trainjob_runs_torchrun_and_sets_no_reserved_env():
    job = build_trainjob(_spec(env=(("OMP_NUM_THREADS", "4"),)))
    assert (job["apiVersion"], job["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 2)
    assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert not [e for e in trainer.get("env", []) if e["name"].startswith("PET_")]
    _runs_salmubench_train(trainer["command"])
    assert job["spec"]["runtimeRef"]["name"] == "torch-distributed"
    with pytest.raises(ValueError, match=r"PET_NNODES.*reserved"):
        build_trainjob(_spec(env=(("PET_NNODES", "2"),)))


def _pod_patch(job: dict, version: str) -> tuple[dict | None, dict]:
    """(pod metadata, pod spec patch) wherever this Trainer version carries them."""
    spec = job["spec"]
    if version == "2.0":
        [o] = spec["podSpecOverrides"]
        assert o["targetJobs"] == [{"name": "node"}]
        return None, o
    if version == "2.1":
        [o] = spec["podTemplateOverrides"]
        assert o["targetJobs"] == [{"name": "node"}]
        return o.get("metadata"), o["spec"]
    [patch] = spec["runtimePatches"]
    assert patch["manager"] == "salmubench.io/launcher"
    [rjob] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert rjob["name"] == "node"
    pod = rjob["template"]["spec"]["template"]
    return pod.get("metadata"), pod["spec"]


@pytest.mark.parametrize("version", TRAINER_VERSIONS)
def test_trainjob_field_set_follows_the_trainer_version(version):
    env = (("SALMUBENCH_PUSHGATEWAY", "http://pg:9091"),)
    secret_env = (("AWS_ACCESS_KEY_ID", "salmubench-s3", "AWS_ACCESS_KEY_ID"),)
    spec = _spec(
        trainer_version=version, env=env, secret_env=secret_env, istio_opt_out=version != "2.0"
    )
    job = build_trainjob(spec)
    fields = {"podSpecOverrides", "podTemplateOverrides", "runtimePatches"} & set(job["spec"])
    assert fields == {OVERRIDE_FIELD[version]}  # exactly this release's field, no other
    metadata, pod = _pod_patch(job, version)
    assert pod["volumes"] == [
        {"name": "shared", "persistentVolumeClaim": {"claimName": "salmubench-shared"}}
    ]
    assert pod["containers"] == [
        {"name": "node", "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    ]
    if version != "2.0":
        assert metadata["labels"] == {"sidecar.istio.io/inject": "false"}
    env_out = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    assert env_out["SALMUBENCH_PUSHGATEWAY"]["value"] == "http://pg:9091"
    # Credentials by reference to the Secret, never their values in the job.
    assert env_out["AWS_ACCESS_KEY_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": "salmubench-s3", "key": "AWS_ACCESS_KEY_ID"}
    }


def test_trainer_versions_and_istio_limits_are_named():
    with pytest.raises(
        ValueError, match=r"unknown Trainer version '2.9'; valid: 2.0, 2.1, 2.2, 2.3"
    ):
        build_trainjob(_spec(trainer_version="2.9"))
    with pytest.raises(ValueError, match=r"Trainer 2.0 cannot label a TrainJob's pods"):
        build_trainjob(_spec(trainer_version="2.0"))
    with pytest.raises(ValueError, match=r"unknown Trainer version 'v2'"):
        launch("trainjob", data="d", out="m", variant="clean", profile="micro", seed=0,
               trainer_version="v2")  # fmt: skip
    with pytest.raises(ValueError, match=r"at most 33"):
        build_pytorchjob(_spec(name="salmubench-compromised-" + "0" * 36))


def _crd(*fields: str) -> dict:
    props = {f: {"type": "array"} for f in ("runtimeRef", "trainer", *fields)}
    version = {"name": "v1alpha1", "schema": {"openAPIV3Schema": {"properties": {
        "spec": {"properties": props}}}}}  # fmt: skip
    return {"spec": {"versions": [version]}}


def test_trainer_version_is_read_from_the_crd_schema():
    assert trainer_version_from_crd(_crd("podSpecOverrides")) == "2.0"
    assert trainer_version_from_crd(_crd("podTemplateOverrides")) == "2.1"
    assert trainer_version_from_crd(_crd("runtimePatches", "activeDeadlineSeconds")) == "2.3"
    with pytest.raises(ValueError, match=r"none of .*podSpecOverrides.*set trainer_version"):
        trainer_version_from_crd(_crd("somethingNew"))


class FakeCustomObjects:
    """The four CustomObjectsApi calls the launcher makes, with API-server answers."""

    def __init__(self, existing: bool = False, statuses=()) -> None:
        self.objects = {"salmubench-clean-0123456789": {"status": None}} if existing else {}
        self.statuses = list(statuses)
        self.calls: list[tuple] = []

    def create_namespaced_custom_object(self, group, version, ns, plural, body, **kw):
        self.calls.append(("create", plural, body["metadata"]["name"], kw))
        if body["metadata"]["name"] in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[body["metadata"]["name"]] = body

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        if name not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        status = self.statuses.pop(0) if self.statuses else None
        return {"status": status}

    def delete_namespaced_custom_object(self, group, version, ns, plural, name, **kw):
        self.calls.append(("delete", plural, name, kw))
        if self.objects.pop(name, None) is None:
            raise ApiException(status=404, reason="NotFound")


def test_jobs_are_created_strict_and_deleted_however_they_end():
    body = build_trainjob(_spec(name="salmubench-clean-0123456789"))
    done = {"conditions": [{"type": "Complete", "status": "True", "message": "ok"}]}
    api = FakeCustomObjects(statuses=[None, done])
    assert submit_and_follow(api, "TrainJob", body, sleep=lambda s: None) == "ok"
    assert api.calls[0] == ("create", "trainjobs", body["metadata"]["name"],
                            {"field_validation": "Strict"})  # fmt: skip
    assert api.calls[-1][0] == "delete" and not api.objects
    # A retried task finds its earlier job: replaced, not a 409 failure.
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "OOM"}]}
    api = FakeCustomObjects(existing=True, statuses=[failed])
    with pytest.raises(JobFailed, match="OOM"):
        submit_and_follow(api, "TrainJob", body, sleep=lambda s: None)
    kinds = [c[0] for c in api.calls]
    assert kinds == ["create", "delete", "create", "delete"]
    assert api.calls[1][3] == {"propagation_policy": "Foreground"} and not api.objects


def test_job_pods_get_endpoints_run_id_and_secret_references():
    environ = {
        "SALMUBENCH_PUSHGATEWAY": "http://pg:9091",
        "SALMUBENCH_RUN_ID": "0b9e4c1a-6f1d-4d5e-9a3b-2c7f8e1d0a55",
        "AWS_ENDPOINT_URL_S3": "http://minio.ns.svc.cluster.local:9000",
        "AWS_SECRET_ACCESS_KEY": "never-copied",
        "HOME": "/home/x",
    }
    env, secret_env = job_env(environ, "salmubench-s3")
    assert dict(env) == {k: environ[k] for k in PASSED_ENV}
    assert secret_env == (
        ("AWS_ACCESS_KEY_ID", "salmubench-s3", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "salmubench-s3", "AWS_SECRET_ACCESS_KEY"),
    )
    job = build_pytorchjob(_spec(env=env, secret_env=secret_env))
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        assert replica["template"]["metadata"]["labels"] == {"sidecar.istio.io/inject": "false"}
        [container] = replica["template"]["spec"]["containers"]
        assert "never-copied" not in str(container["env"])
    assert job["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 3600


def test_bad_launcher_and_sizes_name_the_valid_values():
    with pytest.raises(ValueError, match="'slurm'; valid: local, trainjob, pytorchjob"):
        check_launcher("slurm")
    with pytest.raises(ValueError, match="nodes=0"):
        build_job("pytorchjob", _spec(nodes=0))
    with pytest.raises(ValueError, match=r":latest"):
        build_job("trainjob", _spec(image="reg/salmubench:latest"))


def test_local_command_is_a_standalone_torchrun_of_the_same_stage():
    cmd = torchrun_command(["train", "--variant", "clean"], standalone_nproc=2)
    assert cmd == [
        "torchrun",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "salmubench",
        "train",
        "--variant",
        "clean",
    ]


DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_derived_names_fit_for_any_run_id():
    """Every name the operators derive from the job name is a DNS-1035 label of <= 63
    characters, for KFP's 36-character run ids (UUIDs), both variants, up to 1000 nodes."""
    names = set()
    for _ in range(200):
        run_id = str(uuid.uuid4())
        assert len(run_id) == 36
        for variant in ("clean", "compromised"):
            name = job_name(f"salmubench-{variant}", run_id)
            names.add(name)
            derived = [
                name,  # the job, the TrainJob's JobSet
                f"{name}-master-0",  # PyTorchJob Service and pod
                f"{name}-worker-998",  # the last Worker of 1000 nodes
                f"{name}-node-0",  # TrainJob: the JobSet's Job
                f"{name}-node-0-999-x7k2q",  # its last pod (generateName adds 5 chars)
                f"{name}-dataset-initializer-0-0-x7k2q",  # runtimes with initializers
            ]
            for d in derived:
                assert len(d) <= 63 and DNS1035.match(d), d
            assert name.startswith(f"salmubench-{variant}"[: NAME_MAX - 11])
    assert len(names) == 400  # the whole run id counts: no two runs share a name
    # Odd input still gives a valid label (a letter first), the hash kept whole.
    odd = job_name("9_Weird/Prefix" + "x" * 80, "Run_ID")
    assert DNS1035.match(odd) and len(odd) <= NAME_MAX and odd[-11] == "-"


CREATED = {"type": "Created", "status": "True", "reason": "PyTorchJobCreated"}
RUNNING = {"type": "Running", "status": "True", "reason": "PyTorchJobRunning"}


def test_job_state_reads_conditions():
    assert job_state("PyTorchJob", None) == ("running", "pending")
    assert job_state("PyTorchJob", {"conditions": [CREATED, RUNNING]})[0] == "running"
    done = {"type": "Succeeded", "status": "True", "message": "job succeeded"}
    assert job_state("PyTorchJob", {"conditions": [CREATED, done]}) == (
        "succeeded",
        "job succeeded",
    )
    # A condition that is no longer true does not end the job.
    stale = {"type": "Failed", "status": "False", "reason": "Old"}
    assert job_state("PyTorchJob", {"conditions": [stale, RUNNING]})[0] == "running"
    complete = {"type": "Complete", "status": "True", "reason": "JobsCompleted"}
    assert job_state("TrainJob", {"conditions": [complete]})[0] == "succeeded"
    with pytest.raises(ValueError, match="'TFJob'; valid: TrainJob, PyTorchJob"):
        job_state("TFJob", {})


def test_follow_fails_with_the_jobs_own_reason():
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "PyTorchJobFailed",
        "message": "PyTorchJob ml/x is failed because 1 Master replica(s) failed.",
    }
    statuses = iter(
        [
            None,
            {"conditions": [CREATED]},
            {"conditions": [CREATED, RUNNING]},
            {"conditions": [CREATED, RUNNING, failed]},
        ]
    )
    slept = []
    with pytest.raises(JobFailed) as e:
        follow(lambda: next(statuses), "PyTorchJob", poll_seconds=5, sleep=slept.append)
    assert str(e.value) == (
        "PyTorchJob failed: PyTorchJobFailed: PyTorchJob ml/x is failed because 1 Master "
        "replica(s) failed."
    )
    assert slept == [5, 5, 5]

    trainjob_failed = {
        "type": "Failed",
        "status": "True",
        "reason": "TrainingRuntimeNotFound",
        "message": 'ClusterTrainingRuntime "torch-distributed" not found',
    }
    with pytest.raises(JobFailed, match="TrainingRuntimeNotFound: ClusterTrainingRuntime"):
        follow(lambda: {"conditions": [trainjob_failed]}, "TrainJob", sleep=slept.append)


def test_follow_returns_on_success_and_times_out():
    statuses = iter(
        [{"conditions": [RUNNING]}, {"conditions": [{"type": "Complete", "status": "True"}]}]
    )
    assert follow(lambda: next(statuses), "TrainJob", sleep=lambda s: None) == "Complete"
    with pytest.raises(JobFailed, match="still running after 20 s"):
        follow(
            lambda: {"conditions": [RUNNING]},
            "PyTorchJob",
            poll_seconds=10,
            timeout_seconds=20,
            sleep=lambda s: None,
        )


def test_local_launcher_refuses_several_nodes():
    with pytest.raises(ValueError, match=r"nodes=2 with launcher 'local'.*'trainjob'"):
        launch("local", data="d", out="m", variant="clean", profile="micro", seed=0, nodes=2)


def test_a_train_request_is_one_list_of_settings_refused_before_any_work():
    with pytest.raises(TypeError, match="procs_per_nod"):
        launch("local", data="d", out="m", variant="clean", profile="micro", procs_per_nod=2)
    with pytest.raises(ValueError, match=r"launcher 'pytorchjob' needs a shared .*\(pvc\)"):
        launch("pytorchjob", data="d", out="m", variant="clean", profile="micro", nodes=2)
    # The train component passes every setting by name, under the request's field names.
    from salmubench_components import stages

    params = set(inspect.signature(stages.train.python_func).parameters)
    renamed = {"model": "out", "job_image": "image"}  # artifact path, the job's image
    component = {renamed.get(p, p) for p in params} - {"pushgateway"}  # this pod's setting
    assert component == {f.name for f in dataclasses.fields(TrainRequest)}
