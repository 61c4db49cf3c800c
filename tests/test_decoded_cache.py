"""The decoded-split cache: the same images, embeddings and metrics as decoding, written
atomically, refused when unwritable, rebuilt when damaged, shared by pools and evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import salmubench.data.decoded as decoded
from salmubench.cli import main
from salmubench.data.decoded import CACHE_ENV, CacheError, DecodedCache, cache_root, geometry_key
from salmubench.data.shards import decode, image_bytes
from salmubench.eval.embed import DatasetEmbeddings
from salmubench.eval.metrics import EvalSettings
from salmubench.models import load_model, tokenizer

SPLITS = ("forget_identity", "retain_joint", "retain_disjoint", "fragile", "genknow")


def entries(root):
    return sorted(p.name for p in (root / "decoded").iterdir() if not p.name.startswith(".probe"))


def embeddings(dataset, manifest, model, cache, batch_size=7):
    """Every split of SPLITS through DatasetEmbeddings (7 per batch: many batches)."""
    emb = DatasetEmbeddings(
        load_model(model), dataset, manifest, EvalSettings(), batch_size, cache=cache
    )
    return {s: emb.split(s) for s in SPLITS}, emb


def test_cached_embeddings_equal_decoded_ones_bit_for_bit(
    tmp_path, micro_dataset, micro_manifest, micro_models
):
    model = micro_models["compromised"]
    off, _ = embeddings(micro_dataset, micro_manifest, model, None)
    cache = DecodedCache.from_env(tmp_path / "c")
    miss, emb = embeddings(micro_dataset, micro_manifest, model, cache)
    assert (cache.misses, cache.hits) == (len(SPLITS), 0)
    assert emb.cache_stats() == {"decoded_cache_hits": 0, "decoded_cache_misses": len(SPLITS)}
    again = DecodedCache.from_env(tmp_path / "c")
    hit, _ = embeddings(micro_dataset, micro_manifest, model, again)
    assert (again.misses, again.hits) == (0, len(SPLITS))
    for split in SPLITS:
        for other in (miss, hit):
            assert torch.equal(other[split].image, off[split].image), split
            assert torch.equal(other[split].text, off[split].text), split
            assert other[split].meta == off[split].meta, split
    # partitioned splits: only the evaluation part is served, from a full-split entry
    assert len(off["retain_joint"].meta) < micro_manifest["counts"]["retain_joint"]
    assert len(entries(tmp_path / "c")) == len(SPLITS)


def test_an_entry_holds_the_decoded_split_as_a_memory_map(tmp_path, micro_dataset, micro_manifest):
    cache = DecodedCache.from_env(tmp_path)
    split = "fragile"

    def decode_batch(batch):
        return [decode(b) for b, _ in batch]

    got = cache.split(
        micro_dataset, micro_manifest, split, geometry_key("squash", 32), decode_batch
    )
    assert not got.hit and isinstance(got.images, np.memmap) and not got.images.flags.writeable
    from salmubench.data.shards import iter_split

    samples = list(iter_split(micro_dataset, split, micro_manifest))
    assert np.array_equal(got.images, np.stack([decode(image_bytes(s)) for s in samples]))
    assert [r["__key__"] for r in got.rows] == [s["__key__"] for s in samples]
    assert [r["json"] for r in got.rows] == [s["json"] for s in samples]
    # another geometry is another entry
    other = cache.split(micro_dataset, micro_manifest, split, geometry_key("squash", 16),
                        lambda batch: [decode(b, 16) for b, _ in batch])  # fmt: skip
    assert other.images.shape[-1] == 16 and len(entries(tmp_path)) == 2


def test_a_failed_fill_leaves_nothing_visible(tmp_path, micro_dataset, micro_manifest, monkeypatch):
    cache = DecodedCache.from_env(tmp_path)
    calls = []

    def failing(batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise ValueError("disk full, say")
        return [decode(b) for b, _ in batch]

    monkeypatch.setattr(decoded, "CHUNK", 3)  # fragile (8 images) in three chunks
    with pytest.raises(ValueError, match="disk full"):
        cache.split(micro_dataset, micro_manifest, "fragile", geometry_key("squash", 32), failing)
    assert len(calls) == 2
    assert list((tmp_path / "decoded").iterdir()) == []  # no entry, no temporary folder


def test_a_damaged_entry_is_decoded_anew(tmp_path, micro_dataset, micro_manifest):
    cache = DecodedCache.from_env(tmp_path)
    geometry = geometry_key("squash", 32)

    def decode_batch(batch):
        return [decode(b) for b, _ in batch]

    first = np.array(
        cache.split(micro_dataset, micro_manifest, "fragile", geometry, decode_batch).images
    )
    (name,) = entries(tmp_path)
    images = tmp_path / "decoded" / name / "images.npy"
    images.write_bytes(images.read_bytes()[:-100])  # truncated
    again = cache.split(micro_dataset, micro_manifest, "fragile", geometry, decode_batch)
    assert not again.hit and np.array_equal(again.images, first)
    assert cache.split(micro_dataset, micro_manifest, "fragile", geometry, decode_batch).hit


def test_pools_read_through_the_cache_unchanged(tmp_path, micro_dataset, micro_manifest):
    from salmubench.engine.pools import read_pool

    tokenize = tokenizer("salmu-micro")
    splits = ("retain_joint", "retain_disjoint")
    select = np.array([0, 3, 5, 40, 70])
    cache = DecodedCache.from_env(tmp_path)
    pools = [
        read_pool(
            micro_dataset,
            micro_manifest,
            "retain",
            splits,
            tokenize,
            32,
            {},
            select=select,
            cache=c,
        )
        for c in (None, cache, cache)
    ]
    assert (cache.misses, cache.hits) == (2, 2)
    for pool in pools[1:]:
        assert torch.equal(pool.images, pools[0].images)
        assert torch.equal(pool.tokens, pools[0].tokens)
        assert pool.keys == pools[0].keys


def test_eval_stage_through_the_cache_and_refusals(
    tmp_path, micro_dataset, micro_models, monkeypatch
):
    def run(name, cache):
        monkeypatch.setenv(CACHE_ENV, str(cache))
        out = tmp_path / name
        code = main(["eval", "--data", str(micro_dataset), "--model",
                     str(micro_models["compromised"]), "--profile", "micro", "--out", str(out),
                     "-q"])  # fmt: skip
        assert code == 0
        return out

    outs = [run("off", "off"), run("miss", tmp_path / "cache"), run("hit", tmp_path / "cache")]
    timing = [json.loads((o / "summary.json").read_text())["timing"] for o in outs]
    assert timing[0]["decoded_cache"] == "off"
    assert timing[1]["decoded_cache_misses"] > 0 and timing[1]["decoded_cache_hits"] == 0
    assert timing[2]["decoded_cache_misses"] == 0 and timing[2]["decoded_cache_hits"] > 0
    for o in outs[1:]:
        assert (o / "metrics.json").read_bytes() == (outs[0] / "metrics.json").read_bytes()
        for f in (outs[0] / "items").iterdir():
            assert (o / "items" / f.name).read_bytes() == f.read_bytes(), f.name

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(CacheError, match=rf"{blocker}/cache \(\${CACHE_ENV}\) is not a writable"):
        cache_root()
    code = main(["eval", "--data", str(micro_dataset), "--model", str(micro_models["compromised"]),
                 "--profile", "micro", "--out", str(tmp_path / "refused"), "-q"])  # fmt: skip
    assert code != 0 and not (tmp_path / "refused").exists()


def test_an_unwritable_default_folder_only_turns_the_cache_off(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert cache_root() is None and "decoding without a cache" in caplog.text
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "salmubench"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert DecodedCache.from_env() is None


def test_the_evaltask_suite_measures_both_ways_and_renders(tmp_path, micro_dataset, micro_models):
    """benchmarks/perf.py evaltask on micro, one round: every variant ran, ratios, doc."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    results = tmp_path / "results"
    cmd = [sys.executable, str(repo / "benchmarks" / "perf.py"), "evaltask", "--profile", "micro",
           "--repeat", "1", "--data", str(micro_dataset), "--model",
           str(micro_models["compromised"]), "--work", str(tmp_path / "work"), "--results",
           str(results)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((results / "perf-evaltask-micro.json").read_text())
    assert set(r["runs"]) == {
        "after: process (cache warm)", "after: in-process (cache warm)",
        "after: process (cache cold)", "after: imports only", "cache off: process",
        "cache off: in-process",
    }  # fmt: skip
    warm = r["runs"]["after: process (cache warm)"][0]
    assert warm["seconds"] > warm["seconds_load_model"] > 0 and warm["peak_rss_mib"] > 200
    assert r["ratios"]["after: process / in-process"]["median"] > 0
    assert entries(tmp_path / "work" / "decoded-cache")  # the warm variants' cache was filled
    assert "| after: process (cache warm)" in proc.stdout
