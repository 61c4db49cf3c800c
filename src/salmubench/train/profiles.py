"""What a profile's training needs, from its settings alone: for `salmubench profiles`.

Kept apart from the loaders so that the train stage does not import the synth code (its
DVC deps are its import closure)."""

from __future__ import annotations

from typing import Any

from salmubench.config import SynthConfig, TrainConfig, stage_config
from salmubench.data.synth import group_sizes, total_images
from salmubench.train.data import MEMORY_LIMIT_BYTES
from salmubench.train.stream import choose_loader


def needs(synth: SynthConfig, train: TrainConfig, limit: int) -> dict[str, Any]:
    """What training a profile's Compromised model reads, from its settings alone (no
    synth run): images, their decoded size, shards, and the loader `auto` picks. The
    shard count is exact but for forget/holdout_association, whose split of each persona's
    attributes is drawn at synth time: it counts one shard more than the two need at
    most, so it is an upper bound by at most one."""
    fi, fa, hi = group_sizes(synth.personas, synth.group_ratio)
    per_persona = len(synth.attributes) * synth.images_per_association
    counts = [fi * per_persona, hi * per_persona,
              (fi + fa) * synth.retain_joint_per_persona, synth.retain_disjoint,
              synth.general_world]  # fmt: skip
    association = fa * per_persona
    shards = sum(max(1, -(-n // synth.shard_size)) for n in counts)
    shards += -(-association // synth.shard_size) + 1
    images = sum(counts) + association
    decoded = images * 3 * synth.image_size**2
    return {"images": images, "decoded_bytes": decoded, "shards": shards,
            "loader": choose_loader(train, decoded, limit)}  # fmt: skip


def describe(profile: str, params: Any = None) -> str:
    """One line: the profile's dataset, and what its training reads and how."""
    cfg = stage_config("synth", profile, (), params)
    train = needs(cfg, stage_config("train", profile, (), params), MEMORY_LIMIT_BYTES)
    return (
        f"{profile:<6} {cfg.personas:>4} personas x {len(cfg.attributes)} attributes x "
        f"{cfg.images_per_association} images, {cfg.image_size} px, "
        f"{total_images(cfg)} images in all; training reads {train['images']} images, "
        f"{train['decoded_bytes'] / 2**30:.2f} GiB decoded, <= {train['shards']} shards: "
        f"{'streams' if train['loader'] == 'stream' else 'in memory'}"
    )
