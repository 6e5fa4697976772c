"""Static bases that know Adam: what a fresh Adam will do at theta_f, computed before recovery.

A fresh Adam's first update is ``-lr * g / (|g| + eps)``, i.e. ``-lr * sign(g)`` up to eps, and
its later updates are gradients divided elementwise by the root of a running second moment. So a
sceptic of C2 asks: do bases built from that *preconditioned* geometry, all computable at theta_f
before the first recovery step, capture the recovery displacement that plain gradient bases miss?

Conventions of :mod:`lls.subspace`: ``grads`` is a stack ``(n, D)`` of per-batch gradients at
theta_f (rows), a basis is ``(D, r)`` with orthonormal columns, ``matvec`` is ``v -> H v`` at
theta_f for ``v`` of shape ``(D,)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lls import subspace
from lls.curvature import krylov_basis

ADAM_EPS = 1e-8
"""torch.optim.Adam's default ``eps``, added to the root second moment."""


def adam_preconditioner(grads: torch.Tensor, eps: float = ADAM_EPS) -> torch.Tensor:
    """Adam's diagonal preconditioner ``1 / (sqrt(mean_i g_i^2) + eps)`` (D,), estimated from the
    per-batch gradients ``grads`` (n, D): the second moment Adam would reach on those batches."""
    return 1.0 / (grads.pow(2).mean(0).sqrt() + eps)


def sign_basis(grads: torch.Tensor, k: int) -> torch.Tensor:
    """Top-``k`` basis (D, <=k) of ``sign(g_i)`` over the batches (n, D): the span of the first
    updates a fresh Adam would take, one per batch, if theta stayed at theta_f."""
    signs = torch.sign(grads)
    return subspace.top_k_basis(signs, min(k, subspace.numerical_rank(signs)))


def preconditioned_gradient_basis(grads: torch.Tensor, k: int, eps: float = ADAM_EPS) -> torch.Tensor:
    """Top-``k`` basis (D, <=k) of the Adam-preconditioned gradients ``P g_i`` (n, D), with ``P``
    from :func:`adam_preconditioner`."""
    rows = grads * adam_preconditioner(grads, eps)
    return subspace.top_k_basis(rows, min(k, subspace.numerical_rank(rows)))


def preconditioned_krylov_basis(matvec: Callable[[torch.Tensor], torch.Tensor], grads: torch.Tensor, k: int,
                                eps: float = ADAM_EPS) -> torch.Tensor:
    """Basis (D, <=k) of ``span{P g, (P H) P g, ..., (P H)^(k-1) P g}`` with ``g`` the mean of
    ``grads`` (n, D): where preconditioned gradient descent on the local quadratic at theta_f,
    ``theta_{t+1} = theta_t - lr P (g + H (theta_t - theta_f))``, keeps its displacement."""
    precond = adam_preconditioner(grads, eps).to(grads.dtype)
    return krylov_basis(lambda v: precond * matvec(v).to(precond.dtype), precond * grads.mean(0), k)


def adam_static_bases(grads: torch.Tensor, k: int, matvec: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      eps: float = ADAM_EPS) -> dict[str, torch.Tensor]:
    """The Adam-aware static bases at theta_f, by name, each (D, <=k): ``sign(g)`` (Adam's first
    steps), the Adam-preconditioned gradients and, when the Hessian ``matvec`` is given, the
    preconditioned Krylov span."""
    bases = {"sign(g) (Adam's first steps)": sign_basis(grads, k),
             "Adam-preconditioned gradients": preconditioned_gradient_basis(grads, k, eps)}
    if matvec is not None:
        bases["preconditioned Krylov"] = preconditioned_krylov_basis(matvec, grads, k, eps)
    return bases
