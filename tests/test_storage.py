"""Storage helpers and `s3://` datasets against a real S3-protocol server (moto, 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch

from salmubench.data.shards import iter_split
from salmubench.eval.stage import evaluate
from salmubench.manifest import MANIFEST, ManifestError, read_manifest
from salmubench.storage import (
    ChecksumError,
    CredentialsError,
    StorageError,
    Store,
    Url,
    download_folder,
    upload_folder,
)

from s3server import BUCKET, FaultProxy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def remote_dataset(s3, micro_dataset) -> str:
    """The micro dataset uploaded once for this module: its s3:// URL."""
    url = f"s3://{BUCKET}/datasets/micro-storage"
    env = s3.env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        upload_folder(micro_dataset, url)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return url


def test_upload_then_download_is_byte_identical_and_reupload_sends_nothing(
    s3_env, s3, micro_dataset, remote_dataset, tmp_path
):
    local = read_manifest(micro_dataset, kind="dataset")
    stored = s3.keys("datasets/micro-storage/")
    assert set(stored) == {f"datasets/micro-storage/{n}" for n in [*local["files"], MANIFEST]}
    for name, digest in local["files"].items():
        assert sha(stored[f"datasets/micro-storage/{name}"]) == digest

    again = upload_folder(micro_dataset, remote_dataset)
    assert again == {"uploaded": 0, "skipped": len(local["files"]), "bytes": 0}

    out = tmp_path / "pulled"
    download_folder(remote_dataset, out)
    assert read_manifest(out, kind="dataset", verify=True)["digest"] == local["digest"]
    for name in local["files"]:
        assert (out / name).read_bytes() == (micro_dataset / name).read_bytes()


def test_s3_dataset_reads_like_the_local_folder(s3_env, micro_dataset, remote_dataset):
    local = read_manifest(micro_dataset, kind="dataset", verify=True)
    remote = read_manifest(remote_dataset, kind="dataset", verify=True)
    assert remote == local
    for split in ("forget", "genknow"):
        a = [s["__key__"] for s in iter_split(micro_dataset, split, local)]
        b = [s["__key__"] for s in iter_split(remote_dataset, split, remote)]
        assert a == b and a


def test_webdataset_reads_s3_shards(s3_env, micro_dataset, remote_dataset):
    import webdataset as wds

    manifest = read_manifest(micro_dataset, kind="dataset")
    names = manifest["shards"]["retain_real"]
    keys = [s["__key__"] for s in iter_split(micro_dataset, "retain_real", manifest)]
    urls = [f"{remote_dataset}/{n}" for n in names]
    read = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)]
    assert read == keys and keys


def test_training_and_evaluation_read_s3_shards(
    s3, remote_dataset, micro_dataset, micro_models, tmp_path, monkeypatch
):
    """`salmubench train --data s3://...` (a real process) gives the model local data gives."""
    out = tmp_path / "compromised"
    env = {**os.environ, **s3.env()}
    done = subprocess.run(
        [sys.executable, "-m", "salmubench", "train", "--profile", "micro", "--data",
         remote_dataset, "--variant", "compromised", "--out", str(out), "-q"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    trained = read_manifest(out, kind="model", verify=True)
    reference = read_manifest(micro_models["compromised"], kind="model")
    assert trained["inputs"]["dataset"] == reference["inputs"]["dataset"]
    mine = torch.load(out / "model.pt", map_location="cpu")
    theirs = torch.load(micro_models["compromised"] / "model.pt", map_location="cpu")
    mine, theirs = (m.get("state_dict", m) for m in (mine, theirs))
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)

    local_eval = evaluate(micro_dataset, out, tmp_path / "eval-local")
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    remote_eval = evaluate(remote_dataset, out, tmp_path / "eval-s3")
    assert remote_eval["metrics"] == local_eval["metrics"]
    assert remote_eval["inputs"] == local_eval["inputs"]


def test_server_down_mid_upload_is_a_clear_error_and_a_retry_completes(
    s3, micro_dataset, tmp_path, monkeypatch
):
    proxy = FaultProxy(s3.port)
    for key, value in s3.env(endpoint=proxy.endpoint).items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/faults/upload"
    files = read_manifest(micro_dataset, kind="dataset")["files"]
    total = sum((micro_dataset / n).stat().st_size for n in files)
    proxy.down_after(total // 2)  # the server goes away half-way through
    with pytest.raises(StorageError, match="unreachable or failing after 2 attempts") as e:
        upload_folder(micro_dataset, url)
    assert "run the same command again" in str(e.value)

    stored = s3.keys("faults/upload/")
    assert f"faults/upload/{MANIFEST}" not in stored  # the folder is visibly incomplete
    assert 0 < len(stored) < len(files)
    for key, data in stored.items():  # nothing partial under a final key
        assert sha(data) == files[key.removeprefix("faults/upload/")]

    proxy.up()  # the server is back
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        read_manifest(url, kind="dataset")
    counts = upload_folder(micro_dataset, url)
    assert counts["skipped"] == len(stored) and counts["uploaded"] == len(files) - len(stored)
    assert read_manifest(url, kind="dataset", verify=True)["files"] == files
    proxy.close()


def test_wrong_credentials_are_a_clear_error_without_the_secret(s3, monkeypatch, micro_dataset):
    secret = "wrong-secret-value-that-must-not-leak"
    for key, value in s3.env(AWS_SECRET_ACCESS_KEY=secret).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(CredentialsError) as e:
        upload_folder(micro_dataset, f"s3://{BUCKET}/never")
    message = str(e.value)
    assert "rejected the credentials" in message and s3.endpoint in message
    assert secret not in message and s3.access_key not in message

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        Store()


def test_corrupt_object_is_detected_and_named(s3_env, s3, micro_dataset, tmp_path):
    url = f"s3://{BUCKET}/faults/corrupt"
    upload_folder(micro_dataset, url)
    manifest = read_manifest(url, kind="dataset")
    victim = manifest["shards"]["forget_identity"][0]
    key = f"faults/corrupt/{victim}"
    data = bytearray(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, the recorded checksum kept
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=bytes(data),
                           Metadata={"sha256": manifest["files"][victim]})  # fmt: skip

    with pytest.raises(ChecksumError, match=f"{victim}: checksum mismatch"):
        download_folder(url, tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()  # nothing half-written
    with pytest.raises(ChecksumError, match=victim):
        for _ in iter_split(url, "forget_identity", manifest):
            pass


@pytest.mark.parametrize(
    ("url", "message"),
    [("s3://", "not a valid bucket name"), ("s3://A_B/x", "not a valid bucket name"),
     ("/local/path", "not an s3:// URL")],
)  # fmt: skip
def test_bad_urls_are_named(url, message):
    with pytest.raises(ValueError, match=message):
        Url(url)


def test_missing_dataset_url_is_a_clear_error(s3_env):
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        read_manifest(f"s3://{BUCKET}/datasets/nothing-here", kind="dataset")
