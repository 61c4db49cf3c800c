"""`bench --attacks`: the relearning attacks of one world, after its unlearned models exist.

Each attack runs once on the world's Clean model (the reference) and then on every
unlearned model, its recovery gap taken against that reference and the Compromised model
(docs/ATTACKS.md). Folders: `<world>/attacks/clean/<attack>/` and
`<world>/attacks/<unlearned folder name>/<attack>/`, each as `salmubench attack` writes it;
finished ones with the same settings and inputs are reused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from salmubench.config import ConfigError, to_dict
from salmubench.stagerun import Call, _reusable, _Stages, model_digest

log = logging.getLogger(__name__)


def parse_attacks(text: str) -> list[str]:
    """`--attacks`: 'none' (the default: no attack is run), 'all', or a comma-separated
    list of attack names."""
    from salmubench.vocab import ATTACKS

    text = text.strip()
    if text in ("", "none"):
        return []
    if text == "all":
        return list(ATTACKS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise ConfigError(
            f"--attacks {text!r}: unknown {', '.join(unknown) or 'list'}; valid: none, all, "
            f"or a comma-separated list of {', '.join(ATTACKS)}"
        )
    return list(dict.fromkeys(names))


def _reusable_attack(folder: Path, name: str, config: dict[str, Any], clean: str | None,
                     **expected: Any) -> dict[str, Any] | None:  # fmt: skip
    """The manifest of a finished attack folder of attack `name` with the `expected` fields,
    the settings that attack reads as in `config` (the others may differ) and, when `clean`
    is given, its recovery gap taken against that Clean model; else None."""
    from salmubench.attack.recovery import ATTACK_FILE, settings_read

    manifest = _reusable(folder, "attack", attack=name, **expected)
    if manifest is None:
        return None
    if settings_read(name, manifest["config"]) != settings_read(name, config):
        log.info("%s: attack settings changed; rebuilding", folder)
        return None
    record = json.loads((folder / ATTACK_FILE).read_text(encoding="utf-8"))
    if clean is not None and (record.get("clean") or {}).get("digest") != clean:
        log.info("%s: attacked against another Clean model; rebuilding", folder)
        return None
    return manifest


def attack_world(
    world: Any, models: Sequence[Path], attacks: Sequence[str], cfg: dict[str, Any],
    stages: _Stages,
) -> list[Path]:  # fmt: skip
    """Each of `attacks` on the Clean model of `world` (a `bench.World` whose models exist)
    once, the reference, then on every unlearned model in `models`, the recovery gap taken
    against that reference; finished attack folders with the same settings and inputs are
    reused. Returns the models' attack folders (the report reads the gaps from them)."""
    from salmubench.attack.stage import attack

    acfg, ecfg, retain = cfg["attack"], cfg["eval"], cfg["unlearn"].retain
    clean, compromised = world.model("clean"), world.model("compromised")
    digests = {"clean": model_digest(clean), "compromised": model_digest(compromised)}
    same = {"eval_config": to_dict(ecfg)}
    tag = f"world {world.seed}: " if stages.tag_worlds else ""

    def attack_all(name: str) -> list[Path]:  # the Clean reference, then every model
        reference = world.attack("clean", name)
        stages.run(
            f"{tag}attack clean {name}",
            Call(attack, (world.data, clean, reference),
                 {"name": name, "cfg": acfg, "eval_cfg": ecfg, "retain": retain, "force": True}),
            _reusable_attack(reference, name, to_dict(acfg), None, **same,
                             inputs={"dataset": world.digest, "model": digests["clean"]}),
        )  # fmt: skip

        def attack_model(model: Path) -> Path:
            target = world.attack(model.name, name)
            stages.run(
                f"{tag}attack {model.name} {name}",
                Call(attack, (world.data, model, target),
                     {"name": name, "cfg": acfg, "eval_cfg": ecfg, "retain": retain,
                      "clean": reference, "compromised": compromised, "force": True}),
                _reusable_attack(target, name, to_dict(acfg), digests["clean"], **same,
                                 inputs={"dataset": world.digest, "model": model_digest(model),
                                         "compromised": digests["compromised"]}),
            )  # fmt: skip
            return target

        return stages.map(attack_model, models)

    return [t for targets in stages.map(attack_all, attacks) for t in targets]
