"""Verdicts decided on intervals: each verdict of the vocabulary can be reached, and only when it should."""

import numpy as np
import pytest

from lls.claims import REGISTRY, VERDICTS, Claim, decide
from lls.scorecard import rules_changed_page, verdict_counts
from lls.stats import Interval, bootstrap_interval, se_interval, t_interval


def interval(low, high):
    return Interval((low + high) / 2, None, 3, low, high, "test")


@pytest.mark.parametrize("low, high, verdict", [
    (0.80, 0.90, "reproduced"),        # wholly above the rule's threshold
    (0.55, 0.70, "partly"),            # between the partly and the reproduced thresholds
    (0.60, 0.85, "inconclusive"),      # straddles the reproduced threshold
    (0.40, 0.60, "inconclusive"),      # straddles the partly threshold
    (0.10, 0.30, "not reproduced"),    # below every threshold, not below the null
    (-0.30, -0.10, "contradicted"),    # significantly in the opposite direction
    (-0.10, 0.10, "not reproduced"),   # below the thresholds and straddling the null
])
def test_decide_on_an_interval(low, high, verdict):
    assert decide(interval(low, high), 0.77, partly_at=0.5, null=0.0) == verdict


def test_decide_mirrors_for_claims_that_want_small_values():
    assert decide(interval(0.1, 0.2), 0.25, higher_supports=False) == "reproduced"
    assert decide(interval(0.3, 0.5), 0.25, partly_at=0.6, higher_supports=False) == "partly"
    assert decide(interval(0.2, 0.3), 0.25, higher_supports=False) == "inconclusive"
    assert decide(interval(1.2, 1.5), 0.25, null=1.0, higher_supports=False) == "contradicted"


def test_one_unit_gives_no_interval_and_no_verdict():
    one = t_interval([0.9])
    assert not one.known and decide(one, 0.5) == "inconclusive"


def test_t_interval_matches_the_textbook():
    found = t_interval([1.0, 2.0, 3.0])
    assert found.n == 3 and found.sd == pytest.approx(1.0)
    assert found.high - found.mean == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert "over 3 seeds" in found.method


def test_bootstrap_and_se_intervals_cover_the_mean():
    boot = bootstrap_interval(np.arange(20.0), unit="runs")
    assert boot.low < 9.5 < boot.high and "bootstrap over 20 runs" in boot.method
    se = se_interval(1.0, 0.1, 1000, "the Monte-Carlo mean")
    assert se.low == pytest.approx(1 - 0.196, abs=1e-3) and "SE" in se.method


def test_claim_from_an_interval_carries_n_and_ci():
    claim = Claim.from_interval("C4", t_interval([0.5, 0.6, 0.7]), "inconclusive", "x", seeds=[0, 1, 2])
    assert claim.n == 3 and claim.ci[0] < 0.6 < claim.ci[1] and claim.spread == pytest.approx(0.1)


def test_scorecard_counts_every_verdict_and_claims_not_run():
    counts = verdict_counts([{"id": "C1", "verdict": "contradicted"}, {"id": "C4", "verdict": "inconclusive"}])
    assert set(counts) == set(VERDICTS)
    assert counts["contradicted"] == 1 and counts["inconclusive"] == 1 and counts["not run"] == len(REGISTRY) - 2


def test_rules_changed_after_the_data_are_listed_with_their_commits():
    page = rules_changed_page()
    for commit in ("1f372db", "a97332c", "6adb137", "1f95c43", "6048e54", "caa03ef"):
        assert f"`{commit}`" in page
