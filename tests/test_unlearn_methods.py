"""Contract tests, run for every registered unlearning method (a new method file is picked
up by itself), and hand-computed checks of the loss building blocks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from salmubench.config import stage_config
from salmubench.engine.loss import contrastive_loss
from salmubench.manifest import read_manifest
from salmubench.models import load_model
from salmubench.unlearn import METHODS, build_method, method_names
from salmubench.unlearn.base import (
    Features,
    Step,
    derangement,
    distillation,
    embedding_drift,
)
from salmubench.unlearn.contract import check_method
from salmubench.unlearn.data import FORBIDDEN, READABLE
from salmubench.unlearn.loop import unlearn

REPO = Path(__file__).resolve().parents[1]
PAPER_BASELINES = {"finetune", "neg_grad", "grad_diff", "shuffled_captions", "generic_captions",
                   "direct_sim_min", "vlunlearn", "delete", "cliperase"}  # fmt: skip


def test_the_nine_paper_baselines_are_registered():
    assert set(method_names()) >= PAPER_BASELINES


@pytest.mark.parametrize("method", method_names())
def test_method_contract_one_step_changes_weights_reads_no_holdout_saves_and_reloads(
    tmp_path, guarded_dataset, micro_models, method
):
    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    out = tmp_path / method
    forget = sum(read_manifest(guarded_dataset)["counts"][s] for s in READABLE[:2])
    manifest = unlearn(guarded_dataset, micro_models["compromised"], method, cfg, out,
                       budget=cfg.forget_batch / forget, profile="micro")  # fmt: skip
    assert manifest["steps"] == 1 and manifest["method"] == method
    assert manifest["variant"] == "unlearned"
    assert set(manifest["reads"]) <= set(READABLE)
    assert not set(manifest["reads"]) & set(FORBIDDEN)
    assert manifest["inputs"]["model"] == read_manifest(micro_models["compromised"])["digest"]

    before = load_model(micro_models["compromised"]).model.state_dict()
    loaded = load_model(out)  # checksums verified, OpenCLIP checkpoint loaded strictly
    after = loaded.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2, f"{method} changed only {changed}"
    assert loaded.manifest["method"] == method
    assert all(torch.isfinite(v).all() for v in after.values())


@pytest.mark.parametrize("method", method_names())
def test_method_keeps_the_public_contract_checks(method):
    """The checks a method package's own test runs (salmubench new-method) and that guard
    every registration: the built-ins pass them too."""
    assert check_method(METHODS[method]) is METHODS[method]


def test_every_method_declares_documented_hyper_parameters():
    for name, cls in METHODS.items():
        assert cls.summary and cls.uses, name
        method = build_method(name, {})
        for f in method.params.__dataclass_fields__.values():
            assert f.metadata.get("help"), f"{name}.{f.name} has no documentation"


# --------------------------------------------------------------- hand-computed losses


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def _step(forget: Features | None = None, retain: Features | None = None, **kw) -> Step:
    scale = torch.tensor(10.0)
    return Step(index=0, forget=forget, retain=retain, original_forget=kw.get("of"),
                original_retain=kw.get("orr"), logit_scale=scale,
                original_logit_scale=kw.get("oscale", scale),
                generator=torch.Generator().manual_seed(0))  # fmt: skip


IMAGES = _unit([1, 0], [0, 1], [1, 1])
TEXTS = _unit([1, 0], [1, 1], [-1, 0])
IDS = torch.tensor([0, 1, 2])


def test_direct_sim_min_is_the_mean_pair_cosine():
    # pairs: (1,0)·(1,0)=1, (0,1)·(1,1)/√2=0.7071, (1,1)/√2·(-1,0)=-0.7071 -> mean 1/3
    loss, _ = build_method("direct_sim_min").loss(_step(Features(IMAGES, TEXTS, IDS)))
    assert loss.item() == pytest.approx(1 / 3, abs=1e-6)


def test_neg_grad_is_the_negated_clip_loss_and_grad_diff_adds_retain():
    f = Features(IMAGES, TEXTS, IDS)
    r = Features(TEXTS, IMAGES, IDS)
    clip_f = contrastive_loss(IMAGES, TEXTS, torch.tensor(10.0), IDS)
    clip_r = contrastive_loss(TEXTS, IMAGES, torch.tensor(10.0), IDS)
    neg, _ = build_method("neg_grad").loss(_step(f))
    assert neg.item() == pytest.approx(-clip_f.item())
    diff, parts = build_method("grad_diff", {"retain_weight": 0.5}).loss(_step(f, r))
    assert diff.item() == pytest.approx(-clip_f.item() + 0.5 * clip_r.item())
    assert parts["forget"].item() == pytest.approx(clip_f.item())


def test_delete_pushes_every_forget_similarity_to_zero():
    f = Features(IMAGES, TEXTS, IDS)
    r = Features(IMAGES, TEXTS, IDS)
    sims = IMAGES @ TEXTS.T  # [[1, .7071, -1], [0, .7071, 0], [.7071, 1, -.7071]]
    expected = (sims**2).mean().item()
    assert expected == pytest.approx((1 + 0.5 + 1 + 0 + 0.5 + 0 + 0.5 + 1 + 0.5) / 9, abs=1e-5)
    loss, parts = build_method("delete").loss(_step(f, r, orr=r))
    # image→text + text→image, as the authors' code: twice the one-direction mean
    assert parts["forget"].item() == pytest.approx(2 * expected, abs=1e-6)
    assert parts["retain"].item() == pytest.approx(0.0, abs=1e-6)  # retain == original
    assert loss.item() == pytest.approx(2 * expected, abs=1e-6)


def test_retention_terms_vanish_when_the_model_equals_the_original():
    r = Features(IMAGES, TEXTS, IDS)
    assert embedding_drift(r, r).item() == pytest.approx(0.0, abs=1e-7)
    sims = IMAGES @ TEXTS.T
    assert distillation(sims, sims, torch.tensor(10.0)).item() == pytest.approx(0.0, abs=1e-7)
    assert distillation(sims, sims.flip(0), torch.tensor(10.0)).item() > 0.1
    # drift of an orthogonal embedding is 1 - cos = 1
    moved = Features(_unit([0, 1], [0, 1], [1, 1]), TEXTS, IDS)
    assert embedding_drift(moved, r).item() == pytest.approx((1 + 0 + 0) / 3 / 2, abs=1e-6)


def test_shuffled_captions_trains_images_against_other_pairs_captions():
    f = Features(IMAGES, TEXTS, IDS)
    step = _step(f)
    perm = derangement(3, torch.Generator().manual_seed(0))
    expected = contrastive_loss(IMAGES, TEXTS[perm], torch.tensor(10.0), IDS[perm])
    loss, _ = build_method("shuffled_captions").loss(step)
    assert loss.item() == pytest.approx(expected.item())


def test_generic_captions_uses_the_visual_captions_not_the_sensitive_ones():
    generic = _unit([1, 0], [0, 1], [1, 1])  # each image's generic caption is itself
    f = Features(IMAGES, TEXTS, IDS, generic=generic, generic_ids=IDS)
    loss, _ = build_method("generic_captions").loss(_step(f))
    perfect = contrastive_loss(IMAGES, IMAGES, torch.tensor(10.0), IDS)
    assert loss.item() == pytest.approx(perfect.item())
    assert loss.item() < contrastive_loss(IMAGES, TEXTS, torch.tensor(10.0), IDS).item()


@pytest.mark.parametrize("n", [2, 3, 7, 64])
def test_derangement_leaves_nobody_with_their_own_caption(n):
    for seed in range(20):
        perm = derangement(n, torch.Generator().manual_seed(seed))
        assert sorted(perm.tolist()) == list(range(n))
        assert all(perm[i] != i for i in range(n))


def test_vlunlearn_matches_the_originals_similarities_on_shuffled_pairs():
    f = Features(IMAGES, TEXTS, IDS)
    step = _step(f, f, of=f, orr=f)
    perm = derangement(3, torch.Generator().manual_seed(0))
    target = IMAGES @ TEXTS[perm].T
    loss, parts = build_method("vlunlearn").loss(step)
    assert parts["decouple"].item() == pytest.approx(  # both directions, as the authors
        2 * F.mse_loss(IMAGES @ TEXTS.T, target).item(), abs=1e-6
    )
    assert parts["multimodal"].item() == pytest.approx(0.0, abs=1e-7)
    assert math.isfinite(loss.item())


def test_a_method_with_unknown_settings_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"methods\.grad_diff.*retain_wieght.*retain_weight"):
        build_method("grad_diff", {"retain_wieght": 2})
    with pytest.raises(ValueError, match=r"unknown method 'forget_everything'.*neg_grad"):
        build_method("forget_everything")
