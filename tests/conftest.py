"""Shared fixtures: one micro dataset per test session, built by the real stage function."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from salmubench.config import stage_config
from salmubench.data.shards import iter_split
from salmubench.data.synth import synth
from salmubench.manifest import read_manifest
from salmubench.vocab import FORBIDDEN

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def decoded_cache(tmp_path_factory):
    """One decoded-split cache per test session (and its subprocesses), never the user's:
    the suite's many stages decode each micro split once, and nothing leaks into ~/.cache.
    A test that needs its own cache folder sets SALMUBENCH_CACHE itself."""
    import os

    folder = tmp_path_factory.mktemp("decoded-cache")
    old = os.environ.get("SALMUBENCH_CACHE")
    os.environ["SALMUBENCH_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SALMUBENCH_CACHE", None)
    else:
        os.environ["SALMUBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def micro_cfg():
    return stage_config("synth", "micro", params_path=REPO / "params.yaml")


@pytest.fixture(scope="session")
def micro_dataset(tmp_path_factory, micro_cfg) -> Path:
    out = tmp_path_factory.mktemp("data") / "micro"
    synth(micro_cfg, 0, out, profile="micro", workers=2)
    return out


@pytest.fixture(scope="session")
def micro_manifest(micro_dataset):
    return read_manifest(micro_dataset, kind="dataset", verify=True)


@pytest.fixture(scope="session")
def micro_samples(micro_dataset, micro_manifest) -> dict[str, list[dict]]:
    """Every sample of every primitive split, read back from the shards."""
    return {
        split: list(iter_split(micro_dataset, split, micro_manifest))
        for split in micro_manifest["shards"]
    }


@pytest.fixture(scope="session")
def micro_models(tmp_path_factory, micro_dataset) -> dict[str, Path]:
    """The Clean and Compromised micro models, trained once per session in this process."""
    from salmubench.train.loop import train

    root = tmp_path_factory.mktemp("models")
    cfg = stage_config("train", "micro", params_path=REPO / "params.yaml")
    models = {}
    for variant in ("clean", "compromised"):
        models[variant] = root / variant
        train(micro_dataset, variant, cfg, models[variant], profile="micro")
    return models


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on 127.0.0.1 with authentication, for the whole session."""
    from s3server import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch):
    """This process talks to the test server (endpoint and credentials from the env)."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3.env()


@pytest.fixture(scope="session")
def guarded_dataset(tmp_path_factory, micro_dataset) -> Path:
    """The micro dataset without its holdout and evaluation shards: a method that so much
    as opened one would fail (the files are gone, not just forbidden)."""
    out = tmp_path_factory.mktemp("guarded") / "micro"
    shutil.copytree(micro_dataset, out)
    manifest = read_manifest(out, kind="dataset")
    removed = [name for split in FORBIDDEN for name in manifest["shards"][split]]
    for name in removed:
        (out / name).unlink()
    assert removed and {"holdout_identity", "holdout_association"} <= set(FORBIDDEN)
    return out
