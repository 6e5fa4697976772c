"""Chapter 4's verdicts: C5 (Theorem 1) and C6 (Proposition 1) from the :class:`Summary`."""

from __future__ import annotations

import numpy as np

from lls.chapters.random_search.analysis import Correlations, Summary
from lls.claims import Claim, threshold
from lls.stats import mean_spread


def c5_verdict(ratios: np.ndarray) -> str:
    """C5: reproduced when the median ratio measured / Theorem 1 lies in [``median_low``,
    ``median_high``] = [0.8, 1.25] and every ratio in (``each_low``, ``each_high``) = (0.6, 1.6);
    partly when the median lies in [``partly_low``, ``partly_high``] = [0.6, 1.6]."""
    ratios = np.asarray(ratios, dtype=float)
    median = float(np.median(ratios))
    each = np.all((ratios > threshold("C5", "each_low")) & (ratios < threshold("C5", "each_high")))
    if threshold("C5", "median_low") <= median <= threshold("C5", "median_high") and each:
        return "reproduced"
    if threshold("C5", "partly_low") <= median <= threshold("C5", "partly_high"):
        return "partly"
    return "not reproduced"


def c6_holds(density_rho: float, mass_rho: float) -> bool:
    """C6 at one norm holds when the mean Spearman correlation of the gains with density is at least
    ``search_rho`` (0.7) and above the one with mass."""
    return bool(density_rho >= threshold("C6", "search_rho") and density_rho > mass_rho)


def c6_verdict(local: Correlations, practical: Correlations) -> str:
    """C6: reproduced when it holds (:func:`c6_holds`) at both norms, partly at one, not reproduced at neither."""
    held = sum(c6_holds(c.density_mean, c.mass_mean) for c in (local, practical))
    return {2: "reproduced", 1: "partly", 0: "not reproduced"}[held]


def claims(s: Summary) -> list[Claim]:
    """C5 (first-order gain over Theorem 1's prediction, local-linear searches only) and C6 (Spearman
    with density at the local and the practical norm; its value is the local one)."""
    ratios = s.ratios
    c5 = Claim("C5", float(np.median(ratios)), c5_verdict(ratios),
               f"median over {len(ratios)} local-linear searches of measured best-of-N first-order gain / "
               f"(σ‖Uᵀg‖ e_N), in spaces of dimension {s.dims[0]:,} to {s.dims[-1]:,} (1 = Theorem 1); "
               f"range {ratios.min():.2f}-{ratios.max():.2f}",
               unit="ratio", spread=float(ratios.std(ddof=1)) if len(ratios) > 1 else None, seeds=s.seeds)
    parts = [f"{label} norm r={c.norm:.2g}: rho(density) {c.density_mean:.2f}, rho(mass) {c.mass_mean:.2f}"
             for label, c in (("local", s.local), ("practical", s.practical))]
    d_mean, d_sd = mean_spread(s.local.density)
    c6 = Claim("C6", d_mean, c6_verdict(s.local, s.practical),
               f"Spearman rank correlation of measured best-of-{s.c6_n} gain with density ‖Uᵀg‖²/k over "
               f"{s.c6_subspaces} subspaces at a fixed norm; " + "; ".join(parts),
               unit="Spearman rho", spread=d_sd, seeds=s.c6_seeds)
    return [c5, c6]
