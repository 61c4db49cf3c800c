"""`salmubench eval`: all ten metrics, per-item details, targets, embeddings computed once."""

from __future__ import annotations

import json

import pytest

from salmubench.cli import main
from salmubench.config import RETAIN_SPLITS, EvalConfig
from salmubench.data.evaluated import PARTITIONED, is_evaluated
from salmubench.eval.metrics import METRICS, retfail_gallery
from salmubench.eval.stage import measure
from salmubench.manifest import read_manifest
from salmubench.models import image_size, load_model, tokenizer
from salmubench.unlearn.data import load_unlearn_pools, open_for_unlearning

PRIMITIVE_READS = ("forget_identity", "forget_association", "holdout_identity",
                   "holdout_association", "retain_joint", "retain_disjoint", "fragile",
                   "genknow")  # fmt: skip


@pytest.fixture(scope="module")
def compromised_eval(tmp_path_factory, micro_dataset, micro_models):
    out = tmp_path_factory.mktemp("eval") / "compromised"
    code = main(["eval", "--data", str(micro_dataset), "--model",
                 str(micro_models["compromised"]), "--profile", "micro", "--out", str(out),
                 "--clean", str(micro_models["clean"]), "--compromised",
                 str(micro_models["compromised"]), "-q"])  # fmt: skip
    assert code == 0
    return out


def test_metrics_json_is_one_flat_summary_of_all_ten(compromised_eval):
    metrics = json.loads((compromised_eval / "metrics.json").read_text())
    assert set(METRICS) <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert {"retfail_r1", "retfail_gallery", "genknow_chance", "idzsc_chance"} <= set(metrics)
    read_manifest(compromised_eval, kind="eval", verify=True)


def evaluated_counts(micro_manifest, micro_samples) -> dict[str, int]:
    """Samples per primitive split that the evaluator reads: the evaluation part of the
    partitioned retain splits, all of the others."""
    counts = dict(micro_manifest["counts"])
    for split in PARTITIONED:
        counts[split] = sum(
            is_evaluated(split, s["__key__"], s["json"]) for s in micro_samples[split]
        )
        assert 0 < counts[split] < micro_manifest["counts"][split], split
    return counts


def test_per_item_details_cover_every_item(compromised_eval, micro_manifest, micro_samples):
    counts = evaluated_counts(micro_manifest, micro_samples)
    n = {
        "retfail": counts["forget_identity"] + counts["forget_association"],
        "assoc_str": counts["forget_identity"] + counts["forget_association"],
        "idzsc": counts["forget_identity"],
        "genknow": counts["genknow"],
        "inter_id_sim": counts["holdout_identity"],
        "intra_id_sim": counts["holdout_association"],
        "vis_id_int": counts["retain_joint"],
        "frag_sim": counts["fragile"],
    }
    for name, expected in n.items():
        rows = (compromised_eval / "items" / f"{name}.jsonl").read_text().splitlines()
        assert len(rows) == expected, name
        assert {"key", "value"} == set(json.loads(rows[0]))


def test_each_metric_is_reported_against_its_target(compromised_eval):
    rows = json.loads((compromised_eval / "targets.json").read_text())
    for name, metric in METRICS.items():
        row = rows[name]
        ref = row["clean"] if metric.target == "clean" else row["compromised"]
        assert row["target"] == ref
        assert row["delta"] == pytest.approx(row["value"] - ref, abs=1e-5)
    # the compromised model against itself: zero utility gap
    for name in ("genknow", "inter_id_sim", "intra_id_sim"):
        assert rows[name]["delta"] == pytest.approx(0.0, abs=1e-6)
    assert "| retfail | efficacy |" in (compromised_eval / "report.md").read_text()
    assert (compromised_eval / "targets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_metrics_files_give_the_same_targets(tmp_path, micro_dataset, micro_models,
                                                       compromised_eval):  # fmt: skip
    clean_eval = tmp_path / "clean"
    assert main(["eval", "--data", str(micro_dataset), "--model", str(micro_models["clean"]),
                 "--profile", "micro", "--out", str(clean_eval), "-q"]) == 0  # fmt: skip
    out = tmp_path / "again"
    assert main(["eval", "--data", str(micro_dataset), "--model",
                 str(micro_models["compromised"]), "--profile", "micro", "--out", str(out),
                 "--clean", str(clean_eval / "metrics.json"), "--compromised",
                 str(compromised_eval), "-q"]) == 0  # fmt: skip
    a = json.loads((out / "targets.json").read_text())
    b = json.loads((compromised_eval / "targets.json").read_text())
    assert a == b


def test_external_checkpoint_file_loads_with_its_architecture(
    tmp_path, micro_dataset, micro_models, compromised_eval
):
    out = tmp_path / "external"
    assert main(["eval", "--data", str(micro_dataset), "--model",
                 str(micro_models["compromised"] / "model.pt"), "--arch", "salmu-micro",
                 "--profile", "micro", "--out", str(out), "-q"]) == 0  # fmt: skip
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (compromised_eval / "metrics.json").read_text()
    )


def test_every_split_is_embedded_once(micro_dataset, micro_manifest, micro_samples, micro_models):
    loaded = load_model(micro_models["clean"])
    results, emb, _ = measure(loaded, micro_dataset, micro_manifest, EvalConfig(), seed=0)
    assert set(results) == set(METRICS)
    counts = evaluated_counts(micro_manifest, micro_samples)
    assert emb.counts["images"] == sum(counts[s] for s in PRIMITIVE_READS)


def test_no_item_a_metric_reads_is_in_the_unlearning_retain_data(
    compromised_eval, micro_dataset, micro_manifest, micro_models
):
    # every retain sample unlearning may draw (retain_size 0 = all it may use)
    manifest = open_for_unlearning(micro_dataset, RETAIN_SPLITS)
    loaded = load_model(micro_models["compromised"])
    pools = load_unlearn_pools(micro_dataset, manifest, RETAIN_SPLITS, tokenizer(loaded.arch),
                               image_size(loaded.model), retain_size=0, seed=0,
                               with_retain=True)  # fmt: skip
    trained = set(pools["retain"].keys)
    # every item any metric reported on (an ACS negative "a~b" names two samples) ...
    evaluated = set()
    for path in (compromised_eval / "items").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            evaluated.update(json.loads(line)["key"].split("~"))
    # ... and every sample the evaluator embedded, the RetFail gallery among them
    _, emb, _ = measure(loaded, micro_dataset, micro_manifest, EvalConfig(), seed=0)
    read = {m["key"] for name in {s for m in METRICS.values() for s in m.splits}
            for m in emb.split(name).meta}  # fmt: skip
    forget, retain = emb.split("forget"), emb.split("retain_disjoint")
    pick_f, pick_r = retfail_gallery(len(forget.meta), len(retain.meta), emb.settings)
    gallery = {forget.meta[i]["key"] for i in pick_f} | {retain.meta[i]["key"] for i in pick_r}
    assert gallery <= read and evaluated <= read

    # not vacuous: both sides hold retain_joint and retain_disjoint samples
    for prefix in ("retain_joint-", "retain_disjoint-"):
        assert any(k.startswith(prefix) for k in trained), prefix
        assert any(k.startswith(prefix) for k in read), prefix
    assert any(k.startswith("retain_disjoint-") for k in gallery)
    assert trained.isdisjoint(read), sorted(trained & read)[:5]
    # the retain data is exactly the training parts (and all of retain_real)
    counts = micro_manifest["counts"]
    assert len(trained) == sum(counts[s] for s in RETAIN_SPLITS) - len(
        {k for k in read if k.startswith(("retain_joint-", "retain_disjoint-"))}
    )


def test_existing_eval_folder_is_refused_before_any_work(tmp_path, capsys, micro_dataset,
                                                         micro_models):  # fmt: skip
    out = tmp_path / "e"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main(["eval", "--data", str(micro_dataset), "--model", str(micro_models["clean"]),
                 "--out", str(out)])  # fmt: skip
    assert code == 2 and "--force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
