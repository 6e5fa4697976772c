"""Chapter 2's verdict rules on intervals: each rule reaches each of its verdicts, contradicted and
inconclusive included, and only where it should (thresholds from the registry)."""

import pytest

from lls.chapters.synthetic.claims import (
    c1_verdict,
    c2_verdict,
    c3_verdict,
    c4_verdict,
    c10_part,
    c10_verdict,
)
from lls.claims import REGISTRY
from lls.stats import Interval, t_interval


def iv(low, high):
    """An interval over three seeds from ``low`` to ``high``."""
    return Interval((low + high) / 2, None, 3, low, high, "test")


ONE_SEED = t_interval([0.3])


def test_the_thresholds_the_rules_read():
    assert REGISTRY["C1"].thresholds["structured_null"] == 1.0
    assert REGISTRY["C2"].thresholds["synthetic_static_max"] == 0.5 and REGISTRY["C2"].thresholds[
        "synthetic_no_gap"] == 0.0
    assert REGISTRY["C3"].thresholds["synthetic_stable_lag"] == 200.0 and REGISTRY["C3"].paper == 100
    assert REGISTRY["C4"].thresholds["synthetic_reproduced"] == 0.5
    assert REGISTRY["C10"].thresholds["comparable_accuracy"] == 0.05


@pytest.mark.parametrize("low, high, verdict", [
    (0.10, 0.25, "reproduced"),        # wholly at or below a quarter of the strongest baseline's rank
    (0.30, 0.55, "partly"),            # between 0.25 and 0.6
    (0.20, 0.40, "inconclusive"),      # straddles 0.25
    (0.50, 0.90, "inconclusive"),      # straddles 0.6
    (0.70, 0.95, "not reproduced"),    # above 0.6, not significantly above 1
    (0.90, 1.30, "not reproduced"),    # straddles the null
    (1.10, 1.50, "contradicted"),      # task gradients of significantly higher rank than the baseline
])
def test_c1(low, high, verdict):
    assert c1_verdict(iv(low, high)) == verdict


def test_c1_with_one_seed_is_inconclusive():
    assert c1_verdict(ONE_SEED) == "inconclusive"


@pytest.mark.parametrize("static, gap, verdict", [
    ((0.05, 0.30), (0.20, 0.60), "reproduced"),    # the prefix wins and no static basis holds half of Δ
    ((0.55, 0.80), (0.05, 0.20), "partly"),        # the prefix wins but a static basis holds most of Δ
    ((0.40, 0.60), (0.05, 0.20), "inconclusive"),  # the best static basis straddles one half
    ((0.05, 0.30), (-0.05, 0.20), "inconclusive"),  # the gap straddles zero
    ((0.60, 0.90), (-0.40, -0.10), "contradicted"),  # a static basis captures significantly more than the prefix
])
def test_c2(static, gap, verdict):
    assert c2_verdict(iv(*static), iv(*gap)) == verdict


def test_c2_is_never_decided_by_one_seed_and_has_no_not_reproduced_short_of_contradiction():
    assert c2_verdict(ONE_SEED, ONE_SEED) == "inconclusive"
    assert c2_verdict(iv(0.1, 0.2), iv(0.0, 0.0)) == "reproduced"  # a gap of exactly zero is at the threshold


@pytest.mark.parametrize("lags, window, verdict", [
    ([90, 90, 90], 200, "reproduced"),           # every seed halves within the paper's 100 steps
    ([40, 60, 50], 200, "reproduced"),
    ([80, 90, 100], 200, "inconclusive"),        # interval straddles 100
    ([150, 160, 155], 200, "not reproduced"),    # wholly beyond 100
    ([None, None, None], 200, "not reproduced"),  # never halves: at least the window, beyond 100
    ([40, None, 60], 200, "inconclusive"),       # censored seeds leave the interval open
    ([None, None, None], 400, "contradicted"),   # stable for more than synthetic_stable_lag steps
    ([250, 260, 255], 300, "contradicted"),
    ([50], 200, "inconclusive"),                 # one seed
])
def test_c3(lags, window, verdict):
    assert c3_verdict(lags, window) == verdict


@pytest.mark.parametrize("low, high, verdict", [
    (0.55, 0.80, "reproduced"),
    (0.30, 0.45, "partly"),
    (0.40, 0.60, "inconclusive"),
    (0.05, 0.20, "not reproduced"),
    (0.0001, 0.0005, "contradicted"),    # less than a random subspace of the same size
    (0.0005, 0.002, "not reproduced"),   # straddles the random baseline
])
def test_c4(low, high, verdict):
    assert c4_verdict(iv(low, high), random_expected=0.001) == verdict


@pytest.mark.parametrize("low, high, verdict", [
    (0.03, 0.08, "reproduced"), (0.00, 0.04, "inconclusive"), (0.005, 0.015, "not reproduced"),
    (-0.05, -0.01, "contradicted"),
])
def test_c10_part(low, high, verdict):
    assert c10_part(iv(low, high)) == verdict


SUPPORT, NULL, CONTRARY, OPEN = iv(0.03, 0.08), iv(0.005, 0.015), iv(-0.05, -0.01), iv(0.0, 0.04)


@pytest.mark.parametrize("noise, forget, verdict", [
    (SUPPORT, SUPPORT, "reproduced"),
    (SUPPORT, NULL, "partly"), (OPEN, SUPPORT, "partly"),
    (NULL, NULL, "not reproduced"),
    (CONTRARY, NULL, "contradicted"), (CONTRARY, CONTRARY, "contradicted"), (OPEN, CONTRARY, "contradicted"),
    (SUPPORT, CONTRARY, "inconclusive"),  # significant gaps in opposite directions
    (OPEN, NULL, "inconclusive"), (OPEN, OPEN, "inconclusive"),
])
def test_c10(noise, forget, verdict):
    assert c10_verdict(noise, forget, accuracy_gap=0.0) == verdict


def test_c10_needs_comparable_accuracy_on_a():
    assert c10_verdict(SUPPORT, SUPPORT, accuracy_gap=0.04) == "reproduced"
    assert c10_verdict(SUPPORT, SUPPORT, accuracy_gap=-0.2) == "inconclusive"
    assert c10_verdict(CONTRARY, CONTRARY, accuracy_gap=0.2) == "inconclusive"


def test_chapter_2_rule_changes_are_listed_with_their_commit():
    from lls.scorecard import rules_changed_page

    for cid in ("C1", "C2", "C3", "C4", "C10"):
        spec = REGISTRY[cid]
        assert "a696c1c" in spec.fixed_in
        assert any(c.commit == "a696c1c" and c.what.startswith("chapter 2") for c in spec.changes), cid
    assert "`a696c1c`" in rules_changed_page()
