"""Tests of the shared noise table (lls.noise) and of the search engine reading it (lls.search).

Exactness: the same (seed, i) gives the same perturbation, read as views (no copy); restore is bit
for bit, also after an exception; antithetic pairs are exactly opposite. The law: mean 0 and
variance 1 of the table and of the perturbations it yields, independence between candidates and
between parameter tensors of the same shape (the one-seed-per-layer bug is shown to be caught).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from lls.f1f2 import f1_f2
from lls.noise import NoiseTable
from lls.params import ParamSpace
from lls.search import Objective, Perturber, best_of_n, evaluate, perturbation

SIZE = 1 << 20  # a small table: 1 M numbers


@pytest.fixture(scope="module")
def table():
    return NoiseTable(SIZE, seed=3)


def stack_of_layers(n_layers=6, width=48, seed=0):
    """Same-shaped layers, so that a reused seed would give the same noise to every one."""
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(n_layers)])


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(before, model):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def corr(a, b):
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


# --- exactness -----------------------------------------------------------------------------------


def test_table_is_reproducible_and_slices_are_views(table):
    again = NoiseTable(SIZE, seed=3)
    assert torch.equal(table.table, again.table)
    assert not torch.equal(table.table[:100], NoiseTable(SIZE, seed=4).table[:100])
    view = table.slice(11, 5, 2, (30, 40))
    assert view.shape == (30, 40) and view.dtype == torch.float32
    assert view.untyped_storage().data_ptr() == table.table.untyped_storage().data_ptr()  # no copy
    start = table.offset(11, 5, 2, 1200)
    assert torch.equal(view.reshape(-1), table.table[start:start + 1200])
    assert torch.equal(view, again.slice(11, 5, 2, (30, 40)))
    with pytest.raises(ValueError, match="does not fit"):
        table.slice(0, 0, 0, (SIZE + 1,))


def test_same_seed_same_perturbation(table):
    space = ParamSpace(stack_of_layers())
    a = perturbation(space, 7, 3, 0.1, noise=table)
    assert torch.equal(a, perturbation(space, 7, 3, 0.1, noise=table))
    assert torch.equal(a, perturbation(space, 7, 3, 0.1, noise=NoiseTable(SIZE, seed=3)))
    assert not torch.equal(a, perturbation(space, 7, 4, 0.1, noise=table))
    assert not torch.equal(a, perturbation(space, 8, 3, 0.1, noise=table))
    assert not torch.equal(a, perturbation(space, 7, 3, 0.1))  # the generator's numbers differ
    # the engine adds exactly these numbers, whatever it applied before
    with Perturber(space, 7, 0.1, noise=table) as pert:
        theta0 = space.get()
        pert.apply(5)
        pert.apply(3, -1)
        torch.testing.assert_close(space.get() - theta0, -a, rtol=0, atol=1e-6)
        assert pert._buffers == []  # no noise buffer: memory is the table, whatever N


def test_apply_is_one_fused_add_of_a_table_view(table):
    model = stack_of_layers()
    space = ParamSpace(model)
    sigma = 0.3712
    with Perturber(space, 1, sigma, noise=table) as pert:
        saved = [p.detach().clone() for p in space.params()]
        pert.apply(9, -1)
        for j, (p, s) in enumerate(zip(space.params(), saved, strict=True)):
            assert torch.equal(p.detach(), torch.add(s, table.slice(1, 9, j, p.shape), alpha=-sigma))


def test_restore_is_bitwise_after_a_search(table):
    model = stack_of_layers()
    before = snapshot(model)
    x = torch.randn(8, 48, generator=torch.Generator().manual_seed(0))
    objective = Objective(model, lambda call, b: call(b).pow(2).mean(), x)
    res = best_of_n(ParamSpace(model), objective, 12, 0.3712, seed=2, progress=False, noise=table)
    assert np.all(res.plus != res.base) and np.all(res.plus != res.minus)
    assert_bitwise_equal(before, model)


def test_restore_is_bitwise_after_an_exception(table):
    model = stack_of_layers()
    before = snapshot(model)
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 4:
            raise ValueError("boom")
        return 0.0

    with pytest.raises(ValueError, match="boom"):
        evaluate(ParamSpace(model), failing, 0, [(i, s) for i in range(5) for s in (1, -1)], 0.77,
                 progress=False, noise=table)
    assert_bitwise_equal(before, model)


def test_antithetic_pairs_are_exactly_opposite(table):
    model = stack_of_layers()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # theta0 = 0, so the parameters are the perturbation itself, unrounded
    space = ParamSpace(model)
    with Perturber(space, 4, 0.25, noise=table) as pert:
        pert.apply(6, 1)
        plus = space.get()
        pert.apply(6, -1)
        minus = space.get()
    assert torch.equal(plus, -minus)
    assert torch.equal(plus, perturbation(space, 4, 6, 0.25, noise=table))


def test_batched_matches_in_place_with_the_table(table):
    model = stack_of_layers(n_layers=2, width=12)
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    objective = Objective(model, lambda call, b: call(b).tanh().sum(), x)
    space = ParamSpace(model)
    one = best_of_n(space, objective, 6, 0.2, seed=1, progress=False, noise=table)
    many = best_of_n(space, objective, 6, 0.2, seed=1, batch_size=4, progress=False, noise=table)
    np.testing.assert_allclose(one.plus, many.plus, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.minus, many.minus, rtol=1e-5, atol=1e-6)


def test_subspace_coefficients_from_the_table(table):
    space = ParamSpace(stack_of_layers(n_layers=1, width=10))
    basis, _ = torch.linalg.qr(torch.randn(space.dim, 4, generator=torch.Generator().manual_seed(0)))
    eps = perturbation(space, 3, 1, 0.2, basis=basis, noise=table)
    torch.testing.assert_close(eps, basis @ (0.2 * table.slice(3, 1, 0, (4,))))


# --- the law of the noise --------------------------------------------------------------------------


def test_table_is_standard_normal(table):
    """Mean within 4 standard errors of 0 (1/sqrt(M) = 0.001), variance within 4 of 1 (sqrt(2/M)),
    and a Kolmogorov-Smirnov test against N(0, 1) at level 0.01 on 100 k of its numbers."""
    t = table.table.double()
    m = t.numel()
    assert abs(float(t.mean())) < 4 / math.sqrt(m)
    assert abs(float(t.var()) - 1) < 4 * math.sqrt(2 / m)
    assert stats.kstest(t[:100_000].numpy(), "norm").pvalue > 0.01


def test_perturbations_have_mean_zero_variance_one(table):
    space = ParamSpace(stack_of_layers())  # D = 6 * (48 * 48 + 48) = 14,112
    eps = torch.stack([perturbation(space, 0, i, 1.0, noise=table) for i in range(40)]).double()
    n = eps.numel()
    assert abs(float(eps.mean())) < 4 / math.sqrt(n)
    assert abs(float(eps.var()) - 1) < 4 * math.sqrt(2 / n)


@pytest.mark.parametrize("source", ["table", "generator"])
def test_candidates_are_uncorrelated(table, source):
    """Correlation of two candidates' noise (D = 14,112 coordinates): every pair among 12 candidates
    within 4.5 / sqrt(D) = 0.038 of 0 (about 1e-5 to fail by chance per pair)."""
    noise = table if source == "table" else None
    space = ParamSpace(stack_of_layers())
    eps = [perturbation(space, 5, i, 1.0, noise=noise) for i in range(12)]
    bound = 4.5 / math.sqrt(space.dim)
    worst = max(abs(corr(eps[a], eps[b])) for a in range(12) for b in range(a))
    assert worst < bound


def tensor_correlations(space, noise, seed, i):
    """``(correlation, n)`` between the noise of every pair of same-shaped tensors of candidate ``i``."""
    eps = perturbation(space, seed, i, 1.0, noise=noise).split(space.sizes)
    return [(corr(eps[a], eps[b]), eps[a].numel()) for a in range(len(eps)) for b in range(a)
            if space.shapes[a] == space.shapes[b]]


@pytest.mark.parametrize("source", ["table", "generator"])
def test_same_shaped_tensors_are_uncorrelated(table, source):
    """Six 48 x 48 weights and six biases of one candidate: each pair's correlation within
    4.5 / sqrt(n) of 0 (n = 2,304 for weights, 48 for biases), for five candidates."""
    noise = table if source == "table" else None
    space = ParamSpace(stack_of_layers())
    for i in range(5):
        pairs = tensor_correlations(space, noise, 9, i)
        assert len(pairs) == 2 * 15
        for c, n in pairs:
            assert abs(c) < 4.5 / math.sqrt(n), (i, c, n)


def test_the_one_seed_per_layer_bug_is_caught(table, monkeypatch):
    """The same check fails when the tensor index is left out of the offset (ES repositories' bug)."""
    space = ParamSpace(stack_of_layers())
    offset = NoiseTable.offset
    monkeypatch.setattr(NoiseTable, "offset", lambda self, seed, i, j, numel: offset(self, seed, i, 0, numel))
    assert min(c for c, _ in tensor_correlations(space, table, 9, 0)) > 0.999


def test_first_order_signal_law_in_a_linear_model(table):
    """In a linear model g^T eps ~ N(0, sigma^2 ||g||^2) with table noise: Kolmogorov-Smirnov at 0.01."""
    torch.manual_seed(0)
    model = nn.Linear(300, 1, bias=False)
    x = torch.randn(300)
    sigma = 0.05

    @torch.no_grad()
    def loss():
        return float(model(x).sum())

    res = best_of_n(ParamSpace(model), loss, 1000, sigma, seed=2, antithetic=False, progress=False,
                    noise=table)
    signal = (res.plus - res.base) / (sigma * float(x.norm()))
    assert stats.kstest(signal, "norm").pvalue > 0.01
    assert stats.kstest(signal / 1.5, "norm").pvalue < 0.01  # the test has power against a wrong scale


def test_f1_f2_with_the_table_on_an_exact_quadratic(table):
    """F1 = g^T eps and F2 = eps^T H eps / 2 exactly, with eps read from the table."""
    d = 200
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(d, dtype=torch.float64, generator=gen)
    h_diag = torch.rand(d, dtype=torch.float64, generator=gen) * 2
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    space = ParamSpace(model)

    def loss():
        t = model.weight.detach().reshape(-1)
        return float(g @ t + 0.5 * (h_diag * t * t).sum())

    res = f1_f2(space, loss, [0.01, 0.1], n_pairs=300, seed=1, progress=False, noise=table)
    eps = torch.stack([perturbation(space, 1, i, 0.1, noise=table) for i in range(300)]).double()
    np.testing.assert_allclose(res.f1[1], (eps @ g).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.f2[1], 0.5 * ((eps**2) @ h_diag).numpy(), rtol=1e-4, atol=1e-8)
    assert res.grad_norm[1] == pytest.approx(float(g.norm()), rel=0.15)
