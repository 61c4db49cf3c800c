"""Publish a run: its stage folders into a DVC remote, their versions into git.

`salmubench publish RUN...` finds every finished stage folder under the RUN folders
(those with a `manifest.json`, each verified), lays them out under `artifacts/` with
stable names, tracks each with a `.dvc` file, `dvc push`es the data and commits the
`.dvc` files (and `artifacts/RUN.json`, what the run was) on branch `runs/<run-id>`,
pushed to the git remote. The branch's `.dvc/config` names the remote as its default with
its URL and S3 endpoint (never credentials), so anywhere with access to both remotes and
S3 credentials in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY):

    git fetch origin runs/<run-id> && git checkout runs/<run-id> && dvc pull

restores them byte for byte (an endpoint reachable only in-cluster can be overridden with
`dvc remote modify --local <remote> endpointurl URL`). The branch's commit adds `artifacts/` and removes
`dvc.yaml` (its parent, the source commit, has the pipeline), so that `dvc pull` there
means exactly this run's outputs. The work happens in a temporary git worktree (or a fresh
clone, in a cluster), so the caller's checkout is never touched. Any failure leaves no
branch behind; what was already pushed to the DVC remote is content-addressed, so a retry
sends only the rest. `dvc` and `git` run as processes: the library never imports them.

Names under `artifacts/`: `data` (the dataset), `models/<variant>`, `unlearned/<method>-b<budget>-s<seed>`,
`evals/<variant or the unlearned name>`, `report`; with several worlds (datasets) each
world's under `worlds/<dataset seed>/`.
"""  # noqa: E501

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmubench.manifest import MANIFEST, ManifestError, dumps, read_manifest

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
BRANCH_PREFIX = "runs/"
_AUTH = re.compile(r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|403|Forbidden")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class PublishError(RuntimeError):
    """Publishing failed; the message says at which step and what to do."""


@dataclass(frozen=True)
class Artifact:
    name: str  # path under artifacts/
    source: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]


def artifact_name(manifest: dict[str, Any]) -> str:
    """The stable name of a stage folder from what its manifest says it is."""
    kind = manifest["kind"]
    if kind == "dataset":
        return "data"
    if kind == "report":
        return "report"
    model = manifest if kind == "model" else manifest.get("model", {})
    if model.get("method"):
        name = f"{model['method']}-b{float(model['budget']):g}-s{model['seed']}"
        return f"unlearned/{name}" if kind == "model" else f"evals/{name}"
    variant = model.get("variant")
    if variant not in ("clean", "compromised"):
        raise ManifestError(f"cannot name a {kind} folder of variant {variant!r}")
    return f"models/{variant}" if kind == "model" else f"evals/{variant}"


def find_artifacts(roots: Sequence[str | Path]) -> list[Artifact]:
    """Every finished stage folder under `roots`, verified and named; clear errors first.

    A run of several worlds (datasets) names each world's folders under `worlds/<seed>/`
    (the dataset's seed), so that every world's data, models and evaluations keep their
    usual names side by side; the report, over all worlds, stays `report`.
    """
    folders: list[tuple[Path, dict[str, Any]]] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise ManifestError(f"{root}: no such folder to publish")
        folders += [(f, read_manifest(f, verify=True)) for f in _stage_folders(root)]
    worlds = {m["digest"]: m.get("seed") for _, m in folders if m["kind"] == "dataset"}
    used = {_dataset_of(m) for _, m in folders} - {None}
    several = len(worlds.keys() | used) > 1
    found: dict[str, Artifact] = {}
    for folder, manifest in folders:
        name = artifact_name(manifest)
        dataset = _dataset_of(manifest)
        if several and dataset is not None:
            seed = worlds.get(dataset)
            name = f"worlds/{seed if seed is not None else dataset[:8]}/{name}"
        if name in found and found[name].manifest["digest"] != manifest["digest"]:
            raise ManifestError(
                f"two different {manifest['kind']} folders would both be published as "
                f"{name!r}: {found[name].source} and {folder}; publish them separately"
            )
        found.setdefault(name, Artifact(name, folder, manifest))
    if not found:
        raise ManifestError(
            f"no finished stage folder (with a {MANIFEST}) under {', '.join(map(str, roots))}"
        )
    return sorted(found.values(), key=lambda a: a.name)


def _dataset_of(manifest: dict[str, Any]) -> str | None:
    """The digest of the dataset (world) a stage folder belongs to; None for a report."""
    if manifest["kind"] == "dataset":
        return manifest["digest"]
    if manifest["kind"] == "report":
        return None
    return (manifest.get("inputs") or {}).get("dataset")


def _stage_folders(root: Path) -> Iterator[Path]:
    """Folders holding a manifest.json; never inside one, never temporary ones."""
    if (root / MANIFEST).is_file():
        yield root
        return
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            yield from _stage_folders(child)


def default_run_id(artifacts: Sequence[Artifact]) -> str:
    dataset = next((a.manifest for a in artifacts if a.kind == "dataset"), {})
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    profile = dataset.get("profile", "run")
    digest = dataset.get("digest", artifacts[0].manifest["digest"])[:8]
    return f"{profile}-{stamp}-{digest}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(
            f"run id {run_id!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(up to 100, starting with a letter or digit)"
        )
    return run_id


# -- processes ---------------------------------------------------------------------------
def _run(cmd: Sequence[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> str:
    log.debug("$ %s", " ".join(cmd))
    try:
        done = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
    except FileNotFoundError:
        raise PublishError(f"{what}: {cmd[0]!r} is not installed or not on PATH") from None
    if done.returncode != 0:
        detail = _redact((done.stderr or done.stdout).strip())
        if _AUTH.search(detail):
            what += (
                "; the S3 endpoint rejected the credentials: check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY"
            )
        shown = " ".join(["dvc", *cmd[3:5]] if cmd[0] == sys.executable else cmd[:3])
        raise PublishError(f"{what} failed ({shown}...):\n{detail}")
    return done.stdout + done.stderr


def _redact(text: str) -> str:
    """Never echo a secret a tool might print back."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GIT_PASSWORD"):
        if value := os.environ.get(name):
            text = text.replace(value, "***")
    return text


_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$GIT_USERNAME" ;;
  *) printf '%s\\n' "$GIT_PASSWORD" ;;
esac
"""


def _git(*args: str, cwd: Path, what: str) -> str:
    """git with a fallback identity and, for HTTPS remotes, credentials from the env.

    GIT_USERNAME / GIT_PASSWORD (a token; in Kubernetes from a Secret) reach git through
    an askpass script that reads them from the environment: never on a command line,
    in a URL or in a file.
    """
    identity = ["-c", "user.name=salmubench", "-c", "user.email=salmubench@localhost"]
    has_identity = subprocess.run(
        ["git", "config", "user.email"], cwd=cwd, capture_output=True
    ).returncode == 0  # fmt: skip
    env = {"GIT_TERMINAL_PROMPT": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        if os.environ.get("GIT_PASSWORD"):
            askpass = Path(tmp) / "askpass.sh"
            askpass.write_text(_ASKPASS, encoding="utf-8")
            askpass.chmod(0o700)
            env["GIT_ASKPASS"] = str(askpass)
        return _run(["git", *([] if has_identity else identity), *args], cwd, what, env)


def _dvc(*args: str, cwd: Path, what: str) -> str:
    # DVC of this environment (a dependency), whatever PATH says.
    return _run([sys.executable, "-m", "dvc", *args], cwd, what)


@contextlib.contextmanager
def _checkout(repo: Path | None, git_url: str | None, base: str) -> Iterator[tuple[Path, Path]]:
    """A scratch checkout of `base` to commit in: a worktree of `repo` or a clone of `git_url`.

    Yields (checkout, the repository that owns the branch).
    """
    scratch = Path(tempfile.mkdtemp(prefix="salmubench-publish-"))
    try:
        if git_url:
            _git("clone", "-q", "--branch", base, git_url, str(scratch / "repo"), cwd=scratch,
                 what=f"cloning {git_url}")  # fmt: skip
            yield scratch / "repo", scratch / "repo"
        else:
            assert repo is not None
            tree = scratch / "tree"
            _git("worktree", "add", "-q", "--detach", str(tree), base, cwd=repo,
                 what="creating a git worktree")  # fmt: skip
            try:
                yield tree, repo
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                               capture_output=True)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _link_tree(source: Path, target: Path) -> None:
    """Copy a folder, hard-linking files where the filesystem allows (no extra space)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def _local_config(checkout: Path, repo: Path) -> None:
    """Give a worktree the caller's DVC setup: its local config, cache and local remote."""
    dvc_dir = repo / ".dvc"
    if (dvc_dir / "config.local").is_file():
        shutil.copy2(dvc_dir / "config.local", checkout / ".dvc" / "config.local")
    _dvc("cache", "dir", "--local", str(dvc_dir / "cache"), cwd=checkout, what="dvc cache")
    # Relative local-remote URLs resolve against .dvc/: make them the caller's.
    urls = {}
    for level in ("--project", "--local"):  # later levels win, as in DVC
        listed = subprocess.run([sys.executable, "-m", "dvc", "config", "--list", level],
                                cwd=repo, capture_output=True, text=True).stdout  # fmt: skip
        for line in listed.splitlines():  # remote.NAME.url=URL
            key, _, value = line.partition("=")
            if key.startswith("remote.") and key.endswith(".url"):
                urls[key[len("remote.") : -len(".url")]] = value.strip()
    for name, url in urls.items():
        if "://" not in url:  # a local remote: relative to the caller's .dvc/
            absolute = os.path.normpath(dvc_dir / url)
            _dvc("remote", "modify", "--local", name, "url", absolute, cwd=checkout,
                 what="dvc remote modify")  # fmt: skip


@dataclass
class Published:
    run_id: str
    branch: str
    commit: str
    remote: str
    artifacts: list[Artifact]
    pushed: int
    git_pushed: bool
    endpoint: str = ""  # the S3 endpoint recorded on the branch ("" = none)

    def restore_command(self, git_remote: str = "origin") -> str:
        return (
            f"git fetch {git_remote} {self.branch} && git checkout {self.branch} && dvc pull"
            if self.git_pushed
            else f"git checkout {self.branch} && dvc pull"
        )


def publish(
    runs: Sequence[str | Path],
    *,
    run_id: str | None = None,
    repo: str | Path = ".",
    git_url: str | None = None,
    base: str = "HEAD",
    remote: str | None = None,
    git_remote: str | None = "origin",
) -> Published:
    """Push the stage folders under `runs` to the DVC remote and commit their versions.

    `repo`: the project checkout to branch from (a worktree is used; the checkout itself
    is not touched). `git_url`: clone this instead (a cluster has no checkout). `remote`:
    the DVC remote (default: the project's default). `git_remote`: where to push the run
    branch (None: keep it local).
    """
    artifacts = find_artifacts(runs)  # verified before any git or network work
    run_id = check_run_id(run_id or default_run_id(artifacts))
    branch = BRANCH_PREFIX + run_id
    repo_path = None if git_url else _toplevel(Path(repo))
    if git_url and base == "HEAD":
        base = "main"
    with _checkout(repo_path, git_url, base) as (checkout, owner):
        _refuse_existing(branch, owner, git_remote)
        if not (checkout / ".dvc").is_dir():
            raise PublishError(f"{checkout} at {base} is not a DVC project (no .dvc/)")
        if repo_path is not None:
            _local_config(checkout, repo_path)
        remote = remote or _default_remote(checkout)
        targets = []
        for artifact in artifacts:
            target = checkout / ARTIFACTS / artifact.name
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_tree(artifact.source, target)
            targets.append(f"{ARTIFACTS}/{artifact.name}")
        record = _record(run_id, artifacts, remote, _head(checkout))
        log.info("tracking %d artifacts with DVC", len(targets))
        _dvc("add", "-q", *targets, cwd=checkout, what="dvc add")
        # On the run branch a plain `dvc pull` fetches from where the run was pushed: the
        # remote, its URL and S3 endpoint (not a secret) go into the branch's .dvc/config,
        # so a clone needs only credentials.
        endpoint = _record_remote(checkout, remote)
        record["storage_endpoint"] = endpoint
        (checkout / ARTIFACTS / "RUN.json").write_text(dumps(record), encoding="utf-8")
        log.info("pushing to DVC remote %r", remote)
        pushed = _pushed_count(
            _dvc("push", "-r", remote, *targets, cwd=checkout,
                 what=f"dvc push to remote {remote!r} (nothing was committed to git; run "
                 "publish again once the remote is reachable)")
        )  # fmt: skip
        # Commit on a detached HEAD and name the branch only once everything succeeded.
        # The branch records outputs, not a pipeline to re-run: without this, `dvc pull`
        # would also look for dvc.yaml's outputs, which a Kubeflow run never locked. The
        # pipeline that made them is the parent commit (RUN.json: source_commit).
        for name in ("dvc.yaml", "dvc.lock"):
            if (checkout / name).exists():
                _git("rm", "-q", "--cached", name, cwd=checkout, what=f"git rm {name}")
                (checkout / name).unlink()
        _git("add", ARTIFACTS, ".dvc/config", cwd=checkout, what="git add")
        names = "\n".join(a.name for a in artifacts)
        _git("commit", "-q", "-m", f"Run {run_id}: {len(artifacts)} artifacts\n\n{names}\n",
             cwd=checkout, what="git commit")  # fmt: skip
        commit = _head(checkout)
        git_pushed = bool(git_remote and _has_remote(checkout, git_remote))
        if git_pushed:
            _git("push", "-q", str(git_remote), f"{commit}:refs/heads/{branch}", cwd=checkout,
                 what=f"git push {git_remote} {branch}")  # fmt: skip
        if not git_url:  # a worktree: name the branch in the caller's repository
            _git("branch", branch, commit, cwd=owner, what=f"git branch {branch}")
    return Published(run_id, branch, commit, remote, artifacts, pushed, git_pushed, endpoint)


# Where a run's S3 endpoint comes from when the DVC config has none: the variables boto3
# reads (a cluster task gets AWS_ENDPOINT_URL_S3 from the pipeline).
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# Fail fast when the recorded endpoint is unreachable (botocore's default is 60 s per try).
CONNECT_TIMEOUT_SECONDS = 10


def _config_value(checkout: Path, key: str) -> str:
    """A DVC config value as DVC resolves it (every level, local last); "" if unset."""
    done = subprocess.run([sys.executable, "-m", "dvc", "config", key], cwd=checkout,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def _record_remote(checkout: Path, remote: str) -> str:
    """Make `remote` the branch's default with its URL and S3 endpoint in .dvc/config.

    The endpoint is the one the push used: the remote's `endpointurl` (e.g. from
    `salmubench remote`, in the untracked config.local) or $AWS_ENDPOINT_URL_S3. Returns
    it ("" for a non-S3 remote, or S3 on AWS itself).
    """
    url = _config_value(checkout, f"remote.{remote}.url")
    if not url:
        raise PublishError(f"DVC remote {remote!r} is not configured (dvc remote list)")
    args = ("remote", "modify", "--project", remote)
    listed = _dvc("remote", "list", "--project", cwd=checkout, what="dvc remote").split()
    if remote not in listed:
        _dvc("remote", "add", "--project", remote, url, cwd=checkout, what="dvc remote add")
    elif "://" in url:  # a local remote keeps its project-relative URL
        _dvc(*args, "url", url, cwd=checkout, what="dvc remote modify")
    _dvc("remote", "default", "--project", remote, cwd=checkout, what="dvc remote default")
    if not url.startswith("s3://"):
        return ""
    endpoint = _config_value(checkout, f"remote.{remote}.endpointurl")
    endpoint = endpoint or next((os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), "")
    if endpoint:
        _dvc(*args, "endpointurl", endpoint, cwd=checkout, what="dvc remote modify")
    if not _config_value(checkout, f"remote.{remote}.connect_timeout"):
        _dvc(*args, "connect_timeout", str(CONNECT_TIMEOUT_SECONDS), cwd=checkout,
             what="dvc remote modify")  # fmt: skip
    return endpoint


def _record(run_id: str, artifacts: Sequence[Artifact], remote: str, source: str) -> dict:
    dataset = next((a.manifest for a in artifacts if a.kind == "dataset"), {})
    return {
        "run_id": run_id,
        "source_commit": source,
        "published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dvc_remote": remote,
        "profile": dataset.get("profile"),
        "seed": dataset.get("seed"),
        "artifacts": {
            a.name: {"kind": a.kind, "digest": a.manifest["digest"], "from": str(a.source)}
            for a in artifacts
        },
    }


def _refuse_existing(branch: str, owner: Path, git_remote: str | None) -> None:
    exists = _run(["git", "branch", "--list", branch], owner, "git branch").strip()
    if not exists and git_remote and _has_remote(owner, git_remote):
        exists = _run(["git", "ls-remote", "--heads", git_remote, branch], owner,
                      f"git ls-remote {git_remote}").strip()  # fmt: skip
    if exists:
        raise PublishError(
            f"branch {branch} already exists: a run is published once; choose another "
            "--run-id (or delete the branch)"
        )


def _toplevel(path: Path) -> Path:
    if not path.is_dir():
        raise PublishError(f"{path}: no such folder (expected the project's git checkout)")
    out = _run(["git", "rev-parse", "--show-toplevel"], path, f"finding the git repo of {path}")
    return Path(out.strip())


def _head(checkout: Path) -> str:
    return _run(["git", "rev-parse", "HEAD"], checkout, "git rev-parse").strip()


def _has_remote(checkout: Path, name: str) -> bool:
    return name in _run(["git", "remote"], checkout, "git remote").split()


def _default_remote(checkout: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "dvc", "remote", "default"], cwd=checkout,
                         capture_output=True, text=True)  # fmt: skip
    name = out.stdout.strip()
    if out.returncode != 0 or not name:
        raise PublishError("the project has no default DVC remote; pass --remote NAME")
    return name


def _pushed_count(output: str) -> int:
    if m := re.search(r"(\d+) files? pushed", output):
        return int(m[1])
    return 0


def summary(published: Published) -> str:
    lines = [
        f"published run {published.run_id}: {len(published.artifacts)} artifacts, "
        f"{published.pushed} files pushed to DVC remote {published.remote!r}",
        f"  git: branch {published.branch} at {published.commit[:12]}"
        + ("" if published.git_pushed else " (local only: no git remote)"),
    ]
    for a in published.artifacts:
        lines.append(f"  {a.name:<40} {a.kind:<8} {a.manifest['digest'][:12]}")
    where = f" (storage: {published.endpoint})" if published.endpoint else ""
    lines.append(f"restore anywhere, with S3 credentials in the environment{where}:")
    lines.append(f"  {published.restore_command()}")
    return "\n".join(lines)


def write_record(path: str | Path, published: Published) -> None:
    Path(path).write_text(
        json.dumps({"run_id": published.run_id, "branch": published.branch,
                    "commit": published.commit, "remote": published.remote,
                    "pushed": published.pushed}, indent=2) + "\n", encoding="utf-8")  # fmt: skip


def configure_remote(
    endpoint: str,
    *,
    bucket: str = "salmubench",
    prefix: str = "dvc",
    name: str = "minio",
    repo: str | Path = ".",
    make_default: bool = True,
) -> list[str]:
    """Point the project's DVC remote `name` at an S3 endpoint, in `.dvc/config.local`.

    The endpoint and bucket go into the untracked local config (credentials stay in the
    environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Returns the commands run.
    """
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint {endpoint!r} must start with http:// or https://, "
            "e.g. http://minio.salmubench.svc.cluster.local:9000"
        )
    from salmubench.storage import split_url

    split_url(f"s3://{bucket}/{prefix}")  # validates the bucket name
    top = _toplevel(Path(repo))
    commands = [
        ["remote", "modify", "--local", name, "endpointurl", endpoint.rstrip("/")],
        ["remote", "modify", "--local", name, "url", f"s3://{bucket}/{prefix.strip('/')}"],
    ]
    if make_default:
        commands.append(["remote", "default", "--local", name])
    if name not in _dvc("remote", "list", cwd=top, what="dvc remote list").split():
        commands.insert(0, ["remote", "add", "--local", name, f"s3://{bucket}/{prefix}"])
    for args in commands:
        _dvc(*args, cwd=top, what=f"dvc {' '.join(args[:2])}")
    return ["dvc " + " ".join(a) for a in commands]
