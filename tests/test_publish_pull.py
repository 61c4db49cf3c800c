"""A published run pulls anywhere with only credentials: the branch records its storage.

Real git, DVC and moto's S3 server: publish a micro dataset as a new user would (the S3
endpoint set once with `salmubench remote`, in the untracked config.local), then in a fresh
clone `git checkout runs/<id> && dvc pull` with nothing but AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY in the environment (no endpoint variable, an empty HOME), and check
every byte. With the storage down, the pull fails fast and names the endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3server import BUCKET, FaultProxy

REPO = Path(__file__).resolve().parents[1]


def run(*cmd: str, cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def world(tmp_path, s3):
    """(project, origin, env with credentials only) — a checkout pushed to a bare origin."""
    home = tmp_path / "home"  # no global git/DVC config leaks in
    home.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        **{f"GIT_{r}_{w}": "t@t" for r in ("AUTHOR", "COMMITTER") for w in ("NAME", "EMAIL")},
    }
    origin, project = tmp_path / "origin.git", tmp_path / "project"
    run("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path, env=env)
    (project / ".dvc").mkdir(parents=True)
    for name in (".dvc/config", ".dvc/.gitignore", ".dvcignore"):
        shutil.copy(REPO / name, project / name)
    run("git", "init", "-q", "-b", "main", cwd=project, env=env)
    run("git", "add", "-A", cwd=project, env=env)
    run("git", "commit", "-q", "-m", "project", cwd=project, env=env)
    run("git", "remote", "add", "origin", str(origin), cwd=project, env=env)
    run("git", "push", "-q", "origin", "main", cwd=project, env=env)
    return project, origin, env


def clone_run(origin: Path, run_id: str, where: Path, env: dict[str, str]) -> Path:
    run("git", "clone", "-q", str(origin), str(where), cwd=where.parent, env=env)
    run("git", "checkout", "-q", f"runs/{run_id}", cwd=where, env=env)
    return where


def test_checkout_and_dvc_pull_need_only_credentials(world, s3, micro_dataset, tmp_path):
    project, origin, env = world
    run("salmubench", "remote", "--endpoint", s3.endpoint, "--bucket", BUCKET, cwd=project,
        env=env)  # fmt: skip
    out = run("salmubench", "publish", str(micro_dataset), "--run-id", "anywhere-1",
              cwd=project, env=env).stdout  # fmt: skip
    assert f"storage: {s3.endpoint}" in out and "git checkout runs/anywhere-1 && dvc pull" in out

    clone = clone_run(origin, "anywhere-1", tmp_path / "clone", env)
    config = (clone / ".dvc" / "config").read_text()
    assert s3.endpoint in config and "connect_timeout" in config
    assert s3.secret_key not in config and s3.access_key not in config  # never a secret
    assert not (clone / ".dvc" / "config.local").exists()
    assert "AWS_ENDPOINT_URL_S3" not in env and "AWS_ENDPOINT_URL" not in env
    run("dvc", "pull", cwd=clone, env=env)
    assert digests(clone / "artifacts" / "data") == digests(micro_dataset)
    record = json.loads((clone / "artifacts" / "RUN.json").read_text())
    assert record["storage_endpoint"] == s3.endpoint and record["dvc_remote"] == "minio"


def test_unreachable_storage_fails_fast_naming_the_endpoint(world, s3, micro_dataset, tmp_path):
    project, origin, env = world
    proxy = FaultProxy(s3.port)  # the storage as the run saw it; then it goes away
    try:
        run("salmubench", "remote", "--endpoint", proxy.endpoint, "--bucket", BUCKET,
            cwd=project, env=env)  # fmt: skip
        run("salmubench", "publish", str(micro_dataset), "--run-id", "gone-1", cwd=project,
            env=env)  # fmt: skip
    finally:
        proxy.close()
    # Credentials only, and one attempt (what the DEPLOY steps give a puller who wants a fast
    # answer): DVC names the recorded endpoint. With botocore's default 5 attempts and backoff,
    # which no .dvc/config option caps, the same failure takes ~30 s per tracked output
    # (measured here; not re-run by the suite, to keep it under its time budget).
    clone = clone_run(origin, "gone-1", tmp_path / "clone", env)
    start = time.perf_counter()
    pulled = run("dvc", "pull", cwd=clone, env={**env, "AWS_MAX_ATTEMPTS": "1"}, ok=False)
    seconds = time.perf_counter() - start
    print(f"dvc pull against the unreachable {proxy.endpoint} failed in {seconds:.1f} s")
    assert pulled.returncode != 0
    assert f'Could not connect to the endpoint URL: "{proxy.endpoint}' in pulled.stderr
    assert seconds < 30, f"dvc pull took {seconds:.1f} s to fail"
