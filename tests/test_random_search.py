"""Tests of chapter 4's module (lls.chapters.random_search) on hand-built results; no model is trained."""

import numpy as np
import pytest

from lls.chapters import random_search as ch
from lls.errors import ConfigError, MissingModelError
from lls.presets import resolve
from lls.search import F1F2Result, SearchResult


def config(**overrides):
    return resolve("04_random_search", "smoke", **overrides)


@pytest.mark.parametrize("overrides, words", [
    ({"sigma_min": 0.1, "sigma_max": 0.01}, "sigma_min"),
    ({"lm_sigma_min": 0.5, "lm_sigma_max": 0.5}, "lm_sigma_min"),
    ({"randopt_n": 4, "randopt_k": 5}, "randopt_k"),
    ({"lm_task": "poetry"}, "lm_task"),
    ({"lm_model": "synthetic-gpt2"}, "lm_model"),
])
def test_check_rejects_bad_parameters(overrides, words):
    with pytest.raises(ConfigError, match=words):
        ch.check(config(**overrides))


def test_check_accepts_the_presets_without_loading_local_models():
    ch.check(config())


def test_paper_preset_stops_at_once_offline():
    from lls import models

    if models.hub_reachable():
        pytest.skip("the hub is reachable here: the paper preset would download its model")
    with pytest.raises(MissingModelError):
        ch.check(resolve("04_random_search", "paper"))


def fake_search(sigma, grad_norm, trace, n, seed, scale=1.0, base=2.0, dim=1000):
    """Antithetic losses of an exact quadratic in a space where g^T eps ~ N(0, sigma^2 ||g||^2)."""
    rng = np.random.default_rng(seed)
    f1 = scale * sigma * grad_norm * rng.standard_normal(n)
    f2 = 0.5 * sigma**2 * trace * (1 + 0.1 * rng.standard_normal(n))
    return SearchResult(base=base, plus=base + f1 + f2, minus=base - f1 + f2, sigma=sigma, seed=seed, dim=dim)


def fake_curves(scale=1.0, grad_norm=3.0, trace=100.0):
    sigmas = np.array([1e-3, 1e-2, 1e-1])
    runs = [fake_search(s, grad_norm, trace, 512, 0, scale) for s in sigmas]  # same eps at every sigma
    diag = F1F2Result(sigmas=sigmas, f1=np.stack([r.f1 for r in runs]), f2=np.stack([r.f2 for r in runs]),
                      base=2.0, dim=1000, runs=runs)
    return ch.Curves("fake", 1000, diag, grad_norm, trace, 1.0)


def fake_ranking(gain_order, scale=1.0):
    """Five subspaces with densities 1..5 (mass reversed); measured gains ranked by ``gain_order``."""
    dims = [1, 10, 100, 1000, 10000]
    density = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    mass = density * np.array(dims)
    norm, n = 0.01, 64
    seeds = [0, 1]
    searches = [[fake_search(norm / np.sqrt(k), np.sqrt(m), 0.0, n, 10 * s + j, scale, dim=k)
                 for j, (k, m) in enumerate(zip(dims, mass, strict=True))] for s in seeds]
    gain = np.array([gain_order, gain_order], dtype=float)
    return ch.Ranking(names=list("abcde"), dims=dims, density=density, mass=mass, mass_seed=np.stack([mass, mass]),
                      curvature=np.zeros(5), norm=norm, n=n, gain=gain, first_order=gain, searches=searches,
                      seeds=seeds)


def test_linear_sigma_is_the_largest_local_linear_sigma():
    curves = fake_curves()
    assert curves.diag.linear().tolist() == [True, True, False]
    assert ch.linear_sigma(curves.diag) == pytest.approx(1e-2)
    # an odd part that stops scaling with sigma (third-order terms) is not local-linear either
    curves.diag.f1[1] *= 1.5
    assert ch.linear_sigma(curves.diag) == pytest.approx(1e-3)


def test_c5_ratios_are_one_for_a_gaussian_first_order_signal():
    rows = ch.c5_ratios([fake_curves()], [fake_ranking([5, 4, 3, 2, 1])])
    ratios = np.array([r["ratio"] for r in rows])
    assert len(rows) == 2 + 10  # two local-linear sigmas, five subspaces x two seeds
    assert {r["sigma"] for r in rows if r["space"] == "fake"} == {1e-3, 1e-2}
    assert np.all(np.abs(ratios - 1) < 0.25)


def test_claims_follow_the_measurements():
    follows, reversed_ = fake_ranking([5, 4, 3, 2, 1]), fake_ranking([1, 2, 3, 4, 5])
    good = ch.claims([fake_curves()], follows, follows, [0])
    assert [c.verdict for c in good] == ["reproduced", "reproduced"]
    assert good[1].value == pytest.approx(1.0)
    assert ch.claims([fake_curves()], follows, reversed_, [0])[1].verdict == "partly"
    bad = ch.claims([fake_curves(scale=0.3)], fake_ranking([1, 2, 3, 4, 5], scale=0.3), reversed_, [0])
    assert [c.verdict for c in bad] == ["not reproduced", "not reproduced"]
    assert bad[1].value == pytest.approx(-1.0)


def test_ranking_prediction_and_spearman():
    ranking = fake_ranking([5, 4, 3, 1, 2])
    assert ranking.spearman("density").tolist() == pytest.approx([0.9, 0.9])
    assert ranking.spearman("mass").tolist() == pytest.approx([-0.9, -0.9])
    from lls.theory import expected_max_normal

    assert ranking.predicted() == pytest.approx(0.01 * np.sqrt(ranking.density) * expected_max_normal(64))


def test_figures_and_tables_build():
    curves, ranking = fake_curves(), fake_ranking([5, 4, 3, 2, 1])
    assert len(ch.figure_diagnostic([curves, curves]).data) == 8
    assert len(ch.figure_best_of_n(curves, [curves], ranking).data) > 6
    assert len(ch.figure_density(ranking).data) == 4
    assert list(ch.ranking_table(ranking)["subspace"]) == list("abcde")
    assert len(ch.curves_table([curves])) == 3


def test_powers_of_two_grid():
    assert ch._ns(1024) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert ch._ns(100)[-2:] == [64, 100]
    assert ch.claim_n(4) == 2 and ch.claim_n(1024) == 256
