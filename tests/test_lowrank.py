"""Tests of low-rank population search (lls.lowrank) on tiny GPT-2 (Conv1D) and Llama (nn.Linear).

Exactness: the batched population's losses equal those of each candidate applied alone by
writing ``sigma A B^T / sqrt(r)`` into the weights; factors are regenerated identically; nothing
is written. The law of the entries of ``A B^T / sqrt(r)``: mean 0, variance 1, fourth moment
``3 + 6 / r``.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from lls import evaluation, lowrank, models, textdata
from lls.params import ParamSpace
from lls.search import Objective


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def tiny(request):
    model, tok = models.load(request.param)
    batch = textdata.encode(tok, textdata.examples("plural", "train", 3, 0))
    return model, Objective(model, evaluation.answer_loss, batch)


def explicit_losses(space, objective, pairs, sigma, seed, rank):
    """Each candidate alone: write theta0 + sign * sigma A B^T / sqrt(r) into the weights, evaluate."""
    theta0 = space.get()
    out = []
    try:
        for i, sign in pairs:
            space.set_(theta0 + sign * lowrank.perturbation(space, seed, i, sigma, rank))
            out.append(objective())
    finally:
        space.set_(theta0)
    return np.asarray(out)


def test_every_matrix_is_hooked_and_tied_weights_twice(tiny):
    model, _ = tiny
    space = ParamSpace(model)
    uses = lowrank.matrix_uses(space)
    assert sorted(uses) == [j for j, s in enumerate(space.shapes) if len(s) == 2]
    tied = [space.names[j] for j, found in uses.items() if len(found) == 2]
    assert tied == [space.names[0]]  # the token embedding, also the output layer
    assert {k for found in uses.values() for _, k in found} == (
        {"embedding", "linear", "conv1d"} if model.config.model_type == "gpt2" else {"embedding", "linear"})
    assert lowrank.perturbed_dim(space) < space.dim  # biases and norms are left out


@pytest.mark.parametrize("rank", [1, 4])
def test_population_equals_each_candidate_applied_alone(tiny, rank):
    model, objective = tiny
    space = ParamSpace(model)
    before = [p.detach().clone() for p in space.params()]
    pairs = [(0, 1), (0, -1), (3, 1), (7, -1), (3, -1)]
    pop = lowrank.population_losses(space, objective, pairs, 0.03, seed=5, rank=rank)
    for p, b in zip(space.params(), before, strict=True):
        assert torch.equal(p.detach(), b)  # nothing written
    alone = explicit_losses(space, objective, pairs, 0.03, 5, rank)
    np.testing.assert_allclose(pop, alone, rtol=1e-5, atol=0)
    assert np.ptp(pop) > 1e-2  # the candidates really differ
    assert abs(pop[0] - objective()) > 1e-2


def test_chunks_and_repeats_give_the_same_losses(tiny):
    model, objective = tiny
    space = ParamSpace(model)
    one = lowrank.best_of_n(space, objective, 4, 0.02, seed=1, rank=2, progress=False)
    chunked = lowrank.best_of_n(space, objective, 4, 0.02, seed=1, rank=2, batch_size=3, progress=False)
    np.testing.assert_allclose(one.plus, chunked.plus, rtol=1e-6)
    np.testing.assert_allclose(one.minus, chunked.minus, rtol=1e-6)
    again = lowrank.best_of_n(space, objective, 4, 0.02, seed=1, rank=2, progress=False)
    assert np.array_equal(one.plus, again.plus) and np.array_equal(one.minus, again.minus)
    assert one.dim == lowrank.perturbed_dim(space) and one.extra == {"rank": 2}
    assert one.base == pytest.approx(objective())


def test_tiled_forward_is_the_base_loss(tiny):
    _, objective = tiny
    np.testing.assert_allclose(lowrank.tiled_losses(objective, 4), objective(), rtol=1e-6)


def test_factors_are_regenerated_and_distinct(tiny):
    model, _ = tiny
    space = ParamSpace(model)
    drawn = lowrank.factors(space, 3, 2, 4)
    assert sorted(drawn) == [j for j, s in enumerate(space.shapes) if len(s) == 2]
    j = next(iter(drawn))
    a, b = drawn[j]
    assert a.shape == (space.shapes[j][0], 4) and b.shape == (space.shapes[j][1], 4)
    again = lowrank.factors(space, 3, 2, 4)[j]
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])
    assert not torch.equal(a, lowrank.factors(space, 3, 3, 4)[j][0])
    assert not torch.equal(a, lowrank.factors(space, 4, 2, 4)[j][0])
    assert torch.equal(lowrank.perturbation(space, 3, 2, 0.1, 4), lowrank.perturbation(space, 3, 2, 0.1, 4))
    with pytest.raises(ValueError, match="rank"):
        lowrank.factors(space, 3, 2, 0)


def test_same_shaped_matrices_get_uncorrelated_perturbations(tiny):
    """Each pair of same-shaped matrices (m, n) of one candidate: correlation of their A B^T entries
    within 4.5 / sqrt(m n) of 0 (entries are uncorrelated, so sum_pq X_pq Y_pq has variance m n)."""
    model, _ = tiny
    space = ParamSpace(model)
    eps = lowrank.perturbation(space, 2, 0, 1.0, rank=1).split(space.sizes)
    checked = 0
    for a in range(len(eps)):
        for b in range(a):
            if len(space.shapes[a]) == 2 and space.shapes[a] == space.shapes[b]:
                x, y = eps[a].double(), eps[b].double()
                c = float((x - x.mean()) @ (y - y.mean()) / ((x - x.mean()).norm() * (y - y.mean()).norm()))
                assert abs(c) < 4.5 / math.sqrt(eps[a].numel()), (space.names[a], space.names[b], c)
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_law_of_the_entries(rank):
    """Entries (0, 0) and (1, 1) of A B^T / sqrt(r) (independent: no shared row of A or B) over
    20,000 perturbations: mean 0, variance 1, fourth moment 3 + 6 / r, each within 4.5 standard
    errors estimated from the sample."""
    space = ParamSpace(nn.Linear(3, 2, bias=False))
    draws = torch.stack([lowrank.perturbation(space, 0, i, 1.0, rank)[[0, 4]] for i in range(20_000)])
    x = draws.reshape(-1).double().numpy()
    n = len(x)

    def close(values, target):
        assert abs(values.mean() - target) < 4.5 * values.std(ddof=1) / math.sqrt(n), (values.mean(), target)

    close(x, 0.0)
    close(x**2, 1.0)
    close(x**4, 3 + 6 / rank)
    if rank == 1:  # the test can tell r = 1 from Gaussian entries (fourth moment 3)
        assert (x**4).mean() - 4.5 * (x**4).std() / math.sqrt(n) > 3


def test_refuses_what_it_cannot_do(tiny):
    model, objective = tiny
    space = ParamSpace(model)
    with_labels = Objective(model, lambda call, b: call(input_ids=b["input_ids"], labels=b["input_ids"]).loss,
                            objective.batch)
    with pytest.raises(ValueError, match="labels"):
        lowrank.population_losses(space, with_labels, [(0, 1)], 0.01, 0)

    class Raw(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3, 3))

        def forward(self, x):
            return x @ self.w

    with pytest.raises(ValueError, match="cannot perturb"):
        lowrank.matrix_uses(ParamSpace(Raw()))
