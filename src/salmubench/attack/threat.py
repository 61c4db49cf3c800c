"""What an attacker holds and what it does with it (pure torch; no file is written).

An attacker has the released model and data that a real one could hold: the forget faces
with their sensitive captions (some personas' only, in the persona split) or their
non-sensitive ones, and ordinary retain data. It never holds a holdout split or an item a
metric reads: its pools come from `salmubench.unlearn.data`, which refuses both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salmubench.data.shards import iter_split
from salmubench.engine.loss import contrastive_loss
from salmubench.engine.pools import Pool
from salmubench.vocab import FORGET_SPLITS, WEIGHT_PRECISIONS


def forget_personas(data: str | Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Sample key -> persona id of every forget sample (metadata only, nothing decoded)."""
    return {
        s["__key__"]: s["json"]["persona"]
        for split in FORGET_SPLITS
        for s in iter_split(data, split, manifest)
    }


def split_personas(
    personas: Iterable[str], fraction: float, seed: int
) -> tuple[frozenset[str], frozenset[str]]:
    """(trained on, scored on): a seeded split of the distinct personas, `fraction` of them
    (at least one, never all) on the attacker's side."""
    ids = sorted(set(personas))
    if len(ids) < 2:
        raise ValueError(f"the persona split needs >= 2 forget personas, found {len(ids)}")
    order = np.random.default_rng([seed, 0xA77AC]).permutation(len(ids))
    k = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    chosen = {ids[i] for i in order[:k]}
    return frozenset(chosen), frozenset(ids) - chosen


def subset(pool: Pool, keep: Sequence[bool]) -> Pool:
    """The rows of `pool` where `keep` is true."""
    idx = torch.tensor([i for i, k in enumerate(keep) if k], dtype=torch.long)
    return Pool(
        name=pool.name,
        images=pool.images[idx],
        tokens=pool.tokens[idx],
        caption_ids=pool.caption_ids[idx],
        keys=[pool.keys[i] for i in idx.tolist()],
        generic_tokens=None if pool.generic_tokens is None else pool.generic_tokens[idx],
        generic_ids=None if pool.generic_ids is None else pool.generic_ids[idx],
    )


INT4_GROUP = 32  # inputs per scale: the group-wise round-to-nearest of 4-bit quantisers


@torch.no_grad()
def round_weights(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """A copy of `model` whose weight matrices (every parameter with >= 2 dims) are rounded
    to `precision` and stored back in fp32: int8 = symmetric, one scale per output channel
    (row), levels -127..127; int4 = symmetric round-to-nearest, one scale per output channel
    and group of `INT4_GROUP` consecutive inputs, levels -7..7 (the plain 4-bit baseline of
    arXiv 2410.16454); bf16 = bfloat16. Gains, biases and the logit scale are kept."""
    if precision not in WEIGHT_PRECISIONS:
        raise ValueError(f"precision {precision!r}; valid: {', '.join(WEIGHT_PRECISIONS)}")
    out = copy.deepcopy(model)
    for p in out.parameters():
        if p.ndim < 2:
            continue
        if precision == "bf16":
            p.copy_(p.to(torch.bfloat16).to(p.dtype))
            continue
        rows = p.reshape(p.shape[0], -1)
        if precision == "int8":
            p.copy_(_symmetric(rows, 127).reshape(p.shape))
            continue
        pad = -rows.shape[1] % INT4_GROUP  # the last group may be short: pad with zeros
        groups = torch.nn.functional.pad(rows, (0, pad)).reshape(rows.shape[0], -1, INT4_GROUP)
        rounded = _symmetric(groups, 7).reshape(rows.shape[0], -1)[:, : rows.shape[1]]
        p.copy_(rounded.reshape(p.shape))
    return out


def _symmetric(x: torch.Tensor, levels: int) -> torch.Tensor:
    """`x` rounded to `levels` symmetric steps per sign, one scale per last-axis slice."""
    scale = x.abs().amax(dim=-1, keepdim=True) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(x / scale).clamp(-levels, levels) * scale


def finetune(
    model: torch.nn.Module,
    pool: Pool,
    *,
    generic: bool,
    lr: float,
    steps: Sequence[int],
    batch: int,
    seed: int,
    normalisation: tuple[torch.Tensor, torch.Tensor],
    at: Callable[[int, torch.nn.Module], None],
) -> list[float]:
    """Fine-tune a copy of `model` with the CLIP objective on `pool` (its generic captions
    if `generic`) for max(steps) AdamW steps at constant `lr`; call at(step, model) after
    each step in `steps`. Returns the losses. `model` itself is not changed."""
    if generic and pool.generic_tokens is None:
        raise ValueError(f"pool {pool.name!r} has no generic captions")
    if len(pool) < 2:
        raise ValueError(f"pool {pool.name!r} holds {len(pool)} pairs: need >= 2")
    net = copy.deepcopy(model).train()
    mean, std = normalisation
    tokens = pool.generic_tokens if generic else pool.tokens
    ids = pool.generic_ids if generic else pool.caption_ids
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    n = min(batch, len(pool))
    losses, wanted = [], set(steps)
    for step in range(1, max(steps) + 1):
        idx = torch.randperm(len(pool), generator=generator)[:n]
        x = (pool.images[idx].float() / 255.0 - mean) / std
        out = net(x, tokens[idx])
        loss = contrastive_loss(
            out["image_features"].float(),
            out["text_features"].float(),
            out["logit_scale"].float(),
            ids[idx],
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(round(loss.item(), 5))
        if step in wanted:
            net.eval()
            at(step, net)
            net.train()
    return losses
