"""Theorem 1 under low-rank noise on chapter 4's synthetic model (not cached; :mod:`.protocol` caches
what calls it).

Two experiments at chapter 2's theta_f, both restricted to the model's weight matrices (the only
parameters :mod:`lls.lowrank` perturbs):

* :func:`law_check`: Monte-Carlo draws of the first-order signal ``g^T eps`` under rank-``r`` noise,
  from explicit factors ``A``, ``B`` and the autograd gradient of each matrix, to set against the law
  of :mod:`lls.lowrank_law` (variance, excess kurtosis, ``e~_N``) over ``r``;
* :func:`noise_searches`: best-of-N searches of the task-A loss with low-rank noise of each rank and
  with Gaussian noise of the same per-coordinate sigma on the same matrices (the same expected
  total norm ``sigma^2 D_matrices``), one search per seed and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lls import lowrank, theory
from lls.lowrank_law import expected_max_lowrank, lowrank_excess_kurtosis, simulate_lowrank_signal
from lls.params import ParamSpace, batch_gradients
from lls.search import Objective, SearchResult, best_of_n
from lls.seeds import generator


def ranks_up_to(max_rank: int) -> list[int]:
    """The ranks compared: 1, 4, 16, ... (powers of 4) up to ``max_rank``."""
    return [4**j for j in range(int(np.floor(np.log(max_rank) / np.log(4) + 1e-9)) + 1)]


LAW_BATCHES = 16
"""Batches the Monte-Carlo draws are cut into for the intervals of their expected maxima."""


def law_ns(draws: int) -> list[int]:
    """The N of the expected maxima checked: 2, 8, 32, ... up to a batch of the draws."""
    return [2 * 4**j for j in range(16) if 2 * 4**j <= max(2, draws // LAW_BATCHES)]


def matrix_space(space: ParamSpace) -> ParamSpace:
    """The space of ``space``'s weight matrices only (2-D parameters; biases and norm gains left out)."""
    return ParamSpace(space.model, [n for n, p in zip(space.names, space.params(), strict=True) if p.ndim == 2])


def matrix_gradients(space: ParamSpace, objective: Objective) -> list[torch.Tensor]:
    """The autograd gradient of the objective, one (m, n) tensor per matrix of ``space`` (float64)."""
    flat = batch_gradients(space, objective.batch_loss, [objective.batch])[0].double()
    return [piece.view(shape) for piece, shape in zip(flat.split(space.sizes), space.shapes, strict=True)]


@dataclass
class LawCheck:
    """Monte-Carlo draws of the standardised signal ``Y = g^T eps / (sigma ||G||_F)`` against its law.

    ``draws`` (R, M): M draws per rank in ``ranks``; ``singular_values`` the pooled singular values of
    the gradient's matrices; ``ns`` the N of the expected maxima; ``predicted_emax`` (R, len(ns))
    :func:`lls.lowrank_law.expected_max_lowrank`; ``gaussian_emax`` (len(ns),) ``e_N``;
    ``predicted_kurtosis`` (R,) :func:`lls.lowrank_law.lowrank_excess_kurtosis`.
    """

    ranks: list[int]
    grad_norm: float
    singular_values: np.ndarray
    draws: np.ndarray
    ns: list[int]
    predicted_emax: np.ndarray
    gaussian_emax: np.ndarray
    predicted_kurtosis: np.ndarray

    @property
    def effective_rank(self) -> float:
        """``r_eff = (sum s^2)^2 / sum s^4``, the participation ratio of the pooled spectrum."""
        s2 = self.singular_values**2
        return float(s2.sum() ** 2 / (s2**2).sum())


def law_check(grads: list[torch.Tensor], ranks: list[int], draws: int, ns: list[int], seed: int) -> LawCheck:
    """``draws`` brute-force draws of ``sum_j tr(G_j^T A_j B_j^T) / sqrt(r)`` per rank (one generator per
    rank, named ``(seed, "low-rank law", r)``), divided by ``||G||_F``, with the law's predictions."""
    norm = float(torch.sqrt(sum((g**2).sum() for g in grads)))
    values = np.concatenate([torch.linalg.svdvals(g).numpy() for g in grads])
    out = np.zeros((len(ranks), draws))
    for k, r in enumerate(ranks):
        gen = generator(seed, "low-rank law", r)
        out[k] = sum(simulate_lowrank_signal(g, r, draws, gen) for g in grads) / norm
    return LawCheck(ranks=list(ranks), grad_norm=norm, singular_values=values, draws=out, ns=list(ns),
                    predicted_emax=np.stack([expected_max_lowrank(ns, values, r) for r in ranks]),
                    gaussian_emax=np.array([theory.expected_max_normal(n) for n in ns]),
                    predicted_kurtosis=np.array([lowrank_excess_kurtosis(values, r) for r in ranks]))


@dataclass
class NoiseSearches:
    """Best-of-``n`` searches at one sigma on the matrices: ``gaussian[s]`` and ``lowrank[k][s]`` for
    seed ``seeds[s]`` and rank ``ranks[k]``; ``grad_norm`` ``||G||_F`` over the matrices; ``dim`` their
    number of coordinates."""

    sigma: float
    dim: int
    grad_norm: float
    ranks: list[int]
    seeds: list[int]
    gaussian: list[SearchResult]
    lowrank: list[list[SearchResult]]


def noise_searches(space: ParamSpace, objective: Objective, sigma: float, n: int, ranks: list[int],
                   seeds: list[int], grad_norm: float, *, vmap_batch: int = 1,
                   population: int | None = None) -> NoiseSearches:
    """For each seed: ``n`` antithetic pairs of Gaussian noise (:func:`lls.search.best_of_n`, ``vmap_batch``
    per batched pass) and of low-rank noise of each rank (:func:`lls.lowrank.best_of_n`, ``population``
    candidates per pass), all at per-coordinate ``sigma`` on ``space`` (the matrices)."""
    gaussian = [best_of_n(space, objective, n, sigma, seed=s, batch_size=vmap_batch, progress=False) for s in seeds]
    low = [[lowrank.best_of_n(space, objective, n, sigma, seed=s, rank=r, batch_size=population, progress=False)
            for s in seeds] for r in ranks]
    return NoiseSearches(sigma=float(sigma), dim=space.dim, grad_norm=float(grad_norm), ranks=list(ranks),
                         seeds=list(seeds), gaussian=gaussian, lowrank=low)
