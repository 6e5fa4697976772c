"""Tests of lls.curvature against exact Hessians of small problems (torch.func.hessian)."""

import pytest
import torch
from torch.func import functional_call, hessian

from lls import curvature, subspace


def _tiny_model_loss():
    """A tiny MLP's mean-squared loss as a function of its flat parameters (D = 41)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    x = torch.randn(16, 4, dtype=torch.float64)
    y = torch.randn(16, 3, dtype=torch.float64)

    def loss_fn(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + s.numel()].view(s)
            i += s.numel()
        return (functional_call(model, params, (x,)) - y).pow(2).mean()

    return loss_fn, theta


def _spd(D, seed, spectrum=None):
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
    lam = spectrum if spectrum is not None else torch.linspace(0.1, 5.0, D, dtype=torch.float64)
    return Q @ torch.diag(lam) @ Q.T


def test_hvp_matches_exact_hessian():
    loss_fn, theta = _tiny_model_loss()
    H = hessian(loss_fn)(theta)
    v = torch.randn(theta.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(curvature.hvp(loss_fn, theta, v), H @ v, rtol=1e-10, atol=1e-12)
    op = curvature.hessian_operator(loss_fn, theta)
    theta.add_(1.0)  # the operator keeps its own copy of theta
    torch.testing.assert_close(op(v), H @ v, rtol=1e-10, atol=1e-12)


def test_lanczos_matches_eigvalsh_of_exact_hessian():
    loss_fn, theta = _tiny_model_loss()
    H = hessian(loss_fn)(theta)
    exact = torch.linalg.eigvalsh(H).flip(0)
    op = curvature.hessian_operator(loss_fn, theta)
    vals, vecs = curvature.lanczos_topk(op, theta.shape[0], k=3, n_iter=theta.shape[0],
                                        generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(vals, exact[:3], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(H @ vecs, vecs * vals, rtol=1e-6, atol=1e-8)


def test_lanczos_few_iterations_find_a_separated_top():
    spectrum = torch.cat([torch.tensor([100.0, 50.0, 20.0]), torch.linspace(0, 1, 397)]).double()
    H = _spd(400, 3, spectrum)
    vals, _ = curvature.lanczos_topk(lambda v: H @ v, 400, k=3, n_iter=40,
                                     generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(vals, torch.tensor([100.0, 50.0, 20.0], dtype=torch.float64), rtol=1e-6, atol=0)


def test_hutchinson_trace_close_to_exact():
    H = _spd(60, 5)
    est, se = curvature.hutchinson_trace(lambda v: H @ v, 60, 400, torch.Generator().manual_seed(6),
                                         dtype=torch.float64)
    exact = float(torch.trace(H))
    assert abs(est - exact) < 4 * se
    assert se < 0.05 * exact
    diag = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))  # diagonal: every probe is exact
    est, se = curvature.hutchinson_trace(lambda v: diag @ v, 10, 3, torch.Generator().manual_seed(7),
                                         dtype=torch.float64)
    assert est == pytest.approx(55.0) and se == pytest.approx(0.0, abs=1e-12)


def test_krylov_basis_spans_the_krylov_space():
    D, k = 50, 6
    H = _spd(D, 8)
    g = torch.randn(D, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    K = curvature.krylov_basis(lambda v: H @ v, g, k)
    assert K.shape == (D, k)
    torch.testing.assert_close(K.T @ K, torch.eye(k, dtype=torch.float64), atol=1e-12, rtol=0)
    powers = [g]
    for _ in range(k - 1):
        powers.append(H @ powers[-1])
    for j in range(1, k + 1):  # the first j columns span {g, ..., H^(j-1) g}
        for p in powers[:j]:
            assert subspace.capture(K[:, :j], p) == pytest.approx(1.0, abs=1e-10)
    assert subspace.capture(K[:, :2], powers[2]) < 0.999


def test_krylov_basis_stops_on_an_invariant_subspace():
    H = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64))
    g = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # on two eigendirections
    assert curvature.krylov_basis(lambda v: H @ v, g, 4).shape == (5, 2)


def test_hvp_goes_through_a_transformer_with_sdpa_attention():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=50, bos_token_id=0, eos_token_id=0, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                     attn_implementation="sdpa")
    model = GPT2LMHeadModel(cfg).double().eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    ids = torch.randint(0, 50, (2, 8))

    def loss_fn(flat):
        params = dict(zip(names, [t.view(s) for t, s in zip(flat.split([s.numel() for s in shapes]),
                                                               shapes, strict=True)], strict=True))
        return functional_call(model, params, (), {"input_ids": ids, "labels": ids}).loss

    v = torch.randn(theta.shape[0], generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    got = curvature.hvp(loss_fn, theta, v)
    with curvature.math_attention():  # reverse-over-reverse as the reference
        want = torch.func.grad(lambda t: torch.func.grad(loss_fn)(t) @ v)(theta)
    assert float((got - want).norm() / want.norm()) < 1e-6  # GPT-2 keeps some float32 constants
