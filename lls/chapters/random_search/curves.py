"""Chapter 4's search-curve plumbing (not cached; :mod:`.protocol` caches what calls it): the
largest local-linear sigma, the N read off a curve, Hutchinson's tr H, and :class:`Curves`, the
best-of-N curves of one space over a sigma grid with the quantities Theorem 1 needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lls.chapters.random_search.config import ODD_TOL
from lls.curvature import hessian_operator, hutchinson_trace
from lls.f1f2 import F1F2Result, f1_f2, projections
from lls.params import ParamSpace
from lls.search import Objective, SearchResult, best_of_n
from lls.seeds import derive, generator


def linear_sigma(diag: F1F2Result) -> float:
    """The largest grid sigma in the local-linear regime (F1 spread > |mean F2| and F1/sigma within
    :data:`ODD_TOL` of its small-sigma value); else the smallest sigma."""
    inside = diag.sigmas[diag.linear(odd_tol=ODD_TOL)]
    return float(inside.max()) if inside.size else float(diag.sigmas.min())


def claim_n(n: int) -> int:
    """The N at which a best-of-N curve enters the C5 ratio: N/4 of the N evaluated (well estimated), >= 2."""
    return max(2, n // 4)


def trace_estimate(space: ParamSpace, objective: Objective, n: int, seed: int, *stream: str) -> tuple[float, float]:
    """Hutchinson estimate of tr H with ``n`` probes from the named stream ``(seed, *stream)``, drawn on
    the model's device: (estimate, standard error)."""
    closure = space.loss_closure(objective.batch_loss, objective.batch)
    gen = generator(seed, *stream, device=space.params()[0].device)
    return hutchinson_trace(hessian_operator(closure, space.get()), space.dim, n, gen)


@dataclass
class Curves:
    """Best-of-N curves over a sigma grid in one space, with the quantities Theorem 1 needs.

    ``projection_grid`` (P,) and ``projection_best`` (n,): ``g^T eps_i`` at unit sigma (autograd
    gradient) of the very directions the grid (the same at every sigma) and the long search drew.
    """

    name: str
    dim: int
    diag: F1F2Result
    grad_norm: float
    trace: float
    trace_se: float
    best: SearchResult | None = None  # the long search at the largest local-linear sigma
    extra: dict = field(default_factory=dict)
    projection_grid: np.ndarray | None = None
    projection_best: np.ndarray | None = None

    def searches(self) -> list[SearchResult]:
        """The grid's searches and the long one."""
        return list(self.diag.runs) + ([self.best] if self.best is not None else [])


def search_curves(name: str, stream: str, space: ParamSpace, objective: Objective, grad: torch.Tensor,
                  sigmas: np.ndarray, pairs: int, n: int, seed: int, batch_size: int, probes: int) -> Curves:
    """F1/F2 with ``pairs`` antithetic pairs at each sigma, then ``n`` pairs at the largest local-linear
    sigma, the autograd ``||g||``, ``g^T eps`` of every direction drawn and a Hutchinson ``tr H`` with
    ``probes`` probes; their random streams are named ``(seed, stream, ...)``."""
    grid_seed, long_seed = derive(seed, stream, "sigma grid"), derive(seed, stream, "long search")
    diag = f1_f2(space, objective, sigmas, pairs, seed=grid_seed, batch_size=batch_size)
    best = best_of_n(space, objective, n, linear_sigma(diag), seed=long_seed, batch_size=batch_size)
    trace, trace_se = trace_estimate(space, objective, probes, seed, stream, "hutchinson")
    return Curves(name, space.dim, diag, float(grad.norm()), trace, trace_se, best=best,
                  extra={"evals_per_s": 2 * n / best.seconds},
                  projection_grid=projections(space, grad, grid_seed, pairs),
                  projection_best=projections(space, grad, long_seed, n))
