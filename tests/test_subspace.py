"""Tests of lls.subspace: bases, capture, spectra of stacks, principal angles, overlap."""

import numpy as np
import pytest
import scipy.linalg
import torch

from lls import subspace


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_orthonormal_basis_is_orthonormal_and_in_order():
    rows = torch.randn(6, 50, generator=_gen(), dtype=torch.float64)
    Q = subspace.orthonormal_basis(rows)
    assert Q.shape == (50, 6)
    assert torch.allclose(Q.T @ Q, torch.eye(6, dtype=torch.float64), atol=1e-12)
    for j in range(1, 7):  # first j columns span the first j rows
        resid = rows[:j].T - Q[:, :j] @ (Q[:, :j].T @ rows[:j].T)
        assert resid.abs().max() < 1e-12


def test_orthonormal_basis_drops_dependent_rows():
    a, b = torch.randn(2, 30, generator=_gen(1), dtype=torch.float64)
    rows = torch.stack([a, 2 * a, b, a - 3 * b, torch.zeros(30, dtype=torch.float64)])
    assert subspace.orthonormal_basis(rows).shape == (30, 2)


def test_capture_inside_and_orthogonal():
    rows = torch.randn(4, 40, generator=_gen(2))
    U = subspace.orthonormal_basis(rows)
    inside = rows.T @ torch.randn(4, generator=_gen(3))
    assert subspace.capture(U, inside) == pytest.approx(1.0, abs=1e-5)
    outside = torch.randn(40, generator=_gen(4))
    outside = outside - U @ (U.T @ outside)
    assert subspace.capture(U, outside) == pytest.approx(0.0, abs=1e-6)
    half = inside / inside.norm() + outside / outside.norm()
    assert subspace.capture(U, half) == pytest.approx(0.5, abs=1e-5)


def test_random_subspace_captures_k_over_D_on_average():
    D, k = 200, 10
    g = _gen(5)
    v = torch.randn(D, generator=g)
    caps = [subspace.capture(subspace.random_basis(D, k, g), v) for _ in range(400)]
    # capture ~ Beta(k/2, (D-k)/2): mean k/D = 0.05, sd ~0.015, so the mean of 400 has sd ~8e-4
    assert np.mean(caps) == pytest.approx(k / D, abs=0.004)


def test_prefix_capture_matches_per_k_bases():
    rows = torch.randn(8, 60, generator=_gen(6), dtype=torch.float64)
    rows[3] = rows[0] + rows[1]  # a dependent row must not add capture
    v = torch.randn(60, generator=_gen(7), dtype=torch.float64)
    ks = [0, 1, 3, 4, 8]
    got = subspace.prefix_capture(rows, v, ks)
    want = [0.0] + [subspace.capture(subspace.orthonormal_basis(rows[:k]), v) for k in ks[1:]]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[2] == pytest.approx(got[3])
    with pytest.raises(ValueError):
        subspace.prefix_capture(rows, v, [9])


def test_singular_values_and_top_k_basis_match_svd():
    rows = torch.randn(7, 300, generator=_gen(8), dtype=torch.float64) * torch.linspace(3, 0.1, 7)[:, None]
    _, S, Vh = torch.linalg.svd(rows, full_matrices=False)
    np.testing.assert_allclose(subspace.singular_values(rows), S.numpy(), rtol=1e-8)
    V = subspace.top_k_basis(rows, 3)
    assert V.shape == (300, 3)
    np.testing.assert_allclose(np.abs((V.T @ Vh[:3].T).numpy()), np.eye(3), atol=1e-8)
    with pytest.raises(ValueError):
        subspace.top_k_basis(torch.stack([rows[0], 2 * rows[0]]), 2)


def test_effective_rank():
    basis = torch.linalg.qr(torch.randn(100, 5, generator=_gen(9), dtype=torch.float64))[0]
    rows = (basis * torch.tensor([10.0, 5.0, 1.0, 0.1, 0.01], dtype=torch.float64)).T  # energies 100,25,1,...
    assert subspace.effective_rank(rows, 0.75) == 1
    assert subspace.effective_rank(rows, 0.9) == 2
    assert subspace.effective_rank(rows, 0.999) == 3
    assert subspace.effective_rank(rows, 1.0) == 5


def test_principal_angles_agree_with_scipy():
    g = _gen(10)
    for k1, k2 in [(3, 3), (5, 2), (2, 6)]:
        A = torch.randn(80, k1, generator=g, dtype=torch.float64)
        B = torch.randn(80, k2, generator=g, dtype=torch.float64)
        B[:, 0] = A[:, 0] + 0.05 * B[:, 0]  # one small angle
        U, V = torch.linalg.qr(A)[0], torch.linalg.qr(B)[0]
        ours = subspace.principal_angles(U, V)
        ref = np.sort(scipy.linalg.subspace_angles(A.numpy(), B.numpy()))
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_principal_angles_exact_for_tiny_and_right_angles():
    # span{e1, e2, e3} against span{cos t e1 + sin t e4, cos s e2 + sin s e5, e6}: angles t, s, pi/2
    t, s = 1e-9, 0.3
    U = torch.eye(8, dtype=torch.float64)[:, :3]
    V = torch.zeros(8, 3, dtype=torch.float64)
    V[0, 0], V[3, 0] = np.cos(t), np.sin(t)
    V[1, 1], V[4, 1] = np.cos(s), np.sin(s)
    V[5, 2] = 1.0
    np.testing.assert_allclose(subspace.principal_angles(U, V), [t, s, np.pi / 2], rtol=1e-12)


def test_overlap_extremes_and_matrix():
    U = torch.eye(10)[:, :3]
    V = torch.eye(10)[:, 3:6]
    W = torch.eye(10)[:, :6]
    assert subspace.overlap(U, U) == pytest.approx(1.0)
    assert subspace.overlap(U, V) == pytest.approx(0.0)
    assert subspace.overlap(U, W) == pytest.approx(1.0)  # U inside W
    angles = subspace.principal_angles(W, torch.linalg.qr(torch.randn(10, 4, generator=_gen(11)))[0])
    R = torch.linalg.qr(torch.randn(10, 4, generator=_gen(11)))[0]
    assert subspace.overlap(W, R) == pytest.approx(np.mean(np.cos(angles) ** 2), abs=1e-6)
    M = subspace.overlap_matrix([U, V, W])
    np.testing.assert_allclose(M, [[1, 0, 1], [0, 1, 1], [1, 1, 1]], atol=1e-7)


def test_gram_prefix_capture_matches_explicit_rows():
    rows = torch.randn(6, 40, generator=_gen(12), dtype=torch.float64)
    rows[3] = rows[0] - 2 * rows[1]  # a dependent row adds nothing
    v = torch.randn(40, generator=_gen(13), dtype=torch.float64)
    ks = range(1, 7)
    got = subspace.gram_prefix_capture(rows @ rows.T, rows @ v, float(v @ v), ks)
    np.testing.assert_allclose(got, subspace.prefix_capture(rows, v, ks), atol=1e-9)
    assert got[2] == pytest.approx(got[3], abs=1e-9)
    assert got[-1] < 1.0  # 5 independent rows in R^40 do not hold a random v
