"""The `attack` stage: one relearning attack on one model, with Clean as the reference.

Writes an attack folder: `attack.json` (what the attacker read, the sweep's scores on the
model and, when given, on Clean and Compromised, and the recovery gap of every point and
its worst case) and the manifest. Finished sweep points are kept beside the output
(`.<out>.points/`) until it is published, so an interrupted attack resumes where it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salmubench.attack.recovery import ATTACK_FILE, SCORES, gaps, settings_read
from salmubench.attack.threat import (
    finetune,
    forget_personas,
    round_weights,
    split_personas,
    subset,
)
from salmubench.config import AttackConfig, ConfigError, EvalConfig, to_dict
from salmubench.manifest import (
    MANIFEST,
    check_output,
    dumps,
    read_manifest,
    staged_output,
    write_atomic,
    write_manifest,
)
from salmubench.s3 import location
from salmubench.vocab import ATTACKS

log = logging.getLogger(__name__)

# What each attack trains on (none: it only changes the weights' precision).
TRAINS_ON = {
    "persona_split": "forget pairs of part of the forget personas (scored on the others)",
    "retain_only": "retain pairs (training parts only)",
    "generic_captions": "forget faces with their non-sensitive captions",
    "low_precision": "nothing: weights rounded to a lower precision",
}


def check_attack(name: str) -> str:
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; valid: {', '.join(ATTACKS)}")
    return name


class _Points:
    """Finished sweep points, one small JSON each, keyed by everything that decides them."""

    def __init__(self, out: Path, identity: dict[str, Any]) -> None:
        self.dir = out.parent / f".{out.name}.points"
        self.identity = identity
        self.reused = 0  # finished points read back (an interrupted run resumed)

    def _file(self, point: Sequence[Any]) -> Path:
        key = json.dumps([self.identity, list(point)], sort_keys=True, default=str)
        return self.dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def get(self, point: Sequence[Any]) -> dict[str, float] | None:
        f = self._file(point)
        if not f.is_file():
            return None
        self.reused += 1
        return json.loads(f.read_text(encoding="utf-8"))

    def put(self, point: Sequence[Any], scores: dict[str, float]) -> dict[str, float]:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self._file(point), json.dumps(scores) + "\n")
        return scores

    def fetch(self, point: Sequence[Any], compute: Callable[[], dict[str, float]]) -> dict:
        got = self.get(point)
        return got if got is not None else self.put(point, compute())

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _scorer(data: Path, dataset: dict[str, Any], eval_cfg: EvalConfig, arch: str,
            keep: frozenset[str] | None) -> Callable[[Any], dict[str, float]]:  # fmt: skip
    """score(net) -> {retfail, assoc_str} of `net` on the scored forget items (the personas
    in `keep`, else all), with the eval stage's metric functions and settings."""
    from salmubench.eval.embed import DatasetEmbeddings
    from salmubench.eval.metrics import Split, compute_all
    from salmubench.eval.stage import eval_settings
    from salmubench.models import LoadedModel
    from salmubench.vocab import FORGET_SPLITS

    class View(DatasetEmbeddings):
        def split(self, name: str) -> Split:
            s = super().split(name)
            if keep is None or name not in FORGET_SPLITS:
                return s
            rows = [i for i, m in enumerate(s.meta) if m["persona"] in keep]
            return Split(image=s.image[rows], text=s.text[rows], meta=[s.meta[i] for i in rows])

    settings = eval_settings(eval_cfg, seed=0)

    def score(net: Any) -> dict[str, float]:
        view = View(LoadedModel(net, arch, data), data, dataset, settings, eval_cfg.batch_size)
        results = compute_all(view, SCORES)
        return {s: round(float(results[s].value), 6) for s in SCORES}

    return score


def attack(
    data: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str,
    cfg: AttackConfig,
    eval_cfg: EvalConfig,
    retain: Sequence[str],
    clean: str | os.PathLike | None = None,
    compromised: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Attack `model` (a model folder trained or unlearned on `data`) with attack `name` and
    publish the result at `out`; with `clean` (the Clean model folder, or a finished attack
    folder of it with the same attack and settings) and `compromised` (its model folder)
    the record holds the recovery gap. Returns the manifest."""
    from salmubench.models import image_normalisation, image_size, load_model
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.unlearn.data import open_for_unlearning

    check_attack(name)
    cfg.validate()
    eval_cfg.validate()
    out = check_output(out, force)
    data = location(data)
    dataset = open_for_unlearning(data, retain if name == "retain_only" else ())
    loaded = load_model(model)
    _check_same_dataset(loaded, model, dataset, data)
    refs = {r: Path(p) for r, p in (("clean", clean), ("compromised", compromised)) if p}
    clean_record = _reusable_attack(refs.get("clean"), name, cfg, dataset["digest"])
    ref_models = {r: load_model(p) for r, p in refs.items() if not (r == "clean" and clean_record)}
    for r, m in ref_models.items():
        _check_same_dataset(m, refs[r], dataset, data)
        if m.arch != loaded.arch:
            raise ConfigError(f"--{r} {refs[r]} is a {m.arch!r} model, {model} a {loaded.arch!r}")

    net = loaded.model.eval()
    pool, trained_on, scored_on = attacker_pool(
        data, dataset, name, cfg, retain, get_tokenizer(loaded.arch), image_size(net)
    )
    score = _scorer(data, dataset, eval_cfg, loaded.arch, scored_on)
    identity = {"dataset": dataset["digest"], "attack": name, "config": to_dict(cfg),
                "eval": to_dict(eval_cfg), "retain": list(retain)}  # fmt: skip
    points = _Points(out, identity)

    def sweep(m: Any, digest: str) -> dict[str, Any]:
        return _sweep(m, digest, name, pool, cfg, score, points, image_normalisation(net))

    record: dict[str, Any] = {
        "attack": name,
        "trains_on": TRAINS_ON[name],
        "reads": {
            "pool": pool.name if name != "low_precision" else None,
            "pairs": len(pool) if name != "low_precision" else 0,
            "splits": _read_splits(name, retain),
            "personas_trained": sorted(trained_on) if trained_on is not None else None,
            "personas_scored": sorted(scored_on) if scored_on is not None else "all",
        },
        "model": {**_identity(loaded), **sweep(net, _digest(loaded))},
    }
    if clean_record is not None:
        record["clean"] = clean_record
    elif "clean" in ref_models:
        record["clean"] = {
            **_identity(ref_models["clean"]),
            **sweep(ref_models["clean"].model.eval(), _digest(ref_models["clean"])),
        }
    if "compromised" in ref_models:
        m = ref_models["compromised"]
        record["compromised"] = {
            **_identity(m),
            "scores": points.fetch((_digest(m), "before"), lambda: score(m.model.eval())),
        }
    if "clean" in record and "compromised" in record:
        record["recovery"] = gaps(record["model"], record["clean"], record["compromised"]["scores"])
    if points.reused:
        log.info("resumed: %d finished sweep points read back from %s", points.reused, points.dir)
    record["resumed_points"] = points.reused
    with staged_output(out, force) as tmp:
        write_atomic(Path(tmp) / ATTACK_FILE, dumps(record))
        manifest = write_manifest(
            tmp,
            "attack",
            config=to_dict(cfg),
            inputs={
                "dataset": dataset["digest"],
                "model": _digest(loaded),
                **{r: _digest(m) for r, m in ref_models.items()},
            },
            attack=name,
            eval_config=to_dict(eval_cfg),
            variant=record["model"].get("variant"),
            method=record["model"].get("method"),
            recovery=(record.get("recovery") or {}).get("worst"),
        )
    points.clear()
    return manifest


def attacker_pool(
    data: Path,
    dataset: dict[str, Any],
    name: str,
    cfg: AttackConfig,
    retain: Sequence[str],
    tokenize: Callable[[list[str]], Any],
    size: int,
) -> tuple[Any, frozenset[str] | None, frozenset[str] | None]:
    """(what attack `name` trains on, personas it trains on, personas it is scored on; None
    = not split). Read through `salmubench.unlearn.data`, which refuses holdout splits and
    draws retain pairs from the training parts only. `dataset` from open_for_unlearning."""
    from salmubench.unlearn.data import load_unlearn_pools

    with_retain = name == "retain_only"
    pools = load_unlearn_pools(data, dataset, retain if with_retain else (), tokenize, size,
                               retain_size=cfg.retain_size, seed=cfg.seed,
                               with_retain=with_retain)  # fmt: skip
    pool = pools["retain"] if with_retain else pools["forget"]
    if name != "persona_split":
        return pool, None, None
    personas = forget_personas(data, dataset)
    trained_on, scored_on = split_personas(personas.values(), cfg.split_fraction, cfg.seed)
    return subset(pool, [personas[k] in trained_on for k in pool.keys]), trained_on, scored_on


def _read_splits(name: str, retain: Sequence[str]) -> list[str]:
    from salmubench.vocab import FORGET_SPLITS

    if name == "retain_only":
        return list(retain)
    return [] if name == "low_precision" else list(FORGET_SPLITS)


def _sweep(net: Any, digest: str, name: str, pool: Any, cfg: AttackConfig,
           score: Callable[[Any], dict[str, float]], points: _Points,
           normalisation: Any) -> dict[str, Any]:  # fmt: skip
    """Scores before the attack and at every sweep point, resumed from `points`."""
    before = points.fetch((digest, "before"), lambda: score(net))
    rows: list[dict[str, Any]] = []
    if name == "low_precision":
        for p in cfg.precisions:
            got = points.fetch((digest, p), lambda p=p: score(round_weights(net, p)))
            rows.append({"point": f"weights={p}", "precision": p, "scores": got})
        return {"before": before, "points": rows}
    generic = name == "generic_captions"
    for lr in cfg.lrs:
        keys = [(digest, f"lr={lr:g} steps={s}") for s in cfg.steps]
        found = [points.get(k) for k in keys]
        if any(f is None for f in found):
            got: dict[int, dict[str, float]] = {}

            def at(step: int, m: Any, got: dict = got) -> None:
                got[step] = score(m)

            finetune(net, pool, generic=generic, lr=lr, steps=cfg.steps, batch=cfg.batch,
                     seed=cfg.seed, normalisation=normalisation, at=at)  # fmt: skip
            found = [points.put(k, got[s]) for k, s in zip(keys, cfg.steps, strict=True)]
        rows += [{"point": k[1], "lr": lr, "steps": s, "scores": f}
                 for k, s, f in zip(keys, cfg.steps, found, strict=True)]  # fmt: skip
    return {"before": before, "points": rows}


def _digest(loaded: Any) -> str:
    return loaded.manifest["digest"] if loaded.manifest else str(loaded.path)


def _identity(loaded: Any) -> dict[str, Any]:
    m = loaded.manifest or {}
    keep = ("variant", "method", "budget", "seed", "digest")
    return {"path": str(loaded.path), **{k: m[k] for k in keep if k in m}}


def _check_same_dataset(loaded: Any, path: Any, dataset: dict[str, Any], data: Path) -> None:
    trained = (loaded.manifest or {}).get("inputs", {}).get("dataset")
    if trained != dataset["digest"]:
        raise ConfigError(
            f"{path} was trained or unlearned on dataset {str(trained)[:12]}, not on {data} "
            f"({dataset['digest'][:12]}): an attack is scored on the model's own forget set"
        )


def _reusable_attack(path: Path | None, name: str, cfg: AttackConfig,
                     digest: str) -> dict[str, Any] | None:  # fmt: skip
    """The Clean record of a finished attack folder given as --clean, checked to be the same
    attack with the same settings on the same dataset; None when `path` is a model folder."""
    if path is None or not (path / MANIFEST).is_file():
        return None
    if read_manifest(path)["kind"] != "attack":
        return None
    manifest = read_manifest(path, kind="attack", verify=True)
    why = []
    if manifest["attack"] != name:
        why.append(f"attack {manifest['attack']!r}, not {name!r}")
    theirs, ours = settings_read(name, manifest["config"]), settings_read(name, to_dict(cfg))
    if theirs != ours:
        differ = [f"{k} {theirs[k]!r} (now {ours[k]!r})" for k in ours if theirs[k] != ours[k]]
        why.append(f"other attack settings: {', '.join(differ)}")
    if manifest["inputs"]["dataset"] != digest:
        why.append("another dataset")
    record = json.loads((path / ATTACK_FILE).read_text(encoding="utf-8"))["model"]
    if record.get("variant") != "clean":
        why.append(f"it attacked a {record.get('variant')!r} model")
    if why:
        raise ConfigError(f"--clean {path}: an attack folder of {'; '.join(why)}")
    return record
