"""Reading eval folders into `EvalRecord`s and attack folders into `AttackRecord`s: the
report's only file input (scoring and the leaderboard are pure functions of the records)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from salmubench.attack.recovery import ATTACK_FILE
from salmubench.eval.catalogue import METRIC_NAMES
from salmubench.manifest import MANIFEST, ManifestError, read_manifest
from salmubench.report.robust import AttackRecord
from salmubench.report.scoring import MODEL_VARIANTS, EvalRecord
from salmubench.vocab import METRICS_FILE

log = logging.getLogger(__name__)


def find_eval_folders(path: str | os.PathLike) -> list[Path]:
    """`path` itself if it is an eval folder, else every eval folder below it (sorted).

    Hidden folders (temporary stage outputs) are skipped, and no stage folder is descended
    into: its manifest covers every file in it, so nothing else can live there.
    """
    root = Path(path)
    if not root.exists():
        raise ManifestError(
            f"{root}: no such file or folder (expected an eval folder or a "
            "folder that contains eval folders)"
        )
    if not root.is_dir():
        raise ManifestError(f"{root}: is a file; expected an eval folder or a folder of them")
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if MANIFEST in files:
            kind = read_manifest(here)["kind"]
            if kind == "eval":
                found.append(here)
            else:
                log.debug("%s: a %r folder, not an eval; skipped", here, kind)
            dirs.clear()
            continue
        if METRICS_FILE in files:
            log.warning(
                "%s: has %s but no %s (an unfinished eval?); skipped", here, METRICS_FILE, MANIFEST
            )
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    if not found:
        raise ManifestError(
            f"{root}: contains no eval folder (a folder whose {MANIFEST} has "
            '"kind": "eval"); run `salmubench eval` first'
        )
    return sorted(found)


def load_eval(folder: str | os.PathLike) -> EvalRecord:
    """Read one eval folder, verifying every file against its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder, kind="eval", verify=True)
    model = manifest.get("model")
    dataset = manifest.get("inputs", {}).get("dataset")
    if not isinstance(model, dict) or "digest" not in model or not dataset:
        raise ManifestError(
            f"{folder}: the eval manifest lacks the model identity or the "
            "dataset digest (written by an older salmubench?)"
        )
    variant = model.get("variant")
    if variant not in MODEL_VARIANTS:
        raise ManifestError(
            f"{folder}: unknown model variant {variant!r}; valid: {', '.join(MODEL_VARIANTS)}"
        )
    if variant == "unlearned" and not model.get("method"):
        raise ManifestError(f"{folder}: an unlearned model without a method name")
    path = folder / METRICS_FILE
    if not path.is_file():
        raise ManifestError(f"{folder}: no {METRICS_FILE}")
    metrics = json.loads(path.read_text(encoding="utf-8"))
    missing = [name for name in METRIC_NAMES if name not in metrics]
    if missing:
        raise ManifestError(
            f"{folder}: {METRICS_FILE} lacks {', '.join(missing)}; every "
            f"registered metric is required ({', '.join(METRIC_NAMES)})"
        )
    return EvalRecord(folder, manifest["digest"], dataset, dict(model), metrics)


def load_evals(runs: Iterable[str | os.PathLike]) -> list[EvalRecord]:
    """Every eval folder named by or found below `runs`, each read once, in path order."""
    folders: dict[Path, Path] = {}
    for run in runs:
        for folder in find_eval_folders(run):
            folders.setdefault(folder.resolve(), folder)
    if not folders:
        raise ManifestError("no runs given: pass eval folders or folders that contain them")
    return [load_eval(folder) for _, folder in sorted(folders.items())]


def find_attack_folders(path: str | os.PathLike) -> list[Path]:
    """Every attack folder (`salmubench attack`) at or below `path`, sorted; none is fine (a
    report without attacks). Hidden and stage folders are not descended into."""
    root = Path(path)
    if not root.exists():
        raise ManifestError(f"{root}: no such attack folder or folder of attack folders")
    if not root.is_dir():
        return []
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        if MANIFEST in files:
            if read_manifest(Path(folder))["kind"] == "attack":
                found.append(Path(folder))
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def load_attack(folder: str | os.PathLike) -> AttackRecord:
    """Read one attack folder, verifying every file against its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder, kind="attack", verify=True)
    path = folder / ATTACK_FILE
    if not path.is_file():
        raise ManifestError(f"{folder}: no {ATTACK_FILE}")
    record = json.loads(path.read_text(encoding="utf-8"))
    model = {k: v for k, v in record["model"].items() if k not in ("before", "points")}
    dataset = manifest.get("inputs", {}).get("dataset")
    if "digest" not in model or not dataset:
        raise ManifestError(f"{folder}: the attack record lacks the model or dataset digest")
    return AttackRecord(
        path=folder,
        digest=manifest["digest"],
        dataset=dataset,
        attack=manifest["attack"],
        config=manifest["config"],
        eval_config=manifest.get("eval_config", {}),
        model=model,
        references={v: (record.get(v) or {}).get("digest") for v in ("clean", "compromised")},
        worst=(record.get("recovery") or {}).get("worst"),
    )


def load_attacks(paths: Iterable[str | os.PathLike]) -> list[AttackRecord]:
    """Every attack folder named by or found below `paths`, each read once, in path order."""
    folders: dict[Path, Path] = {}
    for path in paths:
        for folder in find_attack_folders(path):
            folders.setdefault(folder.resolve(), folder)
    return [load_attack(folder) for _, folder in sorted(folders.items())]
