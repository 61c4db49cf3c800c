"""Which retain items the metrics read and which unlearning may train on: one partition.

The metrics read retain data too (VisIdInt reads retain_joint, FragSim the fragile copies of
some retain_disjoint samples, RetFail draws retain_disjoint captions as distractors), and an
unlearning method trains on a retain subset. An item in both would grade a method on its own
training data, so retain_joint and retain_disjoint are each cut, once, into an EVALUATION
part (only the evaluator reads it) and a TRAINING part (only unlearning reads it). retain_real
is never evaluated, so all of it is training; the fragile split is wholly evaluation.

The rule is a pure function of the item, the same for every seed, reader and process:
- every fragile sample of retain_disjoint (json "fragile": true) is evaluation, because the
  fragile split is a copy of exactly those samples (same keys) and FragSim reads it;
- any other retain_joint / retain_disjoint item is evaluation when a stable hash of its key
  (sha256, not Python's salted hash()) falls below EVALUATION_SHARE[split]: about half.

retain_joint is cut per item, not per persona (our choice): every forget persona then keeps
non-sensitive portraits on both sides, so VisIdInt still averages over all forget personas
(whether their visual identity survives, on portraits the method never trained on) and the
retain data of unlearning still shows every forget persona, as in the paper's design.
At tiny (720 retain_joint, 600 retain_disjoint of which 32 fragile) this leaves about 360
retain_joint and 316 retain_disjoint items to evaluate: more than RetFail's retain
distractors need (59 at tiny, ~1,000 at the paper scale of ~8,600 retain_disjoint).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

# Expected share of each partitioned split's (non-fragile) items in the evaluation part.
EVALUATION_SHARE = {"retain_joint": 0.5, "retain_disjoint": 0.5}
PARTITIONED = tuple(EVALUATION_SHARE)


def key_fraction(key: str) -> float:
    """A uniform number in [0, 1) fixed by `key` alone (first 8 bytes of its sha256)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_evaluated(split: str, key: str, meta: Mapping[str, Any]) -> bool:
    """True if sample `key` (json metadata `meta`) of `split` is in the evaluation part."""
    if split not in EVALUATION_SHARE:
        raise ValueError(
            f"split {split!r} is not partitioned into evaluation and training parts; "
            f"partitioned: {', '.join(PARTITIONED)}"
        )
    if split == "retain_disjoint":
        if "fragile" not in meta:
            raise ValueError(
                f"retain_disjoint sample {key!r} has no 'fragile' flag in its metadata, so "
                f"its part cannot be told; it has: {', '.join(sorted(meta))}"
            )
        if meta["fragile"]:
            return True
    return key_fraction(key) < EVALUATION_SHARE[split]
