"""The unlearn stage: budget, bad input, the holdout guard, 2 processes, resume, determinism,
and `salmubench bench` end to end on micro."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from salmubench.cli import main
from salmubench.config import ConfigError, stage_config
from salmubench.engine.state import partial_dir
from salmubench.manifest import read_manifest, sha256_file
from salmubench.models import load_model
from salmubench.unlearn import method_names
from salmubench.unlearn.data import (
    HoldoutAccessError,
    open_for_unlearning,
    readable,
    retain_subset,
)
from salmubench.unlearn.loop import ForeignModelError, forget_samples, unlearn

from helpers import TORCHRUN, finish, kill_after_checkpoint, spawn

REPO = Path(__file__).resolve().parents[1]


def unlearn_args(data: Path, model: Path, out: Path, method: str, *extra: str) -> list[str]:
    return ["unlearn", "--data", str(data), "--model", str(model), "--method", method,
            "--profile", "micro", "--out", str(out), "-q", *extra]  # fmt: skip


def test_budget_one_is_one_pass_over_forget(tmp_path, micro_dataset, micro_manifest, micro_models):
    out = tmp_path / "ft"
    # retain_size is a setting of methods that use retain data; neg_grad does not
    assert main(unlearn_args(micro_dataset, micro_models["compromised"], out, "neg_grad",
                             "--budget", "1", "--set", "retain_size=50")) == 0  # fmt: skip
    manifest = read_manifest(out, kind="model", verify=True)
    n = forget_samples(micro_manifest)
    assert manifest["steps"] == math.ceil(n / 16)  # micro forget_batch
    assert manifest["epochs"]["forget"] == pytest.approx(manifest["steps"] * 16 / n)
    assert 1 <= manifest["epochs"]["forget"] < 1 + 16 / n
    assert manifest["budget"] == 1.0 and manifest["reads"] == ["forget_association",
                                                               "forget_identity"]  # fmt: skip
    assert manifest["unlearning"]["samples"] == {"forget": n}
    log = [json.loads(line) for line in (out / "unlearn_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == manifest["steps"] and "forget" in log[-1]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--method", "forget_all"], ["'forget_all'", "neg_grad", "cliperase"]),
        (["--set", "retain=[holdout_identity]"], ["holdout_identity", "retain_joint"]),
        (["--set", "retain=[genknow]"], ["genknow", "holdout"]),
        (["--set", "forget_batch=0"], ["forget_batch=0"]),
        (["--set", "methods.grad_diff.retain_wieght=2"], ["retain_wieght", "retain_weight"]),
        (["--set", "retain_size=999999"], ["retain_size=999999", "hold only"]),
        (["--model", "/nonexistent/model"], ["/nonexistent/model", "does not exist"]),
    ],
)
def test_bad_input_is_refused_before_any_step(
    tmp_path, capsys, micro_dataset, micro_models, extra, expected
):
    out = tmp_path / "u"
    argv = unlearn_args(micro_dataset, micro_models["compromised"], out, "grad_diff")
    argv += extra  # a repeated option: the last one wins
    assert main(argv) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, (text, err)
    assert not out.exists() and not partial_dir(out).exists()


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "lots"])
def test_a_budget_that_is_not_positive_is_refused(tmp_path, capsys, micro_dataset, micro_models,
                                                  budget):  # fmt: skip
    out = tmp_path / "u"
    with pytest.raises(SystemExit) as exc:
        main(unlearn_args(micro_dataset, micro_models["compromised"], out, "neg_grad",
                          "--budget", budget))  # fmt: skip
    assert exc.value.code == 2
    assert "budget" in capsys.readouterr().err
    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    with pytest.raises(ConfigError, match="budget"):
        unlearn(micro_dataset, micro_models["compromised"], "neg_grad", cfg, out, budget=0)
    assert not out.exists()


def test_a_model_of_another_dataset_is_refused_naming_both_digests(
    tmp_path, capsys, caplog, micro_dataset, micro_manifest, micro_models
):
    other = tmp_path / "other-model"
    shutil.copytree(micro_models["compromised"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    foreign = "f" * 64
    manifest["inputs"]["dataset"] = foreign  # trained, as far as it says, on another dataset
    (other / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "u"
    assert main(unlearn_args(micro_dataset, other, out, "neg_grad", "--budget", "0.1")) == 2
    err = capsys.readouterr().err
    assert foreign in err and micro_manifest["digest"] in err and "--allow-foreign-model" in err
    assert not out.exists() and not partial_dir(out).exists()
    # The override runs it, and says so.
    with caplog.at_level("WARNING", logger="salmubench"):
        assert main(unlearn_args(micro_dataset, other, out, "neg_grad", "--budget", "0.1",
                                 "--allow-foreign-model")) == 0  # fmt: skip
    assert read_manifest(out, kind="model", verify=True)["inputs"]["model"] == manifest["digest"]
    assert any("NOT THE COMPROMISED MODEL" in r.getMessage() for r in caplog.records)


def test_a_model_that_is_not_the_compromised_one_is_refused(tmp_path, micro_dataset, micro_models):
    cfg = stage_config("unlearn", "micro", ["budget=0.1"], params_path=REPO / "params.yaml")
    with pytest.raises(ForeignModelError, match="'clean' model, not the Compromised one"):
        unlearn(micro_dataset, micro_models["clean"], "neg_grad", cfg, tmp_path / "u")
    assert not (tmp_path / "u").exists()
    unlearn(micro_dataset, micro_models["compromised"], "neg_grad", cfg, tmp_path / "v")
    assert read_manifest(tmp_path / "v", kind="model")["source"]["variant"] == "compromised"


def test_retain_size_is_checked_against_the_training_parts_only(micro_dataset, micro_manifest):
    splits = ("retain_joint", "retain_disjoint", "retain_real")
    manifest = open_for_unlearning(micro_dataset, splits)
    everything = sum(micro_manifest["counts"][s] for s in splits)
    trainable = len(retain_subset(manifest, splits, 0, seed=0))  # 0 = all it may use
    assert 0 < trainable < everything  # evaluated retain items are held back
    drawn = retain_subset(manifest, splits, trainable, seed=0)
    assert sorted(drawn.tolist()) == sorted(retain_subset(manifest, splits, 0, 0).tolist())
    message = rf"retain_size={trainable + 1}: the training parts .* hold only {trainable} samples"
    with pytest.raises(ConfigError, match=rf"{message} .* Valid: 0\.\.{trainable}"):
        retain_subset(manifest, splits, trainable + 1, seed=0)
    with pytest.raises(ValueError, match="open_for_unlearning"):  # which part is which?
        retain_subset(micro_manifest, splits, 10, seed=0)


def test_the_holdout_guard_refuses_every_split_a_method_must_not_see(micro_dataset):
    for split in ("holdout_identity", "holdout_association", "genknow", "fragile"):
        with pytest.raises(HoldoutAccessError, match=split):
            readable(split)
        with pytest.raises(HoldoutAccessError, match=split):
            open_for_unlearning(micro_dataset, [split])
    assert readable("retain_real") == "retain_real"


def test_two_processes_compute_what_one_does(tmp_path, micro_dataset, micro_models):
    """vlunlearn uses every input (forget, retain, the original): gathered features make
    the loss of 2 processes the loss of 1."""
    args = ["--set", "budget=0.4"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(unlearn_args(micro_dataset, micro_models["compromised"], one, "vlunlearn",
                             *args)) == 0  # fmt: skip
    proc = spawn(unlearn_args(micro_dataset, micro_models["compromised"], two, "vlunlearn", *args),
                 launcher=TORCHRUN)  # fmt: skip
    stderr = finish(proc)
    assert proc.returncode == 0, stderr[-3000:]
    m1, m2 = read_manifest(one), read_manifest(two, verify=True)
    assert m2["world_size"] == 2 and m1["steps"] == m2["steps"] >= 3
    a, b = load_model(one).model.state_dict(), load_model(two).model.state_dict()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-4), name


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, micro_dataset, micro_models):
    args = ["--budget", "3", "--set", "checkpoint_every=2", "--set", "retain_size=50"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(unlearn_args(micro_dataset, micro_models["compromised"], whole, "grad_diff",
                             *args)) == 0  # fmt: skip
    proc = spawn(unlearn_args(micro_dataset, micro_models["compromised"], killed, "grad_diff",
                              *args))  # fmt: skip
    state = partial_dir(killed) / "state.pt"
    kill_after_checkpoint(proc, state)
    assert not killed.exists()
    at = torch.load(state, weights_only=True)["step"]
    steps = read_manifest(whole)["steps"]
    assert 0 < at < steps
    assert main(unlearn_args(micro_dataset, micro_models["compromised"], killed, "grad_diff",
                             *args)) == 2  # fmt: skip
    assert main(unlearn_args(micro_dataset, micro_models["compromised"], killed, "grad_diff",
                             *args, "--resume")) == 0  # fmt: skip
    resumed = read_manifest(killed, kind="model", verify=True)
    assert resumed["unlearning"]["samples"]["retain"] == 50  # the seeded retain subset
    assert resumed["unlearning"]["steps_this_run"] == steps - at
    a, b = load_model(whole).model.state_dict(), load_model(killed).model.state_dict()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_unlearning_is_deterministic_and_the_seed_matters(tmp_path, micro_dataset, micro_models):
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / name
        assert main(unlearn_args(micro_dataset, micro_models["compromised"], out,
                                 "shuffled_captions", "--seed", seed)) == 0  # fmt: skip
        runs[name] = sha256_file(out / "model.pt")
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_bench_runs_the_comparison_then_reuses_every_finished_stage(
    tmp_path, capsys, micro_dataset, micro_models
):
    out = tmp_path / "run"
    # the session's micro dataset and models were made with the same profile and seed: reused
    shutil.copytree(micro_dataset, out / "dataset")
    for variant, path in micro_models.items():
        shutil.copytree(path, out / variant)
    argv = ["bench", "--profile", "micro", "--out", str(out), "--methods",
            "direct_sim_min,finetune", "--seeds", "0", "1"]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "[14/14] report" in first and "direct_sim_min" in first
    assert first.count("up to date, reused") == 3  # dataset, clean, compromised
    board = json.loads((out / "report" / "leaderboard.json").read_text())
    rows = {r["method"]: r for r in board["rows"] if r["method"]}
    assert set(rows) == {"direct_sim_min", "finetune"}
    assert all(r["n"] == 2 for r in rows.values())
    for name in ("report.html", "leaderboard.md", "tradeoff.png", "metrics.png"):
        assert (out / "report" / name).stat().st_size > 0
    read_manifest(out / "report", kind="report", verify=True)
    timings = json.loads((out / "bench.json").read_text())
    assert {"eval clean", "unlearn finetune-b1-s1", "report"} <= set(timings["stages"])
    assert "synth" not in timings["stages"]

    assert main(argv) == 0  # everything finished is reused: only the report is rebuilt
    second = capsys.readouterr().out
    assert second.count("up to date, reused") == 13
    assert list(json.loads((out / "bench.json").read_text())["stages"]) == ["report"]

    assert main([*argv[:-3], "--methods", "everything"]) == 2
    assert "'everything'" in capsys.readouterr().err

    # the report command on the same evals, with a stricter collapse threshold
    report = tmp_path / "strict"
    assert main(["report", "--runs", str(out), "--out", str(report), "--profile", "micro",
                 "--set", "max_genknow_drop=0.01"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| 1 |" in printed and "report.html" in printed and "1%" in printed
    assert main(["report", "--runs", str(out), "--out", str(report)]) == 2  # exists: refused
    assert "--force" in capsys.readouterr().err


def test_methods_command_lists_every_method_with_its_settings(capsys):
    assert main(["methods", "--profile", "tiny"]) == 0
    printed = capsys.readouterr().out
    for name in method_names():
        assert f"\n{name} " in f"\n{printed}"
    assert "retain_weight" in printed and "uses: forget, generic" in printed
