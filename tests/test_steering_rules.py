"""Unit tests of chapter 5's verdict rules (C8, C9): every verdict from hand-made intervals."""

import pytest

from lls.chapters.steering.rules import c8_bar, c8_verdict, c9_verdict
from lls.claims import REGISTRY, threshold
from lls.stats import Interval


def iv(low, high):
    """An interval ``[low, high]`` over 3 units."""
    return Interval((low + high) / 2, 0.1, 3, low, high, "test")


UNKNOWN = Interval(0.3, None, 1, None, None, "one seed: no interval")
ABOVE = iv(0.01, 0.2)  # beats the shuffled-label step


def test_c8_bar_comes_from_the_registry():
    assert c8_bar() == pytest.approx(REGISTRY["C8"].paper - threshold("C8", "tolerance"))


@pytest.mark.parametrize("cosine, shuffled, verdict", [
    (iv(c8_bar(), 0.9), ABOVE, "reproduced"),
    (iv(0.5, 0.7), iv(-0.1, 0.3), "partly"),  # does not beat the shuffled-label step: capped
    (iv(0.2, 0.4), ABOVE, "partly"),  # above the random null, below the bar
    (iv(0.05, 0.3), ABOVE, "inconclusive"),  # straddles the null bound
    (iv(0.3, 0.6), ABOVE, "inconclusive"),  # straddles the bar
    (iv(-0.05, 0.05), ABOVE, "not reproduced"),
    (iv(-0.5, -0.2), ABOVE, "contradicted"),  # wholly below minus the null bound
    (UNKNOWN, ABOVE, "inconclusive"),
])
def test_c8_verdicts(cosine, shuffled, verdict):
    assert c8_verdict(cosine, 0.1, shuffled) == verdict


@pytest.mark.parametrize("step, vs_null, vs_caa, verdict", [
    (iv(2, 6), iv(1, 5), iv(0, 3), "reproduced"),
    (iv(2, 6), iv(1, 5), iv(-1, 3), "partly"),  # beats the null, not clearly half of CAA
    (iv(2, 6), iv(1, 5), iv(-4, -1), "partly"),
    (iv(-1, 6), iv(-1, 5), iv(0, 3), "inconclusive"),  # straddles the null
    (iv(-1, 1), iv(-3, 0), iv(0, 3), "not reproduced"),  # no better than the best null
    (iv(0, 0), iv(0, 0), iv(0, 0), "not reproduced"),  # nothing moved: a tie does not beat the null
    (iv(-5, -1), iv(-4, -1), iv(-4, -1), "contradicted"),
    (iv(1, 2), UNKNOWN, iv(0, 3), "inconclusive"),
])
def test_c9_verdicts(step, vs_null, vs_caa, verdict):
    assert c9_verdict(step, vs_null, vs_caa) == verdict
