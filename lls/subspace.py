"""Subspaces of parameter space: orthonormal bases, capture, principal angles, overlap.

Conventions (shared by every chapter): vectors are 1-D torch tensors of length ``D``; a stack
of vectors (per-batch gradients, recorded updates) is a ``(n, D)`` tensor whose *rows* are the
vectors; a basis is a ``(D, k)`` tensor with orthonormal columns. ``D`` may be large (a whole
model), ``n`` and ``k`` small, so nothing here ever forms a ``D x D`` matrix: spectra of stacks
go through the ``n x n`` Gram matrix, orthonormalisation through Gram-Schmidt on ``n`` rows.

*Capture* of a vector ``v`` by a subspace with basis ``U`` is ``||U^T v||^2 / ||v||^2`` in
``[0, 1]``; a uniformly random ``k``-dimensional subspace captures ``k / D`` on average, the
baseline every capture in the book is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DROP_TOL = 1e-6
"""A row whose component outside the span of the earlier rows is below ``DROP_TOL`` times its
norm is treated as linearly dependent and dropped (relative, so it does not depend on scale)."""


def _gram_schmidt(rows: torch.Tensor, tol: float = DROP_TOL) -> tuple[torch.Tensor, list[int]]:
    """Orthonormalise ``rows`` (n, D) in order; return the basis (D, r) and, per column, its row.

    Classical Gram-Schmidt with one re-orthogonalisation pass ("twice is enough"), so the
    columns are orthonormal to working precision even for nearly dependent rows.
    """
    if rows.ndim != 2:
        raise ValueError(f"rows must be a (n, D) stack of vectors, got shape {tuple(rows.shape)}")
    basis = rows.new_zeros((rows.shape[1], rows.shape[0]))
    origin: list[int] = []
    for i, row in enumerate(rows):
        norm = torch.linalg.vector_norm(row)
        if norm == 0:
            continue
        w = row / norm
        done = basis[:, : len(origin)]
        for _ in range(2):
            w = w - done @ (done.T @ w)
        residual = torch.linalg.vector_norm(w)
        if residual <= tol:
            continue
        basis[:, len(origin)] = w / residual
        origin.append(i)
    return basis[:, : len(origin)], origin


def orthonormal_basis(rows: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (D, r) of the span of ``rows`` (n, D), built in the rows' order.

    The first ``j`` columns span the first rows up to the ``j``-th kept one; rows (nearly)
    dependent on the earlier ones are dropped, so ``r <= n`` is the numerical rank.
    """
    return _gram_schmidt(rows)[0]


def capture(basis: torch.Tensor, v: torch.Tensor) -> float:
    """Fraction ``||U^T v||^2 / ||v||^2`` of ``v`` (D,) lying in the span of ``basis`` (D, k)."""
    coeffs = basis.T @ v.to(basis.dtype)
    return float(coeffs.pow(2).sum() / v.to(basis.dtype).pow(2).sum())


def capture_curve(basis: torch.Tensor, v: torch.Tensor, ks: Sequence[int]) -> np.ndarray:
    """Capture of ``v`` (D,) by the first ``k`` columns of ``basis`` (D, r), for each k in ``ks``.

    A ``k`` above ``r`` gives ``nan`` (the basis has no k-th direction). Shape ``(len(ks),)``.
    """
    v = v.to(basis.dtype)
    cum = ((basis.T @ v).pow(2) / v.pow(2).sum()).cumsum(0).numpy()
    return np.asarray([cum[k - 1] if k <= len(cum) else np.nan for k in ks], dtype=float)


def prefix_capture(rows: torch.Tensor, v: torch.Tensor, ks: Sequence[int], tol: float = DROP_TOL) -> np.ndarray:
    """Capture of ``v`` (D,) by the span of the first ``k`` rows of ``rows`` (K, D), for each k.

    One orthonormalisation of all K rows serves every ``k`` (the basis is built in order), so
    this costs ``O(K^2 D)``. A row whose part outside the earlier rows' span is below ``tol``
    of its norm is dropped as dependent (:data:`DROP_TOL` by default, a float32 rule; float64
    rows can use a much smaller ``tol``, see :func:`kept_rows`). Returns a float array with one
    entry per ``k`` in ``ks``.
    """
    basis, origin = _gram_schmidt(rows, tol)
    v = v.to(basis.dtype)
    share = (basis.T @ v).pow(2) / v.pow(2).sum()
    origin_t = torch.tensor(origin, dtype=torch.long)
    out = []
    for k in ks:
        if not 0 <= k <= rows.shape[0]:
            raise ValueError(f"k={k} is outside [0, {rows.shape[0]}] (the number of rows)")
        out.append(float(share[origin_t < k].sum()))
    return np.asarray(out)


def kept_rows(rows: torch.Tensor, tol: float = DROP_TOL) -> int:
    """How many rows of ``rows`` (K, D) :func:`prefix_capture` keeps as independent at ``tol``."""
    return len(_gram_schmidt(rows, tol)[1])


CHUNK = 1 << 20
"""Coordinates per chunk when a product over D is accumulated in float64 (bounds the memory)."""


def _cross(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A^T B`` in float64 for A (D, a), B (D, b), accumulated over chunks of D."""
    out = torch.zeros(A.shape[1], B.shape[1], dtype=torch.float64)
    for start in range(0, A.shape[0], CHUNK):
        a = A[start : start + CHUNK].to(torch.float64)
        out += a.T @ B[start : start + CHUNK].to(torch.float64)
    return out


def _gram_eigh(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending, >= 0) and eigenvectors of the n x n Gram matrix, in float64."""
    evals, evecs = torch.linalg.eigh(_cross(rows.T, rows.T))
    return evals.flip(0).clamp_min(0), evecs.flip(1)


def singular_values(rows: torch.Tensor) -> np.ndarray:
    """Singular values of the stack ``rows`` (n, D), descending, from the n x n Gram matrix."""
    return _gram_eigh(rows)[0].sqrt().numpy()


def numerical_rank(rows: torch.Tensor) -> int:
    """Numerical rank of a stack (n, D): singular values above ``DROP_TOL`` times the largest
    (the rule :func:`top_k_basis` applies)."""
    sv = singular_values(rows)
    return int((sv > sv[0] * DROP_TOL).sum()) if len(sv) else 0


def top_k_basis(rows: torch.Tensor, k: int) -> torch.Tensor:
    """The top-``k`` right singular vectors of ``rows`` (n, D) as a basis (D, k).

    With ``rows = A``, the Gram matrix ``A A^T = W S^2 W^T`` gives ``V = A^T W S^{-1}``.
    Raises ``ValueError`` when ``k`` exceeds the numerical rank of ``rows``.
    """
    evals, evecs = _gram_eigh(rows)
    rank = int((evals > evals[0] * DROP_TOL**2).sum()) if evals.numel() else 0
    if not 0 < k <= rank:
        raise ValueError(f"k={k} but the {rows.shape[0]} rows have numerical rank {rank}")
    basis = rows.T @ (evecs[:, :k] / evals[:k].sqrt()).to(rows.dtype)
    return orthonormal_basis(basis.T)  # clean up the Gram route's rounding, keep the order


def effective_rank(rows: torch.Tensor, energy: float = 0.9) -> int:
    """Smallest ``r`` whose top-``r`` singular values hold ``energy`` of the squared norm."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    power = _gram_eigh(rows)[0]
    if power.sum() == 0:
        return 0
    cumulative = (power.cumsum(0) / power.sum()).numpy()
    return int(np.searchsorted(cumulative, energy - 1e-12) + 1)


def random_basis(D: int, k: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """A uniformly random ``k``-dimensional subspace of R^D, as an orthonormal basis (D, k)."""
    if not 0 < k <= D:
        raise ValueError(f"need 0 < k <= D, got k={k}, D={D}")
    gauss = torch.randn(D, k, generator=generator, dtype=dtype, device=generator.device)
    return torch.linalg.qr(gauss)[0]


def principal_angles(U: torch.Tensor, V: torch.Tensor) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of bases U (D, k1) and V (D, k2).

    Small angles are taken from sines and large ones from cosines (Knyazev & Argentati), so
    both ends are accurate; ``min(k1, k2)`` angles are returned.
    """
    U64, V64 = U.to(torch.float64), V.to(torch.float64)
    if U64.shape[1] < V64.shape[1]:
        U64, V64 = V64, U64
    cross = U64.T @ V64
    cosines = torch.linalg.svdvals(cross).clamp(0, 1).numpy()
    sines = torch.linalg.svdvals(V64 - U64 @ cross).clamp(0, 1).numpy()[::-1]
    angles = np.where(cosines ** 2 <= 0.5, np.arccos(cosines), np.arcsin(sines))
    return np.sort(angles)


def overlap(U: torch.Tensor, V: torch.Tensor) -> float:
    """Mean squared cosine of the principal angles between the spans of U and V, in [0, 1].

    Equals ``||U^T V||_F^2 / min(k1, k2)``: 1 when one span contains the other, 0 when
    orthogonal, about ``max(k1, k2) / D`` for random subspaces.
    """
    return float(_cross(U, V).pow(2).sum() / min(U.shape[1], V.shape[1]))


def overlap_matrix(bases: Sequence[torch.Tensor]) -> np.ndarray:
    """Pairwise :func:`overlap` of ``S`` bases, a symmetric (S, S) array with ones on the diagonal."""
    S = len(bases)
    out = np.eye(S)
    for i in range(S):
        for j in range(i + 1, S):
            out[i, j] = out[j, i] = overlap(bases[i], bases[j])
    return out


def overlap_by_lag(steps: Sequence[int], overlaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lags (in steps) and the mean overlap of bases that many steps apart.

    ``overlaps`` (S, S) is :func:`overlap_matrix` of bases taken at evenly spaced ``steps`` (S,).
    Returns two arrays of shape ``(S,)``; lag 0 has overlap 1.
    """
    steps = np.asarray(steps)
    lags = np.arange(len(steps))
    return lags * (steps[1] - steps[0]), np.array([np.diagonal(overlaps, lag).mean() for lag in lags])


def halving_lag(steps: Sequence[int], overlaps: np.ndarray, level: float = 0.5) -> int | None:
    """Smallest lag (in steps) at which the mean overlap of bases that far apart is ``<= level``.

    ``None`` when it never falls that low within the recorded window (see :func:`overlap_by_lag`).
    """
    lags, mean = overlap_by_lag(steps, overlaps)
    below = np.nonzero(mean[1:] <= level)[0]
    return int(lags[1 + below[0]]) if below.size else None


def gram_prefix_capture(gram: torch.Tensor, cross: torch.Tensor, norm2: float, ks: Sequence[int]) -> np.ndarray:
    """:func:`prefix_capture` from inner products only, for rows that are never formed.

    ``gram`` (n, n) = rows @ rows.T, ``cross`` (n,) = rows @ v, ``norm2`` = ``|v|^2``. The capture
    by the first ``k`` rows (``1 <= k <= n``) is ``cross_k^T pinv(gram_k) cross_k / |v|^2`` on the leading k x k block
    (numerically dependent rows add nothing), computed in float64 and clipped to [0, 1]. Shape
    ``(len(ks),)``. Chapter 3 uses it in LoRA weight-change space (D_W in the millions).
    """
    gram, cross = gram.to(torch.float64), cross.to(torch.float64)
    out = []
    for k in ks:
        evals, evecs = torch.linalg.eigh(gram[:k, :k])
        keep = evals > evals.max().clamp_min(0) * 1e-10
        coef = evecs[:, keep].T @ cross[:k]
        out.append(float((coef.pow(2) / evals[keep]).sum()) / norm2)
    return np.clip(np.asarray(out), 0.0, 1.0)
