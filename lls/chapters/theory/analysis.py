"""Chapter 1's numbers: pure functions from results to the summaries the notebook and claims read.

One summary per section (:func:`summarize_theorem1`, ...); :class:`Summary` holds them all;
:func:`extra_metrics` picks what ``metrics.json`` keeps beside the claims; tables are Markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lls import search, subspace, theory
from lls.chapters.theory import results
from lls.chapters.theory.config import Config
from lls.claims import REGISTRY

PUSHFORWARD_TOL = 0.1
"""Relative error of ``J dtheta`` up to which the whole-model first-order prediction counts as holding."""
PUSHFORWARD_FIT_MAX = 0.3
"""Errors above this are left out of the slope fit (past the first-order regime)."""


# --- e_N and Theorem 1 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Theorem1Summary:
    """The sweep at N = ``n``: per D (arrays over ``dims``) the draws, the best-of-N first-order
    gain / (sigma ||g||) ``gain`` ± ``gain_se``, ``g_spread`` (sd of g^T eps / sigma, theory 1),
    ``ratio`` ± ``se`` = gain / e_N, and the net best-of-N gain ``net`` (loss units) against
    ``net_predicted`` = sigma ||g|| e_N - sigma^2 tr H / 2. Pooled over D: ``pooled`` ±
    ``pooled_se`` (precision-weighted mean ratio), ``chi2`` on ``dof`` degrees of freedom with
    ``p_value`` (do all D share one ratio?), ``max_z`` the largest ``|ratio - 1| / se`` (1: C5's paper
    value); ``crossover`` D_c where the mean second-order term equals the first-order gain."""

    n: int
    sigma: float
    curvature: float
    e_n: float
    dims: list[int]
    draws: list[int]
    gain: np.ndarray
    gain_se: np.ndarray
    g_spread: np.ndarray
    ratio: np.ndarray
    se: np.ndarray
    pooled: float
    pooled_se: float
    chi2: float
    dof: int
    p_value: float
    max_z: float
    net: np.ndarray
    net_predicted: np.ndarray
    crossover: float


def summarize_theorem1(cfg: Config, t1: list[results.Theorem1Row]) -> Theorem1Summary:
    """Ratios to e_N at N = ``t1_n``, pooled over D with a chi-square test of dimension independence."""
    n, e_n = cfg.t1_n, theory.expected_max_normal(cfg.t1_n)
    gain = np.array([r.first[r.ns.index(n)] for r in t1])
    gain_se = np.array([r.first_se[r.ns.index(n)] for r in t1])
    ratio, se = gain / e_n, gain_se / e_n
    w = 1 / se**2
    pooled = float((w * ratio).sum() / w.sum())
    chi2 = float((((ratio - pooled) / se) ** 2).sum())
    first = theory.first_order_gain(cfg.t1_sigma, 1.0, n)
    return Theorem1Summary(
        n=n, sigma=cfg.t1_sigma, curvature=cfg.t1_curvature, e_n=e_n, dims=[r.dim for r in t1],
        draws=[r.draws for r in t1], gain=gain, gain_se=gain_se, g_spread=np.array([r.g_spread for r in t1]),
        ratio=ratio, se=se, pooled=pooled, pooled_se=float(w.sum() ** -0.5), chi2=chi2, dof=len(ratio) - 1,
        p_value=float(stats.chi2.sf(chi2, len(ratio) - 1)),
        max_z=float(np.max(np.abs(ratio - REGISTRY["C5"].paper) / se)), net=np.array([r.net for r in t1]),
        net_predicted=np.array([first - theory.second_order_mean(cfg.t1_sigma, cfg.t1_curvature * r.dim) for r in t1]),
        crossover=theory.crossover_dim(cfg.t1_sigma, 1.0, n, cfg.t1_curvature))


# --- F1/F2 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class F1F2Summary:
    """The F1/F2 diagnostic on ``model`` (D = ``dim`` in ``n_tensors`` tensors, ``base`` loss in
    nats): per sigma (arrays over ``sigmas``) ``f1_spread``, ``f2_mean`` ± ``f2_sem``, ``linear``
    (F1 spread above |mean F2|) and ``gains`` the measured best-of-``n`` loss decrease;
    ``linear_range`` the sigma range of the local-linear regime from the smallest sigma up
    (``None`` if the smallest is not linear); ``grad_norm`` (autograd), ``trace`` ± ``trace_se``
    (Hutchinson, ``probes`` probes); sigma* in closed form, from the F1/F2 estimates at the
    smallest sigma (``sigma_star_zeroth_order``) and the best sigma of the grid (``sigma_star_measured``)."""

    model: str
    dim: int
    n_tensors: int
    base: float
    n: int
    probes: int
    sigmas: np.ndarray
    f1_spread: np.ndarray
    f2_mean: np.ndarray
    f2_sem: np.ndarray
    linear: np.ndarray
    gains: np.ndarray
    linear_range: tuple[float, float] | None
    grad_norm: float
    trace: float
    trace_se: float
    sigma_star: float
    sigma_star_zeroth_order: float
    sigma_star_measured: float
    grid_ratio: float


def linear_range(sigmas: np.ndarray, linear: np.ndarray) -> tuple[float, float] | None:
    """The sigma range, from the smallest grid sigma up, where ``linear`` holds without a break."""
    if not linear[0]:
        return None
    stop = int(np.argmin(linear)) if not linear.all() else len(linear)
    return float(sigmas[0]), float(sigmas[stop - 1])


def summarize_f1f2(cfg: Config, f: results.F1F2Run) -> F1F2Summary:
    """Best-of-``f1f2_n`` gains per sigma, the local-linear range and the three sigma*."""
    r = f.search
    gains = np.array([search.expected_best(-(f1 + f2), [cfg.f1f2_n])[0] for f1, f2 in zip(r.f1, r.f2, strict=True)])
    linear = r.linear()
    return F1F2Summary(
        model=cfg.model, dim=f.dim, n_tensors=f.n_tensors, base=r.base, n=cfg.f1f2_n, probes=cfg.hutchinson_probes,
        sigmas=r.sigmas, f1_spread=r.f1_spread, f2_mean=r.f2_mean, f2_sem=r.f2_sem, linear=linear, gains=gains,
        linear_range=linear_range(r.sigmas, linear), grad_norm=f.grad_norm, trace=f.trace, trace_se=f.trace_se,
        sigma_star=theory.sigma_star(f.grad_norm, f.trace, cfg.f1f2_n),
        sigma_star_zeroth_order=r.sigma_star(cfg.f1f2_n), sigma_star_measured=float(r.sigmas[np.argmax(gains)]),
        grid_ratio=float(r.sigmas[1] / r.sigmas[0]))


# --- Proposition 1 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DensitySummary:
    """Subspace searches in dimension ``dim`` at best-of-``n``: per subspace (sorted by measured
    gain, largest first) ``names``, ``k``, ``mass``, ``density``, ``gain`` ± ``gain_se`` (mean and
    SE over trials) and ``predicted``; ``by_density`` the names sorted by density; Spearman rank
    correlations of the gain with density (``rho_density``) and with mass (``rho_mass``)."""

    dim: int
    n: int
    names: list[str]
    k: list[int]
    mass: np.ndarray
    density: np.ndarray
    gain: np.ndarray
    gain_se: np.ndarray
    predicted: np.ndarray
    by_density: list[str]
    rho_density: float
    rho_mass: float
    trials: int
    """independent best-of-N searches per subspace"""


def summarize_proposition1(cfg: Config, rows: list[results.SubspaceRow]) -> DensitySummary:
    """Mean gains with SEs, the orders by gain and by density, and the two rank correlations."""
    gain = [float(r.gains.mean()) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: -gain[i])
    ordered = [rows[i] for i in order]
    return DensitySummary(
        dim=cfg.p1_dim, n=cfg.p1_n, names=[r.name for r in ordered], k=[r.k for r in ordered],
        mass=np.array([r.mass for r in ordered]), density=np.array([r.density for r in ordered]),
        gain=np.array([gain[i] for i in order]),
        gain_se=np.array([float(r.gains.std(ddof=1) / math.sqrt(len(r.gains))) for r in ordered]),
        predicted=np.array([r.predicted for r in ordered]),
        by_density=[r.name for r in sorted(rows, key=lambda r: -r.density)],
        rho_density=float(stats.spearmanr(gain, [r.density for r in rows])[0]),
        rho_mass=float(stats.spearmanr(gain, [r.mass for r in rows])[0]), trials=len(rows[0].gains))


# --- Lemma 1 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KrylovSummary:
    """Lemma 1 on the quadratic of dimension ``dim`` up to k = ``k_max``: the largest Krylov
    residual of GD's and Adam's updates, ``prefix_gap`` the largest |prefix - Krylov| capture of
    GD's final displacement when the prefix drops updates at the float32 rule ``drop_tol``
    (keeping ``kept`` of the first ``k_max``), ``prefix_gap_float64`` the same at ``float64_tol``
    (keeping ``kept_float64``), and GD's deviation from its closed form."""

    dim: int
    k_max: int
    gd_residual: float
    adam_residual: float
    prefix_gap: float
    gd_closed_form_error: float
    kept: int
    prefix_gap_float64: float
    kept_float64: int
    drop_tol: float = subspace.DROP_TOL
    float64_tol: float = results.FLOAT64_TOL

    def gap_sentence(self) -> str:
        """Why GD's prefix and the Krylov basis part, in numbers from the run."""
        return (f"The largest gap between GD's prefix capture and the Krylov capture is {self.prefix_gap:.1e}. "
                f"The prefix drops an update as dependent when less than {self.drop_tol:.0e} of its norm lies "
                f"outside the earlier updates' span (the book's float32 rule, `lls.subspace.DROP_TOL`); at that "
                f"rule it keeps {self.kept} of the first {self.k_max} float64 updates. At a float64 tolerance of "
                f"{self.float64_tol:.0e} it keeps {self.kept_float64} and the gap falls to "
                f"{self.prefix_gap_float64:.1e}: the dropped updates, not lost digits, make the gap.")


def summarize_lemma1(l1: results.Lemma1Result) -> KrylovSummary:
    """The residuals and the capture gap the claim and the prose quote."""
    return KrylovSummary(dim=l1.dim, k_max=l1.ks[-1], gd_residual=float(np.max(l1.gd.residual)),
                         adam_residual=float(np.max(l1.adam.residual)),
                         prefix_gap=float(np.max(np.abs(l1.gd.prefix - l1.gd.krylov))),
                         gd_closed_form_error=l1.gd_closed_form_error, kept=l1.gd.kept,
                         prefix_gap_float64=float(np.max(np.abs(l1.gd.prefix_float64 - l1.gd.krylov))),
                         kept_float64=l1.gd.kept_float64)


# --- Pushforward ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushforwardSummary:
    """The pushforward on ``model``'s block ``layer`` (``module``; ``dim`` parameters, ``theta_norm``
    = ||theta||): one-layer relative errors in float32 and float64; per step (``steps``, as a
    fraction of ||theta||) the relative error of ``J dtheta`` and the cosine; ``linear_up_to``
    the largest step whose error is below ``tol`` (log-interpolated; ``None`` if none is) and
    ``slope`` the log-log slope of the error on its rising branch (theory 1)."""

    model: str
    layer: int
    module: str
    dim: int
    theta_norm: float
    one_layer_float32: float
    one_layer_float64: float
    steps: np.ndarray
    rel_error: np.ndarray
    cosine: np.ndarray
    tol: float
    linear_up_to: float | None
    slope: float


def first_order_reach(x: np.ndarray, err: np.ndarray, tol: float) -> float | None:
    """The largest ``x`` whose ``err`` is below ``tol``, log-interpolated on the grid (``None`` if none is)."""
    below = np.nonzero(err < tol)[0]
    if below.size == 0 or below[-1] == len(x) - 1:
        return None if below.size == 0 else float(x[-1])
    j = below[-1]
    t = (math.log(tol) - math.log(err[j])) / (math.log(err[j + 1]) - math.log(err[j]))
    return float(math.exp(math.log(x[j]) + t * (math.log(x[j + 1]) - math.log(x[j]))))


def error_slope(x: np.ndarray, err: np.ndarray) -> float:
    """Log-log slope of ``err`` against ``x`` on its rising branch: past the smallest error, errors
    below :data:`PUSHFORWARD_FIT_MAX` (the minimum itself only if needed for two points); below
    the minimum rounding of the measured shift dominates. ``nan`` with fewer than two points."""
    rising = (np.arange(len(err)) > np.argmin(err)) & (err < PUSHFORWARD_FIT_MAX)
    fit = rising if rising.sum() >= 2 else rising | (np.arange(len(err)) == np.argmin(err))
    return float(np.polyfit(np.log(x[fit]), np.log(err[fit]), 1)[0]) if fit.sum() >= 2 else math.nan


def summarize_pushforward(cfg: Config, pf: results.PushforwardResult,
                          tol: float = PUSHFORWARD_TOL) -> PushforwardSummary:
    """Where the whole-model first-order prediction holds to ``tol``, and how its error scales."""
    x = np.asarray(pf.step_norms) / pf.theta_norm
    err = np.asarray(pf.rel_error)
    return PushforwardSummary(model=cfg.model, layer=pf.layer, module=pf.module, dim=pf.dim,
                              theta_norm=pf.theta_norm, one_layer_float32=pf.one_layer_float32,
                              one_layer_float64=pf.one_layer_float64, steps=x, rel_error=err, cosine=pf.cosine,
                              tol=tol, linear_up_to=first_order_reach(x, err, tol), slope=error_slope(x, err))


@dataclass(frozen=True)
class Summary:
    """Every number chapter 1 reports, one summary per section."""

    theorem1: Theorem1Summary
    f1f2: F1F2Summary
    density: DensitySummary
    krylov: KrylovSummary
    pushforward: PushforwardSummary


def extra_metrics(s: Summary) -> dict[str, float | None]:
    """The numbers ``metrics.json`` keeps beside the claims (names as before the refactor)."""
    return dict(
        e_n_exact=float(s.theorem1.e_n), sigma_star_closed_form=float(s.f1f2.sigma_star),
        sigma_star_measured=s.f1f2.sigma_star_measured, sigma_star_zeroth_order=float(s.f1f2.sigma_star_zeroth_order),
        grad_norm=s.f1f2.grad_norm, trace_hutchinson=s.f1f2.trace, trace_hutchinson_se=s.f1f2.trace_se,
        pushforward_one_layer_float32=s.pushforward.one_layer_float32,
        pushforward_one_layer_float64=s.pushforward.one_layer_float64, pushforward_slope=s.pushforward.slope,
        pushforward_linear_up_to=s.pushforward.linear_up_to, theorem1_chi2_p=s.theorem1.p_value,
        krylov_prefix_gap=s.krylov.prefix_gap)

