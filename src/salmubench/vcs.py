"""git and DVC as processes, for `publish`: a temporary checkout of the repository, the
runs of `git` and `dvc` (their errors as `PublishError`, credentials redacted), the DVC
remote's recorded settings and `salmubench remote`. The library never imports dvc.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from salmubench.errors import PublishError

log = logging.getLogger(__name__)


AUTH_ERRORS = re.compile(r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|403|Forbidden")


# -- processes ---------------------------------------------------------------------------
def run_process(cmd: Sequence[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> str:
    log.debug("$ %s", " ".join(cmd))
    try:
        done = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
    except FileNotFoundError:
        raise PublishError(f"{what}: {cmd[0]!r} is not installed or not on PATH") from None
    if done.returncode != 0:
        detail = redact((done.stderr or done.stdout).strip())
        if AUTH_ERRORS.search(detail):
            what += (
                "; the S3 endpoint rejected the credentials: check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY"
            )
        shown = " ".join(["dvc", *cmd[3:5]] if cmd[0] == sys.executable else cmd[:3])
        raise PublishError(f"{what} failed ({shown}...):\n{detail}")
    return done.stdout + done.stderr


def redact(text: str) -> str:
    """Never echo a secret a tool might print back."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GIT_PASSWORD"):
        if value := os.environ.get(name):
            text = text.replace(value, "***")
    return text


ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$GIT_USERNAME" ;;
  *) printf '%s\\n' "$GIT_PASSWORD" ;;
esac
"""


def git(*args: str, cwd: Path, what: str) -> str:
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
            askpass.write_text(ASKPASS, encoding="utf-8")
            askpass.chmod(0o700)
            env["GIT_ASKPASS"] = str(askpass)
        return run_process(["git", *([] if has_identity else identity), *args], cwd, what, env)


def dvc(*args: str, cwd: Path, what: str) -> str:
    # DVC of this environment (a dependency), whatever PATH says.
    return run_process([sys.executable, "-m", "dvc", *args], cwd, what)


@contextlib.contextmanager
def temporary_checkout(
    repo: Path | None, git_url: str | None, base: str
) -> Iterator[tuple[Path, Path]]:
    """A scratch checkout of `base` to commit in: a worktree of `repo` or a clone of `git_url`.

    Yields (checkout, the repository that owns the branch).
    """
    scratch = Path(tempfile.mkdtemp(prefix="salmubench-publish-"))
    try:
        if git_url:
            git("clone", "-q", "--branch", base, git_url, str(scratch / "repo"), cwd=scratch,
                 what=f"cloning {git_url}")  # fmt: skip
            yield scratch / "repo", scratch / "repo"
        else:
            assert repo is not None
            tree = scratch / "tree"
            git("worktree", "add", "-q", "--detach", str(tree), base, cwd=repo,
                 what="creating a git worktree")  # fmt: skip
            try:
                yield tree, repo
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                               capture_output=True)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def link_tree(source: Path, target: Path) -> None:
    """Copy a folder, hard-linking files where the filesystem allows (no extra space)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def local_config(checkout: Path, repo: Path) -> None:
    """Give a worktree the caller's DVC setup: its local config, cache and local remote."""
    dvc_dir = repo / ".dvc"
    if (dvc_dir / "config.local").is_file():
        shutil.copy2(dvc_dir / "config.local", checkout / ".dvc" / "config.local")
    dvc("cache", "dir", "--local", str(dvc_dir / "cache"), cwd=checkout, what="dvc cache")
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
            dvc("remote", "modify", "--local", name, "url", absolute, cwd=checkout,
                 what="dvc remote modify")  # fmt: skip


# Where a run's S3 endpoint comes from when the DVC config has none: the variables boto3
# reads (a cluster task gets AWS_ENDPOINT_URL_S3 from the pipeline).
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


# Fail fast when the recorded endpoint is unreachable (botocore's default is 60 s per try).
CONNECT_TIMEOUT_SECONDS = 10


def config_value(checkout: Path, key: str) -> str:
    """A DVC config value as DVC resolves it (every level, local last); "" if unset."""
    done = subprocess.run([sys.executable, "-m", "dvc", "config", key], cwd=checkout,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def record_remote(checkout: Path, remote: str) -> str:
    """Make `remote` the branch's default with its URL and S3 endpoint in .dvc/config.

    The endpoint is the one the push used: the remote's `endpointurl` (e.g. from
    `salmubench remote`, in the untracked config.local) or $AWS_ENDPOINT_URL_S3. Returns
    it ("" for a non-S3 remote, or S3 on AWS itself).
    """
    url = config_value(checkout, f"remote.{remote}.url")
    if not url:
        raise PublishError(f"DVC remote {remote!r} is not configured (dvc remote list)")
    args = ("remote", "modify", "--project", remote)
    listed = dvc("remote", "list", "--project", cwd=checkout, what="dvc remote").split()
    if remote not in listed:
        dvc("remote", "add", "--project", remote, url, cwd=checkout, what="dvc remote add")
    elif "://" in url:  # a local remote keeps its project-relative URL
        dvc(*args, "url", url, cwd=checkout, what="dvc remote modify")
    dvc("remote", "default", "--project", remote, cwd=checkout, what="dvc remote default")
    if not url.startswith("s3://"):
        return ""
    endpoint = config_value(checkout, f"remote.{remote}.endpointurl")
    endpoint = endpoint or next((os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), "")
    if endpoint:
        dvc(*args, "endpointurl", endpoint, cwd=checkout, what="dvc remote modify")
    if not config_value(checkout, f"remote.{remote}.connect_timeout"):
        dvc(*args, "connect_timeout", str(CONNECT_TIMEOUT_SECONDS), cwd=checkout,
             what="dvc remote modify")  # fmt: skip
    return endpoint


def toplevel(path: Path) -> Path:
    if not path.is_dir():
        raise PublishError(f"{path}: no such folder (expected the project's git checkout)")
    out = run_process(
        ["git", "rev-parse", "--show-toplevel"], path, f"finding the git repo of {path}"
    )
    return Path(out.strip())


def head(checkout: Path) -> str:
    return run_process(["git", "rev-parse", "HEAD"], checkout, "git rev-parse").strip()


def has_remote(checkout: Path, name: str) -> bool:
    return name in run_process(["git", "remote"], checkout, "git remote").split()


def default_remote(checkout: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "dvc", "remote", "default"], cwd=checkout,
                         capture_output=True, text=True)  # fmt: skip
    name = out.stdout.strip()
    if out.returncode != 0 or not name:
        raise PublishError("the project has no default DVC remote; pass --remote NAME")
    return name


def pushed_count(output: str) -> int:
    if m := re.search(r"(\d+) files? pushed", output):
        return int(m[1])
    return 0


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
    from salmubench.s3 import split_url

    split_url(f"s3://{bucket}/{prefix}")  # validates the bucket name
    top = toplevel(Path(repo))
    commands = [
        ["remote", "modify", "--local", name, "endpointurl", endpoint.rstrip("/")],
        ["remote", "modify", "--local", name, "url", f"s3://{bucket}/{prefix.strip('/')}"],
    ]
    if make_default:
        commands.append(["remote", "default", "--local", name])
    if name not in dvc("remote", "list", cwd=top, what="dvc remote list").split():
        commands.insert(0, ["remote", "add", "--local", name, f"s3://{bucket}/{prefix}"])
    for args in commands:
        dvc(*args, cwd=top, what=f"dvc {' '.join(args[:2])}")
    return ["dvc " + " ".join(a) for a in commands]
