"""PRECISE (unlearn/methods/precise.py): what each term does, on hand-made embeddings.

The contract tests (tests/test_unlearn_methods.py) run it like every method on the micro
dataset: one step changes weights, no holdout is read, the model saves and reloads. Here: the
floor is the original's never-seen level, a pair at the floor feels no push, memorised pairs
are found from the original's similarities alone, and the anchors vanish when nothing moved.
"""

import pytest
import torch
import torch.nn.functional as F

from salmubench.unlearn import build_method
from salmubench.unlearn.base import Features, Step
from salmubench.unlearn.methods.precise import floors, memorised_pairs

D = 8


def _step(forget: Features, original: Features, retain: Features | None = None) -> Step:
    retain = retain or original
    scale = torch.tensor(10.0)
    return Step(index=0, forget=forget, retain=retain, original_forget=original,
                original_retain=retain, logit_scale=scale, original_logit_scale=scale,
                generator=torch.Generator().manual_seed(0))  # fmt: skip


def _world(n: int = 6, seed: int = 0) -> Features:
    """n forget pairs whose caption i is close to image i (memorised), far from the others."""
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, D, generator=g), dim=1)
    text = F.normalize(image + 0.3 * torch.randn(n, D, generator=g), dim=1)
    generic = F.normalize(torch.randn(n, D, generator=g), dim=1)
    ids = torch.arange(n)
    return Features(image, text, ids, generic=generic, generic_ids=ids + 100)


def test_the_floor_is_the_quantile_of_the_originals_other_pairs():
    sims = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.0, 0.6, 0.7]])
    ids = torch.tensor([0, 1, 2])
    # row 0's others {0.1, 0.3}: median 0.2; column 0's {0.2, 0.0}: 0.1; mean 0.15
    # row 1 {0.2, 0.4}: 0.3, column 1 {0.1, 0.6}: 0.35; row 2 {0.0, 0.6}: 0.3, column 2 {0.3, 0.4}
    assert floors(sims, ids, 0.5).tolist() == pytest.approx([0.15, 0.325, 0.325])


def test_memorised_pairs_are_same_captions_and_pairs_far_above_the_floor():
    sims = torch.tensor([[0.9, 0.1, 0.75], [0.2, 0.8, 0.4], [0.0, 0.6, 0.7]])
    ids = torch.tensor([0, 1, 0])  # captions 0 and 2 are the same text
    floor = torch.tensor([0.2, 0.3, 0.3])
    m = memorised_pairs(sims, ids, floor, gap=0.25)
    assert m.tolist() == [[True, False, True], [False, True, False], [True, True, True]]


def test_a_model_equal_to_the_original_feels_only_the_forget_push():
    f = _world()
    loss, parts = build_method("precise").loss(_step(f, f))
    for anchor in ("anchor", "identity", "generic", "retain", "unimodal"):
        assert parts[anchor].item() == pytest.approx(0.0, abs=1e-6), anchor
    assert parts["forget"].item() > 0.3  # memorised pairs sit far above the floor
    # (the weight-300 embedding term turns float rounding of 1 - cos into ~1e-6)
    assert loss.item() == pytest.approx(parts["forget"].item(), abs=1e-4)


def test_pairs_pushed_to_the_floor_feel_no_gradient():
    original = _world()
    sims0 = original.image @ original.text.T
    floor = floors(sims0, original.ids, 0.5)
    # a model whose forget captions moved to exactly their floor: text_i = floor_i direction
    # mixed so that image_i . text_i = floor_i - 0.01 (just below)
    image = original.image.clone().requires_grad_(True)
    text = original.text.clone()
    for i in range(len(text)):
        ortho = F.normalize(torch.randn(D, generator=torch.Generator().manual_seed(i)), dim=0)
        ortho = F.normalize(ortho - (ortho @ image[i].detach()) * image[i].detach(), dim=0)
        c = float(floor[i]) - 0.01
        text[i] = c * image[i].detach() + (1 - c * c) ** 0.5 * ortho
    model = Features(image, text, original.ids, generic=original.generic,
                     generic_ids=original.generic_ids)  # fmt: skip
    p = {"anchor_weight": 0, "identity_weight": 0, "generic_weight": 0, "retain_weight": 0,
         "unimodal_weight": 0, "memorised_gap": 10.0}  # fmt: skip
    _, parts = build_method("precise", p).loss(_step(model, original))
    assert parts["forget"].item() == pytest.approx(0.0, abs=1e-6)
    # with a margin the same pairs are pushed further down
    _, parts = build_method("precise", {**p, "margin": 0.1}).loss(_step(model, original))
    assert parts["forget"].item() > 0.05


def test_anchors_grow_when_the_model_moves_away_from_the_original():
    original = _world()
    moved = _world(seed=1)  # other images and captions altogether
    _, parts = build_method("precise").loss(_step(moved, original))
    for anchor in ("anchor", "identity", "generic"):
        assert parts[anchor].item() > 1e-3, anchor


def test_bad_floor_quantile_is_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"floor_quantile=1.5.*\(0, 1\)"):
        build_method("precise", {"floor_quantile": 1.5})


def test_text_push_moves_only_the_captions():
    f = _world()
    image = f.image.clone().requires_grad_(True)
    text = f.text.clone().requires_grad_(True)
    model = Features(image, text, f.ids, generic=f.generic, generic_ids=f.generic_ids)
    zero = {"anchor_weight": 0, "identity_weight": 0, "generic_weight": 0, "retain_weight": 0,
            "unimodal_weight": 0}  # fmt: skip
    _, parts = build_method("precise", {**zero, "push": "text"}).loss(_step(model, f))
    parts["forget"].backward()
    assert image.grad is None or image.grad.abs().max() == 0
    assert text.grad.abs().max() > 0


def test_the_published_settings_were_chosen_on_a_validation_world():
    """params.yaml's PRECISE rate and the ablation's come from the validation world, and the
    ablation's `full` row is the method as published (its defaults, at that rate)."""
    import json
    from pathlib import Path

    from salmubench.config import load_params
    from salmubench.tune import is_validation_world

    root = Path(__file__).resolve().parents[1]
    ablation = json.loads((root / "benchmarks/results/ablation-precise-tiny.json").read_text())
    assert is_validation_world(ablation["world"]["seed"])
    assert ablation["method"] == "precise" and not ablation.get("set")
    lr = load_params(root / "params.yaml")["methods"]["precise"]["lr"]
    assert ablation["lr"] == lr
    full = next(r for r in ablation["rows"] if r["variant"] == "full")
    assert full["settings"] == []
