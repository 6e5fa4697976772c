"""Tests of the random-search engine (lls.search) on tiny models built here."""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from lls.f1f2 import f1_f2
from lls.params import ParamSpace
from lls.randopt import majority_vote, randopt
from lls.search import (
    Objective,
    Perturber,
    best_of_n,
    evaluate,
    expected_best,
    perturbation,
    sigma_for_norm,
)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def mlp_loss(call, batch):
    x, y = batch
    return nn.functional.cross_entropy(call(x), y)


def mlp_objective(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    batch = (torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen))
    return Objective(model, mlp_loss, batch)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(before, model):
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def test_search_restores_parameters_bit_for_bit():
    model = mlp()
    before = snapshot(model)
    space = ParamSpace(model)
    # an odd sigma, so that adding then subtracting the noise would not round-trip exactly
    res = best_of_n(space, mlp_objective(model), 20, 0.3712, seed=5, progress=False)
    assert res.plus.shape == res.minus.shape == (20,)
    assert np.all(res.plus != res.base)  # the model really was perturbed
    assert_bitwise_equal(before, model)


def test_restoration_also_after_an_exception():
    model = mlp()
    before = snapshot(model)
    space = ParamSpace(model)
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("boom")
        return 0.0

    with pytest.raises(ValueError, match="boom"):
        evaluate(space, failing, 0, [(i, 1) for i in range(5)], 0.77, progress=False)
    assert_bitwise_equal(before, model)


def test_add_then_subtract_would_not_be_exact():
    """Why the engine restores from a saved copy: float add/subtract does not round-trip."""
    model = mlp()
    space = ParamSpace(model)
    theta = space.get()
    eps = perturbation(space, 5, 0, 0.3712)
    assert not torch.equal((theta + eps) - eps, theta)


def test_same_seed_same_perturbation_every_call():
    space = ParamSpace(mlp())
    a = perturbation(space, 11, 3, 0.1)
    assert torch.equal(a, perturbation(space, 11, 3, 0.1))
    assert not torch.equal(a, perturbation(space, 11, 4, 0.1))
    assert not torch.equal(a, perturbation(space, 12, 3, 0.1))
    # the engine adds the same numbers, whatever was drawn before
    with Perturber(space, 11, 0.1) as pert:
        theta0 = space.get()
        pert.apply(7)
        pert.apply(3, -1)
        torch.testing.assert_close(space.get() - theta0, -a, rtol=0, atol=1e-6)


def test_gaussian_law_in_a_linear_model():
    """In a linear model g^T eps ~ N(0, sigma^2 ||g||^2): Kolmogorov-Smirnov at level 0.01."""
    torch.manual_seed(0)
    model = nn.Linear(300, 1, bias=False)
    x = torch.randn(300)
    space = ParamSpace(model)
    sigma, n = 0.05, 1000

    @torch.no_grad()
    def loss():
        return float(model(x).sum())

    res = best_of_n(space, loss, n, sigma, seed=2, antithetic=False, progress=False)
    signal = res.plus - res.base  # exactly x^T eps up to rounding: g = x
    scale = sigma * float(x.norm())
    assert stats.kstest(signal / scale, "norm").pvalue > 0.01
    # the same test rejects a law whose scale is off by 50 %, or whose mean is off by 0.2 sd
    assert stats.kstest(signal / (1.5 * scale), "norm").pvalue < 0.01
    assert stats.kstest(signal / scale + 0.2, "norm").pvalue < 0.01


def test_subspace_perturbation_lies_in_its_subspace():
    space = ParamSpace(mlp())
    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(space.dim, 4, generator=gen))
    eps = perturbation(space, 3, 0, 0.2, basis=basis)
    residual = eps - basis @ (basis.T @ eps)
    assert residual.norm() < 1e-5 * eps.norm()
    assert eps.norm() > 0
    # mean squared norm sigma^2 k over many draws (k = 4), and sigma_for_norm inverts it
    norms = torch.stack([perturbation(space, 3, i, 0.2, basis=basis).norm() ** 2 for i in range(400)])
    assert abs(float(norms.mean()) - 0.2**2 * 4) < 0.1 * 0.2**2 * 4
    assert sigma_for_norm(2.0, 4) == pytest.approx(1.0)


def test_batched_and_unbatched_give_the_same_losses():
    model = mlp()
    space = ParamSpace(model, names=["0.weight", "2.bias"])  # a partial space
    objective = mlp_objective(model)
    one = best_of_n(space, objective, 10, 0.2, seed=4, progress=False)
    many = best_of_n(space, objective, 10, 0.2, seed=4, batch_size=4, progress=False)
    np.testing.assert_allclose(one.plus, many.plus, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.minus, many.minus, rtol=1e-5, atol=1e-6)
    assert np.ptp(one.plus) > 1e-3


def test_batched_transformer_matches_unbatched():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2,
                                       n_positions=16, bos_token_id=0, eos_token_id=0)).eval()
    ids = torch.randint(0, 40, (3, 8), generator=torch.Generator().manual_seed(1))
    objective = Objective(model, lambda call, b: call(input_ids=b, labels=b).loss, ids)
    space = ParamSpace(model)
    one = best_of_n(space, objective, 6, 0.02, seed=1, progress=False)
    many = best_of_n(space, objective, 6, 0.02, seed=1, batch_size=6, progress=False)
    np.testing.assert_allclose(one.plus, many.plus, rtol=1e-5, atol=1e-6)


def test_batched_needs_an_objective():
    space = ParamSpace(mlp())
    with pytest.raises(TypeError):
        best_of_n(space, lambda: 0.0, 4, 0.1, 0, batch_size=2, progress=False)


def test_expected_best_is_the_mean_over_subsets():
    values = np.array([0.3, -1.2, 2.5, 0.0, 1.1, -0.4])
    for n in range(1, 7):
        brute = np.mean([max(c) for c in itertools.combinations(values, n)])
        assert expected_best(values, [n])[0] == pytest.approx(brute)
    with pytest.raises(ValueError):
        expected_best(values, [7])


def test_f1_f2_on_an_exact_quadratic():
    """L = g^T t + t^T H t / 2: F1 = g^T eps, F2 = eps^T H eps / 2 exactly; estimates of ||g||, tr H."""
    d = 200
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(d, dtype=torch.float64, generator=gen)
    h_diag = torch.rand(d, dtype=torch.float64, generator=gen) * 2
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    space = ParamSpace(model)

    def loss():
        t = model.weight.reshape(-1)
        return float(g @ t + 0.5 * (h_diag * t * t).sum())

    res = f1_f2(space, loss, [0.01, 0.1], n_pairs=300, seed=1, progress=False)
    eps = torch.stack([perturbation(space, 1, i, 0.1) for i in range(300)]).double()
    np.testing.assert_allclose(res.f1[1], (eps @ g).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.f2[1], 0.5 * ((eps**2) @ h_diag).numpy(), rtol=1e-4, atol=1e-8)
    assert res.grad_norm[1] == pytest.approx(float(g.norm()), rel=0.15)
    assert res.trace[1] == pytest.approx(float(h_diag.sum()), rel=0.1)
    assert res.linear().tolist() == [True, True]
    assert res.linear(margin=1e4).tolist() == [False, False]
    np.testing.assert_allclose(res.odd_deviation, 0, atol=1e-4)  # F1 is exactly linear in sigma here


def test_gain_curve_and_best():
    model = mlp()
    res = best_of_n(ParamSpace(model), mlp_objective(model), 32, 0.1, seed=0, progress=False)
    curve = res.gain_curve([1, 4, 32])
    assert curve[0] < curve[1] < curve[2]
    assert curve[2] == pytest.approx(res.base - res.plus.min())
    i, sign, loss = res.best()
    assert loss == min(res.plus.min(), res.minus.min())
    assert (res.plus if sign == 1 else res.minus)[i] == loss


def test_majority_vote():
    assert majority_vote([["a", "b", "c"], ["a", "c", "d"], ["x", "c", "e"]]) == ["a", "c", "c"]


def test_randopt_on_a_toy_classifier():
    model = mlp()
    space = ParamSpace(model)
    objective = mlp_objective(model, seed=2)
    x_test, y_test = mlp_objective(model, seed=3).batch

    @torch.no_grad()
    def predict():
        return model(x_test).argmax(-1).tolist()

    before = snapshot(model)
    res = randopt(space, lambda: -objective(), predict, y_test.tolist(), n=12, k=3, sigma=0.3, seed=0,
                  progress=False)
    assert_bitwise_equal(before, model)
    assert res.top == sorted(range(12), key=lambda i: -res.scores[i])[:3]
    assert len(res.member_accuracy) == 3 and 0 <= res.ensemble_accuracy <= 1


def test_odd_deviation_detects_a_cubic_term():
    d = 50
    g = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()

    def loss():
        s = float(g @ model.weight.reshape(-1))
        return s + 2.0 * s**3

    res = f1_f2(ParamSpace(model), loss, [1e-4, 1e-3, 0.1], n_pairs=20, seed=0, progress=False)
    assert res.odd_deviation[1] < 0.01 < 0.2 < res.odd_deviation[2]
    assert res.linear(odd_tol=0.2).tolist() == [True, True, False]
    assert res.linear().tolist() == [True, True, True]  # F2 is zero: the F2 test alone cannot see it
