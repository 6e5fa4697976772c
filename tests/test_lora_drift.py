"""Chapter 3 (LoRA drift): config rules, run keys, measures, verdict rules and one tiny end-to-end run."""


import numpy as np
import pytest
import torch

from lls import lora, models, subspace
from lls.chapters import lora_drift as ch
from lls.chapters.lora_drift import figures, plan, protocol
from lls.chapters.lora_drift.analysis import first_k_reaching, undone
from lls.chapters.lora_drift.setup import TaskBatches
from lls.claims import REGISTRY
from lls.errors import ConfigError, MissingModelError
from lls.evaluation import answer_loss
from lls.lora import weight_change_captures
from lls.presets import resolve
from lls.train import train

TINY = dict(learn_steps=3, forget_steps=3, recover_steps=8, horizons="4,8", k_fraction=0.375, k_static=2,
            n_grad_batches=2, lanczos_iter=3, checkpoint_every=2, drift_window=4, drift_k=2, n_eval=4, batch_size=2,
            lora_rank=2, lora_alpha=4, lr=1e-2)


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, word", [
    ({"horizons": "6,10"}, "the last horizon must equal recover_steps"),
    ({"horizons": "5,12"}, "multiple of checkpoint_every"),
    ({"horizons": "a,12"}, "comma-separated positive integers"),
    ({"k_static": 4}, "k_static must be at most k at the longest horizon"),
    ({"drift_k": 4}, "drift_k must be at most n_grad_batches"),
    ({"k_static": 3, "lanczos_iter": 2}, "k_static must be at most lanczos_iter"),
    ({"drift_window": 9}, "drift_window must be a multiple of checkpoint_every"),
    ({"drift_window": 14}, "drift_window at most recover_steps"),
    ({"pairs": 5}, "pairs must be at most screen_max"),
    ({"models": "tiny-llama,nonsense"}, "Unknown model"),
])
def test_config_rejects_inconsistent_parameters(values, word):
    with pytest.raises(ConfigError, match=word):
        resolve("03_lora_drift", "smoke", **values)


def test_presets_are_valid_and_cpu_is_the_class_default():
    assert ch.PRESETS["cpu"] == ch.Config()
    assert ch.PRESETS["smoke"].models == "tiny-llama" and ch.PRESETS["paper"].models == "distilgpt2,gpt2"


@pytest.mark.parametrize("old, new", [("rank", "lora_rank"), ("alpha", "lora_alpha"), ("steps_a", "learn_steps"),
                                      ("steps_b", "forget_steps"), ("steps_recover", "recover_steps"),
                                      ("n_grad", "n_grad_batches"), ("drift_every", "checkpoint_every"),
                                      ("curvature_runs", "curvature_seeds"), ("k_ref", "k_fraction")])
def test_old_spelling_names_the_new_one(old, new):
    with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
        resolve("03_lora_drift", "smoke", **{old: 4})


def test_missing_hub_model_stops_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = resolve("03_lora_drift", "paper", models="lls-test-owner/no-such-model")
    with pytest.raises(MissingModelError, match="not in the local Hugging Face cache"):
        models.require(models.names_from(cfg.models))


def fake_screen(passing):
    """A stand-in for the cached screen: the pairs in ``passing`` pass."""
    return lambda spec: {"model": spec.model, "pair": spec.pair, "undone": 0.9 if spec.pair in passing else 0.1,
                         "losses": [2.0, 0.2, 1.8]}


def test_screen_picks_the_first_passing_candidates_in_order(monkeypatch):
    cands = plan.CANDIDATE_PAIRS
    monkeypatch.setattr(protocol, "screen", fake_screen({cands[1], cands[2], cands[3]}))
    cfg = resolve("03_lora_drift", "smoke", pairs=2, screen_max=4)
    assert plan.chosen_pairs(cfg) == [("tiny-llama", cands[1]), ("tiny-llama", cands[2])]
    assert plan.chosen_pairs(resolve("03_lora_drift", "smoke", pairs=2, screen_max=2)) == [("tiny-llama", cands[1])]
    assert len(plan.screen_results(cfg)) == 3                  # stops once `pairs` have passed


def test_run_specs_ignore_what_only_selects_or_summarises_runs(monkeypatch):
    monkeypatch.setattr(protocol, "screen", fake_screen(set(plan.CANDIDATE_PAIRS)))
    base = ch.run_specs(resolve("03_lora_drift", "smoke"))
    same = ch.run_specs(resolve("03_lora_drift", "smoke", n_seeds=3, pairs=1, curvature_seeds=1))
    assert same[0] == base[0] and same[0].with_curvature and same[0].with_sgd and not same[1].with_curvature
    assert [(s.model, s.pair, s.seed) for s in same] == [("tiny-llama", plan.CANDIDATE_PAIRS[0], s) for s in (0, 1, 2)]
    assert same[0].horizons == (6, 12) and same[0].horizon_ks == (2, 3)
    assert ch.run_specs(resolve("03_lora_drift", "smoke", lr=0.5))[0] != base[0]


# --- measures ----------------------------------------------------------------------------------


def test_recorded_updates_sum_to_displacement():
    model, tok = models.load("tiny-gpt2")
    peft_model = lora.add_lora(model, r=2, alpha=4)
    space = lora.adapter_space(peft_model)
    data = TaskBatches(tok, "plural", 2, 24, 4, 0)
    traj = train(space, answer_loss, data, 5, lr=1e-2, record_first=5, progress=False)
    assert traj.updates.abs().sum() > 0
    torch.testing.assert_close(traj.updates.sum(0), traj.displacement(), atol=1e-6, rtol=0)
    torch.testing.assert_close(traj.end, space.get())


def test_weight_change_prefix_matches_dense_vectors():
    model, _ = models.load("tiny-llama")
    peft_model = lora.add_lora(model, r=2, alpha=4)
    gen = torch.Generator().manual_seed(1)
    dim = lora.adapter_space(peft_model).dim
    start, theta_a = torch.randn(dim, generator=gen), torch.randn(dim, generator=gen)
    updates = 0.3 * torch.randn(4, dim, generator=gen)
    end = start + updates.sum(0) + 0.3 * torch.randn(dim, generator=gen)  # T = 5 > K = 4 steps
    traj = type("Traj", (), dict(start=start, end=end, updates=updates))
    got = weight_change_captures(peft_model, traj, theta_a, 4)
    states = torch.cat([start[None], start + updates.cumsum(0)]).double()
    dw = torch.stack([lora.delta_weights(peft_model, s) for s in states])
    delta_w = lora.delta_weights(peft_model, end.double()) - dw[0]
    np.testing.assert_allclose(got["prefix"], subspace.prefix_capture(dw[1:] - dw[:-1], delta_w, range(1, 5)),
                               atol=1e-6)
    dw_a = lora.delta_weights(peft_model, theta_a.double())
    assert got["task_vector"] == pytest.approx(float((dw_a @ delta_w) ** 2 / (dw_a @ dw_a) / (delta_w @ delta_w)))


def test_first_k_reaching():
    assert first_k_reaching(np.array([0.2, 0.5, 0.8, 0.9]), 0.77) == 3
    assert first_k_reaching(np.array([0.2, 0.5]), 0.77) is None


def fake_run(seed: int, prefix_at_3: float, loss_after_b: float, sgd: bool = False) -> ch.RunResult:
    """A run of pair (plural, past_tense) whose task-A loss goes 2.0 -> 0.2 -> ``loss_after_b`` -> 0.2."""
    prefix = np.linspace(0.1, 1.0, 3)
    prefix[2] = prefix_at_3
    evals = {p: {"plural": {"loss": 0.2, "accuracy": 1.0}, "past_tense": {"loss": 0.2, "accuracy": 1.0}}
             for p in ("start", "after A", "after B", "after recovery")}
    evals["start"] = {**evals["start"], "plural": {"loss": 2.0, "accuracy": 0.0}}
    evals["after B"] = {**evals["after B"], "plural": {"loss": loss_after_b, "accuracy": 0.5}}
    horizon = {4: {"k": 2, "prefix": 0.5, "own": 0.3, "remaining": 0.2},
               8: {"k": 3, "prefix": prefix_at_3, "own": 0.2, "remaining": 0.1}}
    static = {"gradient SVD": np.array([0.01, 0.02]), "task-A adapter": np.array([0.1, np.nan])}
    lag = np.abs(np.subtract.outer([0, 2, 4], [0, 2, 4]))
    return ch.RunResult(model="m", pair=("plural", "past_tense"), seed=seed, dim=100, dim_dw=1000, prefix=prefix,
                        prefix_dw=prefix, horizon=horizon, static=static, task_vector_dw=0.01, drift_steps=[0, 2, 4],
                        cross_overlap=0.4 * np.exp(-lag / 2.0),
                        cross_overlap_dw=0.5 * np.exp(-lag / 8.0), drift_capture=np.zeros((3, 2)), evals=evals, losses={},
                        sgd={"lr": 0.5, "horizon": horizon, "static": static, "prefix": prefix, "loss_after": 0.3}
                        if sgd else {})


def test_undone_and_summary_of_fake_runs():
    assert undone(fake_run(0, 0.8, 1.1)) == pytest.approx(0.5)
    cfg = resolve("03_lora_drift", "smoke", **TINY)
    runs = [fake_run(0, 0.8, 1.5, sgd=True), fake_run(1, 0.6, 0.3), fake_run(2, 0.7, 1.6)]
    s = ch.summarize(cfg, runs, [])
    assert s.forgotten == [True, False, True]
    assert s.c4.mean == pytest.approx(0.75) and s.c4.n == 2 and s.c4.known       # forgotten runs only
    assert s.c4_not_forgotten.mean == pytest.approx(0.6) and s.c4_not_forgotten.n == 1
    assert s.horizon[4]["own"].mean == pytest.approx(0.3) and s.horizon[8]["prefix"].n == 2
    assert s.static_k == 2 and s.static_ratio["gradient SVD"].mean == pytest.approx(0.02 / 0.55)
    assert s.static_ratio["task-A adapter"].mean == pytest.approx(1.0)                # read at k = 1
    assert s.sgd_lr == [0.5] and s.sgd_static_ratio["gradient SVD"].n == 1
    assert s.halving_lags == [2.0, 2.0, 2.0] and s.ceiling[0] == pytest.approx(0.4)
    assert s.halving_lags_dw == [None] * 3 and s.ceiling_dw[0] == pytest.approx(0.5) and s.lag_dw is None
    assert ch.extra_numbers(s)["C4 own at T=4"] == pytest.approx(0.3)
    claims = {c.id: c for c in ch.claims(s)}
    assert claims["C4"].n == 2 and claims["C4"].ci is not None and "95% t-interval over 2 runs" in claims["C4"].interval_method
    assert claims["C2"].verdict == "not reproduced" and "task-A adapter" in claims["C2"].note
    assert claims["C3"].value == 2.0 and claims["C3"].verdict == "reproduced" and claims["C4"].paper == REGISTRY["C4"].paper


def test_every_figure_builder_stores_a_caption():
    cfg = resolve("03_lora_drift", "smoke", **TINY)
    runs = [fake_run(0, 0.8, 1.5), fake_run(1, 0.6, 0.3)]
    built = {"prefix_figure": ch.prefix_figure(cfg, runs),
             "static_figure": ch.static_figure(cfg, runs, ch.summarize(cfg, runs, [])),
             "drift_figure": ch.drift_figure(cfg, runs[0]), "lag_figure": ch.lag_figure(runs)}
    assert set(built) == {name for name in vars(figures) if name.endswith("_figure")}  # none left out
    for name, fig in built.items():
        caption = fig.layout.meta["caption"]
        assert caption.strip() and "<" not in caption and "**" not in caption, name  # plain text
    assert "2 runs (m; task A plural; seeds 0, 1)" in built["prefix_figure"].layout.meta["caption"]
    assert "seed 0" in built["drift_figure"].layout.meta["caption"]


# --- one tiny run --------------------------------------------------------------------------------


def test_one_tiny_run_end_to_end():
    cfg = resolve("03_lora_drift", "smoke", models="tiny-gpt2", **TINY)
    spec = protocol.RunSpec(**{**plan._shared(cfg, protocol.RunSpec), "model": "tiny-gpt2",
                               "pair": plan.CANDIDATE_PAIRS[0], "seed": 0, "with_curvature": True,
                               "with_sgd": True, "horizons": (4, 8), "horizon_ks": (2, 3)})
    r = ch.run.uncached(spec)
    assert r.prefix.shape == r.prefix_dw.shape == (3,)
    assert np.all(np.diff(r.prefix) >= -1e-6) and np.all(np.diff(r.prefix_dw) >= -1e-6)
    assert r.horizon[8]["prefix"] == pytest.approx(r.prefix[2], abs=1e-5)
    assert 0 <= r.horizon[4]["own"] <= r.horizon[4]["prefix"] + 1e-6      # the prefix's own part is in its span
    assert set(r.static) == {"gradient SVD", "random", "task-A adapter", "Hessian top-k", "Krylov (HVPs)",
                             "sign(g) (Adam's first steps)", "Adam-preconditioned gradients", "preconditioned Krylov"}
    assert r.drift_steps == [0, 2, 4] and r.cross_overlap.shape == r.cross_overlap_dw.shape == (3, 3)
    assert np.all((r.cross_overlap_dw >= -1e-6) & (r.cross_overlap_dw <= 1 + 1e-6))
    assert np.all((r.cross_overlap >= -1e-6) & (r.cross_overlap <= 1 + 1e-6))
    assert r.sgd["lr"] > 0 and set(r.sgd["horizon"]) == {4, 8} and set(r.sgd["static"]) == set(r.static)
    assert list(r.evals) == ["start", "after A", "after B", "after recovery"]
    assert len(r.losses["A"]) == 3 and len(r.losses["B"]) == 3 and len(r.losses["recovery"]) == 8
    cl = {c.id: c for c in ch.claims(ch.summarize(cfg, [r], []))}
    assert set(cl) == {"C2", "C3", "C4"}
