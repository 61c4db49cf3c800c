"""The original model embeds only the batches a method declares (`Method.original_reads`):
DELETE and CLIPErase never push the forget batch through it, and lose nothing by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from salmubench.config import stage_config
from salmubench.manifest import read_manifest
from salmubench.models import load_model
from salmubench.unlearn import METHODS, get_method
from salmubench.unlearn.base import GROUPS, Method, register
from salmubench.unlearn.loop import _Batcher, forget_samples, unlearn

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path, data, model, method, monkeypatch, reads=None):
    """Unlearn 3 micro steps; (loss log, weights, batch sizes the original model saw)."""
    seen: list[int] = []
    select = _Batcher.select

    def spy(x, texts, layout, groups):
        out = select(x, texts, layout, groups)
        seen.append(out[0].shape[0])
        return out

    monkeypatch.setattr(_Batcher, "select", staticmethod(spy))
    if reads is not None:
        monkeypatch.setattr(get_method(method), "original_reads", frozenset(reads))
    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    out = tmp_path / f"{method}-{'-'.join(sorted(reads or ['declared']))}"
    budget = 3 * cfg.forget_batch / forget_samples(read_manifest(data))
    unlearn(data, model, method, cfg, out, budget=budget, profile="micro")
    log = [json.loads(line) for line in (out / "unlearn_log.jsonl").read_text().splitlines()]
    monkeypatch.undo()
    return log, load_model(out).model.state_dict(), seen


@pytest.mark.parametrize("method", ["delete", "cliperase"])
def test_delete_and_cliperase_skip_the_originals_forget_pass_with_the_same_result(
    tmp_path, micro_dataset, micro_models, monkeypatch, method
):
    assert get_method(method).original_reads == {"retain"}
    model = micro_models["compromised"]
    log, weights, seen = _run(tmp_path, micro_dataset, model, method, monkeypatch)
    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    assert seen and set(seen) == {cfg.retain_batch}  # never the forget rows
    # The old behaviour: the original embeds forget and retain, forget features unused.
    old_log, old_weights, old_seen = _run(
        tmp_path, micro_dataset, model, method, monkeypatch, reads=GROUPS
    )
    assert set(old_seen) == {cfg.forget_batch + cfg.retain_batch}
    assert len(log) == len(old_log) >= 3
    for new, old in zip(log, old_log, strict=True):
        assert new.keys() == old.keys()
        for key in new:
            if key not in ("steps_per_second",):
                assert new[key] == pytest.approx(old[key], rel=1e-4, abs=1e-6), key
    for name in weights:
        assert torch.allclose(weights[name], old_weights[name], atol=1e-5), name


def test_vlunlearn_still_has_the_originals_forget_features(
    tmp_path, micro_dataset, micro_models, monkeypatch
):
    assert get_method("vlunlearn").original_reads == set(GROUPS)
    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    _, _, seen = _run(tmp_path, micro_dataset, micro_models["compromised"], "vlunlearn",
                      monkeypatch)  # fmt: skip
    assert set(seen) == {cfg.forget_batch + cfg.retain_batch}


def test_select_keeps_the_rows_of_the_named_groups_generic_captions_included():
    x = torch.arange(6.0)[:, None]  # forget 0..3, retain 4..5
    texts = torch.arange(10)[:, None]  # forget 0..3, generic 4..7, retain 8..9
    layout = {"forget": {"n": 4, "generic_ids": None}, "retain": {"n": 2}}
    sx, st, kept = _Batcher.select(x, texts, layout, frozenset({"retain"}))
    assert sx.flatten().tolist() == [4.0, 5.0] and st.flatten().tolist() == [8, 9]
    assert list(kept) == ["retain"]
    sx, st, kept = _Batcher.select(x, texts, layout, frozenset({"forget"}))
    assert sx.flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert st.flatten().tolist() == list(range(8)) and list(kept) == ["forget"]
    same = _Batcher.select(x, texts, layout, frozenset(GROUPS))
    assert same[0] is x and same[1] is texts and same[2] is layout


def test_a_method_reading_originals_of_a_batch_it_does_not_use_is_refused():
    class Bad(Method):
        name = "bad_original_reads"
        summary = "reads the original's forget features without using forget"
        uses = frozenset({"retain", "original"})
        original_reads = frozenset({"forget"})

    with pytest.raises(TypeError, match="original_reads"):
        register(Bad)
    assert "bad_original_reads" not in METHODS
