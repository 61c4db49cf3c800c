"""The scheduled re-evaluation pushes beside the baselines: compiled with a Pushgateway,
each unlearned checkpoint's evaluation gets the baseline store in its environment (what
turns on `salmubench.monitor.report_reevaluation` in the stage's telemetry hook); without
one, nothing changes."""

from __future__ import annotations

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
