"""The Adam-aware static bases: Adam's first step lies in the sign basis, preconditioned GD on a
quadratic stays in the preconditioned Krylov span."""

import torch

from lls import adam_bases, subspace
from lls.curvature import krylov_basis


def test_fresh_adam_first_step_lies_in_the_sign_basis():
    torch.manual_seed(0)
    grads = torch.randn(3, 50, dtype=torch.float64)
    theta = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.1)
    theta.grad = grads[0].clone()
    opt.step()
    basis = adam_bases.sign_basis(grads, 3)
    assert subspace.capture(basis, theta.detach()) > 1 - 1e-10
    assert subspace.capture(subspace.random_basis(50, 3, torch.Generator().manual_seed(1)).double(),
                            theta.detach()) < 0.5


def test_preconditioned_descent_on_a_quadratic_stays_in_the_preconditioned_krylov_span():
    torch.manual_seed(0)
    dim, k = 40, 5
    a = torch.randn(dim, dim, dtype=torch.float64)
    hess = a @ a.T / dim
    grads = torch.randn(4, dim, dtype=torch.float64) + 1.0
    precond = adam_bases.adam_preconditioner(grads)
    g = grads.mean(0)
    theta = torch.zeros(dim, dtype=torch.float64)
    for _ in range(k):
        theta = theta - 0.01 * precond * (g + hess @ theta)
    basis = adam_bases.preconditioned_krylov_basis(lambda v: hess @ v, grads, k)
    assert basis.shape == (dim, k)
    assert subspace.capture(basis, theta) > 1 - 1e-9
    plain = krylov_basis(lambda v: hess @ v, g, k)
    assert subspace.capture(plain, theta) < 1 - 1e-3  # the unpreconditioned Krylov span misses it


def test_adam_static_bases_names_and_shapes():
    grads = torch.randn(6, 30)
    bases = adam_bases.adam_static_bases(grads, 4, matvec=lambda v: 2 * v)
    assert set(bases) == {"sign(g) (Adam's first steps)", "Adam-preconditioned gradients", "preconditioned Krylov"}
    for b in bases.values():
        assert b.shape[0] == 30 and b.shape[1] <= 4
        assert torch.allclose(b.T @ b, torch.eye(b.shape[1]), atol=1e-5)
