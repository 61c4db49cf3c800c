"""Baselines: recorded once per model from its evaluation, in a folder or on S3 (moto's
server), read back by the re-evaluation; the drill refuses what it must not re-teach."""

from __future__ import annotations

import json

import pytest

from salmubench import monitor
from salmubench.config import ConfigError
from salmubench.eval.metrics import METRICS
from salmubench.manifest import write_manifest

DATASET = "ef" * 32
UNLEARNED = {"variant": "unlearned", "method": "delete", "seed": 1, "budget": 5.0,
             "dataset": DATASET, "digest": "a" * 64}  # fmt: skip


def evaluation(folder, model=UNLEARNED, value=0.25):
    folder.mkdir()
    write_manifest(folder, "eval", config={}, model=model,
                   metrics=dict.fromkeys(METRICS, value))  # fmt: skip
    return folder


def test_a_baseline_is_recorded_once_per_model_and_read_back(tmp_path):
    store = tmp_path / "store"
    where = monitor.record_baseline(evaluation(tmp_path / "e1"), str(store))
    assert where == f"{store}/{DATASET[:12]}/delete-b5-s1.json"
    record = json.loads((store / DATASET[:12] / "delete-b5-s1.json").read_text())
    assert record["metrics"] == dict.fromkeys(monitor.EFFICACY, 0.25)
    assert record["model_digest"] == "a" * 64
    labels = {"model": "delete-b5-s1", "dataset": DATASET[:12]}
    assert monitor.load_baseline(str(store), labels) == dict.fromkeys(monitor.EFFICACY, 0.25)
    assert monitor.load_baseline(str(store), {**labels, "model": "other"}) is None

    # The baseline is what the model knew when accepted: a later evaluation does not
    # silently replace it.
    later = evaluation(tmp_path / "e2", value=0.5)
    with pytest.raises(monitor.BaselineError, match="exists: pass --force"):
        monitor.record_baseline(later, str(store))
    monitor.record_baseline(later, str(store), force=True)
    assert monitor.load_baseline(str(store), labels)["retfail"] == 0.5


def test_references_have_no_baseline(tmp_path, capsys):
    from salmubench.cli import main

    clean = evaluation(tmp_path / "clean", model={"variant": "clean", "dataset": DATASET})
    with pytest.raises(monitor.BaselineError, match="baselines are for unlearned models"):
        monitor.record_baseline(clean, str(tmp_path / "store"))
    # The command says so and exits 2, as for any error a user can fix.
    code = main(["monitor", "baseline", "--eval", str(clean), "--store", str(tmp_path / "s")])
    assert code == 2
    assert "baselines are for unlearned models" in capsys.readouterr().err


def test_baselines_on_s3(tmp_path, s3, s3_env):
    from s3server import BUCKET

    store = f"s3://{BUCKET}/monitoring/baselines"
    where = monitor.record_baseline(evaluation(tmp_path / "e"), store)
    assert where == f"{store}/{DATASET[:12]}/delete-b5-s1.json"
    labels = {"model": "delete-b5-s1", "dataset": DATASET[:12]}
    assert monitor.load_baseline(store, labels) == dict.fromkeys(monitor.EFFICACY, 0.25)
    assert monitor.load_baseline(store, {**labels, "model": "none"}) is None


def test_the_drill_refuses_a_model_that_was_not_unlearned(micro_dataset, micro_models, tmp_path):
    with pytest.raises(ConfigError, match="the drill re-teaches an unlearned one"):
        monitor.drill(micro_dataset, micro_models["compromised"], tmp_path / "out")
    with pytest.raises(ConfigError, match="need steps >= 1"):
        monitor.DrillConfig(steps=0).validate()
