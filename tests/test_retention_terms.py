"""DELETE, CLIPErase and VLUnlearn: the authors' MSE retention terms (the default) against
values worked out by hand, and our earlier "kl" forms kept exactly as they were."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_unlearn_methods import _step

from salmubench.unlearn import build_method
from salmubench.unlearn.base import (
    Features,
    distillation,
    embedding_drift,
    fused_embedding,
    mse_to_original,
    two_way_mse,
    unimodal_mse,
)

METHODS = ("delete", "cliperase", "vlunlearn")
IDS = torch.tensor([0, 1])
# Forget batch: images e1, e2; captions b1 = (.6, .8), b2 = (1, 0). Its similarity matrix
# S[i, j] = image i · caption j = [[.6, 1], [.8, 0]].
FORGET = Features(
    torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.6, 0.8], [1.0, 0.0]]), IDS
)
# Retain batch, the model: images e1, e2, captions e1, e2 -> similarity matrix = identity.
RETAIN = Features(torch.eye(2), torch.eye(2), IDS)
# Retain batch, the original: image 1 is (.6, .8) and caption 2 is (.8, .6); the rest as the
# model's. Its similarity matrix is [[.6, .96], [0, .6]].
ORIGINAL = Features(
    torch.tensor([[0.6, 0.8], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.8, 0.6]]), IDS
)

# Hand-computed (every MSE is a mean over all 4 entries of a 2x2 tensor):
# forget to 0: (.36 + 1 + .64 + 0) / 4 = .5 per direction; S^T has the same entries -> 1.0.
FORGET_TO_ZERO = 1.0
# retain similarities: I - [[.6, .96], [0, .6]] = [[.4, -.96], [0, .4]]
# -> (.16 + .9216 + 0 + .16) / 4 = .3104 per direction -> .6208.
RETAIN_SIMS = 0.6208
# unimodal: one image row and one caption row moved, each with cos .6 to the original:
# (.4² + .8²) / 4 = .2 each = 2 (1 - .6) / D / n rows; image + text = .4.
UNIMODAL = 0.4
# fused: model rows e1, e2; original rows normalize((1.6, .8) / 2) = (2, 1)/√5 and
# normalize((.8, 1.6) / 2) = (1, 2)/√5, each at cos 2/√5 from the model's row:
# ((1 - 2/√5)² + 1/5) * 2 rows / 4 entries = (2 - 4/√5) / 2 = 1 - 2/√5.
FUSED = 1 - 2 / math.sqrt(5)
# decouple: with n = 2 the derangement is [1, 0]; the target is the original's (here the
# same features) images against swapped captions: [[1, .6], [0, .8]]. S - target =
# [[-.4, .4], [.8, -.8]] -> (.16 + .16 + .64 + .64) / 4 = .4 per direction -> .8.
DECOUPLE = 0.8


def _authors_step():
    return _step(FORGET, RETAIN, of=FORGET, orr=ORIGINAL)


def test_the_authors_retention_is_the_default():
    for name in METHODS:
        assert build_method(name).params.retention == "authors", name


def test_shared_terms_match_the_hand_computed_values():
    sims = FORGET.image @ FORGET.text.T
    assert two_way_mse(sims, torch.zeros(2, 2)).item() == pytest.approx(FORGET_TO_ZERO)
    assert mse_to_original(sims, torch.zeros(2, 2)).item() == pytest.approx(FORGET_TO_ZERO / 2)
    assert unimodal_mse(RETAIN, ORIGINAL).item() == pytest.approx(UNIMODAL)
    fused = fused_embedding(ORIGINAL)
    assert fused.norm(dim=1).tolist() == pytest.approx([1.0, 1.0])
    assert mse_to_original(fused_embedding(RETAIN), fused).item() == pytest.approx(FUSED)


def test_two_way_mse_is_twice_one_direction_each_against_its_own_orientation():
    sims = torch.tensor([[0.6, 1.0], [0.8, 0.0]])
    target = torch.tensor([[1.0, 0.6], [0.0, 0.8]])
    assert two_way_mse(sims, target).item() == pytest.approx(DECOUPLE)
    assert two_way_mse(sims, target).item() == pytest.approx(2 * F.mse_loss(sims, target).item())
    # S^T against the untransposed target would be a different loss: [[-.4, .8], [.4, -.8]]
    # vs [[-.4, 1], [.2, -.8]] (.16 + 1 + .04 + .64) / 4 = .46 per direction
    assert two_way_mse(sims, target.T).item() == pytest.approx(0.92)


def test_delete_authors_terms():
    loss, parts = build_method("delete", {"retain_weight": 0.5}).loss(_authors_step())
    assert parts["forget"].item() == pytest.approx(FORGET_TO_ZERO)
    assert parts["retain"].item() == pytest.approx(RETAIN_SIMS)
    assert loss.item() == pytest.approx(FORGET_TO_ZERO + 0.5 * RETAIN_SIMS)


def test_cliperase_authors_terms():
    method = build_method("cliperase", {"consistency_weight": 2.0})
    loss, parts = method.loss(_authors_step())
    assert parts["forget"].item() == pytest.approx(FORGET_TO_ZERO)
    assert parts["retain"].item() == pytest.approx(RETAIN_SIMS)
    assert parts["consistency"].item() == pytest.approx(UNIMODAL)
    assert loss.item() == pytest.approx(FORGET_TO_ZERO + RETAIN_SIMS + 2 * UNIMODAL)


def test_vlunlearn_authors_terms():
    method = build_method("vlunlearn", {"multimodal_weight": 3.0, "unimodal_weight": 0.5})
    loss, parts = method.loss(_authors_step())
    assert parts["decouple"].item() == pytest.approx(DECOUPLE)
    assert parts["multimodal"].item() == pytest.approx(FUSED)
    assert parts["unimodal"].item() == pytest.approx(UNIMODAL)
    assert loss.item() == pytest.approx(DECOUPLE + 3 * FUSED + 0.5 * UNIMODAL)


def test_kl_keeps_our_earlier_terms():
    step = _authors_step()
    f_sims = FORGET.image @ FORGET.text.T
    r_sims, o_sims = RETAIN.image @ RETAIN.text.T, ORIGINAL.image @ ORIGINAL.text.T
    kl = distillation(r_sims, o_sims, step.original_logit_scale).item()
    drift = embedding_drift(RETAIN, ORIGINAL).item()
    assert kl > 0.01 and drift == pytest.approx((0.4 + 0.4) / 2 / 2)  # two rows at 1 - cos = .4

    _, parts = build_method("delete", {"retention": "kl"}).loss(step)
    assert parts["forget"].item() == pytest.approx(f_sims.pow(2).mean().item())
    assert parts["forget"].item() == pytest.approx(FORGET_TO_ZERO / 2)  # one direction
    assert parts["retain"].item() == pytest.approx(kl)

    _, parts = build_method("cliperase", {"retention": "kl"}).loss(step)
    assert parts["retain"].item() == pytest.approx(kl)
    assert parts["consistency"].item() == pytest.approx(drift)

    _, parts = build_method("vlunlearn", {"retention": "kl"}).loss(step)
    assert parts["decouple"].item() == pytest.approx(DECOUPLE / 2)  # one direction
    assert parts["multimodal"].item() == pytest.approx(mse_to_original(r_sims, o_sims).item())
    assert parts["unimodal"].item() == pytest.approx(drift)


@pytest.mark.parametrize("name", METHODS)
def test_an_unknown_retention_is_refused_with_the_valid_ones(name):
    with pytest.raises(ValueError, match=rf"methods\.{name}: retention='mse'.*'authors', 'kl'"):
        build_method(name, {"retention": "mse"})
