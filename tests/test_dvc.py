"""dvc.yaml, DVC remotes in S3 and published runs, with real DVC, git and an S3 server.

One micro project for the module: a git repository with a bare `origin`, its DVC remote
`minio` pointed (by `salmubench remote`) at moto's S3 server on 127.0.0.1, and the whole
dataset pinned by data.dvc (tools/pin_data.py), and the whole pipeline reproduced with
`dvc repro` (both trainings, their evals, one unlearning method and its eval, the report,
a relearning attack on Clean and on the method's model).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from salmubench.attack.stage import ATTACK_FILE
from salmubench.manifest import read_manifest

from s3server import BUCKET, FaultProxy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import dvc_deps  # noqa: E402

# `-X importtime` lines (PYTHONPROFILEIMPORTTIME): "import time: self | cumulative | name"
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s+(salmubench(?:\.\w+)*)\s*$", re.MULTILINE)
METHOD = "delete"  # one method keeps the module fast; dvc.yaml runs every method in params
# One attack, for the same reason (dvc.yaml runs all four): the cheapest, low_precision (no
# fine-tuning). Every attack is the same `salmubench attack` command, whose module imports
# barely depend on the attack; dvc.yaml's deps are derived statically for all of them.
ATTACKS = ("low_precision",)
TRACKED = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore")
# Published name -> the dvc.yaml output it came from.
ARTIFACTS = {"data": "data", "models/clean": "models/clean", "report": "report",
             "models/compromised": "models/compromised",
             f"unlearned/{METHOD}-b1-s0": f"unlearned/{METHOD}"}  # fmt: skip


def run(*cmd: str, cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok:
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done


def tree_digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def env(s3) -> dict[str, str]:
    """Processes get the venv's tools, the S3 endpoint and credentials; nothing else."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    who = {
        f"GIT_{role}_{what}": "t@t"
        for role in ("AUTHOR", "COMMITTER")
        for what in ("NAME", "EMAIL")
    }
    return {**os.environ, **s3.env(), "PATH": path, **who}


@pytest.fixture(scope="module")
def project(tmp_path_factory, env, s3) -> Path:
    root = tmp_path_factory.mktemp("dvc")
    origin, project = root / "origin.git", root / "project"
    run("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=root, env=env)
    project.mkdir()
    for name in TRACKED:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["run"]["profile"] = "micro"
    params["methods"] = {METHOD: params["methods"][METHOD]}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = (project / "dvc.yaml").read_text()
    every = "- attacks: [persona_split, retain_only, generic_captions, low_precision]"
    assert every in stages
    (project / "dvc.yaml").write_text(stages.replace(every, f"- attacks: [{', '.join(ATTACKS)}]"))
    run("git", "init", "-q", "-b", "main", cwd=project, env=env)
    # The dataset is pinned, as in this repository: synthesised and tracked by data.dvc.
    run(sys.executable, str(REPO / "tools" / "pin_data.py"), "--repo", str(project),
        cwd=project, env=env)  # fmt: skip
    run("git", "add", "-A", cwd=project, env=env)
    run("git", "commit", "-q", "-m", "micro project", cwd=project, env=env)
    run("git", "remote", "add", "origin", str(origin), cwd=project, env=env)
    run("git", "push", "-q", "origin", "main", cwd=project, env=env)
    # The one documented command that points the project at a MinIO/S3 endpoint.
    out = run("salmubench", "remote", "--endpoint", s3.endpoint, "--bucket", BUCKET,
              cwd=project, env=env).stdout  # fmt: skip
    assert "config.local" in out
    assert s3.endpoint not in (project / ".dvc" / "config").read_text()  # never committed
    # Every Python process of the stages reports each module it imports (stderr, merged in
    # order with dvc's "Running stage" lines): the real import closure of every stage.
    traced = {**env, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONUNBUFFERED": "1"}
    repro = subprocess.run(["dvc", "repro"], cwd=project, env=traced, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=900)  # fmt: skip
    assert repro.returncode == 0, repro.stdout[-5000:]
    (root / "repro.log").write_text(repro.stdout, encoding="utf-8")
    return project


def test_dvc_repro_runs_the_whole_benchmark(project, env):
    manifest = read_manifest(project / "data", kind="dataset", verify=True)
    assert manifest["profile"] == "micro"
    for variant in ("clean", "compromised"):
        model = read_manifest(project / "models" / variant, kind="model", verify=True)
        assert model["variant"] == variant and model["inputs"]["dataset"] == manifest["digest"]
        read_manifest(project / "evals" / variant, kind="eval", verify=True)
    unlearned = read_manifest(project / "unlearned" / METHOD, kind="model", verify=True)
    assert unlearned["method"] == METHOD
    assert read_manifest(project / "evals" / METHOD, kind="eval")["model"]["method"] == METHOD
    report = read_manifest(project / "report", kind="report", verify=True)
    assert METHOD in (project / "report" / "leaderboard.md").read_text()

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train@clean"]["params"]["params.yaml"]["run.profile"] == "micro"
    assert "data" in [d["path"] for d in lock["stages"]["train@clean"]["deps"]]
    assert "synth" not in lock["stages"]  # the dataset is data.dvc's, not a stage's
    assert {"train@compromised", "eval@clean", f"unlearn@{METHOD}", f"eval-unlearned@{METHOD}",
            "report"} <= set(lock["stages"])  # fmt: skip
    # Each method's stage depends on its own settings and file only.
    params = lock["stages"][f"unlearn@{METHOD}"]["params"]["params.yaml"]
    assert f"methods.{METHOD}" in params and "profiles.micro.unlearn" in params
    deps = [d["path"] for d in lock["stages"][f"unlearn@{METHOD}"]["deps"]]
    assert f"src/salmubench/unlearn/methods/{METHOD}.py" in deps
    assert any(key.endswith(f"evals/{METHOD}") for key in report["inputs"])  # ranks it
    # Each attack once on Clean, then on the method's model against that reference.
    for attack in ATTACKS:
        clean = read_manifest(project / "attacks/clean" / attack, kind="attack", verify=True)
        assert clean["attack"] == attack and clean["variant"] == "clean"
        ran = read_manifest(project / "attacks" / METHOD / attack, kind="attack", verify=True)
        assert ran["attack"] == attack and ran["method"] == METHOD
        record = json.loads((project / "attacks" / METHOD / attack / ATTACK_FILE).read_text())
        assert record["clean"]["digest"] == clean["inputs"]["model"]  # Clean's, reused
        assert set(record["recovery"]["scale"]) == {"retfail", "assoc_str"}  # the gap
        stage = lock["stages"][f"attack@{METHOD}-{attack}"]
        assert "profiles.micro.attack" in stage["params"]["params.yaml"]
        assert f"attacks/clean/{attack}" in [d["path"] for d in stage["deps"]]

    shown = run("dvc", "metrics", "show", "--json", cwd=project, env=env).stdout
    assert "retfail" in shown and f"metrics/{METHOD}.json" in shown
    run("dvc", "plots", "show", "-o", "plots", cwd=project, env=env)
    assert "tradeoff.png" in (project / "plots" / "index.html").read_text()

    out = run("dvc", "repro", cwd=project, env=env).stdout
    assert "didn't change, skipping" in out or "up to date" in out
    assert "Data and pipelines are up to date" in run("dvc", "status", cwd=project, env=env).stdout


def test_publish_then_pull_in_a_fresh_clone_is_byte_identical(project, env, s3, tmp_path):
    record = tmp_path / "published.json"
    status = run("git", "status", "--porcelain", cwd=project, env=env).stdout
    out = run("salmubench", "publish", "data", "models", "unlearned", "evals", "report",
              "--run-id", "micro-e2e", "--record", str(record),
              cwd=project, env=env).stdout  # fmt: skip
    assert "runs/micro-e2e" in out and "dvc pull" in out
    assert run("git", "status", "--porcelain", cwd=project, env=env).stdout == status  # untouched

    clone = tmp_path / "clone"
    origin = project.parent / "origin.git"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, env=env)
    run("git", "checkout", "-q", "runs/micro-e2e", cwd=clone, env=env)
    # No local config in the clone: the endpoint and credentials come from the environment.
    run("dvc", "pull", cwd=clone, env=env)
    for name, source in ARTIFACTS.items():
        assert tree_digests(clone / "artifacts" / name) == tree_digests(project / source), name
        read_manifest(clone / "artifacts" / name, verify=True)
    run_json = yaml.safe_load((clone / "artifacts" / "RUN.json").read_text())
    assert run_json["profile"] == "micro" and f"evals/{METHOD}-b1-s0" in run_json["artifacts"]

    # Publishing the same run id again is refused before any work.
    again = run("salmubench", "publish", "data", "--run-id", "micro-e2e", cwd=project, env=env,
                ok=False)  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr


def test_every_module_a_stage_imported_is_one_of_its_deps(project):
    """dvc.yaml's code deps (tools/dvc_deps.py) against what each stage really imported.

    `-X importtime` logs the imports made by import statements; the registry's method files,
    loaded with importlib.import_module, are not in it: the static rule covers them.
    """
    log = (project.parent / "repro.log").read_text(encoding="utf-8")
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    parts = re.split(r"^Running stage '([^']+)':$", log, flags=re.MULTILINE)
    ran = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert set(ran) == set(lock["stages"])
    for name, output in ran.items():
        modules = set(IMPORTED.findall(output))
        assert "salmubench.cli" in modules, name  # the trace saw the stage's command
        deps = [d["path"] for d in lock["stages"][name]["deps"]]
        files = {_source(project, m) for m in modules}
        unlisted = sorted(
            f for f in files if not any(f == d or f.startswith(d + "/") for d in deps)
        )
        assert not unlisted, f"{name} imported {unlisted}, which dvc.yaml does not list"


def _source(project: Path, module: str) -> str:
    path = dvc_deps.module_file(project, module)
    return path.relative_to(project).as_posix() if path else f"{module} (not in the copy)"


def test_the_pinned_dataset_comes_back_from_pull_and_from_its_recipe(project, env):
    """data.dvc: `dvc pull data` and the synth command in its meta give the same bytes."""
    pin = yaml.safe_load((project / "data.dvc").read_text())
    assert pin["meta"]["profile"] == "micro" and pin["meta"]["seed"] == 0
    assert pin["meta"]["digest"] == read_manifest(project / "data", kind="dataset")["digest"]
    before = tree_digests(project / "data")
    run("dvc", "push", "data.dvc", cwd=project, env=env)
    shutil.rmtree(project / "data")
    run("dvc", "pull", "data", cwd=project, env=env)
    assert tree_digests(project / "data") == before
    shutil.rmtree(project / "data")
    run(*shlex.split(pin["meta"]["command"]), cwd=project, env=env)
    assert tree_digests(project / "data") == before
    assert "up to date" in run("dvc", "status", "data.dvc", cwd=project, env=env).stdout
    out = run("dvc", "push", "data.dvc", cwd=project, env=env)
    assert "Everything is up to date" in out.stdout + out.stderr
    # A changed pin (another seed) is caught by the check, which re-synthesises.
    check = [sys.executable, str(REPO / "tools" / "pin_data.py"), "--check", "--repo",
             str(project)]  # fmt: skip
    assert run(*check, cwd=project, env=env).returncode == 0
    text = (project / "data.dvc").read_text()
    try:
        (project / "data.dvc").write_text(text.replace("seed: 0", "seed: 1"))
        failed = run(*check, cwd=project, env=env, ok=False)
        assert failed.returncode == 1 and "params.yaml runs micro/0" in failed.stdout
    finally:
        (project / "data.dvc").write_text(text)


def test_server_down_mid_push_then_retry_leaves_nothing_corrupt(project, env, s3):
    proxy = FaultProxy(s3.port)
    run("dvc", "remote", "add", "--local", "-f", "flaky", f"s3://{BUCKET}/flaky", cwd=project,
        env=env)  # fmt: skip
    run("dvc", "remote", "modify", "--local", "flaky", "endpointurl", proxy.endpoint,
        cwd=project, env=env)  # fmt: skip
    total = sum(p.stat().st_size for p in (project / "data").rglob("*") if p.is_file())
    proxy.down_after(total // 3)
    impatient = {**env, "AWS_MAX_ATTEMPTS": "1"}  # botocore: fail fast while it is down
    failed = run("salmubench", "publish", "data", "models", "--run-id", "flaky-1", "--remote",
                 "flaky", cwd=project, env=impatient, ok=False)  # fmt: skip
    assert failed.returncode == 2
    assert (
        "dvc push to remote 'flaky'" in failed.stderr and "nothing was committed" in failed.stderr
    )
    assert not run("git", "branch", "--list", "runs/flaky-1", cwd=project, env=env).stdout.strip()

    proxy.up()
    run("salmubench", "publish", "data", "models", "--run-id", "flaky-1", "--remote", "flaky",
        cwd=project, env=env)  # fmt: skip
    stored = s3.keys("flaky/")
    assert stored
    for key, data in stored.items():  # content-addressed: every object matches its name
        md5 = key.split("/files/md5/")[1].replace("/", "").removesuffix(".dir")
        assert hashlib.md5(data).hexdigest() == md5, key
    proxy.close()


def test_wrong_credentials_are_a_clear_error_without_the_secret(project, env):
    secret = "not-the-right-secret-0123456789"
    bad = {**env, "AWS_SECRET_ACCESS_KEY": secret}
    failed = run("salmubench", "publish", "report", "--run-id", "badcreds", cwd=project, env=bad,
                 ok=False)  # fmt: skip
    assert failed.returncode == 2
    assert "rejected the credentials" in failed.stderr
    assert secret not in failed.stderr + failed.stdout


def test_corrupt_remote_object_fails_the_pull(project, env, s3, tmp_path):
    """DVC re-hashes what it downloads (`verify = true` in .dvc/config) and refuses it."""
    run("dvc", "push", "models/clean", cwd=project, env=env)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    out = next(o for o in lock["stages"]["train@clean"]["outs"] if o["path"] == "models/clean")
    key = f"dvc/files/md5/{out['md5'][:2]}/{out['md5'][2:]}"  # the folder's listing
    listing = yaml.safe_load(s3.keys(key)[key])
    weights = next(e["md5"] for e in listing if e["relpath"] == "model.pt")
    victim = f"dvc/files/md5/{weights[:2]}/{weights[2:]}"
    data = bytearray(s3.keys(victim)[victim])
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the stored weights
    s3.client().put_object(Bucket=BUCKET, Key=victim, Body=bytes(data))

    clone = tmp_path / "clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns(
        "data", "models", "evals", "unlearned", "report", "cache", "plots"))  # fmt: skip
    pulled = run("dvc", "pull", "-v", "models/clean", cwd=clone, env=env, ok=False)
    assert pulled.returncode != 0
    log = pulled.stdout + pulled.stderr
    assert f"corrupted cache file '{clone}/.dvc/cache/files/md5/{weights[:2]}/{weights[2:]}'" in log
    assert not (clone / "models" / "clean" / "model.pt").exists()  # nothing corrupt checked out


def test_the_committed_pin_is_the_dataset_params_yaml_runs():
    """data.dvc (tools/pin_data.py) pins run.profile/run.seed; no stage writes data/, and
    every stage that reads it lists it (`python tools/pin_data.py --check` re-synthesises)."""
    pin = yaml.safe_load((REPO / "data.dvc").read_text())
    run_params = yaml.safe_load((REPO / "params.yaml").read_text())["run"]
    assert (pin["meta"]["profile"], pin["meta"]["seed"]) == (
        run_params["profile"],
        run_params["seed"],
    )
    [out] = pin["outs"]
    assert out["path"] == "data" and out["md5"].endswith(".dir") and out["nfiles"] > 0
    profile, seed = run_params["profile"], run_params["seed"]
    recipe = f"salmubench synth --profile {profile} --seed {seed} --out data --force -q"
    assert pin["meta"]["command"] == recipe
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        assert "data" not in body.get("outs", []), name
        if "--data data" in " ".join(body["cmd"].split()):
            assert "data" in body["deps"], name
