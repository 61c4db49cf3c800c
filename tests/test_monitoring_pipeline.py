"""The scheduled re-evaluation pushes beside the baselines: compiled with a Pushgateway,
each unlearned checkpoint's evaluation gets the baseline store in its environment (what
turns on `salmubench.monitor.report_reevaluation` in the stage's telemetry hook); without
one, nothing changes."""

from __future__ import annotations

import pytest
import yaml

from salmubench import monitor


def compiled_env(tmp_path, **options) -> dict[str, dict[str, str]]:
    """executor name -> {env name: value} of the compiled reevaluate pipeline."""
    from kfp import compiler
    from salmubench_pipelines.definitions import Options, reevaluate

    path = tmp_path / "reevaluate.yaml"
    compiler.Compiler().compile(reevaluate(Options(**options)), str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    executors = docs[0]["deploymentSpec"]["executors"]
    return {
        name: {e["name"]: e.get("value") for e in spec["container"].get("env", [])}
        for name, spec in executors.items()
    }


def test_the_reevaluation_of_unlearned_models_reads_the_baselines(tmp_path):
    env = compiled_env(tmp_path, pushgateway="http://salmubench-pushgateway:9091",
                       baselines="s3://bucket/baselines")  # fmt: skip
    with_store = {n for n, e in env.items() if e.get(monitor.BASELINES_ENV)}
    # Exactly one executor: the unlearned checkpoints' evaluation (not Clean/Compromised).
    assert len(with_store) == 1, env
    [name] = with_store
    assert env[name][monitor.BASELINES_ENV] == "s3://bucket/baselines"
    assert not any(monitor.BASELINES_ENV in e for e in compiled_env(tmp_path).values())


def test_a_failed_monitored_reevaluation_pushes_its_failure(tmp_path, monkeypatch):
    """The component shell: an eval with a baseline store that fails pushes the failure
    timestamp to the model's group (POST, beside its last values); one without a store,
    or that succeeds, pushes no failure."""
    from salmubench_components.shell import run_stage
    from test_telemetry import Pushgateway

    from salmubench import telemetry
    from salmubench.manifest import write_manifest

    model = tmp_path / "model"
    model.mkdir()
    write_manifest(model, "model", config={}, inputs={"dataset": "12" * 32},
                   variant="unlearned", method="delete", seed=0, budget=5.0)  # fmt: skip
    argv = ["eval", "--data", str(tmp_path / "no-dataset"), "--model", str(model),
            "--out", str(tmp_path / "eval"), "--profile", "micro", "--quiet"]  # fmt: skip
    gateway = Pushgateway()
    monkeypatch.setenv(telemetry.GATEWAY_ENV, "")  # run_stage sets it; restored afterwards
    try:
        monkeypatch.delenv(monitor.BASELINES_ENV, raising=False)
        with pytest.raises(RuntimeError, match="salmubench eval failed"):
            run_stage(argv, pushgateway=gateway.url)
        assert gateway.pushes == []

        monkeypatch.setenv(monitor.BASELINES_ENV, str(tmp_path / "baselines"))
        with pytest.raises(RuntimeError, match="salmubench eval failed"):
            run_stage(argv, pushgateway=gateway.url)
        [(method, key, samples)] = gateway.pushes
    finally:
        gateway.close()
    assert method == "POST"  # added to the group: the last current/baseline values stay
    assert key == {"job": monitor.JOB, "model": "delete-b5-s0", "dataset": "12" * 6}
    [(labels, stamp)] = samples[monitor.LAST_FAILURE]
    assert labels == {} and stamp > 0
