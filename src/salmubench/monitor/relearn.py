"""The resurfacing drill: re-teach an unlearned model its forget set, to check the alerting
end to end."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from salmubench import __version__
from salmubench.config import ConfigError
from salmubench.monitor.settings import DrillConfig

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

    from salmubench.manifest import staged_output, write_manifest
    from salmubench.models import image_normalisation, image_size, load_model, save_model
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.unlearn.base import clip_loss
    from salmubench.unlearn.data import load_unlearn_pools, open_for_unlearning

    cfg.validate()
    loaded = load_model(model)
    source = loaded.manifest or {}
    if source.get("variant") != "unlearned":
        raise ConfigError(
            f"{model} is a {source.get('variant')!r} model: the drill re-teaches an unlearned "
            "one (the output keeps its identity, so the monitoring compares it with its "
            "baseline)"
        )
    dataset = open_for_unlearning(data, ())
    if source["inputs"].get("dataset") != dataset["digest"]:
        raise ConfigError(
            f"{model} was unlearned on dataset {source['inputs'].get('dataset')}, not on "
            f"{data} ({dataset['digest']}): the drill must re-teach its own forget set"
        )
    net = loaded.model
    torch.manual_seed(cfg.seed)
    pools = load_unlearn_pools(
        data,
        dataset,
        (),
        get_tokenizer(loaded.arch),
        image_size(net),
        retain_size=0,
        seed=cfg.seed,
        with_retain=False,
    )
    forget = pools["forget"]
    mean, std = image_normalisation(net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch, len(forget))
    net.train()
    losses = []
    for _ in range(cfg.steps):
        idx = torch.randperm(len(forget), generator=generator)[:batch]
        x = (forget.images[idx].float() / 255.0 - mean) / std
        output = net(x, forget.tokens[idx])
        loss = clip_loss(
            output["image_features"].float(),
            output["text_features"].float(),
            output["logit_scale"].float(),
            forget.caption_ids[idx],
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    log.info("drill: %d steps on %d forget samples, loss %.4f -> %.4f",
             cfg.steps, len(forget), losses[0], losses[-1])  # fmt: skip
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
                "forget_samples": len(forget),
                "first_loss": round(losses[0], 5),
                "final_loss": round(losses[-1], 5),
            },
        )
    return manifest
