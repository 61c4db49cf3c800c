"""The resurfacing drill: re-teach an unlearned model its forget set, to check the alerting
end to end."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from salmubench import __version__
from salmubench.config import AttackConfig, ConfigError
from salmubench.monitor.settings import DrillConfig
from salmubench.vocab import RETAIN_SPLITS

log = logging.getLogger(__name__)


def drill(
    data: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    cfg: DrillConfig | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Re-expose the unlearned `model` (a model folder) to the forget set of `data` and
    publish the result at `out`; its manifest.

    What an accidental fine-tune on data that mentions the forgotten people does, on
    purpose: the CLIP objective on forget batches. The result keeps the source's identity
    (method, budget, seed, dataset), as a checkpoint changed under the same registry entry
    would, and records the drill in its manifest (`drill`, `inputs.model`), so nobody
    mistakes it for an unlearned model. Re-evaluated and pushed, it should fire the
    resurfacing alert."""
    cfg = cfg or DrillConfig()
    import torch

    from salmubench.attack.threat import finetune
    from salmubench.manifest import staged_output, write_manifest
    from salmubench.models import image_normalisation, load_model, save_model
    from salmubench.unlearn.data import open_for_unlearning

    cfg.validate()
    loaded = load_model(model)
    source = loaded.manifest or {}
    if source.get("variant") != "unlearned":
        raise ConfigError(
            f"{model} is a {source.get('variant')!r} model: the drill re-teaches an unlearned "
            "one (the output keeps its identity, so the monitoring compares it with its "
            "baseline)"
        )
    retain = RETAIN_SPLITS if cfg.attack == "retain_only" else ()
    dataset = open_for_unlearning(data, retain)
    if source["inputs"].get("dataset") != dataset["digest"]:
        raise ConfigError(
            f"{model} was unlearned on dataset {source['inputs'].get('dataset')}, not on "
            f"{data} ({dataset['digest']}): the drill must re-teach its own forget set"
        )
    pool, generic, trained_on = _drill_pool(data, dataset, cfg, loaded)
    got: dict[int, torch.nn.Module] = {}
    losses = finetune(loaded.model, pool, generic=generic, lr=cfg.lr, steps=[cfg.steps],
                      batch=cfg.batch, seed=cfg.seed, normalisation=image_normalisation(
                          loaded.model), at=lambda step, m: got.setdefault(step, m))  # fmt: skip
    net = got[cfg.steps].eval()
    log.info("drill (%s): %d steps on %d samples, loss %.4f -> %.4f",
             cfg.attack, cfg.steps, len(pool), losses[0], losses[-1])  # fmt: skip
    with staged_output(out, force) as tmp:
        tmp = Path(tmp)
        save_model(tmp, net, loaded.arch, {"variant": "unlearned", "drill": asdict(cfg),
                                           "package_version": __version__})  # fmt: skip
        keep = ("method", "method_params", "method_code", "budget", "seed", "profile",
                "dataset_profile")  # fmt: skip
        manifest = write_manifest(
            tmp,
            "model",
            config=asdict(cfg),
            inputs={"dataset": dataset["digest"], "model": source["digest"]},
            architecture=loaded.arch,
            variant="unlearned",
            **{k: source[k] for k in keep if k in source},
            source={"path": str(model), "digest": source["digest"], "variant": "unlearned"},
            drill={
                **asdict(cfg),
                "forget_samples": len(pool),
                "pool": pool.name,
                "personas_trained_on": None if trained_on is None else sorted(trained_on),
                "first_loss": round(losses[0], 5),
                "final_loss": round(losses[-1], 5),
            },
        )
    return manifest


def _drill_pool(data: Any, dataset: dict[str, Any], cfg: DrillConfig,
                loaded: Any) -> tuple[Any, bool, frozenset[str] | None]:  # fmt: skip
    """(pool, generic captions?, personas trained on) the drill re-teaches: every forget
    pair, or what the named attack of `salmubench attack` trains on (its own pool code)."""
    from salmubench.attack.stage import attacker_pool
    from salmubench.models import image_size
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.unlearn.data import load_unlearn_pools

    tokenize, size = get_tokenizer(loaded.arch), image_size(loaded.model)
    if cfg.attack == "full":
        pools = load_unlearn_pools(data, dataset, (), tokenize, size, retain_size=0,
                                   seed=cfg.seed, with_retain=False)  # fmt: skip
        return pools["forget"], False, None
    attack_cfg = AttackConfig(seed=cfg.seed)
    retain = RETAIN_SPLITS
    pool, trained_on, _ = attacker_pool(data, dataset, cfg.attack, attack_cfg, retain, tokenize,
                                        size)  # fmt: skip
    return pool, cfg.attack == "generic_captions", trained_on
