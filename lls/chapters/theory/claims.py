"""Chapter 1's verdicts: C5 (Theorem 1), C6 (Proposition 1) and C7 (Lemma 1) from its Summary.

Thresholds and the paper's values come from :mod:`lls.claims` (the registry); each rule is a
small function whose docstring states it.
"""

from __future__ import annotations

from lls.chapters.theory.analysis import DensitySummary, KrylovSummary, Summary, Theorem1Summary
from lls.claims import REGISTRY, Claim, threshold


def theorem1_verdict(s: Theorem1Summary) -> str:
    """C5: *on target* when the pooled ratio is within ``theory_z`` standard errors of the paper's
    value (1: the gain is ``sigma ||g|| e_N``), *flat* when the chi-square test of one ratio for
    all D gives ``p > theory_p``. Both: reproduced; one of them: partly; neither: not reproduced."""
    on_target = abs(s.pooled - REGISTRY["C5"].paper) < threshold("C5", "theory_z") * s.pooled_se
    flat = s.p_value > threshold("C5", "theory_p")
    return "reproduced" if on_target and flat else ("partly" if on_target or flat else "not reproduced")


def theorem1_claim(s: Theorem1Summary) -> Claim:
    """C5: the pooled best-of-N gain / (sigma ||g|| e_N) over D, and whether it depends on D."""
    note = (f"Monte-Carlo best-of-{s.n} first-order gain / (σ‖g‖e_N) for D = 10 .. {max(s.dims):.0e}, pooled "
            f"over D ({REGISTRY['C5'].paper:g} = Theorem 1); test that all D agree: chi2 = {s.chi2:.1f} on "
            f"{s.dof} dof, p = {s.p_value:.2f}; largest abs(z) against {REGISTRY['C5'].paper:g}: "
            f"{s.max_z:.1f}")
    return Claim("C5", s.pooled, theorem1_verdict(s), note, unit="× σ‖g‖e_N", spread=s.pooled_se)


def density_verdict(s: DensitySummary) -> str:
    """C6: reproduced when the subspaces ranked by measured gain are exactly the ranking by signal
    density; otherwise partly when the Spearman correlation of gain with density is at least
    ``theory_rho_partly``; otherwise not reproduced."""
    if s.names == s.by_density:
        return "reproduced"
    return "partly" if s.rho_density >= threshold("C6", "theory_rho_partly") else "not reproduced"


def density_claim(s: DensitySummary) -> Claim:
    """C6: the Spearman correlation of subspace search gain with signal density (and with mass)."""
    note = (f"constructed problem, D = {s.dim}, best-of-{s.n} at fixed E‖ε‖²: Spearman rank correlation of gain "
            f"with density {s.rho_density:.2f}, with mass {s.rho_mass:.2f}; measured order {' > '.join(s.names)}")
    return Claim("C6", s.rho_density, density_verdict(s), note, unit="Spearman rho")


def krylov_verdict(s: KrylovSummary) -> str:
    """C7: reproduced when every GD update's relative residual outside its Krylov space is below
    ``residual_max``; otherwise not reproduced."""
    return "reproduced" if s.gd_residual < threshold("C7", "residual_max") else "not reproduced"


def krylov_claim(s: KrylovSummary) -> Claim:
    """C7: the largest Krylov residual of the gradient-descent updates (Adam's for contrast)."""
    note = (f"quadratic, D = {s.dim}: largest residual of GD update s outside K_(s+1)(H, g) (HVP-built basis) "
            f"for s < {s.k_max}; prefix vs Krylov capture of the final displacement differ by at most "
            f"{s.prefix_gap:.1e}; Adam's updates leave it (largest residual {s.adam_residual:.2f})")
    return Claim("C7", s.gd_residual, krylov_verdict(s), note, unit="rel. residual")


def claims(summary: Summary) -> list[Claim]:
    """C5, C6 and C7 of the chapter, in that order."""
    return [theorem1_claim(summary.theorem1), density_claim(summary.density), krylov_claim(summary.krylov)]
