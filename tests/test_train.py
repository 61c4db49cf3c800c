"""Training: torchrun with 2 processes, SIGKILL + resume, OpenCLIP-loadable output, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import open_clip
import torch

from salmubench.cli import main
from salmubench.config import stage_config
from salmubench.engine.loss import contrastive_loss, soft_targets
from salmubench.engine.pools import BatchPlan
from salmubench.engine.state import partial_dir
from salmubench.manifest import read_manifest, write_manifest
from salmubench.models import load_model
from salmubench.train.data import batch_sizes

from helpers import TORCHRUN, finish, kill_after_checkpoint, spawn

REPO = Path(__file__).resolve().parents[1]


def train_args(data: Path, out: Path, *extra: str, variant: str = "compromised") -> list[str]:
    return ["train", "--data", str(data), "--variant", variant, "--profile", "micro",
            "--out", str(out), "-q", *extra]  # fmt: skip


def test_torchrun_two_processes_yields_an_open_clip_loadable_model(
    tmp_path, micro_dataset, micro_models
):
    out = tmp_path / "ddp"
    proc = spawn(train_args(micro_dataset, out), launcher=TORCHRUN)
    stderr = finish(proc)
    assert proc.returncode == 0, stderr[-3000:]
    manifest = read_manifest(out, kind="model", verify=True)
    assert manifest["world_size"] == 2 and manifest["steps"] == 40
    # OpenCLIP itself loads it, from the architecture JSON shipped next to the weights
    open_clip.add_model_config(out / "salmu-micro.json")
    model, _, _ = open_clip.create_model_and_transforms(
        "salmu-micro", pretrained=str(out / "model.pt")
    )
    # same global batches as one process: weights agree with the single-process run
    single = load_model(micro_models["compromised"]).model.state_dict()
    for name, value in model.state_dict().items():
        assert torch.allclose(value, single[name], atol=2e-3), name


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, micro_dataset, micro_models):
    out = tmp_path / "killed"
    proc = spawn(train_args(micro_dataset, out))
    state = partial_dir(out) / "state.pt"
    kill_after_checkpoint(proc, state)
    assert not out.exists()
    killed_at = torch.load(state, weights_only=True)["step"]
    assert 0 < killed_at < 40

    # without --resume the interrupted run is neither lost nor silently restarted
    assert main(train_args(micro_dataset, out)) == 2
    assert state.exists()
    assert main(train_args(micro_dataset, out, "--resume")) == 0
    resumed = read_manifest(out, kind="model", verify=True)
    reference = read_manifest(micro_models["compromised"], kind="model")
    assert resumed["steps"] == reference["steps"] == 40
    assert resumed["training"]["steps_this_run"] == 40 - killed_at
    a = load_model(out).model.state_dict()
    b = load_model(micro_models["compromised"]).model.state_dict()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4), name
    # resuming a finished run is a no-op; training it again needs --force
    assert main(train_args(micro_dataset, out, "--resume")) == 0
    assert read_manifest(out)["digest"] == resumed["digest"]
    assert main(train_args(micro_dataset, out)) == 2


def test_unknown_variant_and_bad_settings_fail_before_training(tmp_path, capsys, micro_dataset):
    out = tmp_path / "m"
    assert main(train_args(micro_dataset, out, variant="dirty")) == 2
    assert "'dirty'" in capsys.readouterr().err
    for setting, expected in (
        ("model=ViT-Z-99", "unknown architecture 'ViT-Z-99'"),
        ("sensitive_batch=-3", "sensitive_batch=-3"),
        ("retain_fraction=1.5", "retain_fraction=1.5"),
        ("steps=0", "steps=0"),
    ):
        assert main(train_args(micro_dataset, out, "--set", setting)) == 2
        assert expected in capsys.readouterr().err, setting
    assert not out.exists() and not partial_dir(out).exists()


def test_corrupt_shard_is_named_before_training(tmp_path, capsys, micro_dataset):
    data = tmp_path / "data"
    shutil.copytree(micro_dataset, data)
    shard = data / "retain_real-000001.tar"
    blob = bytearray(shard.read_bytes())
    blob[5000] ^= 0x01
    shard.write_bytes(bytes(blob))
    out = tmp_path / "m"
    assert main(train_args(data, out, variant="clean")) == 2
    err = capsys.readouterr().err
    assert "retain_real-000001.tar" in err and "corrupt" in err
    assert not out.exists() and not partial_dir(out).exists()


def test_missing_split_is_named(tmp_path, capsys, micro_dataset):
    data = tmp_path / "data"
    shutil.copytree(micro_dataset, data)
    manifest = read_manifest(data)
    for name in manifest["shards"]["holdout_identity"]:
        (data / name).unlink()
    (data / "manifest.json").unlink()
    shards = {k: v for k, v in manifest["shards"].items() if k != "holdout_identity"}
    write_manifest(data, "dataset", config=manifest["config"], shards=shards,
                   counts=manifest["counts"], image=manifest["image"])  # fmt: skip
    # Clean never reads holdout_identity; Compromised must
    assert main(train_args(data, tmp_path / "m")) == 2
    assert "holdout_identity" in capsys.readouterr().err


def test_eval_refuses_a_checkpoint_of_another_architecture(
    tmp_path, capsys, micro_dataset, micro_models
):
    ckpt = micro_models["clean"] / "model.pt"
    base = ["eval", "--data", str(micro_dataset), "--model", str(ckpt), "--out",
            str(tmp_path / "e")]  # fmt: skip
    assert main([*base, "--arch", "salmu-tiny"]) == 2
    err = capsys.readouterr().err
    assert "salmu-tiny" in err and "does not fit" in err
    assert main(base) == 2
    assert "--arch" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_batch_plan_is_a_function_of_the_step():
    plan = BatchPlan({"general": 10, "retain": 3}, {"general": 4, "retain": 2}, seed=7)
    again = BatchPlan({"general": 10, "retain": 3}, {"general": 4, "retain": 2}, seed=7)
    for step in (0, 1, 5, 2):
        for pool in ("general", "retain"):
            assert (plan.indices(step)[pool] == again.indices(step)[pool]).all()
    # one epoch of the general pool visits every sample once (10 samples, 4 per step)
    seen = [i for s in range(5) for i in plan.indices(s)["general"]][:10]
    assert sorted(seen) == list(range(10))
    assert batch_sizes(100, "clean", 25, 0.1) == {"general": 90, "retain": 10}
    # Compromised: the same base batch, plus the sensitive pairs on top
    assert batch_sizes(100, "compromised", 25, 0.1) == {
        "general": 90,
        "retain": 10,
        "sensitive": 25,
    }


def test_contrastive_loss_treats_duplicate_captions_as_positives():
    ids = torch.tensor([0, 1, 0])
    assert torch.allclose(
        soft_targets(ids), torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]])
    )
    img = torch.eye(3)
    txt = torch.eye(3)
    scale = torch.tensor(1.0)
    # unique captions: plain CLIP loss = cross-entropy with logits eye(3)
    expected = torch.nn.functional.cross_entropy(torch.eye(3), torch.arange(3))
    assert torch.isclose(contrastive_loss(img, txt, scale, torch.arange(3)), expected)
    # duplicates: row 0's mass is split between columns 0 and 2 -> a different, known value
    logp = torch.log_softmax(torch.eye(3), dim=1)
    row0 = -(0.5 * logp[0, 0] + 0.5 * logp[0, 2])
    manual = (row0 + (-logp[1, 1]) + row0) / 3
    assert torch.isclose(contrastive_loss(img, txt, scale, ids), manual)


def test_profiles_train_sections_are_valid():
    for profile in ("micro", "tiny", "small", "paper"):
        cfg = stage_config("train", profile)
        # both variants' global batches run on 1 or 2 processes
        assert cfg.batch_size % 2 == 0 and cfg.sensitive_batch % 2 == 0


def test_training_is_deterministic(tmp_path, micro_dataset, micro_models):
    """The same command twice gives bit-identical weights (CPU, same thread count)."""
    out = tmp_path / "again"
    assert main(train_args(micro_dataset, out, variant="clean")) == 0
    a = load_model(out).model.state_dict()
    b = load_model(micro_models["clean"]).model.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)
