"""Chapter 5's verdict rules for C8 and C9: pure functions of intervals (fixed before the run).

Every threshold comes from :data:`lls.claims.REGISTRY`; every comparison is between an interval
and a number, never between point estimates. :mod:`lls.chapters.steering.claims` feeds them.
"""

from __future__ import annotations

from lls.claims import REGISTRY, decide, threshold
from lls.stats import Interval


def c8_bar() -> float:
    """The cosine C8 needs for *reproduced*: the paper's minus ``threshold("C8", "tolerance")``."""
    return REGISTRY["C8"].paper - threshold("C8", "tolerance")


def c8_verdict(cosine: Interval, null_bound: float, vs_shuffled: Interval) -> str:
    """C8 on one shift (mean shift or ΔCAA) of one concept and model variant.

    ``cosine``: interval over data splits of the shift's cosine with CAA at the steering block;
    ``null_bound``: the ``threshold("C8", "null_quantile")`` quantile of |cos| of random directions
    with CAA; ``vs_shuffled``: paired interval over splits of (cosine - cosine of the same step on
    shuffled labels). :func:`lls.claims.decide` with ``reproduced_at`` = :func:`c8_bar`,
    ``partly_at`` = ``null_bound`` and ``null`` = ``-null_bound`` (wholly below: the step shifts
    against CAA, *contradicted*); a *reproduced* is capped at *partly* unless ``vs_shuffled`` lies
    wholly above 0 (a step that learned nothing about the labels would align as well).
    """
    verdict = decide(cosine, c8_bar(), partly_at=null_bound, null=-null_bound)
    beats_shuffled = vs_shuffled.known and vs_shuffled.low > 0
    return "partly" if verdict == "reproduced" and not beats_shuffled else verdict


def c9_verdict(step: Interval, vs_null: Interval, vs_caa: Interval) -> str:
    """C9 on one concept and model variant, from intervals over test statements (layer and scale
    chosen on the validation split for every vector alike).

    ``step``: the step vector's target gain; ``vs_null``: its gain minus that of the best null
    (random directions of equal norm, a pure threshold shift); ``vs_caa``: its gain minus
    ``threshold("C9", "caa_fraction")`` times CAA's (all paired per statement). *contradicted*
    when ``step`` lies wholly below 0 (it steers against the concept); *not reproduced* when
    ``vs_null`` lies wholly at or below 0; *inconclusive* when ``vs_null`` straddles 0 or is
    unknown; otherwise (it beats the null) *reproduced* when ``vs_caa`` lies wholly at or above 0,
    *partly* when not.
    """
    if step.known and step.high < 0:
        return "contradicted"
    if not vs_null.known:
        return "inconclusive"
    if vs_null.high <= 0:
        return "not reproduced"
    if vs_null.low <= 0:
        return "inconclusive"
    return "reproduced" if vs_caa.known and vs_caa.low >= 0 else "partly"
