"""Curvature without the Hessian matrix: Hessian-vector products, Hutchinson, Lanczos, Krylov.

A loss is seen as ``loss_fn: Tensor(D) -> scalar`` of a flat parameter vector ``theta`` (for a
model, :meth:`lls.params.ParamSpace.loss_closure` builds one). Every routine here touches the
Hessian ``H`` (D x D) only through matrix-vector products ``v -> H v``, each costing about two
gradient evaluations, so it works for a whole model; nothing ever forms a ``D x D`` matrix.
Random vectors come from an explicit :class:`torch.Generator`; no input is modified.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.func import grad, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

Matvec = Callable[[torch.Tensor], torch.Tensor]


def hvp(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
        v: torch.Tensor) -> torch.Tensor:
    """Hessian-vector product ``H(theta) v`` (D,), forward-over-reverse with :mod:`torch.func`.

    The forward-mode derivative of the gradient map along ``v``: one gradient evaluation with
    a dual tangent, about the cost of two backward passes. Runs under :func:`math_attention`,
    since the fused CPU attention kernels have no forward-mode derivative.
    """
    with math_attention():
        return jvp(grad(loss_fn), (theta,), (v.to(theta.dtype),))[1]


def math_attention():
    """Context manager: ``scaled_dot_product_attention`` uses its plain-math backend inside.

    The fused kernels (flash attention on CPU) have neither forward-mode nor double-backward
    derivatives; the math backend is built from ordinary differentiable operations, so
    :func:`torch.func.jvp` (HVPs, activation pushforwards) goes through transformer models.
    """
    return sdpa_kernel(SDPBackend.MATH)


def hessian_operator(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> Matvec:
    """The map ``v -> H(theta) v`` at a fixed ``theta`` (a detached copy is kept)."""
    theta = theta.detach().clone()

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return hvp(loss_fn, theta, v)

    return matvec


def hutchinson_trace(matvec: Matvec, dim: int, n_samples: int, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """Hutchinson's estimate of ``tr H`` from ``n_samples`` Rademacher probes ``z^T H z``.

    Returns ``(estimate, stderr)``: the mean of the probes and its standard error (the probes'
    sample standard deviation over ``sqrt(n_samples)``; ``nan`` for one probe). Each probe is
    unbiased, with variance ``2 (||H||_F^2 - sum_i H_ii^2)``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    probes = []
    for _ in range(n_samples):
        z = torch.randint(0, 2, (dim,), generator=generator, device=generator.device).to(dtype) * 2 - 1
        probes.append(float(z @ matvec(z).to(dtype)))
    mean = sum(probes) / n_samples
    if n_samples == 1:
        return mean, math.nan
    var = sum((p - mean) ** 2 for p in probes) / (n_samples - 1)
    return mean, math.sqrt(var / n_samples)


def _breakdown(dtype: torch.dtype) -> float:
    """Relative size below which a new Krylov direction is rounding noise (an invariant space)."""
    return 100 * torch.finfo(dtype).eps


def _orthogonalise(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``w`` minus its projection on the columns of ``basis``, done twice (full reorthogonalisation)."""
    for _ in range(2):
        w = w - basis @ (basis.T @ w)
    return w


def lanczos_topk(matvec: Matvec, dim: int, k: int, n_iter: int, generator: torch.Generator,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` (algebraically largest) eigenpairs of a symmetric operator by Lanczos.

    Runs ``n_iter`` Lanczos steps (at most ``dim``) from a random start, with full
    reorthogonalisation against all previous vectors (so no ghost eigenvalues), then solves
    the small tridiagonal problem with ``eigh``. Returns ``(eigvals (k,) descending,
    eigvecs (D, k))`` as Ritz values and vectors; memory ``dim * n_iter``.
    """
    n_iter = min(n_iter, dim)
    if not 0 < k <= n_iter:
        raise ValueError(f"need 0 < k <= n_iter, got k={k}, n_iter={n_iter} (dim={dim})")
    Q = torch.zeros(dim, n_iter, dtype=dtype, device=generator.device)
    alphas, betas = [], []
    q = torch.randn(dim, generator=generator, dtype=dtype, device=generator.device)
    q = q / torch.linalg.vector_norm(q)
    for j in range(n_iter):
        Q[:, j] = q
        w = matvec(q).to(dtype)
        alphas.append(float(q @ w))
        w = _orthogonalise(w, Q[:, : j + 1])
        beta = float(torch.linalg.vector_norm(w))
        if j == n_iter - 1 or beta <= _breakdown(dtype) * max(abs(a) for a in alphas):
            break  # done, or an invariant subspace was found
        betas.append(beta)
        q = w / beta
    m = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(betas[: m - 1], dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    evals, evecs = torch.linalg.eigh(T)
    top = torch.argsort(evals, descending=True)[: min(k, m)]
    return evals[top].to(dtype), Q[:, :m] @ evecs[:, top].to(dtype)


def krylov_basis(matvec: Matvec, g: torch.Tensor, k: int) -> torch.Tensor:
    """Orthonormal basis (D, r) of the Krylov space ``span{g, Hg, ..., H^(k-1) g}``, r <= k.

    Arnoldi with full reorthogonalisation: column ``j`` comes from ``H`` applied to column
    ``j-1``, so the first ``j`` columns span ``K_j(H, g)`` exactly (in exact arithmetic) while
    staying orthonormal in floating point, unlike the raw powers ``H^j g``. Stops early
    (``r < k``) when the space becomes invariant under ``H``.
    """
    dim = g.shape[0]
    basis = torch.zeros(dim, k, dtype=g.dtype, device=g.device)
    q = g / torch.linalg.vector_norm(g)
    for j in range(k):
        basis[:, j] = q
        if j == k - 1:
            break
        w = matvec(q).to(g.dtype)
        scale = torch.linalg.vector_norm(w)
        w = _orthogonalise(w, basis[:, : j + 1])
        residual = torch.linalg.vector_norm(w)
        if residual <= _breakdown(g.dtype) * scale:
            return basis[:, : j + 1]
        q = w / residual
    return basis
