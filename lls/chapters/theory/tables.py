"""Chapter 1's Markdown tables: the numbers of :mod:`.analysis`'s summaries and of the raw
results, formatted for the notebook (nothing is computed here beyond formatting)."""

from __future__ import annotations

from lls.chapters.theory import results
from lls.chapters.theory.analysis import DensitySummary, F1F2Summary, PushforwardSummary, Theorem1Summary
from lls.tables import markdown_table

KRYLOV_SHOWN_KS = (1, 3, 5, 10)
"""Basis sizes whose captures the Lemma 1 table lists."""


def max_normal_table(en: results.MaxNormalCheck) -> str:
    """e_N by quadrature, by brute force (± SE, z against quadrature) and ``sqrt(2 ln N)``, per N."""
    z = (en.simulated - en.exact) / en.se
    return markdown_table(["N", "quadrature", "brute force", "z", "sqrt(2 ln N)"],
                          [[f"{n}", f"{e:.5f}", f"{s:.5f} ± {se:.5f}", f"{zi:.2f}", f"{a:.4f}"]
                           for n, e, s, se, zi, a in zip(en.ns, en.exact, en.simulated, en.se, z, en.asymptotic,
                                                         strict=True)])


def theorem1_table(s: Theorem1Summary) -> str:
    """Per D: draws, best-of-N gain / (sigma ||g||) ± SE, spread of g^T eps / sigma."""
    return markdown_table(["D", "draws", f"best-of-{s.n} gain / (σ‖g‖)", "sd of gᵀε / σ (theory 1)"],
                          [[f"{d:.0e}", f"{m}", f"{g:.4f} ± {e:.4f}", f"{sp:.4f}"]
                           for d, m, g, e, sp in zip(s.dims, s.draws, s.gain, s.gain_se, s.g_spread, strict=True)])


def net_gain_table(s: Theorem1Summary) -> str:
    """Per D: measured net best-of-N gain against sigma ||g|| e_N - sigma^2 tr H / 2."""
    return markdown_table(["D", f"measured net best-of-{s.n} gain", "predicted"],
                          [[f"{d:.0e}", f"{m:+.4g}", f"{p:+.4g}"]
                           for d, m, p in zip(s.dims, s.net, s.net_predicted, strict=True)])


def f1f2_table(s: F1F2Summary) -> str:
    """Per sigma: F1 spread, mean F2, whether F1 dominates, the best-of-N gain."""
    return markdown_table(["σ", "sd F1", "mean F2", "linear?", f"best-of-{s.n} gain"],
                          [[f"{sg:.2e}", f"{a:.3e}", f"{b:+.3e}", str(bool(lin)), f"{g:+.3e}"]
                           for sg, a, b, lin, g in zip(s.sigmas, s.f1_spread, s.f2_mean, s.linear, s.gains,
                                                       strict=True)])


def density_table(s: DensitySummary) -> str:
    """Per subspace (largest measured gain first): k, mass, density, gain ± SE, prediction."""
    return markdown_table(["subspace", "k", "mass", "density", "gain (measured)", "predicted"],
                          [[nm, f"{k}", f"{m:.2f}", f"{d:.2e}", f"{g:.4f} ± {e:.4f}", f"{p:.4f}"]
                           for nm, k, m, d, g, e, p in zip(s.names, s.k, s.mass, s.density, s.gain, s.gain_se,
                                                           s.predicted, strict=True)])


def krylov_tables(l1: results.Lemma1Result) -> tuple[str, str]:
    """Per optimizer: largest residual, captures at k_max, loss start -> end; and GD's prefix and
    Krylov captures at :data:`KRYLOV_SHOWN_KS` next to a random subspace's k / D."""
    runs = markdown_table(
        ["optimizer", "largest residual outside K_(s+1)", f"prefix capture at k = {l1.ks[-1]}",
         f"Krylov capture at k = {l1.ks[-1]}", "loss start → end"],
        [[name, f"{r.residual.max():.1e}", f"{r.prefix[-1]:.3f}", f"{r.krylov[-1]:.3f}",
          f"{r.loss_start:.3f} → {r.loss_end:.3f}"] for name, r in (("GD", l1.gd), ("Adam", l1.adam))])
    captures = markdown_table(["k", "GD prefix", "Krylov", "random (k/D)"],
                              [[f"{k}", f"{l1.gd.prefix[k - 1]:.4f}", f"{l1.gd.krylov[k - 1]:.4f}",
                                f"{k / l1.dim:.4f}"] for k in KRYLOV_SHOWN_KS if k <= l1.ks[-1]])
    return runs, captures


def pushforward_table(s: PushforwardSummary) -> str:
    """Per step norm (fraction of ||theta||): relative error of J dtheta and the cosine."""
    return markdown_table(["step / ‖θ‖", "relative error of J dθ", "cosine"],
                          [[f"{x:.1e}", f"{e:.2e}", f"{c:.6f}"]
                           for x, e, c in zip(s.steps, s.rel_error, s.cosine, strict=True)])
