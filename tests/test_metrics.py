"""Hand-computed tests for the ten SALMUBench metrics and their helpers (SPEC.md §4)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from salmubench.eval import catalogue
from salmubench.eval import metrics as M
from salmubench.eval.metrics import EvalSettings, Split, ranking
from salmubench.measures import derangement, seeded_generator
from salmubench.vocab import METRIC_SPLITS

ORDER = [
    ("retfail", "efficacy", "clean", "lower"),
    ("assoc_str", "efficacy", "clean", "lower"),
    ("acs", "efficacy", "clean", "lower"),
    ("idzsc", "efficacy", "clean", "lower"),
    ("core_assoc", "efficacy", "clean", "lower"),
    ("genknow", "utility", "compromised", "higher"),
    ("inter_id_sim", "utility", "compromised", "higher"),
    ("intra_id_sim", "utility", "compromised", "higher"),
    ("vis_id_int", "utility", "compromised", "higher"),
    ("frag_sim", "utility", "compromised", "higher"),
]


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def split(image, text, meta=None, **fields) -> Split:
    """A split from rows of vectors; meta defaults to keys k0.. and captions c0..."""
    n = len(image)
    meta = meta or [{"key": f"k{i}", "txt": f"c{i}"} for i in range(n)]
    for name, values in fields.items():
        for row, value in zip(meta, values, strict=True):
            row[name] = value
    return Split(t(image), t(text), meta)


class LookupEncoder:
    """encode_text as a table: known strings map to fixed vectors; anything else fails."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        missing = [s for s in texts if s not in self.table]
        if missing:
            raise KeyError(f"test encoder has no vector for {missing}")
        return torch.nn.functional.normalize(t([self.table[s] for s in texts]), dim=1)


@dataclass
class FakeData:
    splits: dict[str, Split]
    encoder: Callable[[list[str]], torch.Tensor] | None = None
    settings: EvalSettings = field(default_factory=EvalSettings)
    classes: list[str] = field(default_factory=list)
    class_templates: list[str] = field(default_factory=list)

    def split(self, name: str) -> Split:
        return self.splits[name]

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        if self.encoder is None:
            raise RuntimeError("this test data has no text encoder")
        return self.encoder(texts)


# --------------------------------------------------------------------------- retrieval


def test_retrieval_ranks_ties_favour_truth_and_ignored_entries_do_not_compete():
    image = t([[1, 0], [0, 1], [0.6, 0.8]])
    true_text = t([[0.8, 0.6], [0.6, 0.8], [1, 0]])  # true sims 0.8, 0.8, 0.6
    gallery = t([[1, 0], [0, 1], [0.8, 0.6], [-1, 0]])
    ignore = torch.zeros(3, 4, dtype=torch.bool)
    ignore[1, 1] = True  # row 1's only better entry (sim 1.0) is ignored
    ranks = M.retrieval_ranks(image, true_text, gallery, ignore)
    # row 0: g0 1.0 beats, g2 0.8 ties (no), -> 2; row 1: g1 ignored -> 1;
    # row 2: g0 0.6 ties (no), g1 0.8 and g2 0.96 beat -> 3
    assert ranks.tolist() == [2, 1, 3]
    assert ranks.dtype == torch.long
    ignore[1, 1] = False
    assert M.retrieval_ranks(image, true_text, gallery, ignore).tolist() == [2, 2, 3]


def test_retrieval_ranks_chunks_agree_with_one_shot(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    image, text, gallery = (torch.randn(n, 5, generator=gen) for n in (37, 37, 11))
    ignore = torch.rand(37, 11, generator=gen) < 0.3
    whole = M.retrieval_ranks(image, text, gallery, ignore)
    monkeypatch.setattr(ranking, "_RANK_CHUNK", 4)
    assert torch.equal(M.retrieval_ranks(image, text, gallery, ignore), whole)


def test_retrieval_ranks_rejects_a_wrong_ignore_mask():
    x = t([[1, 0]])
    with pytest.raises(ValueError, match=r"ignore must be a bool tensor of shape \(1, 2\)"):
        M.retrieval_ranks(x, x, t([[1, 0], [0, 1]]), torch.zeros(1, 2))


def retfail_data(distractors: int = 1000) -> FakeData:
    forget = split(
        image=[[1, 0], [0, 1], [0.6, 0.8], [1, 0]],
        text=[[0.8, 0.6], [0.6, 0.8], [1, 0], [0.6, 0.8]],
        # row 3 repeats row 0's caption string with another embedding: they never compete
        meta=[{"key": k, "txt": s} for k, s in zip("pqrs", "abca", strict=True)],
        persona=["A", "B", "C", "A"],
        attribute=["city"] * 4,
    )
    retain = split(image=[[1, 0], [0, 1]], text=[[-1, 0], [-0.6, 0.8]])
    # the whole forget split as distractors: every rank below is hand-computable
    settings = EvalSettings(retfail_forget_fraction=1.0, retfail_distractors=distractors)
    return FakeData({"forget": forget, "retain_disjoint": retain}, settings=settings)


def test_retfail_mrr_and_r1_over_the_whole_forget_and_retain_gallery():
    result = M.get_metric("retfail").fn(retfail_data())
    # ranks: row0 2 (t2 beats), row1 1 (r1 ties), row2 4 (t0, t1, row3's text beat),
    # row3 2 (t2 beats; row0's "a" caption, sim 0.8 > 0.6, is ignored by string)
    assert result.per_item == pytest.approx([1 / 2, 1, 1 / 4, 1 / 2])
    assert result.value == pytest.approx(2.25 / 4)
    assert result.keys == ["p", "q", "r", "s"]
    assert result.extra == {
        "r1": pytest.approx(0.25),
        "gallery": 7,
        "distractors_forget": 4,
        "distractors_retain": 2,
        "forget_fraction": 1.0,
        "retain_fraction": 1.0,
        "paraphrases_ignored": pytest.approx(0.5),  # rows 0 and 3 share an association
    }


def test_retfail_without_distractors_ranks_everything_first():
    result = M.get_metric("retfail").fn(retfail_data(distractors=0))
    assert result.value == 1.0
    assert result.extra["gallery"] == 1


def test_retfail_gallery_is_seeded():
    a = M.get_metric("retfail").fn(retfail_data(distractors=2))
    b = M.get_metric("retfail").fn(retfail_data(distractors=2))
    assert a == b
    assert a.extra["gallery"] == 5


@pytest.mark.parametrize(
    ("n_forget", "n_retain", "settings", "expected"),
    [
        (30468, 5000, {}, (1000, 1000)),  # the paper: 1,000 + 1,000
        (1800, 316, {}, (59, 59)),  # tiny: 1800 * 1000 / 30468 = 59.08
        (30468, 300, {}, (1000, 300)),  # retain capped by its (evaluated) supply
        (100_000, 100_000, {}, (1000, 1000)),  # 3,282 by the share, capped at 1,000
        (10, 100, {}, (1, 1)),  # 0.33 rounds to 0: at least one forget distractor
        (100, 1000, {"retfail_forget_fraction": 0.1, "retfail_retain_per_forget": 2.5}, (10, 25)),
        (100, 1000, {"retfail_forget_fraction": 0.1, "retfail_retain_per_forget": 0.0}, (10, 0)),
        (100, 1000, {"retfail_forget_fraction": 0.5, "retfail_distractors": 20}, (20, 20)),
    ],
)
def test_retfail_gallery_sizes_follow_the_paper_proportions(n_forget, n_retain, settings, expected):
    assert M.retfail_gallery_sizes(n_forget, n_retain, EvalSettings(**settings)) == expected


def _association_data(n_forget: int, n_retain: int, **settings) -> FakeData:
    gen = torch.Generator().manual_seed(3)

    def unit(n: int) -> list[list[float]]:
        return torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=1).tolist()

    forget = split(
        image=unit(n_forget),
        text=unit(n_forget),
        persona=[f"p{i}" for i in range(n_forget)],  # every row its own association
        attribute=["city"] * n_forget,
    )
    retain = split(image=unit(n_retain), text=unit(n_retain))
    return FakeData(
        {"forget": forget, "retain_disjoint": retain}, settings=EvalSettings(**settings)
    )


def test_retfail_records_the_gallery_it_drew():
    data = _association_data(30, 20, retfail_forget_fraction=0.1, retfail_retain_per_forget=2.0)
    extra = M.get_metric("retfail").fn(data).extra
    assert extra["gallery"] == 10  # 1 + 3 forget + 6 retain
    assert (extra["distractors_forget"], extra["distractors_retain"]) == (3, 6)
    assert extra["forget_fraction"] == pytest.approx(0.1)
    assert extra["retain_fraction"] == pytest.approx(0.3)
    assert extra["paraphrases_ignored"] == 0.0  # no two rows share an association
    pick_f, pick_r = M.retfail_gallery(30, 20, data.settings)
    assert (len(pick_f), len(pick_r)) == (3, 6)
    assert len(set(pick_f.tolist())) == 3 and len(set(pick_r.tolist())) == 6


def paraphrase_data(attributes: list[str]) -> FakeData:
    # row 1's caption is a paraphrase of row 0's association when both say (A, city): another
    # string whose embedding (sim 1.0) outranks row 0's own caption (sim 0.8)
    forget = split(
        image=[[1, 0], [0, 1], [0, -1]],
        text=[[0.8, 0.6], [1, 0], [-0.6, -0.8]],
        persona=["A", "A", "B"],
        attribute=attributes,
    )
    retain = split(image=[[1, 0]], text=[[-1, 0]])
    settings = EvalSettings(retfail_forget_fraction=1.0)
    return FakeData({"forget": forget, "retain_disjoint": retain}, settings=settings)


def test_retfail_ignores_a_paraphrase_of_the_same_association():
    same = M.get_metric("retfail").fn(paraphrase_data(["city", "city", "city"]))
    assert same.per_item[0] == 1.0  # the paraphrase (sim 1.0 > 0.8) does not compete
    assert same.extra["paraphrases_ignored"] == pytest.approx(2 / 3)  # rows 0 and 1: one each
    # the same person's OTHER attribute is another association: it competes and wins
    other = M.get_metric("retfail").fn(paraphrase_data(["city", "job", "city"]))
    assert other.per_item[0] == 0.5
    assert other.extra["paraphrases_ignored"] == 0.0


# --------------------------------------------------------------------------- similarities


def test_pair_similarity_is_row_wise_dot_product():
    sim = M.pair_similarity(t([[1, 0], [0.6, 0.8]]), t([[0.6, 0.8], [0, -1]]))
    assert sim.tolist() == pytest.approx([0.6, -0.8])


SIM_SPLITS = {
    "forget": ([[1, 0], [0, 1]], [[0.6, 0.8], [0.6, 0.8]], 0.7),
    "holdout_identity": ([[1, 0], [1, 0]], [[1, 0], [0, 1]], 0.5),
    "holdout_association": ([[-1, 0], [0, 1]], [[1, 0], [0, 1]], 0.0),
    "retain_joint": ([[0.8, 0.6], [1, 0]], [[0.6, 0.8], [0.6, 0.8]], 0.78),
    "fragile": ([[0, 1], [0, 1]], [[0, -1], [0.6, 0.8]], -0.1),
}


@pytest.mark.parametrize(
    ("name", "split_name"),
    [
        ("assoc_str", "forget"),
        ("inter_id_sim", "holdout_identity"),
        ("intra_id_sim", "holdout_association"),
        ("vis_id_int", "retain_joint"),
        ("frag_sim", "fragile"),
    ],
)
def test_mean_similarity_metrics_read_their_own_split(name, split_name):
    data = FakeData({s: split(i, x) for s, (i, x, _) in SIM_SPLITS.items()})
    result = M.get_metric(name).fn(data)
    assert result.value == pytest.approx(SIM_SPLITS[split_name][2])
    assert result.keys == ["k0", "k1"]
    assert M.get_metric(name).splits == (split_name,)


def test_core_assoc_takes_the_better_ordering_and_encodes_each_text_once():
    encoder = LookupEncoder(
        {"Ann Oslo": [1, 0], "Oslo Ann": [0, 1], "Bo Rome": [0.8, 0.6], "Rome Bo": [-1, 0]}
    )
    forget = split(
        image=[[0.6, 0.8], [0.6, 0.8], [1, 0]],
        text=[[1, 0]] * 3,
        name=["Ann", "Bo", "Ann"],
        value=["Oslo", "Rome", "Oslo"],
    )
    result = M.get_metric("core_assoc").fn(FakeData({"forget": forget}, encoder))
    # row0: max(0.6 "Ann Oslo", 0.8 "Oslo Ann"); row1: max(0.96, -0.6); row2: max(1, 0)
    assert result.per_item == pytest.approx([0.8, 0.96, 1.0])
    assert result.value == pytest.approx(0.92)
    assert len(encoder.calls) == 1
    assert sorted(encoder.calls[0]) == ["Ann Oslo", "Bo Rome", "Oslo Ann", "Rome Bo"]


# --------------------------------------------------------------------------- zero-shot


def test_zero_shot_accuracy_argmax_and_ties_to_lowest_class():
    image = t([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]])
    classes = t([[1, 0], [0, 1], [0, 1]])
    # argmax: 0, 1 (tie 1 vs 2 -> 1), 1, tie 1 vs 2 (both 0) -> 1
    accuracy, correct = M.zero_shot_accuracy(image, classes, torch.tensor([0, 2, 1, 1]))
    assert correct.tolist() == [True, False, True, True]
    assert accuracy == pytest.approx(0.75)


def test_zero_shot_accuracy_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match=r"label 3 out of range; valid: 0\.\.1"):
        M.zero_shot_accuracy(t([[1, 0]]), t([[1, 0], [0, 1]]), torch.tensor([3]))


IDZSC_TABLE = {
    "a photo of Ann Ek.": [1, 0],
    "Ann Ek": [0.6, 0.8],
    "a photo of Bo Li.": [0, 1],
    "Bo Li": [0, 1],
}


def test_class_embeddings_average_templates_in_one_call():
    encoder = LookupEncoder(IDZSC_TABLE)
    emb = M.class_embeddings(FakeData({}, encoder), ["Ann Ek", "Bo Li"], ["a photo of {}.", "{}"])
    assert emb.tolist() == [pytest.approx([2 / math.sqrt(5), 1 / math.sqrt(5)]), [0.0, 1.0]]
    assert encoder.calls == [["a photo of Ann Ek.", "Ann Ek", "a photo of Bo Li.", "Bo Li"]]


def test_class_embeddings_need_a_placeholder():
    with pytest.raises(ValueError, match=r"template 'a photo' must contain exactly one"):
        M.class_embeddings(FakeData({}, LookupEncoder({})), ["x"], ["a photo"])


def test_idzsc_names_personas_among_sorted_forget_identity_names():
    encoder = LookupEncoder(IDZSC_TABLE)
    forget_identity = split(
        image=[[1, 0], [0.6, 0.8], [0, 1]], text=[[1, 0]] * 3, name=["Ann Ek", "Bo Li", "Bo Li"]
    )
    result = M.get_metric("idzsc").fn(FakeData({"forget_identity": forget_identity}, encoder))
    # Ann = norm(0.8, 0.4), Bo = (0, 1). Row 1 [0.6, 0.8]: Ann 0.894 > Bo 0.8 -> wrong,
    # though the first template alone ([1, 0] vs [0, 1]) would have got it right.
    assert result.per_item == [1.0, 0.0, 1.0]
    assert result.value == pytest.approx(2 / 3)
    assert result.extra == {"classes": 2, "chance": 0.5}
    assert encoder.calls == [["a photo of Ann Ek.", "Ann Ek", "a photo of Bo Li.", "Bo Li"]]


def test_idzsc_needs_two_personas():
    one = split(image=[[1, 0]], text=[[1, 0]], name=["Ann Ek"])
    with pytest.raises(ValueError, match=r"at least 2 personas in 'forget_identity'"):
        M.get_metric("idzsc").fn(FakeData({"forget_identity": one}, LookupEncoder(IDZSC_TABLE)))


def genknow_data(cls, classes=("red circle", "blue square")) -> FakeData:
    encoder = LookupEncoder(
        {
            "a photo of a red circle.": [1, 0],
            "a red circle.": [1, 0],
            "a photo of a blue square.": [0, 1],
            "a blue square.": [0.8, 0.6],
        }
    )
    genknow = split(image=[[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8]], text=[[1, 0]] * 4, cls=cls)
    return FakeData(
        {"genknow": genknow},
        encoder,
        classes=list(classes),
        class_templates=["a photo of a {}.", "a {}."],
    )


def test_genknow_zero_shot_top1_with_ensembled_prompts():
    result = M.get_metric("genknow").fn(genknow_data([0, 1, 1, 1]))
    # red = (1, 0); blue = norm(0.4, 0.8) = (0.447, 0.894). Predictions: [1,0] red (1 vs
    # 0.447); [0,1] blue; [0.8,0.6] blue (0.8 vs 0.894, though the first template alone
    # says red); [0.6,0.8] blue (0.6 vs 0.984).
    assert result.per_item == [1.0, 1.0, 1.0, 1.0]
    result = M.get_metric("genknow").fn(genknow_data([1, 1, 0, 1]))
    assert result.per_item == [0.0, 1.0, 0.0, 1.0]
    assert result.value == pytest.approx(0.5)
    assert result.extra == {"classes": 2, "chance": 0.5}


def test_genknow_rejects_a_label_outside_the_classes():
    with pytest.raises(ValueError, match=r"sample 2 has cls 5; valid: 0\.\.1"):
        M.get_metric("genknow").fn(genknow_data([0, 1, 5, 1]))


# --------------------------------------------------------------------------- ACS probe


def test_derangement_has_no_fixed_points_and_is_seeded():
    for n in (2, 3, 10, 500):
        perm = derangement(n, seeded_generator(n))
        assert sorted(perm.tolist()) == list(range(n))
        assert not torch.any(perm == torch.arange(n))
    assert torch.equal(derangement(50, seeded_generator(7)), derangement(50, seeded_generator(7)))
    assert not torch.equal(
        derangement(50, seeded_generator(7)), derangement(50, seeded_generator(8))
    )
    with pytest.raises(ValueError, match="at least 2 items, got 1"):
        derangement(1, seeded_generator(0))


def test_the_probe_shuffles_with_the_one_derangement_the_unlearning_methods_use():
    image = torch.nn.functional.normalize(torch.randn(12, 8, generator=seeded_generator(1)), dim=1)
    outcome = M.probe_accuracy(image, image.clone(), seed=5, test_fraction=0.3)
    assert np.array_equal(outcome.perm, derangement(12, seeded_generator(5)).numpy())


def test_probe_separates_constructed_pairs_far_above_chance():
    # 16 distinct sign codes in 4-D: every true pair's product is (1/4, 1/4, 1/4, 1/4), every
    # shuffled pair's has at least one -1/4: a cube vertex against the others. Linearly
    # separable, but the probe is L2-regularised and sees 22 samples, so the one-bit negatives
    # next to the vertex are sometimes misread: 0.8 to 1.0 depending on the seed's draw (with
    # either derangement the repository has had; the old test's 1.0 was one lucky seed).
    codes = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)], dtype=torch.float32)
    unit = (2 * codes - 1) / 2
    accuracies = []
    for seed in range(5):
        outcome = M.probe_accuracy(unit, unit, seed=seed, test_fraction=0.3)
        assert len(outcome.correct) == math.ceil(0.3 * 32) == len(outcome.test_index)
        accuracy, *_ = outcome
        assert accuracy == outcome.accuracy >= 0.8  # chance: 0.5
        accuracies.append(accuracy)
    assert sum(accuracies) / len(accuracies) >= 0.85


def test_probe_is_near_chance_on_noise():
    gen = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(1000, 8, generator=gen), dim=1)
    text = torch.nn.functional.normalize(torch.randn(1000, 8, generator=gen), dim=1)
    outcome = M.probe_accuracy(image, text, seed=0, test_fraction=0.3)
    assert 0.4 < outcome.accuracy < 0.6


def test_acs_per_item_covers_held_out_pairs_and_averages_to_the_value():
    codes = [[(i >> b) & 1 for b in range(3)] for i in range(8)]
    rows = [[(2 * c - 1) / math.sqrt(3) for c in code] for code in codes]
    forget = split(image=rows, text=rows)
    result = M.get_metric("acs").fn(FakeData({"forget": forget}))
    assert result.value == pytest.approx(sum(result.per_item) / len(result.per_item))
    assert result.extra == {"test": 5, "train": 11}
    outcome = M.probe_accuracy(forget.image, forget.text, 0, 0.3)
    expected = [
        f"k{i}" if i < 8 else f"k{i - 8}~k{outcome.perm[i - 8]}" for i in outcome.test_index
    ]
    assert result.keys == expected


# --------------------------------------------------------------------------- registry


def test_registry_holds_the_ten_metrics_in_spec_order():
    assert [(m.name, m.family, m.target, m.better) for m in M.METRICS.values()] == ORDER
    assert tuple(n for n, f, *_ in ORDER if f == "efficacy") == M.EFFICACY
    assert tuple(n for n, f, *_ in ORDER if f == "utility") == M.UTILITY


def test_unknown_metric_lists_the_valid_names():
    with pytest.raises(KeyError, match=r"unknown metric 'mrr'; valid: retfail, assoc_str, .*"):
        M.get_metric("mrr")
    with pytest.raises(KeyError, match="frag_sim"):
        M.compute_all(FakeData({}), ["genknow", "nope"])


def test_registering_twice_outside_the_catalogue_or_with_a_bad_split_fails():
    before = dict(M.METRICS)
    with pytest.raises(ValueError, match="'retfail' registered twice"):
        M.register("retfail", splits=("forget",))(lambda data: None)
    with pytest.raises(
        ValueError,
        match=r"metric 'other' is not in the catalogue \(salmubench/eval/catalogue\.py\): "
        r"declare it there first; declared: retfail, assoc_str, .*, frag_sim\Z",
    ):
        M.register("other", splits=("forget",))
    with pytest.raises(ValueError, match="unknown split 'train'; valid: forget, "):
        M.register("retfail", splits=("train",))
    assert before == M.METRICS


def test_the_registry_reads_each_metric_as_the_torch_free_catalogue_declares_it():
    """The report reads the catalogue (no torch); the evaluator's registry takes family,
    target, direction and description from it, in its order, so the two cannot differ."""
    assert list(M.METRICS) == list(catalogue.CATALOGUE) == list(catalogue.METRIC_NAMES)
    for name, metric in M.METRICS.items():
        info = catalogue.CATALOGUE[name]
        assert (metric.family, metric.target, metric.better, metric.description) == (
            info.family, info.target, info.better, info.description
        )  # fmt: skip
    assert M.describe_metrics() == {
        n: {"family": m.family, "target": m.target, "better": m.better,
            "description": m.description}
        for n, m in M.METRICS.items()
    }  # fmt: skip
    assert (M.EFFICACY, M.UTILITY) == (catalogue.EFFICACY, catalogue.UTILITY)


def test_a_catalogue_entry_with_a_bad_family_target_or_direction_is_refused():
    with pytest.raises(ValueError, match="unknown family 'privacy'; valid: efficacy, utility"):
        catalogue.MetricInfo("other", "privacy", "clean", "lower", "")
    with pytest.raises(ValueError, match="unknown target 'paper'; valid: clean, compromised"):
        catalogue.MetricInfo("other", "efficacy", "paper", "lower", "")
    with pytest.raises(ValueError, match="unknown better 'up'; valid: lower, higher"):
        catalogue.MetricInfo("other", "efficacy", "clean", "up", "")
    with pytest.raises(KeyError, match="unknown metric 'mrr'; valid: retfail, "):
        catalogue.metric_info("mrr")


def test_compute_all_runs_requested_metrics_in_registry_order():
    data = FakeData({s: split(i, x) for s, (i, x, _) in SIM_SPLITS.items()})
    results = M.compute_all(data, ["frag_sim", "assoc_str"])
    assert list(results) == ["assoc_str", "frag_sim"]
    assert results["frag_sim"].value == pytest.approx(-0.1)


def test_empty_or_unnormalised_splits_are_refused_by_name():
    empty = Split(torch.zeros(0, 2), torch.zeros(0, 2), [])
    with pytest.raises(ValueError, match="split 'fragile' is empty"):
        M.get_metric("frag_sim").fn(FakeData({"fragile": empty}))
    loose = split(image=[[1, 0], [2, 0]], text=[[1, 0], [1, 0]])
    with pytest.raises(ValueError, match=r"split 'fragile': image .* row 1 has norm 2\.0"):
        M.get_metric("frag_sim").fn(FakeData({"fragile": loose}))


def test_settings_are_validated():
    with pytest.raises(ValueError, match=r"acs_test_fraction .* got 1\.5"):
        EvalSettings(acs_test_fraction=1.5)
    with pytest.raises(ValueError, match=r"retfail_distractors .* got -1"):
        EvalSettings(retfail_distractors=-1)
    for bad in (0, 0.0, 1.5, -0.1, float("nan"), True):
        with pytest.raises(
            ValueError, match=rf"retfail_forget_fraction must lie in \(0, 1\], got {bad!r}"
        ):
            EvalSettings(retfail_forget_fraction=bad)
    for bad in (-1, float("inf"), "1"):
        with pytest.raises(
            ValueError,
            match=rf"retfail_retain_per_forget must be a finite number >= 0, got {bad!r}",
        ):
            EvalSettings(retfail_retain_per_forget=bad)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("retfail_forget_fraction=0", r"retfail_forget_fraction=0\.0: must be in \(0, 1\]"),
        ("retfail_forget_fraction=1.5", r"retfail_forget_fraction=1\.5: must be in \(0, 1\]"),
        ("retfail_retain_per_forget=-2", r"retfail_retain_per_forget=-2\.0: must be a finite"),
        ("retfail_retain_per_forget=.inf", r"retfail_retain_per_forget=inf: must be a finite"),
        ("retfail_forget_fraction=many", r"retfail_forget_fraction='many': expected a number"),
    ],
)
def test_bad_retfail_settings_in_the_eval_config_are_refused(override, message):
    from salmubench.config import ConfigError, stage_config

    with pytest.raises(ConfigError, match=message):
        stage_config("eval", "micro", [override])


# --------------------------------------------------------------------------- contract


class HashEncoder:
    """Any string -> a fixed random unit vector seeded by the string's CRC32."""

    def __init__(self, dim: int):
        self.dim = dim

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = [
            np.random.default_rng(zlib.crc32(s.encode())).standard_normal(self.dim) for s in texts
        ]
        return torch.nn.functional.normalize(torch.tensor(np.array(rows), dtype=torch.float32))


def random_data(n: int = 40, dim: int = 8) -> FakeData:
    gen = torch.Generator().manual_seed(0)
    classes = ["red circle", "blue square", "green star", "grey ring"]

    def unit() -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(n, dim, generator=gen), dim=1)

    splits = {}
    for name in METRIC_SPLITS:
        meta = []
        for i in range(n):
            row = {"key": f"{name}/{i:03d}", "txt": f"{name} caption {i % 25}"}
            row |= {"persona": f"p{i % 5}", "name": f"Person {i % 5}", "value": f"v{i % 7}"}
            row |= {"attribute": ("city", "job")[i % 2]}
            row |= {"cls": i % len(classes), "class": classes[i % len(classes)]}
            meta.append(row)
        splits[name] = Split(unit(), unit(), meta)
    return FakeData(
        splits,
        HashEncoder(dim),
        EvalSettings(retfail_distractors=10),
        classes=classes,
        class_templates=["a photo of a {}.", "a {}."],
    )


@pytest.fixture(scope="module")
def contract_data() -> FakeData:
    return random_data()


@pytest.mark.parametrize("name", list(M.METRICS))
def test_every_metric_returns_one_shape(name, contract_data):
    result = M.get_metric(name).fn(contract_data)
    assert isinstance(result, M.MetricResult)
    assert isinstance(result.value, float) and math.isfinite(result.value)
    assert len(result.per_item) == len(result.keys) > 0
    assert all(math.isfinite(v) for v in result.per_item)
    assert all(isinstance(k, str) for k in result.keys)
    assert all(isinstance(v, (int, float)) for v in result.extra.values())
    assert M.get_metric(name).fn(contract_data) == result  # deterministic
