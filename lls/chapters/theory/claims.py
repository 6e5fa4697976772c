"""Chapter 1's verdicts: C5 (Theorem 1), C6 (Proposition 1) and C7 (Lemma 1) from its Summary.

Thresholds and the paper's values come from :mod:`lls.claims` (the registry); each rule is a
small function whose docstring states it.
"""

from __future__ import annotations

from lls.chapters.theory.analysis import DensitySummary, KrylovSummary, Summary, Theorem1Summary
from lls.claims import REGISTRY, Claim, threshold
from lls.stats import se_interval


def theorem1_verdict(s: Theorem1Summary) -> str:
    """C5, a check of Theorem 1: *verified (math)* when the pooled ratio is within ``theory_z``
    standard errors of the theorem's value (1: the gain is ``sigma ||g|| e_N``) *and* the
    chi-square test of one ratio for all D gives ``p > theory_p``; otherwise *contradicted* (the
    numerics depart significantly from the theorem: a bug, or an approximation that fails)."""
    on_target = abs(s.pooled - REGISTRY["C5"].paper) < threshold("C5", "theory_z") * s.pooled_se
    flat = s.p_value > threshold("C5", "theory_p")
    return "verified (math)" if on_target and flat else "contradicted"


def theorem1_claim(s: Theorem1Summary) -> Claim:
    """C5: the pooled best-of-N gain / (sigma ||g|| e_N) over D, and whether it depends on D."""
    note = (f"Monte-Carlo best-of-{s.n} first-order gain / (σ‖g‖e_N) for D = 10 .. {max(s.dims):.0e}, pooled "
            f"over D ({REGISTRY['C5'].paper:g} = Theorem 1); test that all D agree: chi2 = {s.chi2:.1f} on "
            f"{s.dof} dof, p = {s.p_value:.2f}; largest abs(z) against {REGISTRY['C5'].paper:g}: "
            f"{s.max_z:.1f}")
    interval = se_interval(s.pooled, s.pooled_se, sum(s.draws),
                           "the precision-weighted mean ratio over D (a Monte-Carlo SE over best-of-N draws, not "
                           "an SD over seeds)")
    return Claim("C5", s.pooled, theorem1_verdict(s), note, unit="× σ‖g‖e_N", spread=s.pooled_se, n=interval.n,
                 ci=[interval.low, interval.high], interval_method=interval.method)


def density_verdict(s: DensitySummary) -> str:
    """C6 on the constructed problem (where it follows from the closed form): *verified (math)*
    when the subspaces ranked by measured gain are exactly the ranking by signal density;
    *inconclusive* when not exactly but the Spearman correlation of gain with density is at least
    ``theory_rho_partly`` (near-equal gains swapped by Monte-Carlo noise); otherwise
    *contradicted*."""
    if s.names == s.by_density:
        return "verified (math)"
    return "inconclusive" if s.rho_density >= threshold("C6", "theory_rho_partly") else "contradicted"


def density_claim(s: DensitySummary) -> Claim:
    """C6: the Spearman correlation of subspace search gain with signal density (and with mass)."""
    note = (f"constructed problem, D = {s.dim}, best-of-{s.n} at fixed E‖ε‖²: Spearman rank correlation of gain "
            f"with density {s.rho_density:.2f}, with mass {s.rho_mass:.2f}; measured order {' > '.join(s.names)}")
    return Claim("C6", s.rho_density, density_verdict(s), note, unit="Spearman rho", n=s.trials,
                 interval_method=f"no interval: one ranking of {len(s.names)} subspaces, each gain a mean over "
                                 f"{s.trials} independent searches")


def krylov_verdict(s: KrylovSummary) -> str:
    """C7: *verified (math)* when every GD update's relative residual outside its Krylov space is
    below ``residual_max``; otherwise *contradicted*."""
    return "verified (math)" if s.gd_residual < threshold("C7", "residual_max") else "contradicted"


def krylov_claim(s: KrylovSummary) -> Claim:
    """C7: the largest Krylov residual of the gradient-descent updates (Adam's for contrast)."""
    note = (f"quadratic, D = {s.dim}: largest residual of GD update s outside K_(s+1)(H, g) (HVP-built basis) "
            f"for s < {s.k_max}; prefix vs Krylov capture of the final displacement differ by at most "
            f"{s.prefix_gap:.1e} ({s.prefix_gap_float64:.1e} at a float64 tolerance); Adam's updates leave it "
            f"(largest residual {s.adam_residual:.2f})")
    return Claim("C7", s.gd_residual, krylov_verdict(s), note, unit="rel. residual",
                 interval_method="no interval: a deterministic float64 computation (the largest residual)")


def claims(summary: Summary) -> list[Claim]:
    """C5, C6 and C7 of the chapter, in that order."""
    return [theorem1_claim(summary.theorem1), density_claim(summary.density), krylov_claim(summary.krylov)]


def rules_text() -> str:
    """The chapter's verdict rules in words, with the thresholds read from the registry."""
    return (f"C5 and C7 are theorems and C6 is tested here on a problem where it follows from the closed form, "
            f"so their verdicts are *verified (math)* or *contradicted*, never *reproduced*. C5: verified when "
            f"the gain pooled over $D$ is within {threshold('C5', 'theory_z'):g} standard errors of "
            f"$\\sigma\\lVert g\\rVert e_N$ *and* a $\\chi^2$ test finds no dependence on $D$ "
            f"($p>{threshold('C5', 'theory_p'):g}$); the standard errors are the disjoint-groups approximation. "
            f"C6: verified when the subspaces' measured gains rank exactly as their densities, inconclusive when "
            f"not exactly but with Spearman $\\rho\\ge{threshold('C6', 'theory_rho_partly'):g}$. C7: verified "
            f"when every gradient-descent update's Krylov residual is below {threshold('C7', 'residual_max'):.0e}. "
            f"Chapter 4 tests C5 and C6 on real models, where they can fail.")

