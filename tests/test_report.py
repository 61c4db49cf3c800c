"""`salmubench.report`: collection, hand-computed scores and verdicts, ordering, the paper's
rows, errors that name the offending path, and the report folder itself.

Every eval folder here is fake but real: a `metrics.json` and a manifest written by the
same `write_manifest` as the eval stage, with numbers chosen so each score is easy to check.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from salmubench.config import ReportConfig
from salmubench.manifest import (
    ManifestError,
    OutputExistsError,
    dumps,
    read_manifest,
    write_manifest,
)
from salmubench.report import build_leaderboard, build_report, load_evals
from salmubench.report.leaderboard import judge, paper_rows, score
from salmubench.report.records import find_eval_folders
from salmubench.report.render import leaderboard_table

D = "d" * 64
OTHER_D = "e" * 64
# Gaps: RetFail 0.20, InterIdSim 0.20, IntraIdSim 0.40; Compromised GenKnow 0.50.
CLEAN = {"retfail": 0.01, "genknow": 0.49, "inter_id_sim": 0.20, "intra_id_sim": 0.30}
COMPROMISED = {"retfail": 0.21, "genknow": 0.50, "inter_id_sim": 0.40, "intra_id_sim": 0.70}
BASE = {
    "retfail_r1": 0.05,
    "assoc_str": 0.5,
    "acs": 0.8,
    "idzsc": 0.1,
    "core_assoc": 0.4,
    "vis_id_int": 0.6,
    "frag_sim": 0.55,
    "genknow_chance": 0.0125,
}


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def make_eval(
    folder: Path,
    variant: str,
    metrics: dict[str, float],
    *,
    method: str | None = None,
    budget: float | None = None,
    seed: int | None = None,
    model: str | None = None,
    dataset: str = D,
    path: str | None = None,
) -> Path:
    folder.mkdir(parents=True)
    values = {**BASE, **COMPROMISED, **metrics}
    # metrics.json first: the manifest checksums every file already in the folder.
    (folder / "metrics.json").write_text(dumps(values), encoding="utf-8")
    model_digest = model or digest(variant, method, budget, seed)
    identity = {
        "path": path or f"models/{variant}-{method}-{budget}-{seed}",
        "digest": model_digest,
        "architecture": "salmu-micro",
        "variant": variant,
        "method": method,
        "budget": budget,
        "seed": seed,
        "profile": "micro",
        "dataset": dataset,
    }
    write_manifest(
        folder,
        "eval",
        config={},
        inputs={"dataset": dataset, "model": model_digest},
        model=identity,
        seed=0,
        metrics=values,
    )
    return folder


def unlearned(root: Path, method: str, seed: int, budget: float = 5.0, **metrics) -> Path:
    return make_eval(
        root / f"eval-{method}-{budget:g}-s{seed}",
        "unlearned",
        metrics,
        method=method,
        budget=budget,
        seed=seed,
    )


def references(root: Path) -> None:
    make_eval(root / "eval-clean", "clean", CLEAN)
    make_eval(root / "eval-compromised", "compromised", COMPROMISED)


def populate(root: Path) -> Path:
    """References and one method per case, each built to trigger exactly its verdict."""
    references(root)
    # finetune: two seeds, means retfail .04, inter .34, intra .60, genknow .48 -> no verdict
    unlearned(
        root / "finetune",
        "finetune",
        0,
        retfail=0.03,
        inter_id_sim=0.35,
        intra_id_sim=0.58,
        genknow=0.49,
    )
    unlearned(
        root / "finetune",
        "finetune",
        1,
        retfail=0.05,
        inter_id_sim=0.33,
        intra_id_sim=0.62,
        genknow=0.47,
    )
    # vlunlearn: forgetting 0.9, nothing else wrong -> ranked above finetune
    unlearned(root, "vlunlearn", 0, retfail=0.03, genknow=0.50)
    # neg_grad: forgetting 0.25 only -> ineffective
    unlearned(root, "neg_grad", 0, retfail=0.16)
    # direct_sim_min: forgetting 1, holdout kept -0.5, drop 0.02 -> over-generalised
    unlearned(
        root, "direct_sim_min", 0, retfail=0.01, inter_id_sim=0.10, intra_id_sim=0.10, genknow=0.49
    )
    # shuffled_captions: forgetting .95, kept .9, drop .2 -> collapse
    unlearned(
        root,
        "shuffled_captions",
        0,
        retfail=0.02,
        inter_id_sim=0.38,
        intra_id_sim=0.66,
        genknow=0.40,
    )
    # grad_diff: ineffective and collapse -> last
    unlearned(root, "grad_diff", 0, retfail=0.20, genknow=0.30)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return populate(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def board(runs) -> dict:
    return build_leaderboard(load_evals([runs]), ReportConfig())


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "report"
    build_report([runs], out)
    return out


def row(board: dict, label: str) -> dict:
    return next(r for r in board["rows"] if r["label"] == label)


# --------------------------------------------------------------------------- scores


def test_scores_are_shares_of_the_reference_gaps():
    x = {"retfail": 0.06, "inter_id_sim": 0.30, "intra_id_sim": 0.90, "genknow": 0.45}
    scores, notes = score(x, CLEAN, COMPROMISED)
    assert scores["forgetting"] == pytest.approx((0.21 - 0.06) / 0.20)  # 0.75
    # inter (0.30-0.20)/0.20 = 0.5, intra (0.90-0.30)/0.40 = 1.5 -> mean 1.0
    assert scores["holdout_kept"] == pytest.approx(1.0)
    assert scores["genknow_drop"] == pytest.approx(0.1)
    assert notes == []


def test_references_sit_at_the_ends_of_the_scale():
    assert score(CLEAN, CLEAN, COMPROMISED)[0]["forgetting"] == 1.0
    assert score(CLEAN, CLEAN, COMPROMISED)[0]["holdout_kept"] == 0.0
    assert score(COMPROMISED, CLEAN, COMPROMISED)[0] == {
        "forgetting": 0.0,
        "holdout_kept": 1.0,
        "genknow_drop": 0.0,
    }


def test_zero_gaps_give_no_score_and_say_why():
    flat = {**COMPROMISED, "retfail": CLEAN["retfail"], "inter_id_sim": CLEAN["inter_id_sim"]}
    scores, notes = score(COMPROMISED, CLEAN, flat)
    assert scores["forgetting"] is None
    # InterIdSim has no gap, so holdout kept is IntraIdSim's share alone: (0.7-0.3)/0.4
    assert scores["holdout_kept"] == pytest.approx(1.0)
    assert any("forgetting undefined" in n for n in notes)
    assert any("InterIdSim left out" in n for n in notes)
    scores, notes = score(COMPROMISED, CLEAN, {**COMPROMISED, "genknow": 0.0})
    assert scores["genknow_drop"] is None and any("GenKnow" in n for n in notes)
    assert (
        judge({"forgetting": None, "holdout_kept": None, "genknow_drop": None}, ReportConfig())
        == []
    )


def test_thresholds_are_strict_and_configurable():
    at = {"forgetting": 0.5, "holdout_kept": 0.0, "genknow_drop": 0.025}
    assert judge(at, ReportConfig()) == []
    strict = ReportConfig(min_forgetting=0.6, min_holdout_kept=0.1, max_genknow_drop=0.02)
    assert judge(at, strict) == ["ineffective", "over-generalised", "collapse"]


# --------------------------------------------------------------------------- leaderboard


def test_each_verdict_is_triggered_by_its_own_row_only(board):
    verdicts = {r["label"]: r["verdicts"] for r in board["rows"]}
    assert verdicts == {
        "Clean": [],
        "Compromised": [],
        "vlunlearn 5×": [],
        "finetune 5×": [],
        "direct_sim_min 5×": ["over-generalised"],
        "shuffled_captions 5×": ["collapse"],
        "neg_grad 5×": ["ineffective"],
        "grad_diff 5×": ["ineffective", "collapse"],
    }
    s = row(board, "direct_sim_min 5×")["scores"]
    assert s == pytest.approx({"forgetting": 1.0, "holdout_kept": -0.5, "genknow_drop": 0.02})
    s = row(board, "shuffled_captions 5×")["scores"]
    assert s == pytest.approx({"forgetting": 0.95, "holdout_kept": 0.9, "genknow_drop": 0.2})
    assert row(board, "neg_grad 5×")["scores"]["forgetting"] == pytest.approx(0.25)


def test_references_first_then_no_verdict_fewer_verdicts_and_most_forgetting(board):
    labels = [r["label"] for r in board["rows"]]
    assert labels == [
        "Clean",
        "Compromised",
        "vlunlearn 5×",  # none, forgetting 0.90
        "finetune 5×",  # none, forgetting 0.85
        "direct_sim_min 5×",  # one verdict, forgetting 1.00
        "shuffled_captions 5×",  # one, 0.95
        "neg_grad 5×",  # one, 0.25
        "grad_diff 5×",  # two
    ]
    assert [r["rank"] for r in board["rows"]] == [None, None, 1, 2, 3, 4, 5, 6]


def test_seeds_are_aggregated_with_mean_and_sample_std(board):
    r = row(board, "finetune 5×")
    assert (r["method"], r["budget"], r["seeds"], r["n"]) == ("finetune", 5.0, [0, 1], 2)
    assert r["metrics"]["retfail"] == pytest.approx(0.04)
    assert r["std"]["retfail"] == pytest.approx(0.0141421, abs=1e-6)  # stdev(.03, .05)
    assert r["std"]["genknow"] == pytest.approx(0.0141421, abs=1e-6)
    assert r["std"]["assoc_str"] == 0.0
    assert [s["metrics"]["retfail"] for s in r["per_seed"]] == [0.03, 0.05]
    # the leaderboard's "runs" cell names the seeds (a one-world run once printed a bare "0")
    header, rows = leaderboard_table(board)
    cells = dict(zip(header, next(c for c in rows if c[1] == "finetune"), strict=True))
    assert cells["runs"] == "seeds 0, 1"
    # from the means: (.21-.04)/.2; mean((.34-.2)/.2, (.60-.3)/.4); (.5-.48)/.5
    assert r["scores"] == pytest.approx(
        {"forgetting": 0.85, "holdout_kept": 0.725, "genknow_drop": 0.04}
    )
    assert [s["scores"]["forgetting"] for s in r["per_seed"]] == pytest.approx([0.9, 0.8])
    assert r["scores_std"]["forgetting"] == pytest.approx(0.0707107, abs=1e-6)
    single = row(board, "neg_grad 5×")
    assert single["n"] == 1 and single["std"] == {} and single["scores_std"] == {}


def test_budgets_are_separate_rows_and_evals_of_one_model_are_averaged(tmp_path):
    references(tmp_path)
    make_eval(tmp_path / "again-clean", "clean", {**CLEAN, "retfail": 0.03})
    unlearned(tmp_path, "neg_grad", 0, budget=1.0, retfail=0.11)
    unlearned(tmp_path, "neg_grad", 0, budget=5.0, retfail=0.01)
    board = build_leaderboard(load_evals([tmp_path]), ReportConfig())
    clean = row(board, "Clean")
    assert clean["n"] == 1 and clean["metrics"]["retfail"] == pytest.approx(0.02)
    assert len(clean["per_seed"][0]["evals"]) == 2
    # gap is now .21 - .02 = .19
    assert row(board, "neg_grad 1×")["scores"]["forgetting"] == pytest.approx(0.10 / 0.19, abs=1e-6)
    assert [r["label"] for r in board["rows"]][2:] == ["neg_grad 5×", "neg_grad 1×"]


def test_external_checkpoint_is_its_own_row_named_by_its_path(tmp_path):
    references(tmp_path)
    make_eval(
        tmp_path / "eval-ext", "external", {"retfail": 0.02}, path="/ckpt/theirs.pt", model="f" * 64
    )
    board = build_leaderboard(load_evals([tmp_path]), ReportConfig())
    ext = row(board, "theirs.pt")
    assert ext["rank"] == 1 and ext["variant"] == "external" and ext["method"] is None


def test_paper_rows_are_judged_by_the_same_rules():
    verdicts = {r["name"]: r["verdicts"] for r in paper_rows(ReportConfig())}
    assert verdicts == {
        "Clean": [],
        "Compromised": [],
        "CLIPErase": ["over-generalised"],
        "DELETE": ["over-generalised"],
        "VLUnlearn": [],
        "Finetuning": [],
        "NegGrad": ["over-generalised"],
        "Shuffled": ["collapse"],  # (.638 - .548) / .638 = 0.141 > 0.025
        "DirectSimMin": ["over-generalised", "collapse"],  # (.638 - .615) / .638 = 0.036
    }
    dsm = next(r for r in paper_rows(ReportConfig()) if r["name"] == "DirectSimMin")
    assert dsm["scores"]["holdout_kept"] == pytest.approx(
        ((-0.420 - 0.143) / 0.178 + (-0.425 - 0.143) / 0.178) / 2, abs=1e-6
    )


def test_rows_name_their_paper_row(board):
    assert row(board, "finetune 5×")["paper"] == "Finetuning"
    assert row(board, "grad_diff 5×")["paper"] is None
    assert row(board, "Clean")["paper"] == "Clean"


# --------------------------------------------------------------------------- collection


def test_discovery_skips_hidden_and_non_eval_folders_and_does_not_descend(tmp_path):
    references(tmp_path / "a")
    make_eval(tmp_path / ".tmp" / "eval-x", "unlearned", {}, method="neg_grad", budget=1.0, seed=0)
    model = tmp_path / "b" / "model"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"x")
    write_manifest(model, "model", config={})
    # An incomplete eval (no manifest) is not an eval.
    (tmp_path / "b" / "unfinished").mkdir()
    (tmp_path / "b" / "unfinished" / "metrics.json").write_text("{}")
    found = find_eval_folders(tmp_path)
    assert found == [tmp_path / "a" / "eval-clean", tmp_path / "a" / "eval-compromised"]
    assert find_eval_folders(tmp_path / "a" / "eval-clean") == [tmp_path / "a" / "eval-clean"]
    # The same folder named twice is read once.
    assert len(load_evals([tmp_path, tmp_path / "a" / "eval-clean"])) == 2


def test_a_path_without_evals_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ManifestError, match="nowhere: no such file or folder"):
        load_evals([missing])
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(ManifestError, match=r"empty: contains no eval folder"):
        load_evals([empty])


def test_missing_clean_is_an_error_saying_what_was_found(tmp_path):
    make_eval(tmp_path / "eval-compromised", "compromised", COMPROMISED)
    unlearned(tmp_path, "neg_grad", 0)
    with pytest.raises(ManifestError, match=r"no eval of a Clean model.*compromised.*unlearned"):
        build_leaderboard(load_evals([tmp_path]), ReportConfig())


def test_two_different_compromised_models_are_an_error_listing_them(tmp_path):
    references(tmp_path)
    make_eval(tmp_path / "eval-compromised-2", "compromised", COMPROMISED, model="a" * 64)
    with pytest.raises(ManifestError, match=r"exactly one Compromised model.*found 2") as e:
        build_leaderboard(load_evals([tmp_path]), ReportConfig())
    assert "eval-compromised-2" in str(e.value) and "aaaaaaaaaaaa" in str(e.value)


def test_a_world_without_its_references_is_an_error_naming_what_it_has(tmp_path):
    # Evals on another dataset form another world, which needs its own Clean model.
    references(tmp_path)
    make_eval(tmp_path / "other-compromised", "compromised", COMPROMISED, dataset=OTHER_D,
              model="c" * 64)  # fmt: skip
    make_eval(tmp_path / "eval-other", "unlearned", {}, method="neg_grad", budget=5.0, seed=0,
              dataset=OTHER_D)  # fmt: skip
    with pytest.raises(ManifestError, match="no eval of a Clean model") as e:
        build_leaderboard(load_evals([tmp_path]), ReportConfig())
    assert "1 compromised" in str(e.value) and "1 unlearned" in str(e.value)


def test_two_models_claiming_one_seed_are_an_error(tmp_path):
    references(tmp_path)
    unlearned(tmp_path, "neg_grad", 0)
    make_eval(
        tmp_path / "eval-neg_grad-again",
        "unlearned",
        {},
        method="neg_grad",
        budget=5.0,
        seed=0,
        model="b" * 64,
    )
    with pytest.raises(ManifestError, match="same seed 0"):
        build_leaderboard(load_evals([tmp_path]), ReportConfig())


def test_a_corrupted_metrics_file_is_detected(tmp_path):
    references(tmp_path)
    path = tmp_path / "eval-clean" / "metrics.json"
    values = json.loads(path.read_text())
    values["retfail"] = 0.5
    path.write_text(dumps(values))
    with pytest.raises(ManifestError, match=r"eval-clean: metrics.json is corrupt"):
        load_evals([tmp_path])


# --------------------------------------------------------------------------- report folder


def test_report_folder_holds_every_output_under_a_verified_manifest(report):
    manifest = read_manifest(report, kind="report", verify=True)
    assert set(manifest["files"]) == {
        "leaderboard.json",
        "leaderboard.md",
        "report.html",
        "tradeoff.png",
        "metrics.png",
        "paper.png",
    }
    assert manifest["dataset"] == D
    assert manifest["config"] == {
        "min_forgetting": 0.5,
        "min_holdout_kept": 0.0,
        "max_genknow_drop": 0.025,
        "confidence": 0.95,
        "max_recovery": 0.5,
    }
    assert len(manifest["inputs"]) == 9
    assert all(k.startswith("eval:") for k in manifest["inputs"])
    assert manifest["methods"] == [
        "direct_sim_min",
        "finetune",
        "grad_diff",
        "neg_grad",
        "shuffled_captions",
        "vlunlearn",
    ]
    assert [e["label"] for e in manifest["leaderboard"]][:2] == ["vlunlearn 5×", "finetune 5×"]
    for name in ("tradeoff.png", "metrics.png", "paper.png"):
        with Image.open(report / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 0 and image.size[1] > 0


def test_leaderboard_json_carries_thresholds_rows_paper_and_inputs(report):
    board = json.loads((report / "leaderboard.json").read_text())
    assert board["thresholds"] == {
        "min_forgetting": 0.5,
        "min_holdout_kept": 0.0,
        "max_genknow_drop": 0.025,
    }
    assert board["dataset"] == D
    assert len(board["evals"]) == 9 and all(len(e["digest"]) == 64 for e in board["evals"])
    assert {p["name"] for p in board["paper"]["rows"]} >= {"CLIPErase", "DirectSimMin"}
    finetune = row(board, "finetune 5×")
    assert len(finetune["per_seed"]) == 2 and finetune["rank"] == 2


def test_markdown_and_html_state_the_thresholds_and_show_every_method(report):
    md = (report / "leaderboard.md").read_text()
    page = (report / "report.html").read_text()
    for text in (md, page):
        assert "closes less than 50% of the RetFail gap" in text
        assert "below the Clean model" in text
        assert "more than 2.5% of the Compromised" in text
        for method in (
            "vlunlearn",
            "finetune",
            "neg_grad",
            "direct_sim_min",
            "grad_diff",
            "shuffled_captions",
            "DirectSimMin",
            "CLIPErase",
        ):
            assert method in text
    assert "| 2 | finetune | 5× | seeds 0, 1 | 0.0400 ± 0.0141 |" in md
    # two seeds: t(1) intervals; forgetting .9, .8 -> .85 ± 12.706 * .05
    assert "0.850 [0.215, 1.485]" in md
    assert "borderline ineffective [0.215, 1.485]; borderline collapse" in md
    assert "collapse (+ ineffective) (1 run: no interval)" in md
    assert page.count("data:image/png;base64,") == 3
    assert "How to read this" in page and "over-generalised" in page
    assert 'src="tradeoff.png"' not in page  # self-contained: nothing to fetch


def test_html_escapes_text(runs, tmp_path):
    out = tmp_path / "r"
    build_report([runs], out, title="<b>Tiny & friends</b>")
    page = (out / "report.html").read_text()
    assert "&lt;b&gt;Tiny &amp; friends&lt;/b&gt;" in page and "<b>Tiny" not in page
    assert read_manifest(out)["title"] == "<b>Tiny & friends</b>"


def test_existing_output_is_refused_without_force_and_replaced_with_it(runs, report, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        build_report([runs], out)
    assert (out / "old.txt").is_file()
    build_report([runs], out, force=True)
    assert not (out / "old.txt").exists()
    read_manifest(out, kind="report", verify=True)
    # The same inputs give the same bytes.
    for name in ("leaderboard.json", "leaderboard.md", "report.html", "tradeoff.png"):
        assert (out / name).read_bytes() == (report / name).read_bytes(), name


def test_a_report_inside_the_runs_folder_is_not_read_as_an_eval(tmp_path):
    populate(tmp_path)
    build_report([tmp_path], tmp_path / "report")
    build_report([tmp_path], tmp_path / "report", force=True)
    assert len(load_evals([tmp_path])) == 9


def test_invalid_config_fails_before_anything_is_written(runs, tmp_path):
    with pytest.raises(ValueError, match="max_genknow_drop"):
        build_report([runs], tmp_path / "r", cfg=ReportConfig(max_genknow_drop=2.0))
    assert not (tmp_path / "r").exists()
