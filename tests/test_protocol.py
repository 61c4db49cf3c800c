"""The honest-leaderboard protocol: worlds, intervals, borderline verdicts, the paper's own
labels, and tuning that cannot see the test (hand-computed numbers throughout)."""

from __future__ import annotations

import json

import pytest
from test_report import CLEAN, COMPROMISED, make_eval

from salmubench.bench import bench
from salmubench.config import ConfigError, ReportConfig
from salmubench.manifest import ManifestError, dumps, read_manifest, write_manifest
from salmubench.report import build_leaderboard, build_report, load_evals
from salmubench.report.leaderboard import judge_intervals, paper_rows, primary, t_interval
from salmubench.report.paper import PAPER_LABELS
from salmubench.report.records import load_attacks
from salmubench.tune import (
    VALIDATION_SEEDS,
    check_leaderboard_world,
    check_validation_world,
    choose,
    tune,
)

DATASETS = ["1" * 64, "2" * 64, "3" * 64]
T_975_2 = 4.302653  # Student t, 97.5% quantile, 2 degrees of freedom


def three_worlds(root):
    """Three worlds with the test_report references; neg_grad and shuffled_captions in each.

    neg_grad: RetFail .03/.05/.07 -> forgetting .9/.8/.7; holdouts .10 -> kept -.5 in every
    world; GenKnow .49/.48/.47 -> drop .02/.04/.06. shuffled_captions: RetFail .01 -> 1.0;
    GenKnow .40/.41/.39 -> drop .20/.18/.22; holdouts as Compromised -> kept 1.
    """
    for w, dataset in enumerate(DATASETS):
        folder = root / f"world-{w}"
        make_eval(folder / "eval-clean", "clean", CLEAN, dataset=dataset, seed=w,
                  model=f"{w}c".ljust(64, "0"))  # fmt: skip
        make_eval(folder / "eval-compromised", "compromised", COMPROMISED, dataset=dataset,
                  seed=w, model=f"{w}k".ljust(64, "0"))  # fmt: skip
        make_eval(folder / "neg_grad", "unlearned",
                  {"retfail": [0.03, 0.05, 0.07][w], "inter_id_sim": 0.10, "intra_id_sim": 0.10,
                   "genknow": [0.49, 0.48, 0.47][w]},
                  method="neg_grad", budget=5.0, seed=0, dataset=dataset)  # fmt: skip
        make_eval(folder / "shuffled", "unlearned",
                  {"retfail": 0.01, "genknow": [0.40, 0.41, 0.39][w]},
                  method="shuffled_captions", budget=5.0, seed=0, dataset=dataset)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def worlds_board(tmp_path_factory):
    root = three_worlds(tmp_path_factory.mktemp("worlds"))
    return build_leaderboard(load_evals([root]), ReportConfig())


def row(board, label):
    return next(r for r in board["rows"] if r["label"] == label)


def test_each_world_is_scored_against_its_own_references(worlds_board):
    assert [w["name"] for w in worlds_board["worlds"]] == ["world 0", "world 1", "world 2"]
    assert worlds_board["dataset"] is None and worlds_board["datasets"] == DATASETS
    w = worlds_board["worlds"][0]
    assert w["retfail_ratio"] == pytest.approx(21.0)  # .21 / .01
    assert w["genknow_difference"] == pytest.approx(0.01)
    r = row(worlds_board, "neg_grad 5×")
    assert r["interval_source"] == "worlds" and r["worlds"] == ["world 0", "world 1", "world 2"]
    assert [u["scores"]["forgetting"] for u in r["per_world"]] == pytest.approx([0.9, 0.8, 0.7])


def test_scores_get_a_mean_spread_and_t_interval_over_worlds(worlds_board):
    r = row(worlds_board, "neg_grad 5×")
    assert r["scores"]["forgetting"] == pytest.approx(0.8)
    assert r["scores_std"]["forgetting"] == pytest.approx(0.1)
    half = T_975_2 * 0.1 / 3**0.5  # 0.248413
    assert r["scores_ci"]["forgetting"] == pytest.approx([0.8 - half, 0.8 + half], abs=1e-6)
    assert r["scores_ci"]["holdout_kept"] == pytest.approx([-0.5, -0.5])


def test_an_interval_straddling_its_threshold_is_borderline_not_a_verdict(worlds_board):
    r = row(worlds_board, "neg_grad 5×")
    # GenKnow drop .02/.04/.06: mean .04, CI .04 ± 4.302653 * .02 / sqrt(3) = [-.0097, .0897]
    # straddles .025 -> borderline collapse; kept -.5 in every world -> over-generalised;
    # forgetting [.552, 1.048] clears .5 -> not ineffective.
    assert r["verdicts"] == ["over-generalised"] and r["primary"] == "over-generalised"
    assert [b["mode"] for b in r["borderline"]] == ["collapse"]
    assert r["borderline"][0]["interval"] == pytest.approx([-0.009683, 0.089683], abs=1e-6)
    s = row(worlds_board, "shuffled_captions 5×")
    # drop .20/.18/.22: [.150, .250] lies above .025 -> collapse, nothing borderline
    assert s["verdicts"] == ["collapse"] and s["borderline"] == []


def test_judge_intervals_by_hand():
    cfg = ReportConfig()
    scores = {"forgetting": 0.6, "holdout_kept": 0.2, "genknow_drop": 0.03}
    clear = {"forgetting": [0.55, 0.65], "holdout_kept": [0.1, 0.3], "genknow_drop": [0.01, 0.02]}
    assert judge_intervals(scores, clear, cfg) == ([], [])
    fails = {"forgetting": [0.3, 0.45], "holdout_kept": [-0.3, -0.1], "genknow_drop": [0.03, 0.05]}
    assert judge_intervals(scores, fails, cfg) == (
        ["ineffective", "over-generalised", "collapse"], [])  # fmt: skip
    straddle = {"forgetting": [0.4, 0.6], "holdout_kept": [-0.1, 0.1], "genknow_drop": [0.02, 0.03]}
    verdicts, borderline = judge_intervals(scores, straddle, cfg)
    assert verdicts == [] and [b["mode"] for b in borderline] == list(
        ("ineffective", "over-generalised", "collapse"))  # fmt: skip
    # the threshold itself passes, as for point scores
    edge = {"forgetting": [0.5, 0.7], "holdout_kept": [0.0, 0.2], "genknow_drop": [0.01, 0.025]}
    assert judge_intervals(scores, edge, cfg) == ([], [])
    assert t_interval([1.0], 0.95) is None
    assert t_interval([1.0, 3.0], 0.95) == pytest.approx([2 - 12.706205, 2 + 12.706205])


def test_the_rules_give_the_papers_own_rows_the_papers_own_labels():
    rows = {r["method"]: r for r in paper_rows(ReportConfig()) if r["method"]}
    for method, stated in PAPER_LABELS.items():
        if method in rows:
            assert rows[method]["label"] == stated, method
    assert primary(["over-generalised", "collapse"]) == "collapse"
    # the collapse threshold sits between NegGrad's drop (1.25%) and DirectSimMin's (3.6%)
    assert (
        rows["neg_grad"]["scores"]["genknow_drop"]
        < 0.025
        < rows["direct_sim_min"]["scores"]["genknow_drop"]
    )


def test_report_states_agreement_with_the_papers_labels(worlds_board):
    agreement = worlds_board["paper"]["agreement"]
    assert agreement["methods"]["shuffled_captions"] == {
        "paper": "collapse", "ours": "collapse", "agree": "yes"}  # fmt: skip
    # neg_grad: the paper says over-generalised, as we do
    assert agreement["methods"]["neg_grad"]["agree"] == "yes"
    assert (agreement["labelled"], agreement["reproduced"]) == (2, 2)


def test_agreement_with_the_paper_is_yes_partly_borderline_or_no():
    from salmubench.report.leaderboard import paper_agreement

    def r(method, verdicts, borderline=()):
        return {"method": method, "rank": 1, "verdicts": list(verdicts),
                "primary": primary(verdicts),
                "borderline": [{"mode": m} for m in borderline]}  # fmt: skip

    a = paper_agreement([
        r("delete", ["over-generalised"]),  # the paper: over-generalised
        r("cliperase", ["over-generalised", "collapse"]),  # ours adds collapse -> partly
        r("shuffled_captions", [], ["collapse"]),  # borderline collapse
        r("generic_captions", ["collapse"]),  # the paper: ineffective
        r("finetune", ["ineffective"]),  # the paper states no failure mode: not counted
    ])  # fmt: skip
    assert {m: v["agree"] for m, v in a["methods"].items()} == {
        "delete": "yes", "cliperase": "partly", "shuffled_captions": "borderline",
        "generic_captions": "no"}  # fmt: skip
    assert (a["labelled"], a["reproduced"], a["partly"], a["borderline"]) == (4, 1, 1, 1)


# --------------------------------------------------------------------------- tuning


def test_the_selection_rule_by_hand():
    rows = [
        {"lr": 1e-4, "scores": {"forgetting": 0.95}},
        {"lr": 1e-5, "scores": {"forgetting": 0.5}},
        {"lr": 3e-5, "scores": {"forgetting": 0.91}},
    ]
    assert choose(rows) == 3e-5  # the smallest reaching .9, whatever comes after
    weak = [{"lr": lr, "scores": {"forgetting": f}}
            for lr, f in ((1e-5, 0.2), (1e-4, 0.6), (1e-3, 0.4))]  # fmt: skip
    assert choose(weak) == 1e-4  # none reaches .9: the one that forgets most


def test_tuning_refuses_a_leaderboard_world_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="world 0 is a leaderboard world"):
        tune("micro", tmp_path / "v", world=0, methods=["finetune"])
    assert not (tmp_path / "v").exists()
    check_validation_world(VALIDATION_SEEDS)


def test_leaderboards_refuse_a_validation_world(tmp_path):
    with pytest.raises(ConfigError, match="world 1000 is a validation world"):
        bench("micro", tmp_path / "b", methods=["finetune"], worlds=[0, VALIDATION_SEEDS])
    with pytest.raises(ConfigError, match="validation world"):
        bench("micro", tmp_path / "b", methods=["finetune"], data_seed=VALIDATION_SEEDS + 5)
    with pytest.raises(ConfigError, match=r"jobs=999: stages side by side need a CPU each; "
                       r"valid: 1\.\.\d+"):  # fmt: skip
        bench("micro", tmp_path / "b", methods=["finetune"], jobs=999)
    assert not (tmp_path / "b").exists()
    check_leaderboard_world(VALIDATION_SEEDS - 1)


def _tuning(dataset: str) -> dict:
    scores = [{"forgetting": f, "holdout_kept": k, "genknow_drop": d}
              for f, k, d in ((0.3, 0.9, 0.0), (0.95, 0.4, 0.01), (1.0, -0.5, 0.2))]  # fmt: skip
    results = {m: [{"lr": lr, "scores": s, "metrics": {}}
                   for lr, s in zip((1e-5, 1e-4, 1e-3), scores, strict=True)]
               for m in ("neg_grad", "shuffled_captions")}  # fmt: skip
    return {"world": {"name": "world 1000", "seed": 1000, "dataset": dataset},
            "rule": "test rule", "target": 0.9, "thresholds": {"max_genknow_drop": 0.025},
            "results": results,
            "chosen": {"neg_grad": 1e-4, "shuffled_captions": 1e-4}}  # fmt: skip


def test_report_shows_the_sweep_and_refuses_the_tuning_world(tmp_path):
    root = three_worlds(tmp_path / "runs")
    tuning = tmp_path / "tuning.json"
    tuning.write_text(dumps(_tuning("9" * 64)), encoding="utf-8")
    manifest = build_report([root], tmp_path / "report", tuning=tuning)
    assert {"sweep.png", "tuning.json"} <= set(manifest["files"])
    md = (tmp_path / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Tuning (validation world)" in md and "| neg_grad | 0.0001 |" in md
    assert "3 worlds" in md and "| world 0 |" in md
    read_manifest(tmp_path / "report", kind="report", verify=True)

    tuning.write_text(dumps(_tuning(DATASETS[1])), encoding="utf-8")
    with pytest.raises(ConfigError, match="validation world world 1000"):
        build_report([root], tmp_path / "again", tuning=tuning)
    assert not (tmp_path / "again").exists()


def test_params_use_the_rates_tuned_on_the_validation_world():
    """params.yaml's method learning rates are the ones `salmubench tune` chose, on a
    validation world, under the rule in force (benchmarks/results/tune-tiny.json)."""
    from pathlib import Path

    from salmubench.config import load_params
    from salmubench.tune import RULE, TARGET, is_validation_world, load_tuning

    root = Path(__file__).resolve().parents[1]
    tuning = load_tuning(root / "benchmarks" / "results" / "tune-tiny.json")
    assert is_validation_world(tuning["world"]["seed"])
    assert tuning["rule"] == RULE.format(target=TARGET)
    for method, rows in tuning["results"].items():
        assert choose(rows, tuning["target"]) == tuning["chosen"][method], method
    methods = load_params(root / "params.yaml")["methods"]
    assert {m: methods[m]["lr"] for m in tuning["chosen"]} == tuning["chosen"]


# --------------------------------------------------------------------------- the robust column

ATTACK_CONFIG = {"batch": 32, "lrs": [1e-3], "precisions": ["int8", "bf16"], "retain_size": 200,
                 "seed": 0, "split_fraction": 0.5, "steps": [20, 60]}  # fmt: skip


def make_attack(root, world: int, eval_folder, attack: str, gap: float, *, clean=None) -> None:
    """An attack folder as `salmubench attack` writes it, in bench's layout
    (<world>/attacks/<model folder>/<attack>/), for the model that `eval_folder` measured:
    a two-point sweep whose worst point restores `gap` of the RetFail gap (the other point
    restores nothing), with its AssocStr gap gap / 2."""
    model = read_manifest(eval_folder, kind="eval")["model"]
    clean = clean or f"{world}c".ljust(64, "0")
    scale = {"retfail": 0.2, "assoc_str": 0.4}  # Compromised - Clean, before the attack
    before = {"retfail": 0.02, "assoc_str": 0.1}
    after = {"retfail": 0.02 + gap * 0.2, "assoc_str": 0.1 + gap / 2 * 0.4}
    points = [{"point": "lr=0.001 steps=20", "lr": 1e-3, "steps": 20, "scores": before},
              {"point": "lr=0.001 steps=60", "lr": 1e-3, "steps": 60, "scores": after}]  # fmt: skip
    clean_points = [dict(p, scores={"retfail": 0.01, "assoc_str": 0.3}) for p in points]
    worst = {"point": "lr=0.001 steps=60", "retfail": gap, "assoc_str": gap / 2,
             "retfail_after": after["retfail"], "assoc_str_after": after["assoc_str"]}  # fmt: skip
    record = {
        "attack": attack,
        "trains_on": "test",
        "reads": {"pool": "forget", "pairs": 10, "splits": [], "personas_trained": None,
                  "personas_scored": "all"},
        "model": {"path": model["path"], "digest": model["digest"], "variant": model["variant"],
                  "method": model["method"], "budget": model["budget"], "seed": model["seed"],
                  "before": before, "points": points},
        "clean": {"path": "clean", "digest": clean, "variant": "clean", "seed": world,
                  "before": {"retfail": 0.01, "assoc_str": 0.3}, "points": clean_points},
        "compromised": {"path": "compromised", "digest": f"{world}k".ljust(64, "0"),
                        "variant": "compromised", "seed": world,
                        "scores": {"retfail": 0.21, "assoc_str": 0.7}},
        "recovery": {"points": [worst], "worst": worst, "scale": scale},
        "resumed_points": 0,
    }  # fmt: skip
    folder = root / f"world-{world}" / "attacks" / eval_folder.name / attack
    folder.mkdir(parents=True)
    (folder / "attack.json").write_text(dumps(record), encoding="utf-8")
    write_manifest(folder, "attack", config=ATTACK_CONFIG,
                   inputs={"dataset": DATASETS[world], "model": model["digest"],
                           "compromised": f"{world}k".ljust(64, "0")},
                   attack=attack, eval_config={}, variant=model["variant"],
                   method=model["method"], recovery=worst)  # fmt: skip


def attacked_worlds(root, gaps: dict[tuple[str, str], list[float]]):
    """three_worlds, with each (eval folder name, attack) attacked at these per-world gaps."""
    three_worlds(root)
    for (name, attack), per_world in gaps.items():
        for w, gap in enumerate(per_world):
            make_attack(root, w, root / f"world-{w}" / name, attack, gap)
    return root


def robust_board(root, **cfg):
    return build_leaderboard(load_evals([root]), ReportConfig(**cfg), attacks=load_attacks([root]))


def test_the_robust_column_says_robust_not_robust_or_borderline_by_the_rule(tmp_path):
    half = T_975_2 * 0.1 / 3**0.5  # sd .1 over 3 worlds: 0.248413
    board = robust_board(attacked_worlds(tmp_path / "a", {
        # persona_split .7/.8/.9: mean .8, CI [.5516, 1.0484], wholly above .5 -> not robust
        ("neg_grad", "persona_split"): [0.7, 0.8, 0.9],
        ("neg_grad", "retain_only"): [0.1, 0.2, 0.3],
        # .1/.2/.3: CI [-.0484, .4484]; 0/0/0: CI [0, 0]; both below .5 -> robust
        ("shuffled", "persona_split"): [0.1, 0.2, 0.3],
        ("shuffled", "retain_only"): [0.0, 0.0, 0.0],
    }))  # fmt: skip
    neg, shuffled = row(board, "neg_grad 5×"), row(board, "shuffled_captions 5×")
    gap = neg["attacks"]["persona_split"]["retfail"]
    assert gap["mean"] == pytest.approx(0.8) and gap["std"] == pytest.approx(0.1)
    assert gap["ci"] == pytest.approx([0.8 - half, 0.8 + half], abs=1e-6)
    assert neg["attacks"]["persona_split"]["interval_source"] == "worlds"
    assert neg["attacks"]["persona_split"]["assoc_str"]["mean"] == pytest.approx(0.4)
    assert neg["robust"]["verdict"] == "not robust" and neg["robust"]["worst"] == "persona_split"
    assert shuffled["robust"]["verdict"] == "robust" and shuffled["robust"]["borderline"] == []
    assert board["attacks"]["names"] == ["persona_split", "retain_only"]
    assert board["thresholds"]["max_recovery"] == 0.5

    board = robust_board(attacked_worlds(tmp_path / "b", {
        # .4/.6/.8: mean .6 above .5, but CI .6 ± .4968 straddles it -> borderline
        ("neg_grad", "persona_split"): [0.4, 0.6, 0.8],
        # persona_split wholly below; retain_only .3/.4/.5 (the worst: highest mean .4),
        # CI [.1516, .6484] reaches above .5 -> borderline, naming retain_only only
        ("shuffled", "persona_split"): [0.1, 0.2, 0.3],
        ("shuffled", "retain_only"): [0.3, 0.4, 0.5],
    }))  # fmt: skip
    neg, shuffled = row(board, "neg_grad 5×"), row(board, "shuffled_captions 5×")
    assert neg["robust"]["verdict"] == "borderline"
    assert neg["robust"]["borderline"][0]["interval"] == pytest.approx(
        [0.6 - 2 * half, 0.6 + 2 * half], abs=1e-6)  # fmt: skip
    assert shuffled["robust"]["verdict"] == "borderline" and shuffled["robust"]["worst"] == (
        "retain_only")  # fmt: skip
    assert [b["attack"] for b in shuffled["robust"]["borderline"]] == ["retain_only"]
    from salmubench.report.render import leaderboard_table, robust_text

    assert robust_text(neg) == "borderline persona_split [0.103, 1.097]"
    header, _ = leaderboard_table(board)
    assert header[header.index("verdict") + 1:header.index("code")] == [
        "robust", "persona_split gap", "retain_only gap"]  # fmt: skip
    # a stricter threshold turns the same numbers into verdicts
    assert row(robust_board(tmp_path / "b", max_recovery=0.1), "neg_grad 5×")["robust"][
        "verdict"] == "not robust"  # fmt: skip


def test_judge_robust_by_hand():
    from salmubench.report.robust import judge_robust

    def a(mean, ci):
        return {"retfail": {"mean": mean, "ci": ci}}

    # the worst attack is the one with the highest mean, not the widest interval
    r = judge_robust({"persona_split": a(0.7, [0.6, 0.8]), "retain_only": a(0.4, [-0.5, 1.3])}, 0.5)
    assert (r["verdict"], r["worst"]) == ("not robust", "persona_split")
    # one attack wholly above the threshold decides, even when another attack has the
    # higher mean but an interval that straddles it
    r = judge_robust({"persona_split": a(0.8, [0.2, 1.4]), "retain_only": a(0.6, [0.55, 0.65])},
                     0.5)  # fmt: skip
    assert (r["verdict"], r["worst"]) == ("not robust", "retain_only")
    # the threshold itself passes, as for the other rules
    assert judge_robust({"x": a(0.3, [0.1, 0.5])}, 0.5)["verdict"] == "robust"
    # one run: its point value, marked as having no interval
    one = judge_robust({"x": a(0.51, None), "y": a(0.2, None)}, 0.5)
    assert (one["verdict"], one["no_interval"]) == ("not robust", True)
    assert judge_robust({"x": a(None, None)}, 0.5)["verdict"] is None


def test_seeds_are_averaged_within_a_world_before_the_interval(tmp_path):
    root = attacked_worlds(tmp_path / "runs", {("neg_grad", "persona_split"): [0.2, 0.4, 0.6]})
    for w, gap in enumerate([0.4, 0.6, 0.8]):  # a second unlearning seed in every world
        folder = make_eval(root / f"world-{w}" / "neg_grad-s1", "unlearned",
                           {"retfail": 0.05, "inter_id_sim": 0.10, "intra_id_sim": 0.10,
                            "genknow": 0.48},
                           method="neg_grad", budget=5.0, seed=1, dataset=DATASETS[w])  # fmt: skip
        make_attack(root, w, folder, "persona_split", gap)
    gap = row(robust_board(root), "neg_grad 5×")["attacks"]["persona_split"]
    # worlds: (.2 + .4) / 2, (.4 + .6) / 2, (.6 + .8) / 2 = .3, .5, .7 -> mean .5, sd .2, and
    # the t-interval with 2 degrees of freedom (3 worlds), not 5 (6 runs)
    assert [u["retfail"] for u in gap["per_world"]] == pytest.approx([0.3, 0.5, 0.7])
    assert (gap["interval_source"], gap["n"]) == ("worlds", 6)
    half = T_975_2 * 0.2 / 3**0.5
    assert gap["retfail"]["ci"] == pytest.approx([0.5 - half, 0.5 + half], abs=1e-6)
    # one world: its seeds are the units (.2 and .4: mean .3, t with 1 degree of freedom)
    one = build_leaderboard(load_evals([root / "world-0"]), ReportConfig(),
                            attacks=load_attacks([root / "world-0"]))  # fmt: skip
    gap = row(one, "neg_grad 5×")["attacks"]["persona_split"]
    assert gap["interval_source"] == "seeds" and gap["retfail"]["mean"] == pytest.approx(0.3)
    assert gap["retfail"]["ci"] == pytest.approx(t_interval([0.2, 0.4], 0.95))


def test_a_report_without_attack_records_is_unchanged(tmp_path):
    root = attacked_worlds(tmp_path / "runs", {("neg_grad", "persona_split"): [0.7, 0.8, 0.9]})
    build_report([root], tmp_path / "with")  # attack folders below the runs are read
    build_report([root], tmp_path / "without", attacks=[])
    plain = tmp_path / "plain"
    three_worlds(plain)
    build_report([plain], tmp_path / "none-found")  # nothing to find: as before
    for name, robust in (("with", True), ("without", False), ("none-found", False)):
        folder = tmp_path / name
        md = (folder / "leaderboard.md").read_text(encoding="utf-8")
        page = (folder / "report.html").read_text(encoding="utf-8")
        board = json.loads((folder / "leaderboard.json").read_text(encoding="utf-8"))
        manifest = read_manifest(folder, kind="report", verify=True)
        for text in (md, page):
            assert ("Robustness to relearning attacks" in text) is robust
            assert ("persona_split gap" in text) is robust
        assert ("recovery.png" in manifest["files"]) is robust
        assert ("attacks" in board) is robust
        assert any("robust" in r for r in board["rows"]) is robust
        assert any(k.startswith("attack:") for k in manifest["inputs"]) is robust
        assert ("max_recovery" in board["thresholds"]) is robust
    without = json.loads((tmp_path / "without" / "leaderboard.json").read_text(encoding="utf-8"))
    with_ = json.loads((tmp_path / "with" / "leaderboard.json").read_text(encoding="utf-8"))
    for r in with_["rows"]:  # nothing else moves: same rows, scores, verdicts, ranks
        r.pop("attacks", None), r.pop("robust", None)
    with_.pop("attacks"), with_["thresholds"].pop("max_recovery"), with_["rules"].pop("robust")
    assert with_ == without


def test_an_attack_against_another_worlds_clean_model_is_refused(tmp_path):
    root = three_worlds(tmp_path / "runs")
    make_attack(root, 0, root / "world-0" / "neg_grad", "persona_split", 0.5,
                clean="1c".ljust(64, "0"))  # fmt: skip
    with pytest.raises(ManifestError, match=r"its clean model is 1c0000000000, the world's 0c0"):
        robust_board(root)
