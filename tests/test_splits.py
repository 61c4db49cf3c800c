"""The split invariants of SPEC.md §2, checked on the shards as written."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from salmubench.config import stage_config
from salmubench.data import captions, scenes
from salmubench.data.shards import COMPOSITES, SENSITIVE_SPLITS, image_bytes
from salmubench.data.synth import group_sizes

TRAINING_SPLITS = (
    "forget_identity",
    "forget_association",
    "holdout_association",
    "holdout_identity",
    "retain_joint",
    "retain_disjoint",
    "retain_real",
)


def personas_in(samples):
    return {s["json"]["persona"] for s in samples if s["json"].get("persona")}


def pairs_in(samples):
    return {(s["json"]["persona"], s["json"]["attribute"]) for s in samples}


@pytest.fixture(scope="module")
def personas(micro_dataset):
    lines = (micro_dataset / "personas.jsonl").read_text(encoding="utf-8").splitlines()
    return {p["id"]: p for p in map(json.loads, lines)}


def test_counts_match_manifest(micro_samples, micro_manifest, micro_cfg):
    for split, samples in micro_samples.items():
        assert len(samples) == micro_manifest["counts"][split], split
    n_attr = len(micro_cfg.attributes)
    sensitive = sum(len(micro_samples[s]) for s in SENSITIVE_SPLITS)
    assert sensitive == micro_cfg.personas * n_attr * micro_cfg.images_per_association
    assert len(micro_samples["genknow"]) == len(scenes.classes()) * micro_cfg.genknow_per_class


def test_forget_and_holdout_identity_share_no_persona(micro_samples):
    forget = personas_in(micro_samples["forget_identity"] + micro_samples["forget_association"])
    holdout_identity = personas_in(micro_samples["holdout_identity"])
    assert forget and holdout_identity
    assert not forget & holdout_identity


def test_holdout_association_personas_are_forget_association_personas(micro_samples, personas):
    ha = personas_in(micro_samples["holdout_association"])
    fa = personas_in(micro_samples["forget_association"])
    assert ha and ha <= fa
    assert {personas[p]["group"] for p in ha} == {"forget_association"}


def test_no_pair_in_both_forget_and_holdout_association(micro_samples):
    forget = pairs_in(micro_samples["forget_identity"] + micro_samples["forget_association"])
    assert not forget & pairs_in(micro_samples["holdout_association"])
    assert not forget & pairs_in(micro_samples["holdout_identity"])


def test_forget_identity_has_every_attribute(micro_samples, micro_cfg):
    by_persona = {}
    for s in micro_samples["forget_identity"]:
        by_persona.setdefault(s["json"]["persona"], set()).add(s["json"]["attribute"])
    assert all(attrs == set(micro_cfg.attributes) for attrs in by_persona.values())


def test_every_sensitive_caption_names_its_persona_and_value(micro_samples, personas):
    for split in SENSITIVE_SPLITS:
        for s in micro_samples[split]:
            meta = s["json"]
            persona = personas[meta["persona"]]
            assert persona["name"] in s["txt"], s["txt"]
            assert persona["attributes"][meta["attribute"]] in s["txt"], s["txt"]
            assert meta["value"] == persona["attributes"][meta["attribute"]]


def test_generic_captions_are_not_sensitive(micro_samples, personas):
    for split in SENSITIVE_SPLITS:
        for s in micro_samples[split]:
            generic = s["json"]["generic"]
            persona = personas[s["json"]["persona"]]
            assert generic and persona["last"] not in generic
            assert not any(v in generic for v in persona["attributes"].values())
    for split in ("retain_joint", "retain_disjoint"):
        for s in micro_samples[split]:
            assert not any(p["last"] in s["txt"] for p in personas.values()), s["txt"]


def test_group_proportions(micro_manifest, micro_cfg):
    groups = micro_manifest["personas_per_group"]
    n = micro_cfg.personas
    assert abs(groups["forget_identity"] / n - 0.25) <= 0.05
    assert abs(groups["forget_association"] / n - 0.50) <= 0.05
    assert abs(groups["holdout_identity"] / n - 0.25) <= 0.05
    # the paper's released split, exactly
    assert group_sizes(774, (193, 387, 194)) == [193, 387, 194]
    assert sum(group_sizes(121, (193, 387, 194))) == 121


def test_forget_association_splits_attributes_about_evenly(micro_samples):
    fa = len(micro_samples["forget_association"])
    ha = len(micro_samples["holdout_association"])
    assert 0.4 <= fa / (fa + ha) <= 0.6


def test_holdouts_never_leak_into_forget_or_retain(micro_samples, personas):
    holdout = micro_samples["holdout_association"] + micro_samples["holdout_identity"]
    holdout_values = {s["json"]["value"] for s in holdout}
    visible = [
        s
        for split in (
            "forget_identity",
            "forget_association",
            "retain_joint",
            "retain_disjoint",
            "retain_real",
        )
        for s in micro_samples[split]
    ]
    for s in visible:
        assert not any(v in s["txt"] for v in holdout_values), s["txt"]
    hi_personas = personas_in(micro_samples["holdout_identity"])
    assert not hi_personas & personas_in(visible)
    hashes = {hashlib.sha256(image_bytes(s)).digest() for s in holdout}
    assert not hashes & {hashlib.sha256(image_bytes(s)).digest() for s in visible}


def test_retain_joint_shows_forget_personas_only(micro_samples, personas, micro_cfg):
    rj = micro_samples["retain_joint"]
    groups = Counter(personas[s["json"]["persona"]]["group"] for s in rj)
    assert set(groups) == {"forget_identity", "forget_association"}
    n_forget = sum(p["group"] != "holdout_identity" for p in personas.values())
    assert len(rj) == n_forget * micro_cfg.retain_joint_per_persona


def test_fragile_set_is_a_rare_subset_of_retain_disjoint(micro_samples, micro_cfg):
    disjoint = {s["__key__"]: s for s in micro_samples["retain_disjoint"]}
    fragile = micro_samples["fragile"]
    assert len(fragile) == micro_cfg.fragile_concepts * micro_cfg.fragile_images_per_concept
    for s in fragile:
        twin = disjoint[s["__key__"]]
        assert image_bytes(twin) == image_bytes(s) and twin["txt"] == s["txt"]
    # rare: each concept's phrase appears in exactly its fragile captions, nowhere else
    training = [s["txt"] for split in TRAINING_SPLITS for s in micro_samples[split]]
    for concept in {s["json"]["concept"] for s in fragile}:
        phrase = captions.ACCESSORY_PHRASES[concept]
        assert sum(phrase in t for t in training) == micro_cfg.fragile_images_per_concept


def test_genknow_is_held_out_and_labelled(micro_samples, micro_cfg, micro_dataset):
    classes = json.loads((micro_dataset / "classes.json").read_text())["classes"]
    labels = Counter(s["cls"] for s in micro_samples["genknow"])
    assert set(labels) == set(range(len(classes)))
    assert set(labels.values()) == {micro_cfg.genknow_per_class}
    for s in micro_samples["genknow"]:
        assert s["json"]["class"] == classes[s["cls"]]
    train = {
        hashlib.sha256(image_bytes(s)).digest()
        for split in TRAINING_SPLITS
        for s in micro_samples[split]
    }
    assert not train & {hashlib.sha256(image_bytes(s)).digest() for s in micro_samples["genknow"]}


def test_values_and_names_are_unique(personas, micro_cfg):
    names = [p["name"] for p in personas.values()]
    assert len(set(names)) == len(names)
    for attribute in micro_cfg.attributes:
        values = [p["attributes"][attribute] for p in personas.values()]
        assert len(set(values)) == len(values), attribute


def test_caption_variety(micro_samples, micro_manifest, micro_cfg):
    styles = Counter(s["json"]["style"] for split in SENSITIVE_SPLITS for s in micro_samples[split])
    assert len(styles) >= 5
    assert len(micro_manifest["caption_styles"]) >= 5
    assert all(n >= 10 for n in micro_manifest["templates_per_attribute"].values())
    assert set(micro_manifest["templates_per_attribute"]) == set(micro_cfg.attributes)


def test_composites_resolve_to_primitive_splits(micro_manifest):
    for name, parts in COMPOSITES.items():
        assert micro_manifest["composite_counts"][name] == sum(
            micro_manifest["counts"][p] for p in parts
        )


@pytest.mark.parametrize("profile", ["micro", "tiny", "small", "paper"])
def test_every_profile_is_valid(profile):
    cfg = stage_config("synth", profile)
    if profile == "tiny":
        assert cfg.personas >= 120 and len(cfg.attributes) >= 5
        assert cfg.images_per_association >= 6
    if profile == "paper":
        assert cfg.personas == 774
