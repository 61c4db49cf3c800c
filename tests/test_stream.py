"""The streaming loader (issue #21): the in-memory loader's batches read from shards step by
step; SIGKILL + --resume with 1 and 2 processes; s3:// shards; an external general world in
a foreign layout; bad shards named before training; the unlearn stage streamed (the same
weights, exact resume, never a holdout shard)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from salmubench.cli import main
from salmubench.data.shards import shard_paths
from salmubench.engine.state import partial_dir
from salmubench.manifest import read_manifest
from salmubench.models import load_model
from salmubench.storage import upload_folder
from salmubench.vocab import POOLS, VARIANTS

from helpers import TORCHRUN, finish, kill_after_checkpoint, spawn
from s3server import BUCKET


def stream_args(data, out: Path, *extra: str, variant: str = "compromised") -> list[str]:
    return ["train", "--data", str(data), "--variant", variant, "--profile", "micro",
            "--out", str(out), "-q", "--set", "loader=stream", *extra]  # fmt: skip


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_model(folder).model.state_dict()


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_streaming_sigkill_then_resume_equals_the_in_memory_run(
    tmp_path, micro_dataset, micro_models
):
    """One process: a streaming run killed after its first checkpoint and resumed ends with
    exactly the weights of the uninterrupted in-memory run (same samples, same order)."""
    out = tmp_path / "killed"
    proc = spawn(stream_args(micro_dataset, out))
    state = partial_dir(out) / "state.pt"
    kill_after_checkpoint(proc, state)
    killed_at = torch.load(state, weights_only=True)["step"]
    assert 0 < killed_at < 40
    assert main(stream_args(micro_dataset, out, "--resume")) == 0
    manifest = read_manifest(out, kind="model", verify=True)
    assert manifest["training"]["steps_this_run"] == 40 - killed_at
    dataset = read_manifest(micro_dataset)
    splits = [s for p in VARIANTS["compromised"] for s in POOLS[p]]
    shards = sum(len(shard_paths(micro_dataset, s, dataset)) for s in splits)
    assert manifest["data_loader"] == {"loader": "stream", "shards": shards, "workers": 2}
    assert read_manifest(micro_models["compromised"])["data_loader"]["loader"] == "memory"
    assert_same_weights(out, micro_models["compromised"])


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def kill_torchrun_after_checkpoint(proc, state: Path, timeout: float = 120) -> None:
    """SIGKILL torchrun and its workers (each in a session of its own, with its loader
    processes) once the first checkpoint is on disk."""
    deadline = time.monotonic() + timeout
    while not state.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    pids = [proc.pid, *_descendants(proc.pid)]
    for pid in pids:  # each session's group (a worker's loader processes), then each pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def test_streaming_two_processes_sigkill_then_resume_is_exact(tmp_path, micro_dataset):
    """torchrun, 2 processes, each reading its half of every batch: killed + resumed equals
    uninterrupted (12 steps, to stay cheap)."""
    short = ("--set", "steps=12", "--set", "checkpoint_every=4", "--set", "loader_workers=1")
    reference = tmp_path / "whole"
    proc = spawn(stream_args(micro_dataset, reference, *short), launcher=TORCHRUN)
    stderr = finish(proc)
    assert proc.returncode == 0, stderr[-3000:]
    out = tmp_path / "killed"
    proc = spawn(stream_args(micro_dataset, out, *short), launcher=TORCHRUN)
    kill_torchrun_after_checkpoint(proc, partial_dir(out) / "state.pt")
    assert not out.exists()
    proc = spawn(stream_args(micro_dataset, out, *short, "--resume"), launcher=TORCHRUN)
    stderr = finish(proc)
    assert proc.returncode == 0, stderr[-3000:]
    manifest = read_manifest(out, kind="model", verify=True)
    assert manifest["world_size"] == 2 and manifest["training"]["steps_this_run"] < 12
    assert_same_weights(out, reference)


def test_streaming_from_s3_equals_local_shards(s3_env, tmp_path, micro_dataset, micro_models):
    """The same dataset uploaded to the S3 server: ranged reads give the weights of the
    local in-memory run."""
    url = f"s3://{BUCKET}/datasets/micro-stream"
    upload_folder(micro_dataset, url)
    out = tmp_path / "from-s3"
    assert main(stream_args(url, out, variant="clean")) == 0
    assert_same_weights(out, micro_models["clean"])


def _jpeg(rng: np.random.Generator, width: int, height: int) -> bytes:
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def foreign_world(folder: Path, shards: int = 2, per_shard: int = 12, **spoil: bytes | None):
    """A WebDataset of another layout than ours: keys 'sample_NNNNN', .jpg + .txt + .json,
    images of varied sizes, written by Python's tarfile (PAX). `spoil` replaces (or with
    None, drops) one member: {'sample_00003.txt': None}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    words = ["a", "red", "blue", "dog", "cat", "on", "grass", "street", "photo"]
    for s in range(shards):
        with tarfile.open(folder / f"part-{s:05d}.tar", "w") as tar:
            for i in range(s * per_shard, (s + 1) * per_shard):
                key = f"sample_{i:05d}"
                caption = " ".join(rng.choice(words, size=5))
                members = {
                    f"{key}.jpg": _jpeg(rng, int(rng.integers(24, 64)), int(rng.integers(24, 64))),
                    f"{key}.json": b'{"source": "test"}',
                    f"{key}.txt": caption.encode(),
                }
                for name, data in members.items():
                    data = spoil.get(name, data)
                    if data is None:
                        continue
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return folder


def test_an_external_general_world_in_a_foreign_layout_trains(tmp_path, micro_dataset):
    world = foreign_world(tmp_path / "world")
    out = tmp_path / "m"
    extra = ("--set", f"general_world_uri={world}", "--set", "steps=4", "--set",
             "checkpoint_every=2", "--set", "loader=auto")  # fmt: skip
    assert main(stream_args(micro_dataset, out, *extra, variant="clean")) == 0
    manifest = read_manifest(out, kind="model", verify=True)
    record = manifest["general_world"]
    assert record["uri"] == str(world) and record["shards"] == 2
    assert manifest["inputs"]["general_world"] == record["digest"]
    assert manifest["data_loader"]["loader"] == "stream"  # auto: an external world streams
    assert np.isfinite(manifest["training"]["final_loss"])


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        ({"sample_00003.txt": None}, ["part-00000.tar", "'sample_00003'", "no caption"]),
        ({"sample_00015.jpg": b"<html>not an image</html>"},
         ["part-00001.tar", "sample_00015.jpg", "not a decodable image"]),
        ({"truncate": b""}, ["part-00001.tar", "truncated"]),
    ],
)  # fmt: skip
def test_bad_external_shards_are_named_before_training(
    tmp_path, capsys, micro_dataset, spoil, expected
):
    truncate = spoil.pop("truncate", None) is not None
    world = foreign_world(tmp_path / "world", **spoil)
    if truncate:
        shard = world / "part-00001.tar"
        shard.write_bytes(shard.read_bytes()[:5000])
    out = tmp_path / "m"
    extra = ("--set", f"general_world_uri={world}")
    assert main(stream_args(micro_dataset, out, *extra, variant="clean")) == 2
    err = capsys.readouterr().err
    for part in expected:
        assert part in err, (part, err)
    assert not out.exists() and not partial_dir(out).exists()


def test_loader_settings_are_checked(tmp_path, capsys, micro_dataset):
    out = tmp_path / "m"
    for setting, message in (
        ("loader=disk", "loader='disk'; valid: auto, memory, stream"),
        ("loader_workers=-1", "loader_workers=-1"),
    ):
        assert main(stream_args(micro_dataset, out, "--set", setting)) == 2
        assert message in capsys.readouterr().err
    world = ("--set", "loader=memory", "--set", f"general_world_uri={tmp_path}")
    assert main([*stream_args(micro_dataset, out), *world]) == 2
    assert "needs loader 'stream' or 'auto'" in capsys.readouterr().err
    assert main(stream_args(micro_dataset, out, "--set", f"general_world_uri={tmp_path}")) == 2
    assert "holds no .tar shards" in capsys.readouterr().err


def test_profiles_say_what_training_reads_and_whether_it_streams(capsys, micro_dataset):
    assert main(["profiles"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["micro"].endswith("in memory") and lines["tiny"].endswith("in memory")
    assert lines["small"].endswith("streams") and lines["paper"].endswith("streams")
    # micro's counts are those of the dataset synth wrote
    dataset = read_manifest(micro_dataset)
    splits = [s for p in VARIANTS["compromised"] for s in POOLS[p]]
    images = sum(dataset["counts"][s] for s in splits)
    shards = sum(len(shard_paths(micro_dataset, s, dataset)) for s in splits)
    assert f"reads {images} images" in lines["micro"]
    assert f"<= {shards} shards" in lines["micro"]


def test_an_external_world_on_s3_trains_like_the_same_local_folder(s3_env, tmp_path, micro_dataset):
    from salmubench.s3 import Store

    world = foreign_world(tmp_path / "world")
    url = f"s3://{BUCKET}/worlds/foreign"
    for shard in sorted(world.glob("*.tar")):
        Store().put_file(shard, f"{url}/{shard.name}")
    short = ("--set", "steps=3", "--set", "checkpoint_every=3", "--set", "loader_workers=1")
    runs = {}
    for name, uri in (("local", world), ("s3", url)):
        runs[name] = tmp_path / name
        extra = ("--set", f"general_world_uri={uri}", *short)
        assert main(stream_args(micro_dataset, runs[name], *extra, variant="clean")) == 0
    local, remote = (read_manifest(runs[n])["general_world"] for n in ("local", "s3"))
    assert remote["uri"] == url and remote["digest"] == local["digest"]  # names and sizes
    assert_same_weights(runs["s3"], runs["local"])


def test_an_image_corrupt_past_its_header_is_named_when_decoded(tmp_path):
    """It passes indexing (it starts like a JPEG) and fails in the loader, named."""
    from salmubench.data.tarindex import ShardError, index_shard
    from salmubench.engine.pools import BatchPlan
    from salmubench.models import tokenizer
    from salmubench.train.stream import StepBatches

    world = foreign_world(tmp_path / "world", shards=1, per_shard=4,
                          **{"sample_00002.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 64})  # fmt: skip
    index = index_shard(world / "part-00000.tar")
    plan = BatchPlan({"general": 4}, {"general": 4}, seed=0)
    steps = StepBatches({"general": index}, plan, 0, 1, 0, 4, tokenizer("salmu-micro"), 32)
    with pytest.raises(ShardError, match=r"part-00000\.tar: sample 'sample_00002': undecodable"):
        steps[0]


# ------------------------------------------------------------------ the unlearn stage


def unlearn_args(data, model: Path, out: Path, method: str, *extra: str) -> list[str]:
    return ["unlearn", "--data", str(data), "--model", str(model), "--method", method,
            "--profile", "micro", "--out", str(out), "-q", "--budget", "0.4",
            "--set", "retain_size=60", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def unlearned_in_memory(tmp_path_factory, micro_dataset, micro_models) -> dict[str, Path]:
    """PRECISE (forget + generic captions + retain + the frozen original) and grad_diff
    (forget + retain), unlearned with the in-memory loader."""
    root = tmp_path_factory.mktemp("unlearned")
    runs = {}
    for method in ("precise", "grad_diff"):
        runs[method] = root / method
        args = unlearn_args(micro_dataset, micro_models["compromised"], runs[method], method,
                            "--set", "loader=memory")  # fmt: skip
        assert main(args) == 0
    return runs


@pytest.mark.parametrize("method", ["precise", "grad_diff"])
def test_streaming_unlearning_equals_in_memory_and_reads_no_holdout(
    tmp_path, guarded_dataset, micro_models, unlearned_in_memory, method
):
    """Streamed from a dataset whose holdout shards are deleted: the weights of the
    in-memory run, bit for bit; the loader is recorded but is not part of the config."""
    out = tmp_path / method
    args = unlearn_args(guarded_dataset, micro_models["compromised"], out, method, "--set",
                        "loader=stream", "--set", "loader_workers=1")  # fmt: skip
    assert main(args) == 0
    manifest = read_manifest(out, kind="model", verify=True)
    memory = read_manifest(unlearned_in_memory[method])
    dataset = read_manifest(guarded_dataset)
    shards = sum(len(dataset["shards"][s]) for s in manifest["reads"])
    assert manifest["data_loader"] == {"loader": "stream", "shards": shards, "workers": 1}
    assert memory["data_loader"] == {"loader": "memory", "shards": shards, "workers": 0}
    assert manifest["config"] == memory["config"]  # reusable and resumable across loaders
    assert manifest["unlearning"]["samples"] == memory["unlearning"]["samples"]
    assert manifest["unlearning"]["samples"]["retain"] == 60
    assert manifest["steps"] == memory["steps"] >= 3
    assert_same_weights(out, unlearned_in_memory[method])


def test_streaming_unlearning_sigkill_then_resume_is_exact(
    tmp_path, micro_dataset, micro_models, unlearned_in_memory
):
    """Killed after its first checkpoint, resumed (the loader starts at the resumed step):
    the uninterrupted run's weights."""
    out = tmp_path / "killed"
    args = unlearn_args(micro_dataset, micro_models["compromised"], out, "precise", "--set",
                        "loader=stream", "--set", "checkpoint_every=1")  # fmt: skip
    proc = spawn(args)
    state = partial_dir(out) / "state.pt"
    kill_after_checkpoint(proc, state)
    killed_at = torch.load(state, weights_only=True)["step"]
    manifest = read_manifest(unlearned_in_memory["precise"])
    assert 0 < killed_at < manifest["steps"]
    assert main([*args, "--resume"]) == 0
    resumed = read_manifest(out, kind="model", verify=True)
    assert resumed["unlearning"]["steps_this_run"] == manifest["steps"] - killed_at
    assert_same_weights(out, unlearned_in_memory["precise"])


def test_unlearn_loader_settings_are_checked_before_any_work(tmp_path, capsys, micro_models):
    out = tmp_path / "u"
    for setting, message in (
        ("loader=disk", "loader='disk'; valid: auto, memory, stream"),
        ("loader_workers=-1", "loader_workers=-1"),
    ):
        missing = tmp_path / "no-dataset"  # never opened: the setting fails first
        assert main(unlearn_args(missing, micro_models["compromised"], out, "precise",
                                 "--set", setting)) == 2  # fmt: skip
        assert message in capsys.readouterr().err
        assert not out.exists() and not partial_dir(out).exists()


def test_auto_streams_unlearning_by_what_the_in_memory_path_would_decode(micro_dataset):
    """The forget splits plus the seeded retain subset (not the whole retain splits)."""
    from salmubench.config import stage_config
    from salmubench.train.stream import choose_loader
    from salmubench.unlearn.data import decoded_bytes, open_for_unlearning
    from salmubench.vocab import FORGET_SPLITS, RETAIN_SPLITS

    dataset = open_for_unlearning(micro_dataset, RETAIN_SPLITS)
    pixels = 3 * dataset["image"]["size"] ** 2
    forget = sum(dataset["counts"][s] for s in FORGET_SPLITS)
    side = dataset["image"]["size"]
    size = decoded_bytes(dataset, RETAIN_SPLITS, 60, seed=0, image_size=side)
    assert size == (forget + 60) * pixels
    assert decoded_bytes(dataset, (), 60, seed=0, image_size=side) == forget * pixels
    # decoded at the model's size: a release of mixed sizes records none of its own
    mixed = {**dataset, "image": {**dataset["image"], "size": None}}
    assert decoded_bytes(mixed, (), 60, seed=0, image_size=2 * side) == forget * 4 * pixels
    cfg = stage_config("unlearn", "micro", params_path=Path(__file__).parents[1] / "params.yaml")
    assert cfg.loader == "auto"
    assert choose_loader(cfg, size, limit=size) == "memory"
    assert choose_loader(cfg, size, limit=size - 1) == "stream"


class _Policy(torch.utils.data.Dataset):
    """Each item: the scheduling policy of the process that loads it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return os.sched_getscheduler(0)


def test_loader_workers_run_at_idle_priority_only_when_they_share_the_trainers_cores():
    """Workers that would preempt one of the trainer's threads (which wait for each other
    at every barrier) run at SCHED_IDLE; a worker with a core of its own runs as usual."""
    from salmubench.stagerun import available_cpus
    from salmubench.train.stream import batches

    threads, cpus = torch.get_num_threads(), len(available_cpus())
    try:
        torch.set_num_threads(cpus)  # the trainer's threads fill every core
        assert list(batches(_Policy(), 1)) == [os.SCHED_IDLE] * 2
        if cpus > 1:
            torch.set_num_threads(cpus - 1)  # one core left for the worker
            assert list(batches(_Policy(), 1)) == [os.SCHED_OTHER] * 2
    finally:
        torch.set_num_threads(threads)


def test_the_token_cache_gives_a_fresh_calls_rows_and_stays_bounded():
    from salmubench.models import tokenizer
    from salmubench.train.stream import TokenCache

    tokenize = tokenizer("salmu-micro")
    cache = TokenCache(tokenize, size=3)
    texts = ["a red car", "a dog", "a red car", "the sea", "a dog"]
    assert torch.equal(cache(texts), tokenize(texts).long())
    assert list(cache.rows) == ["a red car", "the sea", "a dog"]  # least recently used first
    assert torch.equal(cache(["a bird", "a dog"]), tokenize(["a bird", "a dog"]).long())
    assert list(cache.rows) == ["the sea", "a bird", "a dog"]  # "a red car" went: size 3
    row = cache.rows["a bird"]
    assert row.untyped_storage().nbytes() == row.numel() * row.element_size()  # not a view
