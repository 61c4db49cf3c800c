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
`evals/<variant or the unlearned name>`, `attacks/<variant or the unlearned name>/<attack>`
(the attacked model's name), `report`; with several worlds (datasets) each world's under
`worlds/<dataset seed>/`.
"""  # noqa: E501

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmubench.errors import PublishError
from salmubench.manifest import MANIFEST, ManifestError, dumps, read_manifest
from salmubench.vcs import (
    default_remote,
    dvc,
    git,
    has_remote,
    head,
    link_tree,
    local_config,
    pushed_count,
    record_remote,
    run_process,
    temporary_checkout,
    toplevel,
)

log = logging.getLogger(__name__)


ARTIFACTS = "artifacts"
BRANCH_PREFIX = "runs/"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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
    models = {m["digest"]: artifact_name(m) for _, m in folders if m["kind"] == "model"}
    used = {_dataset_of(m) for _, m in folders} - {None}
    several = len(worlds.keys() | used) > 1
    found: dict[str, Artifact] = {}
    for folder, manifest in folders:
        name = _attack_name(folder, manifest, models) if manifest["kind"] == "attack" else (
            artifact_name(manifest))  # fmt: skip
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


def _attack_name(folder: Path, manifest: dict[str, Any], models: dict[str, str]) -> str:
    """An attack folder is named after the model it attacked, which must be published with
    it (`attacks/<model's own name>/<attack>`): its manifest names the model by digest."""
    model = models.get(manifest["inputs"]["model"])
    if model is None:
        raise ManifestError(
            f"{folder}: an attack on model {manifest['inputs']['model'][:12]}, which is not "
            "among the folders published; publish the attacked model with its attacks"
        )
    return f"attacks/{model.rsplit('/', 1)[-1]}/{manifest['attack']}"


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
    repo_path = None if git_url else toplevel(Path(repo))
    if git_url and base == "HEAD":
        base = "main"
    with temporary_checkout(repo_path, git_url, base) as (checkout, owner):
        _refuse_existing(branch, owner, git_remote)
        if not (checkout / ".dvc").is_dir():
            raise PublishError(f"{checkout} at {base} is not a DVC project (no .dvc/)")
        if repo_path is not None:
            local_config(checkout, repo_path)
        remote = remote or default_remote(checkout)
        targets = []
        for artifact in artifacts:
            target = checkout / ARTIFACTS / artifact.name
            target.parent.mkdir(parents=True, exist_ok=True)
            link_tree(artifact.source, target)
            targets.append(f"{ARTIFACTS}/{artifact.name}")
        record = _record(run_id, artifacts, remote, head(checkout))
        log.info("tracking %d artifacts with DVC", len(targets))
        dvc("add", "-q", *targets, cwd=checkout, what="dvc add")
        # On the run branch a plain `dvc pull` fetches from where the run was pushed: the
        # remote, its URL and S3 endpoint (not a secret) go into the branch's .dvc/config,
        # so a clone needs only credentials.
        endpoint = record_remote(checkout, remote)
        record["storage_endpoint"] = endpoint
        (checkout / ARTIFACTS / "RUN.json").write_text(dumps(record), encoding="utf-8")
        log.info("pushing to DVC remote %r", remote)
        pushed = pushed_count(
            dvc("push", "-r", remote, *targets, cwd=checkout,
                 what=f"dvc push to remote {remote!r} (nothing was committed to git; run "
                 "publish again once the remote is reachable)")
        )  # fmt: skip
        # Commit on a detached HEAD and name the branch only once everything succeeded.
        # The branch records outputs, not a pipeline to re-run: without this, `dvc pull`
        # would also look for dvc.yaml's outputs, which a Kubeflow run never locked. The
        # pipeline that made them is the parent commit (RUN.json: source_commit). data.dvc
        # pins the repository's dataset, not necessarily this run's (artifacts/data.dvc).
        for name in ("dvc.yaml", "dvc.lock", "data.dvc"):
            if (checkout / name).exists():
                git("rm", "-q", "--cached", name, cwd=checkout, what=f"git rm {name}")
                (checkout / name).unlink()
        git("add", ARTIFACTS, ".dvc/config", cwd=checkout, what="git add")
        names = "\n".join(a.name for a in artifacts)
        git("commit", "-q", "-m", f"Run {run_id}: {len(artifacts)} artifacts\n\n{names}\n",
             cwd=checkout, what="git commit")  # fmt: skip
        commit = head(checkout)
        git_pushed = bool(git_remote and has_remote(checkout, git_remote))
        if git_pushed:
            git("push", "-q", str(git_remote), f"{commit}:refs/heads/{branch}", cwd=checkout,
                 what=f"git push {git_remote} {branch}")  # fmt: skip
        if not git_url:  # a worktree: name the branch in the caller's repository
            git("branch", branch, commit, cwd=owner, what=f"git branch {branch}")
    return Published(run_id, branch, commit, remote, artifacts, pushed, git_pushed, endpoint)


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
    exists = run_process(["git", "branch", "--list", branch], owner, "git branch").strip()
    if not exists and git_remote and has_remote(owner, git_remote):
        exists = run_process(["git", "ls-remote", "--heads", git_remote, branch], owner,
                      f"git ls-remote {git_remote}").strip()  # fmt: skip
    if exists:
        raise PublishError(
            f"branch {branch} already exists: a run is published once; choose another "
            "--run-id (or delete the branch)"
        )


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
