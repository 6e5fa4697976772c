"""Tests of chapter 4 (lls.chapters.random_search): config, rules and analysis on hand-built results."""

import numpy as np
import pytest

from lls.chapters import random_search as ch
from lls.chapters.random_search import analysis, protocol
from lls.chapters.random_search.analysis import Correlations
from lls.chapters.random_search.claims import c5_verdict, c6_at_norm, c6_verdict
from lls.errors import ConfigError, MissingModelError
from lls.f1f2 import F1F2Result
from lls.presets import resolve
from lls.randopt import RandOptResult
from lls.search import SearchResult
from lls.stats import Interval


def config(**overrides):
    return resolve("04_random_search", "smoke", **overrides)


@pytest.mark.parametrize("overrides, words", [
    ({"sigma_min": 0.1, "sigma_max": 0.01}, "sigma_min"),
    ({"lm_sigma_min": 0.5, "lm_sigma_max": 0.5}, "lm_sigma_min"),
    ({"randopt_n": 4, "randopt_k": 5}, "randopt_k"),
    ({"lm_task": "poetry"}, "lm_task"),
    ({"model": "synthetic-gpt2"}, "model"),
])
def test_config_rejects_bad_parameters(overrides, words):
    with pytest.raises(ConfigError, match=words):
        config(**overrides)


@pytest.mark.parametrize("old, new", [("lora_r", "lora_rank"), ("lm_model", "model"),
                                      ("hutchinson", "hutchinson_probes"), ("randopt_test", "n_eval")])
def test_old_spellings_name_the_new_one(old, new):
    with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
        config(**{old: 2})


def test_presets_resolve_without_loading_a_model():
    assert config().model == "tiny-llama" and resolve("04_random_search", "cpu").model == "smollm2-135m"


def test_paper_preset_stops_at_once_offline():
    from lls import models

    if models.hub_reachable():
        pytest.skip("the hub is reachable here: the paper preset would download its model")
    with pytest.raises(MissingModelError):
        models.require([resolve("04_random_search", "paper").model])


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
    exact = runs[0].f1 / sigmas[0]  # g^T eps of the same directions (the quadratic's odd part is exact)
    return protocol.Curves("fake", 1000, diag, grad_norm, trace, 1.0, projection_grid=exact, projection_best=exact)


def fake_ranking(gain_order, scale=1.0, seeds=2):
    """Five subspaces with densities 1..5 (mass reversed); measured gains ranked by ``gain_order``."""
    dims = [1, 10, 100, 1000, 10000]
    density = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    mass = density * np.array(dims)
    norm, n = 0.01, 64
    seeds = list(range(seeds))
    searches = [[fake_search(norm / np.sqrt(k), np.sqrt(m), 0.0, n, 10 * s + j, scale, dim=k)
                 for j, (k, m) in enumerate(zip(dims, mass, strict=True))] for s in seeds]
    gain = np.array([gain_order] * len(seeds), dtype=float) + 0.01 * np.arange(len(seeds))[:, None]
    return protocol.Ranking(names=list("abcde"), dims=dims, density=density, mass=mass,
                            mass_seed=np.stack([mass] * len(seeds)), curvature=np.zeros(5), norm=norm, n=n, gain=gain,
                            first_order=gain, searches=searches, seeds=seeds)


def test_linear_sigma_is_the_largest_local_linear_sigma():
    curves = fake_curves()
    assert curves.diag.linear().tolist() == [True, True, False]
    assert protocol.linear_sigma(curves.diag) == pytest.approx(1e-2)
    # an odd part that stops scaling with sigma (third-order terms) is not local-linear either
    curves.diag.f1[1] *= 1.5
    assert protocol.linear_sigma(curves.diag) == pytest.approx(1e-3)


def test_c5_ratios_are_one_for_a_gaussian_first_order_signal():
    rows = ch.c5_ratios([fake_curves()], [fake_ranking([5, 4, 3, 2, 1])])
    assert len(rows) == 3 + 10  # every search is reported: three sigmas, five subspaces x two seeds
    inside = [r for r in rows if r["in C5"]]
    assert len(inside) == 2 + 10 and {r["sigma"] for r in inside if r["space"] == "fake"} == {1e-3, 1e-2}
    assert np.all(np.abs(np.array([r["ratio"] for r in inside]) - 1) < 0.25)
    interval = analysis.stream_interval(rows)
    assert interval.n == 1 + 10  # the grid's sigmas share their directions: one unit
    assert "not over training seeds" in interval.method and interval.low < 1 < interval.high


def test_the_c5_selection_never_reads_a_ratio():
    """A search enters C5 by its F1/F2 diagnostic alone: scaling its odd part (and so its ratio) by any
    factor that keeps it local-linear leaves the selection as it was."""
    ranking = fake_ranking([5, 4, 3, 2, 1])
    before = [r["in C5"] for r in ch.c5_ratios([fake_curves()], [ranking])]
    run = ranking.searches[0][0]
    run.plus, run.minus = run.base + 5 * (run.plus - run.base), run.base + 5 * (run.minus - run.base)
    rows = ch.c5_ratios([fake_curves()], [ranking])
    assert [r["in C5"] for r in rows] == before and rows[3]["ratio"] > 4
    run.plus, run.minus = np.full(run.n, run.base + 1.0), np.full(run.n, run.base + 1.0)  # pure curvature
    assert not ch.c5_ratios([fake_curves()], [ranking])[3]["in C5"]


def interval(low, high, n=5):
    return Interval((low + high) / 2, 0.1, n, low, high, "test")


@pytest.mark.parametrize("low, high, verdict", [
    (0.85, 1.2, "reproduced"), (0.65, 0.75, "partly"), (1.3, 1.5, "partly"), (0.7, 0.9, "inconclusive"),
    (1.1, 1.4, "inconclusive"), (0.52, 0.58, "not reproduced"), (1.7, 1.9, "not reproduced"),
    (0.2, 0.45, "contradicted"), (2.1, 3.0, "contradicted"), (0.3, 3.0, "inconclusive")])
def test_c5_rule_gives_every_verdict(low, high, verdict):
    assert c5_verdict(interval(low, high)) == verdict


def rho(density, mass):
    density, mass = np.asarray(density, dtype=float), np.asarray(mass, dtype=float)
    return Correlations(1.0, density, mass, density)


@pytest.mark.parametrize("density, mass, verdict", [
    ([0.9, 0.95, 1.0], [0.1, 0.2, 0.0], "reproduced"),
    ([0.9, 0.95, 1.0], [0.9, 0.95, 1.0], "partly"),  # density ranks no better than mass
    ([0.5, 0.9, 1.0], [0.0, 0.0, 0.0], "inconclusive"),  # the interval straddles 0.7
    ([0.3, 0.35, 0.4], [0.0, 0.0, 0.0], "not reproduced"),
    ([-0.9, -0.8, -0.85], [0.5, 0.5, 0.5], "contradicted"),
])
def test_c6_rule_at_one_norm_gives_every_verdict(density, mass, verdict):
    assert c6_at_norm(rho(density, mass)) == verdict


def test_c6_rule_over_both_norms_gives_every_verdict():
    good, no_mass, unsure = rho([0.9, 0.95, 1.0], [0, 0, 0]), rho([1, 1, 1], [1, 1, 1]), rho([0.5, 0.9, 1], [0, 0, 0])
    weak, against = rho([0.3, 0.35, 0.4], [0, 0, 0]), rho([-0.9, -0.8, -0.85], [0.5, 0.5, 0.5])
    assert c6_verdict(good, good) == "reproduced"
    assert c6_verdict(good, weak) == c6_verdict(against, no_mass) == "partly"
    assert c6_verdict(good, unsure) == "inconclusive"
    assert c6_verdict(weak, against) == "not reproduced"
    assert c6_verdict(against, against) == "contradicted"
    assert c6_verdict(rho([1.0], [0.0]), good) == "inconclusive"  # one seed: no interval


def summary(curves, local, practical):
    randopt = RandOptResult(scores=np.zeros(4), top=[0, 1], base_accuracy=0.1,
                            member_accuracy=np.array([0.2, 0.1]), ensemble_accuracy=0.3)
    rows = ch.c5_ratios(curves, [local, practical])
    return analysis.Summary(
        task="reverse", acc0={}, acc_f={}, synthetic_dim=1000, synthetic_base=2.0, synthetic_grad_norm=3.0,
        synthetic_trace=100.0, synthetic_trace_se=1.0, sigma_star=0.01, lm_name="lm", lm_dim=10, lm_loss=1.0,
        lm_accuracy=0.5, lm_grad_norm=1.0, lm_best_n=8, lm_best_sigma=0.01, lm_evals_per_s=1.0,
        c5_rows=rows, c5_interval=analysis.stream_interval(rows),
        c5_all_interval=analysis.stream_interval(rows, every=True), c5_slope=analysis.dimension_slope(rows),
        gradient_checks=[],
        local=analysis.correlations(local), practical=analysis.correlations(practical), c6_n=local.n,
        c6_subspaces=len(local.names), c6_seeds=local.seeds, randopt_sigma=0.01, randopt=randopt, seeds=[0])


def test_claims_follow_the_measurements():
    follows, reversed_ = fake_ranking([5, 4, 3, 2, 1], seeds=3), fake_ranking([1, 2, 3, 4, 5], seeds=3)
    good = ch.claims(summary([fake_curves()], follows, follows))
    assert [c.verdict for c in good] == ["reproduced", "reproduced"]
    assert [c.kind for c in good] == ["empirical", "empirical"]  # measured on trained models, not a math check
    assert good[1].value == pytest.approx(1.0) and good[1].seeds == [0, 1, 2] and good[1].n == 3
    assert good[0].n == 1 + 3 * 5 and "noise streams" in good[0].interval_method and good[0].ci is not None
    assert ch.claims(summary([fake_curves()], follows, reversed_))[1].verdict == "partly"
    against = fake_ranking([1, 2, 3, 4, 5], scale=0.3, seeds=3)
    bad = ch.claims(summary([fake_curves(scale=0.3)], against, against))
    assert [c.verdict for c in bad] == ["contradicted", "contradicted"]
    assert bad[1].value == pytest.approx(-1.0)
    assert summary([fake_curves()], follows, follows).randopt_member_mean == pytest.approx(0.15)


def test_ranking_prediction_and_spearman():
    ranking = fake_ranking([5, 4, 3, 1, 2])
    assert analysis.spearman(ranking, "density").tolist() == pytest.approx([0.9, 0.9])
    assert analysis.spearman(ranking, "mass").tolist() == pytest.approx([-0.9, -0.9])
    from lls.theory import expected_max_normal

    assert analysis.predicted(ranking) == pytest.approx(0.01 * np.sqrt(ranking.density) * expected_max_normal(64))


def test_figures_and_tables_build():
    curves, ranking = fake_curves(), fake_ranking([5, 4, 3, 2, 1])
    assert len(ch.figure_diagnostic([curves, curves]).data) == 8
    assert len(ch.figure_best_of_n(curves, [curves], ranking).data) > 6
    assert len(ch.figure_density(ranking).data) == 2 * (len(ranking.names) + 1)  # a marker per subspace, theory
    table = ch.ranking_table(ranking).splitlines()
    assert len(table) == 2 + 5 and table[2].startswith("| a ")
    assert len(ch.curves_table([curves]).splitlines()) == 2 + 3
    assert "ratio" in ch.ratios_table(ch.c5_ratios([curves], []))



def test_every_figure_has_a_caption_built_from_its_inputs():
    curves, ranking = fake_curves(), fake_ranking([5, 4, 3, 2, 1])
    randopt = RandOptResult(scores=np.zeros(7), top=[3, 1], base_accuracy=0.1,
                            member_accuracy=np.array([0.2, 0.1]), ensemble_accuracy=0.3)
    figures = [ch.figure_diagnostic([curves, curves]), ch.figure_best_of_n(curves, [curves], ranking),
               ch.figure_density(ranking), ch.figure_randopt(randopt)]
    captions = [fig.layout.meta["caption"] for fig in figures]
    assert all(isinstance(c, str) and c.strip() and "<" not in c for c in captions)
    assert "512 pairs at each of 3 σ" in captions[0]
    assert "7 searches in spaces of 1 to 10,000 dimensions" in captions[1]  # 2 local-linear σ + 5 subspaces
    assert "mean over 2 search seeds" in captions[2] and "best of 64" in captions[2]
    assert "top 2 of 7" in captions[3]

def test_claim_n():
    assert protocol.claim_n(4) == 2 and protocol.claim_n(1024) == 256


def test_theta_f_is_chapter_2s_own_cached_point(isolated, monkeypatch):
    import lls.protocols.forget_recover as fr
    from lls.chapters.synthetic import config as chapter2_config
    from lls.chapters.synthetic import protocol as chapter2_protocol

    cfg = config(eval_batch=4)
    training = chapter2_config.PRESETS["smoke"].training()
    point = chapter2_protocol.forgotten(training, cfg.seed)  # chapter 2 computes and caches it

    def no_training(*args, **kwargs):
        raise AssertionError("chapter 4 must not rerun the forgetting run")

    monkeypatch.setattr(fr, "train", no_training)
    monkeypatch.setattr(chapter2_protocol, "train", no_training)
    s = protocol.setup(cfg)
    assert s.space.get().equal(point.theta) and s.acc_f == point.accuracy
    assert s.acc0 == chapter2_protocol.pretrain(training, cfg.seed).accuracy
    assert protocol.chapter2(cfg) is chapter2_config.PRESETS["smoke"]


def test_f1_is_the_projection_of_the_same_directions_on_a_linear_loss():
    import torch

    from lls.f1f2 import local_linear, projections, spread_range
    from lls.params import ParamSpace
    from lls.search import best_of_n

    model = torch.nn.Linear(5, 1, bias=False)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    space = ParamSpace(model)
    grad = x.sum(0)  # the loss is model(x).sum(), linear in the weights

    run = best_of_n(space, lambda: float(model(x).sum().detach()), 6, 0.01, seed=3, progress=False)
    np.testing.assert_allclose(run.f1 / 0.01, projections(space, grad, 3, 6), rtol=1e-4, atol=1e-5)
    assert local_linear(run)
    low, high = spread_range(8)
    assert low == pytest.approx(0.4912, abs=1e-3) and high == pytest.approx(1.5125, abs=1e-3)


def test_gradient_check_separates_sampling_from_curvature():
    curves = fake_curves()
    check = analysis.gradient_check(curves)
    assert check["f1_vs_projection"] < 1e-12 and check["f1_norm"] == pytest.approx(check["projection_sd"])
    assert check["range"][0] < curves.grad_norm < check["range"][1] and check["pairs"] == 512


def test_lowrank_ranks_and_ns():
    from lls.chapters.random_search.lowrank_noise import law_ns, ranks_up_to

    assert ranks_up_to(1) == [1] and ranks_up_to(5) == [1, 4] and ranks_up_to(16) == [1, 4, 16]
    assert law_ns(8192) == [2, 8, 32, 128, 512] and law_ns(512) == [2, 8, 32]


def test_lowrank_law_check_agrees_with_the_law_and_can_fail():
    import torch

    from lls.chapters.random_search import lowrank_analysis
    from lls.chapters.random_search.lowrank_noise import law_check

    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randn(3, 5, generator=gen, dtype=torch.float64)]
    law = law_check(grads, [1, 4], 4096, [2, 8, 32], seed=1)
    rows = lowrank_analysis.law_rows(law)
    assert len(rows) == 2 * 3 and law.draws.shape == (2, 4096)
    assert all(abs(r["variance"].mean - 1) < 0.1 for r in rows)
    assert rows[0]["kurtosis_law"] == pytest.approx(4 * rows[3]["kurtosis_law"])  # 6 / (r r_eff)
    hits, checked = lowrank_analysis.LowRankSummary(rows, [], 1.0, 1, 0.1, 2, 4).law_inside
    assert checked == 2 + 2 + 6 and hits >= checked - 1
    law.draws *= 1.3  # a wrong scale: the variance leaves its interval
    wrong = lowrank_analysis.LowRankSummary(lowrank_analysis.law_rows(law), [], 1.0, 1, 0.1, 2, 4)
    assert wrong.law_inside[0] < checked - 1 and any(m.startswith("Var Y at r=1: law 1.000") for m in wrong.law_misses)
    assert "| 1 | 2 |" in lowrank_analysis.law_table(rows)


def test_lowrank_search_rows_table_and_figure():
    import torch

    from lls.chapters.random_search.lowrank_noise import NoiseSearches, law_check

    grads = [torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)]
    law = law_check(grads, [1, 4], 256, [2, 8], seed=1)
    seeds = [0, 1, 2]
    gaussian = [fake_search(0.01, law.grad_norm, 0.0, 64, s) for s in seeds]
    low = [[fake_search(0.01, law.grad_norm, 0.0, 64, 10 * r + s, scale=1.2) for s in seeds] for r in (1, 4)]
    searches = NoiseSearches(0.01, 24, law.grad_norm, [1, 4], seeds, gaussian, low)
    summary = ch.summarize_lowrank(law, searches)
    rows = summary.searches
    assert [r["noise"] for r in rows] == ["Gaussian", "low-rank r=1", "low-rank r=4"] and rows[0]["N"] == 16
    assert rows[1]["difference"].n == 3 and rows[1]["first_order"].mean > rows[0]["first_order"].mean
    assert len(ch.noise_table(rows).splitlines()) == 2 + 3
    fig = ch.figure_lowrank(law, searches)
    assert "3 searches per noise" in fig.layout.meta["caption"] and len(fig.data) > 6


def test_dimension_slope_sees_a_gain_that_shrinks_with_dimension():
    flat = ch.c5_ratios([fake_curves()], [fake_ranking([5, 4, 3, 2, 1], seeds=3)])
    slope, low, high, streams = analysis.dimension_slope(flat)
    assert streams == 1 + 15 and low < 0 < high
    shrinking = [dict(r, ratio=r["dim"] ** -0.5) for r in flat]
    slope, low, high, _ = analysis.dimension_slope(shrinking)
    assert high < 0
    assert analysis.dimension_slope(flat[:3]) is None


def test_bases_of_one_k_share_a_noise_stream_per_seed():
    ranking = fake_ranking([5, 4, 3, 2, 1])
    ranking.dims = [1, 10, 100, 100, 100]  # c, d and e are bases of one k: the same z for one seed
    for row in ranking.searches:  # as in the protocol: one search seed for every subspace of a row
        for run in row:
            run.seed = row[0].seed
    streams = {r["stream"] for r in ch.c5_ratios([], [ranking])}
    assert len(streams) == 2 * 3
