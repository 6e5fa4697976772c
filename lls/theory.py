"""Closed forms of the paper's theory (reconstructed) and the small problems that check them.

* Theorem 1 (best-of-N, Gaussian local-linear): :func:`expected_max_normal` (``e_N``, exact by
  numerical integration), :func:`first_order_gain`, :func:`second_order_mean`,
  :func:`sigma_star`, :func:`crossover_dim`, and :func:`sample_quadratic`, a Monte-Carlo of
  Gaussian perturbations of a quadratic loss in any dimension ``D`` that holds the gradient (one
  ``D``-vector) and at most :data:`CHUNK` perturbation numbers at a time (no ``N x D`` matrix,
  not even one ``D``-vector per candidate).
* Theorem 1 under low-rank noise: :mod:`lls.lowrank_law`.
* Proposition 1 (density, not mass): :class:`DensityProblem`, a gradient spread over coordinate
  blocks of chosen sizes and signal masses, and :func:`subspace_search_gains`.
* Lemma 1 (Krylov recovery): :class:`KrylovToy`, a quadratic with a controlled spectrum whose
  gradient sits mostly on a few eigendirections, and :func:`optimizer_updates`, the recorded
  updates of a real :mod:`torch.optim` optimizer on it.

Notation as in the book: ``g`` the gradient (norm ``||g||``), ``H`` the Hessian, ``sigma`` the
per-coordinate standard deviation of a perturbation, ``N`` the number of candidates. Gains are
loss *decreases* (positive = better).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate, special

CHUNK = 1 << 20
"""Numbers drawn at a time by the Monte-Carlo routines (4 MiB of float32)."""


# --- Theorem 1 -----------------------------------------------------------------------------------


def _max_normal_moment(n: int, power: int) -> float:
    """``E[M^power]`` for ``M`` the max of ``n`` iid standard normals, by quadrature.

    The density of ``M`` is ``n phi(x) Phi(x)^(n-1)``; it is evaluated in log space
    (``log_ndtr``), so it stays accurate for large ``n``; the integrand is negligible outside
    ``[-12, 12]`` for any ``n <= 10^12``.
    """
    def integrand(x):
        return x**power * math.exp(math.log(n) + special.log_ndtr(x) * (n - 1) - x * x / 2) / math.sqrt(2 * math.pi)

    mode = math.sqrt(2 * math.log(n)) if n > 1 else 0.0
    value, _ = integrate.quad(integrand, -12.0, 12.0, points=[mode], limit=200, epsabs=1e-13, epsrel=1e-12)
    return value


@functools.cache
def expected_max_normal(n: int) -> float:
    """``e_N``: the expected maximum of ``n`` iid standard normals (exact, by quadrature).

    ``e_1 = 0``, ``e_2 = 1/sqrt(pi)``; grows like ``sqrt(2 ln N)`` (:func:`asymptotic_max_normal`),
    which overestimates it at every practical ``N``.
    """
    if n < 1:
        raise ValueError(f"N must be >= 1, got {n}")
    return 0.0 if n == 1 else _max_normal_moment(int(n), 1)


@functools.cache
def sd_max_normal(n: int) -> float:
    """Standard deviation of the maximum of ``n`` iid standard normals (by quadrature)."""
    if n < 1:
        raise ValueError(f"N must be >= 1, got {n}")
    return math.sqrt(max(_max_normal_moment(int(n), 2) - expected_max_normal(n) ** 2, 0.0))


def asymptotic_max_normal(n: int | np.ndarray) -> np.ndarray:
    """The large-``N`` approximation ``sqrt(2 ln N)`` of ``e_N``."""
    return np.sqrt(2 * np.log(np.asarray(n, dtype=float)))


def first_order_gain(sigma: float, grad_norm: float, n: int) -> float:
    """Theorem 1: expected best-of-``n`` first-order gain ``sigma ||g|| e_N`` (independent of D)."""
    return sigma * grad_norm * expected_max_normal(n)


def second_order_mean(sigma: float, trace_h: float) -> float:
    """Mean second-order term ``E[eps^T H eps / 2] = sigma^2 tr(H) / 2``, shared by all candidates."""
    return 0.5 * sigma**2 * trace_h


def sigma_star(grad_norm: float, trace_h: float, n: int) -> float:
    """The sigma maximising ``sigma ||g|| e_N - sigma^2 tr(H) / 2``: ``||g|| e_N / tr H``."""
    if trace_h <= 0:
        return math.inf
    return grad_norm * expected_max_normal(n) / trace_h


def crossover_dim(sigma: float, grad_norm: float, n: int, curvature: float) -> float:
    """The dimension where ``sigma^2 tr(H) / 2`` (``tr H = curvature * D``) equals the first-order gain."""
    return 2 * grad_norm * expected_max_normal(n) / (sigma * curvature)


def sample_quadratic(dim: int, n_draws: int, sigma: float, grad_norm: float, curvature: float,
                     generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo of ``n_draws`` Gaussian perturbations of a quadratic loss in dimension ``dim``.

    The loss is ``L(theta0 + eps) - L(theta0) = g^T eps + curvature * ||eps||^2 / 2`` (Hessian
    ``curvature * I``, ``tr H = curvature * dim``), with ``g`` a fixed random direction of norm
    ``grad_norm`` and ``eps ~ N(0, sigma^2 I)``. Everything is drawn ``CHUNK`` numbers at a time:
    several candidates per chunk when ``dim`` is small, one candidate in several chunks when it
    is large, so memory stays at ``dim + O(CHUNK)`` numbers. Returns ``(first, second)``, each
    ``(n_draws,)`` float64: ``g^T eps`` and ``eps^T H eps / 2`` of every candidate.
    """
    g_gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    g_pieces = _chunked_randn(dim, g_gen)
    g_norm = math.sqrt(sum(float(p.double().pow(2).sum()) for p in g_pieces))
    first, second = np.zeros(n_draws), np.zeros(n_draws)
    if dim <= CHUNK:
        g = g_pieces[0] * (grad_norm / g_norm)
        per = max(1, CHUNK // dim)
        for start in range(0, n_draws, per):
            rows = min(per, n_draws - start)
            eps = torch.randn(rows, dim, generator=generator) * sigma
            first[start:start + rows] = (eps @ g).double().numpy()
            second[start:start + rows] = (0.5 * curvature * eps.double().pow(2).sum(1)).numpy()
        return first, second
    for i in range(n_draws):
        for piece in g_pieces:
            eps = torch.randn(piece.shape[0], generator=generator) * sigma
            first[i] += float(eps.double() @ piece.double()) * grad_norm / g_norm
            second[i] += 0.5 * curvature * float(eps.double().pow(2).sum())
    return first, second


def _chunked_randn(dim: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A standard normal vector of length ``dim`` as a list of pieces of at most CHUNK numbers."""
    return [torch.randn(min(CHUNK, dim - s), generator=generator) for s in range(0, dim, CHUNK)]


def simulate_max_normal(ns: Sequence[int], n_trials: int, generator: np.random.Generator) -> np.ndarray:
    """Brute-force check of ``e_N``: mean over ``n_trials`` of the max of ``N`` normals, per N."""
    return np.array([generator.standard_normal((n_trials, n)).max(axis=1).mean() for n in ns])


# --- Proposition 1 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DensityProblem:
    """A gradient ``g`` (D,) of unit norm split over disjoint coordinate blocks.

    Block ``j`` has ``sizes[j]`` coordinates and holds the share ``masses[j]`` of ``||g||^2``
    (spread evenly over its coordinates, with random signs); the remaining coordinates hold
    the rest. A *subspace* is a union of blocks, named in ``subspaces``: its mass is
    ``||U^T g||^2``, its dimension ``k``, its density ``mass / k``.
    """

    dim: int
    sizes: tuple[int, ...]
    masses: tuple[float, ...]
    subspaces: dict[str, tuple[int, ...]]

    def __post_init__(self):
        if sum(self.sizes) > self.dim or sum(self.masses) > 1 + 1e-12:
            raise ValueError("blocks must fit in D coordinates and hold at most all of ||g||^2")

    def mass(self, name: str) -> float:
        """``||U^T g||^2`` of a named subspace (a union of blocks; ``"full"`` is the whole space)."""
        return 1.0 if name == "full" else sum(self.masses[j] for j in self.subspaces[name])

    def size(self, name: str) -> int:
        """Dimension ``k`` of a named subspace."""
        return self.dim if name == "full" else sum(self.sizes[j] for j in self.subspaces[name])

    def density(self, name: str) -> float:
        """Signal density ``||U^T g||^2 / k`` of a named subspace."""
        return self.mass(name) / self.size(name)

    def names(self) -> list[str]:
        """The named subspaces and ``"full"``."""
        return [*self.subspaces, "full"]

    def gradient(self, generator: torch.Generator) -> torch.Tensor:
        """The gradient ``g`` (D,) float64 with the stated block masses and ``||g|| = 1``."""
        rest = self.dim - sum(self.sizes)
        masses = [*self.masses, 1.0 - sum(self.masses)]
        sizes = [*self.sizes, rest]
        pieces = [torch.full((k,), math.sqrt(m / k), dtype=torch.float64) for k, m in zip(sizes, masses, strict=True) if k]
        signs = torch.randint(0, 2, (self.dim,), generator=generator).double() * 2 - 1
        return torch.cat(pieces) * signs

    def coordinates(self, name: str) -> torch.Tensor:
        """Indices (long) of the coordinates spanning a named subspace."""
        if name == "full":
            return torch.arange(self.dim)
        starts = np.cumsum([0, *self.sizes])
        return torch.cat([torch.arange(starts[j], starts[j] + self.sizes[j]) for j in self.subspaces[name]])


def subspace_search_gains(problem: DensityProblem, radius: float, n: int, n_trials: int,
                          generator: torch.Generator) -> dict[str, np.ndarray]:
    """Measured best-of-``n`` first-order gains of random search in each named subspace.

    In a subspace of dimension ``k`` the perturbation is ``eps = U z``, ``z ~ N(0, (r^2/k) I_k)``,
    so ``E||eps||^2 = r^2`` in every subspace; the gain of a trial is ``max_i (-g^T eps_i)``.
    Returns ``{name: (n_trials,) gains}``. Proposition 1 predicts a mean of
    ``r sqrt(density) e_N``.
    """
    g = problem.gradient(generator)
    out = {}
    for name in problem.names():
        sub = g[problem.coordinates(name)]
        k = sub.shape[0]
        gains = np.empty(n_trials)
        for t in range(n_trials):
            z = torch.randn(n, k, generator=generator, dtype=torch.float64) * (radius / math.sqrt(k))
            gains[t] = float((-(z @ sub)).max())
        out[name] = gains
    return out


def predicted_subspace_gain(problem: DensityProblem, name: str, radius: float, n: int) -> float:
    """Proposition 1: ``r sqrt(||U^T g||^2 / k) e_N`` for a named subspace."""
    return radius * math.sqrt(problem.density(name)) * expected_max_normal(n)


# --- Lemma 1 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KrylovToy:
    """A quadratic ``L(theta) = g^T theta + theta^T H theta / 2`` in R^D with a chosen spectrum.

    ``H = Q diag(eigvals) Q^T`` with a random orthogonal ``Q``; the gradient at ``theta = 0`` is
    ``g = Q c``, with the share ``focus`` of ``||g||^2`` on the eigendirections ``focus_dirs``
    and the rest spread over all of them. Float64 throughout (the residual checks are at
    machine precision). The matrices are explicit because ``D`` is small; the book's methods
    only ever see :meth:`loss` and HVPs.
    """

    H: torch.Tensor
    g: torch.Tensor
    eigvals: torch.Tensor

    @staticmethod
    def build(dim: int, focus_dirs: Sequence[int], focus: float, eig_low: float, eig_high: float,
              generator: torch.Generator) -> KrylovToy:
        """Eigenvalues log-spaced in ``[eig_low, eig_high]``; ``g`` of norm 1 as described above."""
        eigvals = torch.logspace(math.log10(eig_high), math.log10(eig_low), dim, dtype=torch.float64)
        Q = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))[0]
        spread = torch.randn(dim, generator=generator, dtype=torch.float64)
        spread[list(focus_dirs)] = 0
        peak = torch.zeros(dim, dtype=torch.float64)
        peak[list(focus_dirs)] = 1.0
        c = math.sqrt(focus) * peak / peak.norm() + math.sqrt(1 - focus) * spread / spread.norm()
        return KrylovToy(H=Q @ torch.diag(eigvals) @ Q.T, g=Q @ c, eigvals=eigvals)

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """``g^T theta + theta^T H theta / 2`` (a scalar tensor)."""
        return self.g @ theta + 0.5 * theta @ (self.H @ theta)

    def gd_updates(self, lr: float, steps: int) -> torch.Tensor:
        """Closed form of Lemma 1: ``u_s = -lr (I - lr H)^s g`` for s < steps, rows (steps, D)."""
        rows, r = [], self.g.clone()
        for _ in range(steps):
            rows.append(-lr * r)
            r = r - lr * (self.H @ r)
        return torch.stack(rows)


def optimizer_updates(loss_fn, dim: int, optimizer: str, lr: float, steps: int) -> torch.Tensor:
    """Updates ``theta_{t+1} - theta_t`` (steps, D) of a real optimizer run from ``theta = 0``.

    ``optimizer`` is ``"sgd"`` (plain gradient descent) or ``"adam"`` (``torch.optim.Adam``
    with its defaults), ``loss_fn`` maps a float64 ``(D,)`` tensor to a scalar.
    """
    theta = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]([theta], lr=lr)
    rows = []
    for _ in range(steps):
        before = theta.detach().clone()
        opt.zero_grad()
        loss_fn(theta).backward()
        opt.step()
        rows.append(theta.detach() - before)
    return torch.stack(rows)


def krylov_residuals(basis: torch.Tensor, updates: torch.Tensor) -> np.ndarray:
    """``||(I - P_j) u_s|| / ||u_s||`` for update ``s`` against the first ``s + 1`` basis columns.

    Lemma 1 says update ``s`` lies in ``K_{s+1}(H, g)``; returns one residual per update that
    the basis reaches, ``(min(steps, k),)``.
    """
    out = []
    for s in range(min(updates.shape[0], basis.shape[1])):
        U = basis[:, : s + 1]
        u = updates[s]
        out.append(float((u - U @ (U.T @ u)).norm() / u.norm()))
    return np.asarray(out)
