"""The one partition of retain items into what the metrics read and what unlearning trains on."""

from __future__ import annotations

import pytest

from salmubench.data.evaluated import EVALUATION_SHARE, is_evaluated, key_fraction


def test_the_part_is_a_pure_function_of_the_key():
    keys = [f"retain_joint-{i:06d}" for i in range(2000)]
    first = [is_evaluated("retain_joint", k, {"persona": "p1"}) for k in keys]
    # the same key in another persona or process: the same part (no salted hash())
    assert first == [is_evaluated("retain_joint", k, {"persona": "p2"}) for k in keys]
    share = sum(first) / len(keys)
    assert share == pytest.approx(EVALUATION_SHARE["retain_joint"], abs=0.05)
    assert key_fraction("retain_joint-000000") == key_fraction("retain_joint-000000")
    assert 0.0 <= key_fraction("x") < 1.0


def test_fragile_samples_are_always_evaluated():
    keys = [f"retain_disjoint-{i:06d}" for i in range(200)]
    assert all(is_evaluated("retain_disjoint", k, {"fragile": True}) for k in keys)
    assert not all(is_evaluated("retain_disjoint", k, {"fragile": False}) for k in keys)


def test_on_a_synthesised_dataset_the_fragile_set_is_wholly_evaluation(micro_samples):
    disjoint = {s["__key__"]: s for s in micro_samples["retain_disjoint"]}
    fragile = [s["__key__"] for s in micro_samples["fragile"]]
    assert fragile and set(fragile) <= set(disjoint)  # copies, under the originals' keys
    for key in fragile:
        assert is_evaluated("retain_disjoint", key, disjoint[key]["json"])
    parts = {is_evaluated("retain_disjoint", k, s["json"]) for k, s in disjoint.items()}
    assert parts == {True, False}


def test_unpartitioned_splits_and_missing_flags_are_refused():
    with pytest.raises(ValueError, match=r"'retain_real' is not partitioned .* retain_joint"):
        is_evaluated("retain_real", "retain_real-000000", {})
    with pytest.raises(ValueError, match=r"'retain_disjoint-000001' has no 'fragile' flag"):
        is_evaluated("retain_disjoint", "retain_disjoint-000001", {"persona": None})
