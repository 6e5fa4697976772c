"""Chapter 3's verdict rules (C2, C3, C4): each rule reaches every verdict it can give, on hand-built intervals."""

import numpy as np
import pytest

from lls.chapters.lora_drift.analysis import ceiling_drift, ratio_at
from lls.chapters.lora_drift.claims import c2_basis_verdict, c2_verdict, c3_verdict, c4_verdict
from lls.claims import REGISTRY, threshold
from lls.stats import Interval


def iv(low, high, n=4):
    return Interval((low + high) / 2, (high - low) / 4, n, low, high, "test")


def test_c4_rule_gives_each_verdict():
    top = REGISTRY["C4"].paper - threshold("C4", "lora_tolerance")
    partly, minority = threshold("C4", "lora_partly"), threshold("C4", "lora_minority")
    assert c4_verdict(iv(top, top + 0.1)) == "reproduced"
    assert c4_verdict(iv(partly, top - 0.01)) == "partly"
    assert c4_verdict(iv(top - 0.05, top + 0.05)) == "inconclusive"           # straddles the reproduced line
    assert c4_verdict(iv(minority + 0.01, partly - 0.01)) == "not reproduced"
    assert c4_verdict(iv(0.0, minority - 0.01)) == "contradicted"
    assert c4_verdict(Interval(0.9, None, 1, None, None, "one run")) == "inconclusive"
    assert c4_verdict(None) == "inconclusive"                              # no run where A was forgotten


def test_c2_basis_rule_gives_each_verdict():
    frac, null = threshold("C2", "lora_prefix_fraction"), threshold("C2", "lora_null_ratio")
    assert c2_basis_verdict(iv(0.0, frac - 0.01)) == "reproduced"          # the static basis misses
    assert c2_basis_verdict(iv(frac - 0.1, frac + 0.1)) == "inconclusive"
    assert c2_basis_verdict(iv(frac + 0.01, null - 0.01)) == "not reproduced"
    assert c2_basis_verdict(iv(null + 0.01, null + 0.5)) == "contradicted"  # static beats the prefix
    assert c2_basis_verdict(None) == "inconclusive"


def test_c2_takes_the_weakest_basis_over_every_basis():
    frac = threshold("C2", "lora_prefix_fraction")
    good, straddle, beats = iv(0.0, frac / 2), iv(frac - 0.1, frac + 0.1), iv(1.5, 2.0)
    higher = iv(0.1, frac / 2 + 0.1)
    assert c2_verdict({"gradient SVD": good, "Krylov (HVPs)": higher}) == ("reproduced", "Krylov (HVPs)")
    assert c2_verdict({"gradient SVD": good, "sign(g)": straddle}) == ("inconclusive", "sign(g)")
    assert c2_verdict({"gradient SVD": good, "sign(g)": straddle, "preconditioned Krylov": beats}) == \
        ("contradicted", "preconditioned Krylov")
    assert c2_verdict({}) == ("inconclusive", None)


def test_c3_rule_gives_each_verdict():
    paper, stable = REGISTRY["C3"].paper, threshold("C3", "lora_no_drift")
    assert c3_verdict([4.0, 6.0, 8.0], None, 16) == "reproduced"
    assert c3_verdict([paper + 20, paper + 30, paper + 40], None, 400) == "not reproduced"
    assert c3_verdict([10.0, paper * 2, paper * 3], None, 400) == "inconclusive"   # interval straddles 100
    assert c3_verdict([4.0], None, 16) == "inconclusive"                          # one run: no interval
    assert c3_verdict([4.0, None], iv(stable + 0.01, 1.0), 16) == "contradicted"  # no drift beyond noise
    assert c3_verdict([4.0, None], iv(0.3, 0.9), 16) == "inconclusive"
    assert c3_verdict([None, None], iv(0.3, 0.9), paper) == "not reproduced"


def test_ceiling_drift_judges_against_the_same_step_overlap():
    steps = [0, 2, 4, 6]
    lag = np.abs(np.subtract.outer(steps, steps))
    cross = 0.4 * np.exp(-lag / 4.0)             # ceiling 0.4, falls to half at lag 4 ln 2 ~ 2.8 -> checkpoint 4
    found, ceiling, end = ceiling_drift(steps, cross)
    assert ceiling == pytest.approx(0.4) and found == 4.0 and end == pytest.approx(np.exp(-1.5))
    assert ceiling_drift(steps, np.full((4, 4), 0.3))[0] is None   # no drift beyond noise: never halves


def test_ratio_reads_a_thin_basis_at_its_own_dimension():
    prefix = np.array([0.2, 0.4, 0.8])
    assert ratio_at(np.array([0.1, 0.2, 0.4]), prefix, 3) == pytest.approx(0.5)
    assert ratio_at(np.array([0.1, np.nan, np.nan]), prefix, 3) == pytest.approx(0.5)   # 1-d task-A adapter
