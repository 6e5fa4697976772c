"""Tests of lls.theory (closed forms against brute force) and of chapter 1 (lls.chapters.theory)."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate, special

from lls import curvature, layers, lowrank_law, presets, subspace, theory
from lls.chapters import theory as chapter
from lls.chapters.theory import analysis, figures, protocol
from lls.chapters.theory.claims import (
    density_claim,
    density_verdict,
    krylov_claim,
    krylov_verdict,
    theorem1_claim,
    theorem1_verdict,
)
from lls.chapters.theory.results import (
    Lemma1Result,
    OptimizerRun,
    PushforwardResult,
    SubspaceRow,
    Theorem1Row,
)
from lls.claims import REGISTRY, threshold
from lls.errors import ConfigError


def test_expected_max_normal_exact_values():
    assert theory.expected_max_normal(1) == 0.0
    assert theory.expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-12)
    assert theory.expected_max_normal(3) == pytest.approx(1.5 / math.sqrt(math.pi), abs=1e-12)
    assert theory.sd_max_normal(1) == pytest.approx(1.0, abs=1e-10)
    assert theory.sd_max_normal(2) == pytest.approx(math.sqrt(1 - 1 / math.pi), abs=1e-10)
    with pytest.raises(ValueError):
        theory.expected_max_normal(0)


def test_expected_max_normal_against_simulation_and_asymptote():
    ns = [5, 40, 300]
    trials = 20000
    sim = theory.simulate_max_normal(ns, trials, np.random.default_rng(0))
    for n, s in zip(ns, sim, strict=True):
        se = theory.sd_max_normal(n) / math.sqrt(trials)  # about 0.004
        assert abs(s - theory.expected_max_normal(n)) < 4 * se
        assert theory.asymptotic_max_normal(n) > theory.expected_max_normal(n)
    # the asymptote's relative error shrinks, slowly
    big = theory.expected_max_normal(10**9) / theory.asymptotic_max_normal(10**9)
    assert 0.9 < big < 1


@pytest.mark.parametrize("chunk", [theory.CHUNK, 64])  # one chunk holds many candidates / one candidate spans 5
def test_sample_quadratic_first_and_second_order_laws(monkeypatch, chunk):
    monkeypatch.setattr(theory, "CHUNK", chunk)
    dim, draws, sigma, gnorm, h = 300, 4000, 0.1, 2.0, 0.5
    first, second = theory.sample_quadratic(dim, draws, sigma, gnorm, h, torch.Generator().manual_seed(1))
    # g^T eps ~ N(0, sigma^2 ||g||^2): sd 0.2, sd of the sample sd ~ 0.2 / sqrt(2 * 4000) = 0.0022
    assert first.std(ddof=1) == pytest.approx(sigma * gnorm, abs=0.009)
    assert abs(first.mean()) < 4 * sigma * gnorm / math.sqrt(draws)
    # eps^T H eps / 2 = h sigma^2 chi2_D / 2: mean 0.75, sd 0.75 sqrt(2 / D) = 0.061
    assert second.mean() == pytest.approx(theory.second_order_mean(sigma, h * dim), abs=4 * 0.061 / math.sqrt(draws))
    assert second.std(ddof=1) == pytest.approx(0.061, rel=0.1)


def test_sigma_star_maximises_the_net_gain_and_crossover():
    gnorm, tr, n = 1.3, 40.0, 16
    star = theory.sigma_star(gnorm, tr, n)
    grid = np.linspace(0.2 * star, 3 * star, 2001)
    net = [theory.first_order_gain(s, gnorm, n) - theory.second_order_mean(s, tr) for s in grid]
    assert grid[int(np.argmax(net))] == pytest.approx(star, rel=2e-3)
    assert theory.sigma_star(gnorm, -1.0, n) == math.inf
    d_c = theory.crossover_dim(0.01, gnorm, n, 0.2)
    assert theory.second_order_mean(0.01, 0.2 * d_c) == pytest.approx(theory.first_order_gain(0.01, gnorm, n))


def _problem():
    return theory.DensityProblem(dim=1000, sizes=(5, 50, 300), masses=(0.2, 0.3, 0.4),
                                 subspaces={"A": (0,), "B": (1,), "BC": (1, 2)})


def test_density_problem_masses():
    p = _problem()
    g = p.gradient(torch.Generator().manual_seed(2))
    assert float(g.norm()) == pytest.approx(1.0)
    for name in p.names():
        idx = p.coordinates(name)
        assert len(idx) == p.size(name)
        assert float(g[idx].pow(2).sum()) == pytest.approx(p.mass(name))
    assert p.density("A") == pytest.approx(0.04) and p.density("full") == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        theory.DensityProblem(dim=10, sizes=(8, 8), masses=(0.5, 0.5), subspaces={})


def test_subspace_search_gains_match_proposition1():
    p = _problem()
    trials, n = 400, 8
    gains = theory.subspace_search_gains(p, 1.0, n, trials, torch.Generator().manual_seed(3))
    for name in p.names():
        pred = theory.predicted_subspace_gain(p, name, 1.0, n)
        se = theory.sd_max_normal(n) * math.sqrt(p.density(name)) / math.sqrt(trials)
        assert abs(gains[name].mean() - pred) < 4 * se, name
    order = sorted(p.names(), key=lambda k: -gains[k].mean())
    assert order == sorted(p.names(), key=lambda k: -p.density(k))


def test_krylov_toy_gd_in_krylov_space_adam_not():
    toy = theory.KrylovToy.build(60, focus_dirs=(5, 20), focus=0.9, eig_low=0.01, eig_high=1.0,
                                 generator=torch.Generator().manual_seed(4))
    assert float(toy.g.norm()) == pytest.approx(1.0)
    torch.testing.assert_close(torch.linalg.eigvalsh(toy.H).flip(0), toy.eigvals)
    sgd = theory.optimizer_updates(toy.loss, 60, "sgd", 1.0, 20)
    torch.testing.assert_close(sgd, toy.gd_updates(1.0, 20), rtol=1e-12, atol=1e-14)
    basis = curvature.krylov_basis(curvature.hessian_operator(toy.loss, torch.zeros(60, dtype=torch.float64)),
                                   toy.g, 10)
    assert theory.krylov_residuals(basis, sgd).max() < 1e-12
    adam = theory.optimizer_updates(toy.loss, 60, "adam", 0.05, 20)
    assert theory.krylov_residuals(basis, adam).max() > 0.1
    disp = sgd.sum(0)
    np.testing.assert_allclose(subspace.prefix_capture(sgd, disp, [3, 6]),
                               [subspace.capture(basis[:, :k], disp) for k in (3, 6)], atol=1e-8)


def test_linear_pushforward_exact_for_linear_and_conv1d():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=40, bos_token_id=0, eos_token_id=0, n_positions=16,
                                      n_embd=16, n_layer=2, n_head=2)).double().eval()
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=40, bos_token_id=0, eos_token_id=0, hidden_size=16,
                                         intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=2)).double().eval()
    ids = torch.randint(0, 40, (2, 6))
    for model, kind in ((gpt2, "Conv1D"), (llama, "Linear")):
        name, module = protocol.first_linear(layers.blocks(model)[1])
        assert type(module).__name__ == kind
        before = module.weight.detach().clone()
        err = protocol.linear_pushforward(module, lambda m=model: m(input_ids=ids),
                                          1e-2, torch.Generator().manual_seed(5))
        assert err < 1e-11, (kind, err)
        assert torch.equal(module.weight, before)  # restored exactly


# --- configuration -----------------------------------------------------------------------------


def test_presets_validate_and_cpu_is_the_class_default():
    assert presets.resolve("01_theory", "cpu") == replace(chapter.Config(), preset="cpu")
    smoke = presets.resolve("01_theory", "smoke")
    assert (smoke.model, smoke.t1_max_log10_dim, smoke.hutchinson_probes) == ("tiny-llama", 5, 2)
    assert presets.resolve("01_theory", "paper").model == "qwen2.5-0.5b"


@pytest.mark.parametrize("bad", [{"t1_min_draws": 4096, "t1_max_draws": 2048}, {"t1_n": 64, "t1_min_draws": 32},
                                 {"sigma_min": 1.0, "sigma_max": 0.1}, {"pf_step_min": 0.1, "pf_step_max": 0.01},
                                 {"f1f2_n": 5, "f1f2_pairs": 3}, {"l1_k_max": 50, "l1_steps": 20},
                                 {"l1_k_max": 150}])
def test_rules_reject_bad_combinations(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        presets.resolve("01_theory", "smoke", **bad)


def test_bounds_choices_and_old_spelling():
    with pytest.raises(ConfigError, match="hutchinson_probes"):
        presets.resolve("01_theory", "smoke", hutchinson_samples=4)
    with pytest.raises(ConfigError, match="outside its range"):
        presets.resolve("01_theory", "smoke", t1_max_log10_dim=10)
    with pytest.raises(ConfigError, match="not one of"):
        presets.resolve("01_theory", "smoke", model="gpt-5")
    assert presets.resolve("01_theory", "smoke", hutchinson_probes="4").hutchinson_probes == 4


# --- helpers and summaries ---------------------------------------------------------------------


def test_sweep_grid_and_density_problem():
    cfg = presets.resolve("01_theory", "smoke")
    assert protocol.dims(cfg.t1_max_log10_dim) == [10, 100, 1000, 10**4, 10**5]
    spec = protocol.Theorem1Spec(cfg.seed, 5, cfg.t1_budget, cfg.t1_min_draws, cfg.t1_max_draws, cfg.t1_n,
                                 cfg.t1_sigma, cfg.t1_curvature)
    assert protocol.n_draws(spec, 10) == cfg.t1_max_draws and protocol.n_draws(spec, 10**9) == cfg.t1_min_draws
    assert protocol.n_draws(spec, 10**4) == 2000  # budget 2e7 / D
    p = protocol.density_problem(cfg.p1_dim)
    densities = {n: p.density(n) for n in p.names()}
    masses = {n: p.mass(n) for n in p.names()}
    assert max(densities, key=densities.get) == "A" and max(masses, key=masses.get) == "full"


def test_linear_range():
    assert analysis.linear_range(np.array([1, 2, 3]), np.array([True, True, False])) == (1, 2)
    assert analysis.linear_range(np.array([1, 2, 3]), np.array([True, True, True])) == (1, 3)
    assert analysis.linear_range(np.array([1, 2]), np.array([False, True])) is None


def _sweep(cfg, ratios, se=0.01):
    """Hand-made Theorem 1 rows whose best-of-t1_n gain is ``ratio * e_N`` ± ``se * e_N``."""
    e_n = theory.expected_max_normal(cfg.t1_n)
    return [Theorem1Row(dim=10**i, draws=100, ns=[cfg.t1_n], first=np.array([r * e_n]),
                        first_se=np.array([se * e_n]), second=0.0, second_se=0.0, net=0.01 * i, net_first=0.0,
                        g_spread=1.0) for i, r in enumerate(ratios, start=1)]


def test_theorem1_summary_pools_and_tests_dimension_independence():
    cfg = presets.resolve("01_theory", "smoke")
    flat = analysis.summarize_theorem1(cfg, _sweep(cfg, [1.0, 1.01, 0.99, 1.0]))
    assert flat.pooled == pytest.approx(1.0) and flat.pooled_se == pytest.approx(0.005)
    assert flat.dof == 3 and flat.p_value > 0.5 and flat.max_z == pytest.approx(1.0)
    assert flat.crossover == pytest.approx(theory.crossover_dim(cfg.t1_sigma, 1.0, cfg.t1_n, cfg.t1_curvature))
    assert analysis.summarize_theorem1(cfg, _sweep(cfg, [0.9, 1.0, 1.1, 1.2])).p_value < 1e-6


def test_sigma_explorer_figure_has_one_slider_step_per_dimension():
    cfg = presets.resolve("01_theory", "smoke")
    fig = chapter.fig_sigma_explorer(analysis.summarize_theorem1(cfg, _sweep(cfg, [1.0, 1.0, 1.0])))
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["1e+01", "1e+02", "1e+03"]
    star_x = [s.args[0]["x"][2][0] for s in steps]
    assert star_x[0] / star_x[1] == pytest.approx(10)  # sigma* ~ 1 / tr H ~ 1 / D


def test_pushforward_summary_finds_linear_range_and_slope():
    cfg = presets.resolve("01_theory", "smoke")
    x = np.geomspace(1e-8, 1e-2, 7)
    err = 100 * x + 1e-9 / x  # rounding floor at small steps, first-order remainder at large ones

    def result(step_norms, theta_norm, rel_error):
        return PushforwardResult(1, "q", 1e-5, 1e-14, theta_norm, step_norms, rel_error, np.ones(7), 10)

    s = analysis.summarize_pushforward(cfg, result(5 * x, 5.0, err))
    assert s.linear_up_to == pytest.approx(1e-3, rel=0.05)
    assert s.slope == pytest.approx(1.0, abs=0.05)
    assert analysis.summarize_pushforward(cfg, result(x, 1.0, np.ones(7))).linear_up_to is None
    assert analysis.summarize_pushforward(cfg, result(x, 1.0, np.full(7, 0.01))).linear_up_to == pytest.approx(1e-2)


def _f1f2_summary():
    """A hand-made F1/F2 summary on a four-sigma grid."""
    sig = np.geomspace(1e-4, 1e-1, 4)
    return analysis.F1F2Summary(
        model="tiny-llama", dim=1000, n_tensors=4, base=3.0, n=2, probes=2, sigmas=sig, f1_spread=sig,
        f2_mean=sig**2, f2_sem=0.1 * sig**2, linear=np.array([True, True, False, False]), gains=sig - sig**2,
        linear_range=(1e-4, 1e-3), grad_norm=1.0, trace=10.0, trace_se=1.0, sigma_star=0.05,
        sigma_star_zeroth_order=0.04, sigma_star_measured=1e-2, grid_ratio=10.0)


def _lemma1():
    """A hand-made Lemma 1 result on a 20-dimensional quadratic, k = 1..3."""
    run = OptimizerRun(residual=np.array([1e-16, 1e-15, 1e-14]), prefix=np.array([0.5, 0.8, 1.0]),
                       krylov=np.array([0.5, 0.8, 1.0]), loss_start=1.0, loss_end=0.1, kept=3,
                       prefix_float64=np.array([0.5, 0.8, 1.0]), kept_float64=3)
    return Lemma1Result(dim=20, ks=[1, 2, 3], krylov_dim=3, gd=run, adam=run, gd_closed_form_error=1e-15)


def test_every_figure_builder_stores_a_caption():
    cfg = presets.resolve("01_theory", "smoke")
    t1 = [replace(r, second=1e-4 * r.dim) for r in _sweep(cfg, [1.0, 1.0, 1.0])]  # positive, as on a log axis
    t1s = analysis.summarize_theorem1(cfg, t1)
    pf = analysis.summarize_pushforward(cfg, PushforwardResult(1, "q", 1e-5, 1e-14, 1.0, np.geomspace(1e-6, 1e-2, 3),
                                                               np.array([1e-3, 1e-2, 0.2]), np.ones(3), 10))
    built = {"fig_collapse": chapter.fig_collapse(t1), "fig_second_order": chapter.fig_second_order(t1, t1s),
             "fig_f1f2": chapter.fig_f1f2(_f1f2_summary(), cfg.f1f2_pairs),
             "fig_density": chapter.fig_density(_density([3.0, 2.0, 1.0]), cfg.p1_trials),
             "fig_krylov": chapter.fig_krylov(_lemma1()), "fig_pushforward": chapter.fig_pushforward(pf),
             "fig_sigma_explorer": chapter.fig_sigma_explorer(t1s)}
    assert set(built) == {name for name in vars(figures) if name.startswith("fig_")}  # none left out
    for name, fig in built.items():
        caption = fig.layout.meta["caption"]
        assert caption.strip() and "<" not in caption and "**" not in caption, name  # plain text
    assert f"{cfg.f1f2_pairs} antithetic pairs" in built["fig_f1f2"].layout.meta["caption"]
    assert f"mean over {cfg.p1_trials} searches" in built["fig_density"].layout.meta["caption"]


# --- claim rules -------------------------------------------------------------------------------


def _theorem1(pooled, pooled_se, p_value):
    cfg = presets.resolve("01_theory", "smoke")
    base = analysis.summarize_theorem1(cfg, _sweep(cfg, [1.0, 1.0]))
    return replace(base, pooled=pooled, pooled_se=pooled_se, p_value=p_value)


def test_c5_rule_gives_each_verdict():
    z, p = threshold("C5", "theory_z"), threshold("C5", "theory_p")
    paper = REGISTRY["C5"].paper
    assert theorem1_verdict(_theorem1(paper + 0.5 * z * 0.01, 0.01, 0.5)) == "verified (math)"
    assert theorem1_verdict(_theorem1(paper + 2 * z * 0.01, 0.01, 0.5)) == "contradicted"  # flat, off target
    assert theorem1_verdict(_theorem1(paper, 0.01, p / 2)) == "contradicted"  # on target, depends on D
    assert theorem1_verdict(_theorem1(paper + 2 * z * 0.01, 0.01, p / 2)) == "contradicted"
    assert theorem1_verdict(_theorem1(paper, 0.01, p)) == "contradicted"  # p must exceed theory_p
    claim = theorem1_claim(_theorem1(0.98, 0.01, 0.5))
    assert (claim.value, claim.spread, claim.paper, claim.kind) == (0.98, 0.01, paper, "math")
    assert claim.ci == pytest.approx([0.98 - 1.96 * 0.01, 0.98 + 1.96 * 0.01], abs=1e-4)
    assert "not an SD over seeds" in claim.interval_method


def _density(mean_gains, rho=None):
    """Subspaces with densities 3 > 2 > 1 and the given mean gains (so the given order by gain)."""
    cfg = presets.resolve("01_theory", "smoke")
    rows = [SubspaceRow(name, 10, mass, dens, np.array([g - 0.1, g + 0.1]), 0.0)
            for name, mass, dens, g in zip("XYZ", (0.1, 0.5, 0.9), (3.0, 2.0, 1.0), mean_gains, strict=True)]
    s = analysis.summarize_proposition1(cfg, rows)
    return s if rho is None else replace(s, rho_density=rho)


def test_c6_rule_gives_each_verdict():
    good = _density([3.0, 2.0, 1.0])
    assert good.names == good.by_density == ["X", "Y", "Z"] and good.rho_density == pytest.approx(1.0)
    assert good.rho_mass == pytest.approx(-1.0)
    assert density_verdict(good) == "verified (math)"
    swapped = _density([3.0, 1.0, 2.0])
    assert swapped.names == ["X", "Z", "Y"] and swapped.rho_density == pytest.approx(0.5)
    assert density_verdict(swapped) == "contradicted"
    near = threshold("C6", "theory_rho_partly")
    assert density_verdict(_density([3.0, 1.0, 2.0], rho=near)) == "inconclusive"
    assert density_verdict(_density([3.0, 1.0, 2.0], rho=near - 0.01)) == "contradicted"
    assert density_claim(good).n == 2


def test_c7_rule_gives_each_verdict():
    limit = threshold("C7", "residual_max")
    s = analysis.KrylovSummary(dim=100, k_max=12, gd_residual=limit / 10, adam_residual=0.5, prefix_gap=1e-4,
                               gd_closed_form_error=1e-15, kept=8, prefix_gap_float64=1e-6, kept_float64=11)
    assert krylov_verdict(s) == "verified (math)"
    assert krylov_verdict(replace(s, gd_residual=limit)) == "contradicted"
    assert "keeps 8 of the first 12" in s.gap_sentence()
    assert krylov_claim(s).value == pytest.approx(limit / 10)


def test_claim_texts_keep_markdown_tables_intact():
    s = analysis.KrylovSummary(dim=100, k_max=12, gd_residual=1e-15, adam_residual=0.5, prefix_gap=1e-4,
                               gd_closed_form_error=1e-15, kept=8, prefix_gap_float64=1e-6, kept_float64=11)
    cfg = presets.resolve("01_theory", "smoke")
    pf = analysis.summarize_pushforward(cfg, PushforwardResult(1, "q", 1e-5, 1e-14, 1.0, np.geomspace(1e-6, 1e-2, 3),
                                                               np.array([1e-3, 1e-2, 0.2]), np.ones(3), 10))
    summary = chapter.Summary(theorem1=_theorem1(1.0, 0.01, 0.5), f1f2=None, density=_density([3.0, 2.0, 1.0]),
                              krylov=s, pushforward=pf)
    out = chapter.claims(summary)
    assert [c.id for c in out] == ["C5", "C6", "C7"]
    assert [c.verdict for c in out] == ["verified (math)"] * 3
    for claim in out:
        assert "|" not in claim.note + claim.unit, claim.id  # a pipe would split the scorecard's cells


# --- the protocol on the smoke preset ----------------------------------------------------------


def test_smoke_protocol_end_to_end(isolated):
    cfg = presets.resolve("01_theory", "smoke")
    t1 = chapter.theorem1(cfg)
    assert [r.dim for r in t1] == protocol.dims(5)
    f = chapter.f1f2(cfg)
    assert f.search.f1.shape == (cfg.n_sigmas, cfg.f1f2_pairs) and f.grad_norm > 0
    summary = chapter.Summary(
        theorem1=analysis.summarize_theorem1(cfg, t1), f1f2=analysis.summarize_f1f2(cfg, f),
        density=analysis.summarize_proposition1(cfg, chapter.proposition1(cfg)),
        krylov=analysis.summarize_lemma1(chapter.lemma1(cfg)),
        pushforward=analysis.summarize_pushforward(cfg, chapter.pushforward(cfg)))
    assert summary.pushforward.layer == 1  # pf_layer -1: the middle block of tiny-llama's two
    assert summary.pushforward.one_layer_float64 < 1e-10
    assert [c.verdict for c in chapter.claims(summary)] == ["verified (math)"] * 3
    extra = chapter.extra_metrics(summary)
    assert extra["theorem1_chi2_p"] == summary.theorem1.p_value and extra["krylov_prefix_gap"] < 1e-3
    # an analysis-only parameter (f1f2_n) reuses the cached diagnostic; a protocol one does not
    chapter.f1f2(replace(cfg, f1f2_n=3))
    entries = lambda: len(list(Path(isolated, "cache").rglob("_f1f2/*/output.pkl")))  # noqa: E731
    assert entries() == 1
    chapter.f1f2(replace(cfg, f1f2_pairs=4))
    assert entries() == 2



# --- Theorem 1 under low-rank noise --------------------------------------------------------------

SPECTRUM = (3.0, 1.5, 1.0, 0.5, 0.2, 0.1)  # unequal, so that a mix-up of s and s^2 shows


def _gradient(spectrum=SPECTRUM, shape=(8, 6), seed=0):
    """A gradient matrix (m, n) float64 with the given singular values and random singular vectors."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(shape[0], len(spectrum), generator=gen, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(shape[1], len(spectrum), generator=gen, dtype=torch.float64))[0]
    return u @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize("rank", [1, 3])
def test_lowrank_signal_variance_and_kurtosis_against_simulation(rank):
    """Explicit A, B: Var(g^T eps) = ||G||_F^2 (sigma = 1) and E[S^4] = (3 + excess kurtosis) ||G||_F^4,
    each within 4.5 standard errors (estimated from the sample) over 200,000 draws."""
    grad = _gradient()
    draws = lowrank_law.simulate_lowrank_signal(grad, rank, 200_000, torch.Generator().manual_seed(rank))
    norm2 = float(grad.pow(2).sum())
    assert norm2 == pytest.approx(sum(s * s for s in SPECTRUM))
    n = len(draws)
    for values, target in [(draws, 0.0), (draws**2, norm2),
                           (draws**4, (3 + lowrank_law.lowrank_excess_kurtosis(SPECTRUM, rank)) * norm2**2)]:
        assert abs(values.mean() - target) < 4.5 * values.std(ddof=1) / math.sqrt(n)
    kurt = lowrank_law.lowrank_excess_kurtosis(SPECTRUM, rank)
    assert kurt == pytest.approx(6 * sum(s**4 for s in SPECTRUM) / (rank * norm2**2))
    assert lowrank_law.lowrank_excess_kurtosis([1.0], 1) == 6.0  # the product of two normals


def test_lowrank_survival_function_of_a_product_of_normals():
    """r = 1 and a rank-1 gradient: Y = u v, density K_0(|x|) / pi, whatever the singular value."""
    for y in (0.0, 0.3, 1.0, 3.0, 8.0):
        exact = integrate.quad(lambda x: special.k0(x) / math.pi, y, np.inf, epsabs=1e-15)[0]
        assert lowrank_law.lowrank_signal_sf(y, [2.5], 1) == pytest.approx(exact, rel=1e-8, abs=1e-13)
    assert lowrank_law.lowrank_signal_sf(-1.0, [1.0], 1) == pytest.approx(1 - lowrank_law.lowrank_signal_sf(1.0, [1.0], 1))
    assert lowrank_law.lowrank_signal_cf(0.7, [1.0], 1) == pytest.approx(1 / math.sqrt(1 + 0.49))


def test_expected_max_lowrank_limits_and_exact_values():
    ns = [1, 2, 10, 1000]
    gauss = np.array([theory.expected_max_normal(n) for n in ns])
    rank1 = lowrank_law.expected_max_lowrank(ns, [1.0], 1)
    assert rank1[0] == 0 and rank1[1] == pytest.approx(0.5, abs=1e-7)  # Y_1 - Y_2 is Laplace(1)
    assert rank1[3] > gauss[3] + 2  # exponential tails: far above e_N for many candidates
    # r -> infinity: Gaussian, Theorem 1 as it is
    np.testing.assert_allclose(lowrank_law.expected_max_lowrank(ns, SPECTRUM, 10**7), gauss, atol=1e-5)
    # rank r on rank-1 G is rank 1 on r equal singular values
    np.testing.assert_allclose(lowrank_law.expected_max_lowrank(ns, [1.0], 4),
                               lowrank_law.expected_max_lowrank(ns, [1.0] * 4, 1), atol=1e-7)
    # e~_2 <= e_2 (Jensen), and the gap to the Gaussian shrinks as r grows
    gaps = [abs(lowrank_law.expected_max_lowrank([2, 1000], SPECTRUM, r) - gauss[[1, 3]]) for r in (1, 4, 16)]
    assert all(lowrank_law.expected_max_lowrank([2], SPECTRUM, r)[0] < gauss[1] for r in (1, 4, 16))
    assert np.all(gaps[0] > gaps[1]) and np.all(gaps[1] > gaps[2])


@pytest.mark.parametrize("rank", [1, 2])
def test_expected_max_lowrank_against_simulation(rank):
    """51,200 explicit draws of g^T eps / ||G||_F: their tail frequencies at y = 0.5, 1, 2, 3 and the
    mean of the max of N over 400 blocks per N, each within 4.5 standard errors of
    :func:`lls.lowrank_law.lowrank_signal_sf` and :func:`lls.lowrank_law.expected_max_lowrank`."""
    ns = [2, 16, 128]
    grad = _gradient()
    draws = lowrank_law.simulate_lowrank_signal(grad, rank, 128 * 400, torch.Generator().manual_seed(10 + rank))
    draws /= float(grad.norm())
    for y in (0.5, 1.0, 2.0, 3.0):
        p = lowrank_law.lowrank_signal_sf(y, SPECTRUM, rank)
        assert abs((draws > y).mean() - p) < 4.5 * math.sqrt(p * (1 - p) / len(draws)), (y, p)
    predicted = lowrank_law.expected_max_lowrank(ns, SPECTRUM, rank)
    for n, p in zip(ns, predicted, strict=True):
        maxima = draws[: 400 * n].reshape(400, n).max(axis=1)
        assert abs(maxima.mean() - p) < 4.5 * maxima.std(ddof=1) / math.sqrt(400), (n, maxima.mean(), p)
