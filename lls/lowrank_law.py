"""Theorem 1 under low-rank noise: the law of the first-order signal ``g^T eps``.

For the low-rank perturbations of :mod:`lls.lowrank`, ``eps = sigma vec(A B^T) / sqrt(r)`` per
weight matrix with gradient ``G`` (singular values ``s``): the signal keeps the Gaussian variance
``sigma^2 ||G||_F^2`` but has excess kurtosis ``6 sum s^4 / (r (sum s^2)^2)``
(:func:`lowrank_excess_kurtosis`). Its ``e_N`` (:func:`expected_max_lowrank`, by Fourier
inversion of :func:`lowrank_signal_cf`) is below the Gaussian one for small N and above it for
large N; :func:`simulate_lowrank_signal` checks it by drawing A and B.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy import integrate

from lls.theory import CHUNK


def _unit_weights(singular_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``s_l^2 / sum s^2`` of the nonzero singular values (a 1-D float array)."""
    s2 = np.square(np.asarray(singular_values, dtype=float).reshape(-1))
    s2 = s2[s2 > 0]
    if s2.size == 0:
        raise ValueError("the gradient has no nonzero singular value")
    return s2 / s2.sum()


def lowrank_excess_kurtosis(singular_values: Sequence[float] | np.ndarray, rank: int) -> float:
    """Excess kurtosis ``6 sum s^4 / (r (sum s^2)^2)`` of ``g^T eps`` under rank-``r`` low-rank noise
    (0 for Gaussian noise); ``singular_values`` of the gradient's matrix (or of all its matrices)."""
    w = _unit_weights(singular_values)
    return float(6 * np.sum(w**2) / rank)


def _cf(t: float | np.ndarray, w: np.ndarray, rank: int) -> np.ndarray:
    return np.exp(-0.5 * rank * np.log1p(np.multiply.outer(np.square(t) / rank, w)).sum(-1))


def lowrank_signal_cf(t: float | np.ndarray, singular_values: Sequence[float] | np.ndarray,
                      rank: int) -> np.ndarray:
    """Characteristic function ``prod_l (1 + w_l t^2 / r)^(-r/2)``, ``w_l = s_l^2 / sum s^2``, of the
    unit-variance signal ``Y = g^T eps / (sigma ||G||_F)`` under rank-``r`` low-rank noise.

    **Derivation** (Theorem 1 under :mod:`lls.lowrank`'s noise). One matrix with gradient ``G``
    ``(m, n)``, singular values ``s_1 >= ... >= s_q``, perturbed by ``eps = sigma vec(A B^T) /
    sqrt(r)``, ``A`` ``(m, r)`` and ``B`` ``(n, r)`` iid ``N(0, 1)``. The first-order signal is
    ``S = g^T eps = sigma / sqrt(r) tr(G^T A B^T) = sigma / sqrt(r) sum_k a_k^T G b_k`` over the
    columns ``a_k``, ``b_k``. With ``G = U diag(s) V^T``, ``U^T a_k`` and ``V^T b_k`` are again iid
    standard normal, so ``a_k^T G b_k = sum_l s_l u_kl v_kl``.

    * Mean 0, variance ``sigma^2 / r sum_k sum_l s_l^2 = sigma^2 ||G||_F^2``: the scale of Gaussian
      noise of per-coordinate ``sigma``, so Theorem 1's ``sigma ||g||`` is unchanged.
    * Given ``B``, ``S`` is linear in the Gaussian ``A``: ``S | B ~ N(0, sigma^2 Q)`` with
      ``Q = (1/r) sum_k ||G b_k||^2 = sum_l s_l^2 chi2_{r,l} / r`` (independent chi-squares with
      ``r`` degrees of freedom). So ``S = sigma sqrt(Q) Z`` is a Gaussian scale mixture, ``E[Q] =
      ||G||_F^2``, with characteristic function ``E exp(i t S / sigma) = E exp(-t^2 Q / 2) =
      prod_l (1 + s_l^2 t^2 / r)^(-r/2)``. Rank ``r`` is thus the same law as rank 1 on a gradient
      whose every singular value is repeated ``r`` times (and scaled by ``1 / sqrt(r)``).
    * Cumulants add over the independent terms: ``kappa_4 = 6 sum_l s_l^4 / r``, so the excess
      kurtosis is ``6 sum s^4 / (r (sum s^2)^2) = 6 / (r r_eff)``, ``r_eff = (sum s^2)^2 / sum s^4``
      in ``[1, rank G]`` (the participation ratio of the spectrum).
    * Several matrices have independent factors: ``S`` is the sum of their signals, its
      characteristic function the product, so all of this holds with the singular values of all
      the gradient's matrices pooled.
    * Limits: ``r r_eff -> infinity`` gives ``Q -> ||G||_F^2``, a Gaussian ``S``, Theorem 1 as it
      is. ``r = 1`` with a rank-1 ``G`` gives ``S / (sigma s_1) = u v``, the product of two
      normals (density ``K_0(|x|) / pi``, excess kurtosis 6).
    * ``e~_N = E[max of N iid Y]`` for ``Y = S / (sigma ||G||_F)``. For ``N = 2``, ``e~_2 =
      E|Y_1 - Y_2| / 2 = E sqrt((Q_1 + Q_2) / 2) / (||G||_F sqrt(pi)) <= 1 / sqrt(pi) = e_2``
      (Jensen; equality only for a constant ``Q``): a few low-rank candidates gain less than
      Gaussian ones (``e~_2 = 1/2`` exactly for ``r = 1`` and rank-1 ``G``: ``Y_1 - Y_2`` is then
      Laplace). The tails are exponential, not Gaussian: the characteristic function of ``Y`` is
      singular at ``t = ± i sqrt(r) ||G||_F / s_1``, so ``P(Y > y)`` decays like ``exp(-y sqrt(r)
      ||G||_F / s_1)`` up to a power of ``y``, and for large ``N`` ``e~_N`` grows like ``s_1 /
      (sqrt(r) ||G||_F) ln N`` instead of ``sqrt(2 ln N)`` and overtakes ``e_N``. Where it does
      depends on ``r`` and on how concentrated the spectrum is (:func:`expected_max_lowrank`).
    """
    return _cf(np.asarray(t, dtype=float), _unit_weights(singular_values), rank)


def lowrank_signal_sf(y: float, singular_values: Sequence[float] | np.ndarray, rank: int) -> float:
    """``P(Y > y)`` for the unit-variance signal ``Y`` of :func:`lowrank_signal_cf` (Gil-Pelaez).

    ``P(Y > y) = 1/2 - (1/pi) int_0^inf sin(t y) phi(t) / t dt``, after ``u = t y``: a regular
    integral over ``[0, pi]`` and a Fourier integral (QUADPACK's QAWF) beyond; absolute error about
    1e-13 (so the relative error grows in the far tail, below about 1e-9).
    """
    return _sf(float(y), _unit_weights(singular_values), rank)


def _sf(y: float, w: np.ndarray, rank: int) -> float:
    """:func:`lowrank_signal_sf` for the weights ``w = s^2 / sum s^2``."""
    if y < 0:
        return 1.0 - _sf(-y, w, rank)
    if y == 0:
        return 0.5

    def phi(u):
        return _cf(u / y, w, rank)

    with warnings.catch_warnings():  # QAWF warns when a cycle's contribution is below epsabs
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        head, _ = integrate.quad(lambda u: np.sinc(u / math.pi) * phi(u), 0.0, math.pi,
                                 epsabs=1e-14, epsrel=1e-12, limit=200)
        tail, _ = integrate.quad(lambda u: phi(u) / u, math.pi, np.inf, weight="sin", wvar=1.0,
                                 epsabs=1e-13, limlst=100)
    return float(min(max(0.5 - (head + tail) / math.pi, 0.0), 0.5))


def expected_max_lowrank(ns: Sequence[int], singular_values: Sequence[float] | np.ndarray,
                         rank: int) -> np.ndarray:
    """``e~_N``: expected maximum of ``N`` iid unit-variance low-rank signals ``Y``, for each N in ``ns``.

    The best-of-N first-order gain under rank-``r`` low-rank noise is ``sigma ||G||_F e~_N`` (the
    Gaussian ``e_N`` of :func:`expected_max_normal` in the limit ``r r_eff -> infinity``). By
    symmetry of ``Y``, ``e~_N = int_0^inf [1 - (1 - P(Y > y))^N - P(Y > y)^N] dy``, integrated
    adaptively (one pass for all ``ns``) with :func:`lowrank_signal_sf` up to the ``y`` where the
    rest is below 1e-10; absolute error about 1e-7 for ``N <= 10^5``. Returns ``(len(ns),)``.
    """
    ns = np.asarray(ns, dtype=float)
    if np.any(ns < 1):
        raise ValueError(f"N must be >= 1, got {ns.tolist()}")
    w = _unit_weights(singular_values)
    decay = math.sqrt(w.max() / rank)  # 1 / rate of the exponential tail, in units of the sd
    top = 1.0
    while True:
        sf = _sf(top, w, rank)
        if ns.max() * sf * decay < 1e-10 or sf < 1e-13:
            break
        top += max(1.0, decay)

    def integrand(y):
        sf = _sf(y, w, rank)
        return 1.0 - (1.0 - sf) ** ns - sf**ns

    value, _ = integrate.quad_vec(integrand, 0.0, top, epsabs=1e-9, epsrel=1e-8, limit=400)
    return np.where(ns == 1, 0.0, value)


def simulate_lowrank_signal(grad: torch.Tensor, rank: int, n_draws: int, generator: torch.Generator) -> np.ndarray:
    """Brute-force draws of ``tr(G^T A B^T) / sqrt(r)`` (``g^T eps`` at ``sigma = 1``) for a gradient
    ``grad`` ``(m, n)``, with explicit ``A`` ``(m, r)`` and ``B`` ``(n, r)``, :data:`lls.theory.CHUNK` numbers at
    a time. Returns ``(n_draws,)`` float64."""
    g = grad.double()
    m, n = g.shape
    per = max(1, CHUNK // ((m + n) * rank))
    out = np.empty(n_draws)
    for start in range(0, n_draws, per):
        rows = min(per, n_draws - start)
        a = torch.randn(rows, m, rank, generator=generator, dtype=torch.float64)
        b = torch.randn(rows, n, rank, generator=generator, dtype=torch.float64)
        out[start:start + rows] = ((g @ b) * a).sum((1, 2)).numpy() / math.sqrt(rank)
    return out
