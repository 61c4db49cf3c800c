"""The report's own Student-t quantile (report/tdist.py, no scipy: the lean image has none)
against scipy's, and the report's intervals unchanged by it."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from scipy.stats import t as scipy_t
from test_report import populate

from salmubench.cli import main
from salmubench.measures import DIGITS
from salmubench.report.scoring import t_interval
from salmubench.report.tdist import betainc, t_ppf, t_sf


def test_quantile_matches_scipy_over_the_reports_range():
    """df 1..200 (the report's units: worlds or seeds, minus one), confidence 0.8..0.999."""
    levels = [0.8 + i * (0.999 - 0.8) / 39 for i in range(40)]
    worst = (0.0, None)
    for df in range(1, 201):
        for confidence in levels:
            p = (1 + confidence) / 2
            ours, theirs = t_ppf(p, df), float(scipy_t.ppf(p, df))
            rel = abs(ours - theirs) / theirs
            worst = max(worst, (rel, (df, confidence)))
    assert worst[0] < 1e-9, worst


def test_quantile_closed_forms_symmetry_and_tails():
    # df 1 is Cauchy, df 2 has a closed form; the lower half mirrors the upper.
    for p in (0.6, 0.9, 0.975, 0.9995):
        assert t_ppf(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-12)
        assert t_ppf(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-12)
        assert t_ppf(1 - p, 7) == -t_ppf(p, 7)
    assert t_ppf(0.5, 3) == 0.0
    # non-integer df and far tails, still against scipy
    for df, p in ((0.5, 0.9), (2.5, 1 - 1e-9), (1000, 0.6), (30, 0.999999)):
        assert t_ppf(p, df) == pytest.approx(float(scipy_t.ppf(p, df)), rel=1e-9), (df, p)
    # the tail it inverts, and the incomplete beta it is built on, at known values
    assert t_sf(t_ppf(0.99, 4), 4) == pytest.approx(0.01, rel=1e-12)
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3, rel=1e-14)  # uniform
    assert betainc(2.0, 3.0, 0.4) == pytest.approx(0.5248, rel=1e-12)  # 1 - sum of binomials


@pytest.mark.parametrize(
    ("p", "df", "message"),
    [(1.0, 3, "p=1.0 must lie strictly between 0 and 1"),
     (0.0, 3, "p=0.0 must lie strictly between 0 and 1"),
     (0.9, 0, "df=0 must be > 0"),
     (0.9, float("nan"), "df=nan must be > 0")],
)  # fmt: skip
def test_bad_arguments_are_refused_by_value(p, df, message):
    with pytest.raises(ValueError, match=message):
        t_ppf(p, df)


def test_intervals_are_those_scipy_gives_after_rounding():
    """The interval the report prints, for 2..40 units of random scores at the report's
    confidence levels, is scipy's to the last printed digit."""
    rng = random.Random(0)
    for _ in range(2000):
        values = [rng.uniform(-1, 2) for _ in range(rng.randint(2, 40))]
        confidence = rng.choice((0.8, 0.9, 0.95, 0.99, 0.999))
        n = len(values)
        half = float(scipy_t.ppf((1 + confidence) / 2, n - 1)) * statistics.stdev(values)
        half /= math.sqrt(n)
        mean = statistics.fmean(values)
        expected = [round(mean - half, DIGITS), round(mean + half, DIGITS)]
        assert t_interval(values, confidence) == expected


def test_report_on_the_fixture_has_scipys_intervals(tmp_path):
    """The whole report on tests/test_report.py's fixture: each interval of its two-seed
    row is scipy's interval over the row's per-seed scores, to the last printed digit (the
    leaderboard.json of this fixture is byte-identical to the scipy-era one: docker/README.md)."""
    runs = populate(tmp_path / "runs")
    assert main(["report", "--runs", str(runs), "--out", str(tmp_path / "report"), "-q"]) == 0
    board = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    rows = [r for r in board["rows"] if any(r["scores_ci"].values())]
    assert [r["method"] for r in rows] == ["finetune"]
    [row] = rows
    tq = float(scipy_t.ppf((1 + board["confidence"]) / 2, len(row["per_seed"]) - 1))
    for name, ci in row["scores_ci"].items():
        values = [seed["scores"][name] for seed in row["per_seed"]]
        mean = statistics.fmean(values)
        half = tq * statistics.stdev(values) / math.sqrt(len(values))
        assert ci == [round(mean - half, DIGITS), round(mean + half, DIGITS)], name
    assert row["scores_ci"]["forgetting"] == [0.21469, 1.48531]  # 0.85 +- 12.706 * 0.05
