"""Chapter 4's numbers: the searches' results -> one :class:`Summary` that the prose, tables and claims read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from lls import theory
from lls.chapters.random_search.config import ODD_TOL, Config
from lls.chapters.random_search.protocol import Curves, Ranking, claim_n
from lls.randopt import RandOptResult
from lls.stats import mean_spread

MIN_N = 32
"""C5 leaves out searches of fewer candidates than this, unless none has that many (``smoke``)."""


def predicted(ranking: Ranking) -> np.ndarray:
    """Theory at norm r: ``r sqrt(density) e_n - r^2 curvature / 2`` for each subspace, (S,)."""
    e_n = theory.expected_max_normal(ranking.n)
    return ranking.norm * np.sqrt(ranking.density) * e_n - 0.5 * ranking.norm**2 * ranking.curvature


def spearman(ranking: Ranking, against: str, first_order: bool = False) -> np.ndarray:
    """Spearman correlation, per seed, of the gains (or first-order gains) with ``density`` or ``mass``: (seeds,)."""
    ref = {"density": ranking.density, "mass": ranking.mass}[against]
    gains = ranking.first_order if first_order else ranking.gain
    return np.array([stats.spearmanr(row, ref).statistic for row in gains])


def c5_ratios(curves: list[Curves], rankings: list[Ranking], min_n: int = MIN_N) -> list[dict]:
    """Measured first-order best-of-N gain over Theorem 1's ``sigma ||U^T g|| e_N`` in every space.

    One row per search in its own local-linear regime, at N = :func:`claim_n` of its candidates:
    every grid sigma of every :class:`Curves` that its diagnostic calls local-linear (with
    :data:`ODD_TOL`) and its long search; every C6 search (each seed, each regime) whose F1
    spread exceeds its |mean F2|. Searches with fewer than ``min_n`` candidates are left out
    unless none has that many (``smoke``).
    """
    cases = []  # (space name, dim, search, ||U^T g||)
    for c in curves:
        ok = dict(zip(c.diag.sigmas.tolist(), c.diag.linear(odd_tol=ODD_TOL).tolist(), strict=True))
        cases += [(c.name, c.dim, run, c.grad_norm) for run in c.diag.runs if ok[run.sigma]]
        if c.best is not None:
            cases.append((c.name, c.dim, c.best, c.grad_norm))
    for ranking in rankings:
        for j, name in enumerate(ranking.names):
            cases += [(f"synthetic, {name} (r={ranking.norm:.2g})", ranking.dims[j], row[j], float(np.sqrt(m)))
                      for row, m in zip(ranking.searches, ranking.mass_seed[:, j], strict=True)
                      if row[j].f1.std(ddof=1) > abs(row[j].f2.mean())]
    if any(run.n >= min_n for _, _, run, _ in cases):
        cases = [case for case in cases if case[2].n >= min_n]
    rows = []
    for name, dim, run, norm_g in cases:
        n = claim_n(run.n)
        rows.append({"space": name, "dim": dim, "sigma": run.sigma, "N": n, "seed": run.seed,
                     "ratio": float(run.first_order_curve([n])[0]) / theory.first_order_gain(run.sigma, norm_g, n)})
    return rows


@dataclass
class Correlations:
    """C6 at one norm: per-seed Spearman correlations of the measured gains with density and mass."""

    norm: float
    density: np.ndarray
    mass: np.ndarray
    density_first_order: np.ndarray

    @property
    def density_mean(self) -> float:
        return mean_spread(self.density)[0]

    @property
    def mass_mean(self) -> float:
        return mean_spread(self.mass)[0]


def correlations(ranking: Ranking) -> Correlations:
    """The :class:`Correlations` of one ranking."""
    return Correlations(ranking.norm, spearman(ranking, "density"), spearman(ranking, "mass"),
                        spearman(ranking, "density", first_order=True))


@dataclass
class Summary:
    """Every number chapter 4 reports (losses in nats, accuracies exact-match fractions)."""

    task: str
    acc0: dict[str, float]
    acc_f: dict[str, float]
    synthetic_dim: int
    synthetic_base: float
    synthetic_grad_norm: float
    synthetic_trace: float
    synthetic_trace_se: float
    sigma_star: float
    """``||g|| e_N / tr H`` from the diagnostic's estimates at N = ``n_max``"""
    lm_name: str
    lm_dim: int
    lm_loss: float
    lm_accuracy: float
    lm_grad_norm: float
    lm_best_n: int
    lm_best_sigma: float
    lm_evals_per_s: float
    c5_rows: list[dict]
    """the local-linear searches of C5 (see :func:`c5_ratios`)"""
    practical_rows: list[dict]
    """the C6 searches at the practical norm (outside C5)"""
    local: Correlations
    practical: Correlations
    c6_n: int
    c6_subspaces: int
    c6_seeds: list[int]
    randopt_sigma: float
    randopt: RandOptResult
    seeds: list[int]

    @property
    def ratios(self) -> np.ndarray:
        """The C5 ratios, (len(c5_rows),)."""
        return np.array([r["ratio"] for r in self.c5_rows])

    @property
    def randopt_member_mean(self) -> float:
        """Mean test accuracy of RandOpt's top-K members."""
        return float(self.randopt.member_accuracy.mean())

    @property
    def dims(self) -> list[int]:
        """The distinct dimensions of the C5 searches, ascending."""
        return sorted({r["dim"] for r in self.c5_rows})


def summarize(cfg: Config, synth: Curves, lm: Curves, local: Ranking, practical: Ranking,
              opt: tuple[RandOptResult, float]) -> Summary:
    """The chapter's :class:`Summary` from its cached results."""
    return Summary(
        task=synth.extra["task"], acc0=synth.extra["acc0"], acc_f=synth.extra["acc_f"], synthetic_dim=synth.dim,
        synthetic_base=synth.diag.base, synthetic_grad_norm=synth.grad_norm, synthetic_trace=synth.trace,
        synthetic_trace_se=synth.trace_se, sigma_star=synth.diag.sigma_star(cfg.n_max),
        lm_name=lm.name, lm_dim=lm.dim, lm_loss=lm.extra["loss"], lm_accuracy=lm.extra["accuracy"],
        lm_grad_norm=lm.grad_norm, lm_best_n=lm.best.n, lm_best_sigma=lm.best.sigma,
        lm_evals_per_s=lm.extra["evals_per_s"], c5_rows=c5_ratios([synth, lm], [local]),
        practical_rows=c5_ratios([], [practical]), local=correlations(local), practical=correlations(practical),
        c6_n=local.n, c6_subspaces=len(local.names), c6_seeds=local.seeds, randopt_sigma=opt[1], randopt=opt[0],
        seeds=[cfg.seed],
    )


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".5g")


def ratios_table(rows: list[dict]) -> str:
    """Markdown table of C5 ratio rows (:func:`c5_ratios`)."""
    return _markdown(pd.DataFrame(rows))


def curves_table(curves: list[Curves]) -> str:
    """Markdown table, per space and sigma: F1 spread, mean F2, the zeroth-order ||g|| and tr H
    estimates against autograd and Hutchinson, and whether the sigma is local-linear."""
    rows = []
    for c in curves:
        d = c.diag
        for j, sigma in enumerate(d.sigmas):
            rows.append({"space": c.name, "σ": sigma, "F1 spread": d.f1_spread[j], "mean F2": d.f2_mean[j],
                         "‖g‖ from F1": d.grad_norm[j], "‖g‖ autograd": c.grad_norm,
                         "tr H from F2": d.trace[j], "tr H Hutchinson": c.trace, "local-linear": bool(d.linear()[j])})
    return _markdown(pd.DataFrame(rows))


def ranking_table(ranking: Ranking) -> str:
    """Markdown table per subspace: k, density, mass, mean curvature, measured gain (mean, SD over
    seeds), first-order gain and the theory's gain, sorted by measured gain."""
    frame = pd.DataFrame({
        "subspace": ranking.names, "k": ranking.dims, "density ‖Uᵀg‖²/k": ranking.density,
        "mass ‖Uᵀg‖²": ranking.mass, "curvature tr(UᵀHU)/k": ranking.curvature,
        "gain (mean)": ranking.gain.mean(axis=0), "gain (sd over seeds)": ranking.gain.std(axis=0),
        "first-order gain": ranking.first_order.mean(axis=0), "theory gain": predicted(ranking),
    }).sort_values("gain (mean)", ascending=False)
    return _markdown(frame)
