"""The F1/F2 diagnostic: where a model is locally linear, from antithetic pairs of a search.

With antithetic pairs ``±eps_i`` at a scale sigma, the odd part ``F1 = [L(+eps) - L(-eps)]/2 ≈
g^T eps`` carries the first-order signal and the even part ``F2 = [L(+eps) + L(-eps)]/2 - L(theta0)
≈ eps^T H eps / 2`` the curvature. The local-linear regime is the sigma range where the spread of
F1 dominates the mean of F2 (see ``PAPER.md``). The searches are :func:`lls.search.best_of_n`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from lls.noise import NoiseTable
from lls.params import ParamSpace
from lls.search import SearchResult, best_of_n, perturbation


@dataclass
class F1F2Result:
    """The F1/F2 diagnostic over a sigma grid.

    ``sigmas`` (S,); ``f1`` and ``f2`` (S, P) with P antithetic pairs per sigma; ``dim`` the
    searched dimension; ``runs`` the :class:`SearchResult` of each sigma (its best-of-P curves).
    In the local-linear regime F1 ~ N(0, sigma^2 ||g||^2) and mean F2 ~ sigma^2 tr(H) / 2
    (tr(U^T H U) in a subspace).
    """

    sigmas: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    base: float
    dim: int
    runs: list[SearchResult] = field(default_factory=list)

    @property
    def f1_spread(self) -> np.ndarray:
        """Standard deviation of F1 per sigma, (S,)."""
        return self.f1.std(axis=1, ddof=1)

    @property
    def f2_mean(self) -> np.ndarray:
        """Mean of F2 per sigma, (S,)."""
        return self.f2.mean(axis=1)

    @property
    def f2_sem(self) -> np.ndarray:
        """Standard error of the mean of F2 per sigma, (S,)."""
        return self.f2.std(axis=1, ddof=1) / np.sqrt(self.f2.shape[1])

    @property
    def odd_deviation(self) -> np.ndarray:
        """(S,) relative change of F1/sigma from the smallest sigma, ``||F1_s/s - F1_0/s_0|| / ||F1_0/s_0||``.

        The same eps_i are used at every sigma, so this is free of sampling noise: near 0 where the
        odd part is linear in sigma, large where third-order terms have grown into F1.
        """
        scaled = self.f1 / self.sigmas[:, None]
        i0 = int(np.argmin(self.sigmas))
        return np.linalg.norm(scaled - scaled[i0], axis=1) / np.linalg.norm(scaled[i0])

    def linear(self, margin: float = 1.0, odd_tol: float | None = None) -> np.ndarray:
        """Boolean (S,): sigmas where the F1 spread exceeds ``margin`` times ``|mean F2|`` and, if
        ``odd_tol`` is given, :attr:`odd_deviation` is at most ``odd_tol``."""
        ok = self.f1_spread > margin * np.abs(self.f2_mean)
        return ok if odd_tol is None else ok & (self.odd_deviation <= odd_tol)

    @property
    def grad_norm(self) -> np.ndarray:
        """Zeroth-order estimate of ||g|| (||U^T g|| in a subspace) per sigma: F1 spread / sigma."""
        return self.f1_spread / self.sigmas

    @property
    def trace(self) -> np.ndarray:
        """Zeroth-order estimate of tr(H) (tr(U^T H U) in a subspace) per sigma: 2 mean F2 / sigma^2."""
        return 2 * self.f2_mean / self.sigmas**2

    def sigma_star(self, n: int) -> float:
        """:func:`lls.theory.sigma_star` from the estimates at the smallest sigma (best-of-n optimum)."""
        from lls.theory import sigma_star

        return sigma_star(float(self.grad_norm[0]), float(self.trace[0]), n)


def f1_f2(space: ParamSpace, eval_loss: Callable[[], float], sigmas: Sequence[float], n_pairs: int,
          seed: int, *, basis: torch.Tensor | None = None, batch_size: int = 1,
          progress: bool = True, noise: NoiseTable | None = None) -> F1F2Result:
    """The F1/F2 diagnostic: ``n_pairs`` antithetic pairs at each sigma (the same eps_i for all sigmas).

    Returns per-sigma odd parts F1 = [L(+eps) - L(-eps)]/2 and even parts
    F2 = [L(+eps) + L(-eps)]/2 - L(theta0); see :class:`F1F2Result`. ``noise``: the noise source,
    as in :class:`Perturber` (default: torch's generator).
    """
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2 to estimate a spread, got {n_pairs}")
    runs = [best_of_n(space, eval_loss, n_pairs, s, seed, basis=basis, batch_size=batch_size,
                      progress=progress, noise=noise) for s in sigmas]
    return F1F2Result(sigmas=np.asarray(sigmas, dtype=float), f1=np.stack([r.f1 for r in runs]),
                      f2=np.stack([r.f2 for r in runs]), base=runs[0].base, dim=runs[0].dim,
                      runs=runs)


def local_linear(run: SearchResult, margin: float = 1.0) -> bool:
    """The diagnostic for one antithetic search: its F1 spread exceeds ``margin`` times its ``|mean F2|``
    (no ratio to a prediction enters)."""
    return bool(run.f1.std(ddof=1) > margin * abs(run.f2.mean()))


def projections(space: ParamSpace, grad: torch.Tensor, seed: int, n: int, *,
                basis: torch.Tensor | None = None, noise: NoiseTable | None = None) -> np.ndarray:
    """``g^T eps_i`` at unit sigma for the first ``n`` perturbations of ``seed``: the exact first-order
    term of the very directions a search with that seed draws (F1 / sigma tends to it as sigma -> 0).

    ``grad`` (D,) the autograd gradient of the space; returns (n,) float64.
    """
    g = grad.double()
    return np.array([float(g @ perturbation(space, seed, i, 1.0, basis, noise).double()) for i in range(n)])


def spread_range(pairs: int, level: float = 0.95) -> tuple[float, float]:
    """Where the sample standard deviation (ddof=1) of ``pairs`` Gaussian draws falls, as a multiple of
    the true one, with probability ``level``: ``sqrt(chi2_{P-1} quantiles / (P-1))``."""
    if pairs < 2:
        raise ValueError(f"a spread needs at least 2 pairs, got {pairs}")
    q = stats.chi2.ppf([(1 - level) / 2, (1 + level) / 2], pairs - 1) / (pairs - 1)
    return float(np.sqrt(q[0])), float(np.sqrt(q[1]))
