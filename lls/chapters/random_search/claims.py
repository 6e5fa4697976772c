"""Chapter 4's verdicts: C5 (Theorem 1) and C6 (Proposition 1) from the :class:`Summary`, each decided
on a 95 % interval (:func:`lls.claims.decide`), never on a point estimate."""

from __future__ import annotations

from dataclasses import replace

from lls.chapters.random_search.analysis import Correlations, Summary
from lls.claims import Claim, decide, threshold
from lls.stats import Interval, t_interval

ORDER = ("contradicted", "not reproduced", "inconclusive", "partly", "reproduced")
"""Verdicts from worst to best: a two-sided rule takes the worse of its two sides."""


def c5_verdict(interval: Interval) -> str:
    """C5 on the interval of the mean ratio measured / Theorem 1 (1 = the theorem), a two-sided band:
    *reproduced* when the interval lies in [``reproduced_low``, ``reproduced_high``], *partly* when it
    lies in [``partly_low``, ``partly_high``] without reaching past the inner band, *contradicted* when it
    lies wholly below ``contradicted_below`` or above ``contradicted_above`` (the gain off by that factor),
    *not reproduced* when wholly outside the partly band short of that, *inconclusive* when it straddles a
    bound. Each side is :func:`lls.claims.decide`; the verdict is the worse side (:data:`ORDER`)."""
    def t(name):
        return threshold("C5", name)

    low = decide(interval, t("reproduced_low"), partly_at=t("partly_low"), null=t("contradicted_below"))
    high = decide(interval, t("reproduced_high"), partly_at=t("partly_high"), null=t("contradicted_above"),
                  higher_supports=False)
    return min(low, high, key=ORDER.index)


def density_interval(c: Correlations) -> Interval:
    """95 % t-interval of the per-seed Spearman correlation of the gains with density (search seeds on one
    model at one theta_f, not training seeds)."""
    found = t_interval(c.density, unit="search seeds")
    return replace(found, method=f"{found.method} (searches of one model at one θ_f, not training seeds)")


def c6_at_norm(c: Correlations) -> str:
    """C6 at one norm: :func:`lls.claims.decide` on :func:`density_interval` against ``search_rho``, with
    ``search_rho_null`` as the null (contradicted: the gains fall with density); a *reproduced* is cut to
    *partly* unless the t-interval of the per-seed difference rho(density) - rho(mass) lies above 0
    (density ranks the gains better than mass)."""
    verdict = decide(density_interval(c), threshold("C6", "search_rho"), null=threshold("C6", "search_rho_null"))
    beats_mass = t_interval(c.density - c.mass)
    if verdict == "reproduced" and not (beats_mass.known and beats_mass.low > 0):
        return "partly"
    return verdict


def c6_verdict(local: Correlations, practical: Correlations) -> str:
    """C6 from its verdicts at the local and the practical norm (:func:`c6_at_norm`): *reproduced* at both
    gives reproduced; an *inconclusive* at either, inconclusive; *contradicted* at both, contradicted; else
    partly when it is reproduced or partly at one norm, not reproduced otherwise."""
    both = {c6_at_norm(local), c6_at_norm(practical)}
    if both == {"reproduced"}:
        return "reproduced"
    if "inconclusive" in both:
        return "inconclusive"
    if both == {"contradicted"}:
        return "contradicted"
    return "partly" if both & {"reproduced", "partly"} else "not reproduced"


def _ci(interval: Interval) -> str:
    return f"[{interval.low:.2f}, {interval.high:.2f}]" if interval.known else "(no interval)"


def claims(s: Summary) -> list[Claim]:
    """C5 (first-order gain over Theorem 1's prediction, on the searches the F1/F2 diagnostic calls
    local-linear) and C6 (Spearman with density at the local and the practical norm; its value and
    interval are the local one's)."""
    every = s.c5_all_interval
    if s.c5_interval is None:
        c5 = Claim("C5", None, "inconclusive", f"no search of the {len(s.c5_rows)} run is local-linear by the "
                   "F1/F2 diagnostic", unit="ratio", seeds=s.seeds, kind="empirical")
    else:
        c5 = Claim.from_interval(
            "C5", s.c5_interval, c5_verdict(s.c5_interval),
            f"mean over noise streams of measured best-of-N first-order gain / (σ‖Uᵀg‖ e_N) for the "
            f"{len(s.ratios)} searches the F1/F2 diagnostic calls local-linear, of {len(s.c5_rows)} run, in spaces "
            f"of dimension {s.dims[0]:,} to {s.dims[-1]:,} (1 = Theorem 1); over every search: {every.mean:.2f} "
            f"{_ci(every)}" + (f"; slope on log10 D {s.c5_slope[0]:.3f} [{s.c5_slope[1]:.3f}, {s.c5_slope[2]:.3f}] "
                               "(shown, not judged)" if s.c5_slope is not None else ""), unit="ratio", seeds=s.seeds,
            kind="empirical")
    parts = [f"{label} norm r={c.norm:.2g}: rho(density) {c.density_mean:.2f} {_ci(density_interval(c))}, "
             f"rho(mass) {c.mass_mean:.2f}, {c6_at_norm(c)}" for label, c in (("local", s.local),
                                                                              ("practical", s.practical))]
    c6 = Claim.from_interval(
        "C6", density_interval(s.local), c6_verdict(s.local, s.practical),
        f"Spearman rank correlation of measured best-of-{s.c6_n} gain with density ‖Uᵀg‖²/k over "
        f"{s.c6_subspaces} subspaces at a fixed norm; " + "; ".join(parts), unit="Spearman rho", seeds=s.c6_seeds,
        kind="empirical")
    return [c5, c6]
