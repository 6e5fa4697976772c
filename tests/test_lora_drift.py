"""Chapter 3 (LoRA drift): config rules, run keys, measures, verdict rules and one tiny end-to-end run."""

import dataclasses

import numpy as np
import pytest
import torch

from lls import lora, models, subspace
from lls.chapters import lora_drift as ch
from lls.chapters.lora_drift import figures
from lls.chapters.lora_drift.analysis import first_k_reaching, undone
from lls.chapters.lora_drift.claims import c2_verdict, c3_verdict, c4_verdict
from lls.chapters.lora_drift.protocol import TaskBatches, weight_change_captures
from lls.claims import REGISTRY, threshold
from lls.errors import ConfigError, MissingModelError
from lls.evaluation import answer_loss
from lls.presets import resolve
from lls.train import train

TINY = dict(learn_steps=3, forget_steps=3, recover_steps=8, k_max=8, k_ref=3, k_static=2, n_grad_batches=3,
            lanczos_iter=3, checkpoint_every=4, drift_k=2, n_eval=4, batch_size=2, lora_rank=2, lora_alpha=4,
            lr=1e-2)


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, word", [
    ({"k_ref": 50}, "k_ref must be at most k_max"),
    ({"k_max": 13}, "k_max must be at most recover_steps"),
    ({"k_static": 5}, "k_static must be at most n_grad_batches"),
    ({"drift_k": 5}, "drift_k must be at most n_grad_batches"),
    ({"k_static": 4, "lanczos_iter": 3}, "k_static must be at most lanczos_iter"),
    ({"checkpoint_every": 12}, "checkpoint_every must be below recover_steps"),
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
                                      ("n_grad", "n_grad_batches"), ("drift_every", "checkpoint_every")])
def test_old_spelling_names_the_new_one(old, new):
    with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
        resolve("03_lora_drift", "smoke", **{old: 4})


def test_missing_hub_model_stops_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = resolve("03_lora_drift", "paper", models="lls-test-owner/no-such-model")
    with pytest.raises(MissingModelError, match="not in the local Hugging Face cache"):
        models.require(models.names_from(cfg.models))


def test_run_specs_ignore_what_only_selects_or_summarises_runs():
    base = ch.run_specs(resolve("03_lora_drift", "smoke"))
    same = ch.run_specs(resolve("03_lora_drift", "smoke", n_seeds=3, k_ref=2, curvature_runs=1, pairs=1))
    assert same[0] == base[0] and same[0].with_curvature
    assert [(s.model, s.pair, s.seed) for s in same] == [("tiny-llama", 0, s) for s in (0, 1, 2)]
    shifted = ch.run_specs(resolve("03_lora_drift", "smoke", seed=1, n_seeds=2, curvature_runs=0))
    assert shifted[0] == dataclasses.replace(same[1], with_curvature=False)
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


def fake_run(seed: int, prefix_at_3: float, loss_after_b: float, lag_steps=(0, 4, 8)) -> ch.RunResult:
    """A run of pair (plural, past_tense) whose task-A loss goes 2.0 -> 0.2 -> ``loss_after_b`` -> 0.2."""
    prefix = np.linspace(0.1, 1.0, 8)
    prefix[2] = prefix_at_3
    evals = {p: {"plural": {"loss": 0.2, "accuracy": 1.0}, "past_tense": {"loss": 0.2, "accuracy": 1.0}}
             for p in ("start", "after A", "after B", "after recovery")}
    evals["start"] = {**evals["start"], "plural": {"loss": 2.0, "accuracy": 0.0}}
    evals["after B"] = {**evals["after B"], "plural": {"loss": loss_after_b, "accuracy": 0.5}}
    return ch.RunResult(model="m", pair=("plural", "past_tense"), seed=seed, dim=100, dim_dw=1000, prefix=prefix,
                        prefix_dw=prefix, static={"gradient SVD": np.array([0.01, 0.02])}, task_vector=0.01,
                        task_vector_dw=0.01, drift_steps=list(lag_steps), overlap=np.eye(3),
                        drift_capture=np.zeros((3, 3)), evals=evals, losses={})


def test_undone_and_summary_of_fake_runs():
    assert undone(fake_run(0, 0.8, 1.1)) == pytest.approx(0.5)
    cfg = resolve("03_lora_drift", "smoke", **TINY)
    s = ch.summarize(cfg, [fake_run(0, 0.8, 1.5), fake_run(1, 0.6, 0.3)])
    assert s.prefix_at_k_ref == pytest.approx((0.7, 0.02 ** 0.5))
    assert s.forgotten == [True, False] and s.prefix_at_k_ref_forgotten == (pytest.approx(0.8), None)
    assert s.halving_lags == [4.0, 4.0] and s.static_k == 2
    assert list(s.paper_static) == ["gradient SVD", "task-A adapter"]
    assert ch.extra_numbers(s)["static_gradient SVD"] == pytest.approx(0.02)


def test_every_figure_builder_stores_a_caption():
    cfg = resolve("03_lora_drift", "smoke", **TINY)
    runs = [fake_run(0, 0.8, 1.5), fake_run(1, 0.6, 0.3)]
    built = {"prefix_figure": ch.prefix_figure(cfg, runs),
             "static_figure": ch.static_figure(cfg, runs, ch.summarize(cfg, runs)),
             "drift_figure": ch.drift_figure(cfg, runs[0]), "lag_figure": ch.lag_figure(runs)}
    assert set(built) == {name for name in vars(figures) if name.endswith("_figure")}  # none left out
    for name, fig in built.items():
        caption = fig.layout.meta["caption"]
        assert caption.strip() and "<" not in caption and "**" not in caption, name  # plain text
    assert "2 runs (m; task A plural; seeds 0, 1)" in built["prefix_figure"].layout.meta["caption"]
    assert "seed 0" in built["drift_figure"].layout.meta["caption"]


# --- verdict rules (hand-built summaries) --------------------------------------------------------


def summary(**changes) -> ch.Summary:
    """A Summary where every rule holds (C2, C3, C4 reproduced), with ``changes`` applied."""
    base = ch.Summary(
        seeds=[0, 1], n_runs=2, k_ref=3, recover_steps=8, drift_k=2, adapter_dim=100, weight_change_dim=1000,
        random_at_k_ref=0.03, prefix_at_k_ref=(0.8, 0.0), prefix_dw_at_k_ref=(0.8, 0.0),
        prefix_at_k_ref_by_pair={}, prefix_at_k_ref_forgotten=(0.8, 0.0), k_reaching_paper=[3, 3],
        k_reaching_paper_dw=[3, 3], task_vector=(0.01, 0.0), task_vector_dw=(0.01, 0.0), undone=[0.7, 0.7],
        forgotten=[True, True], task_a_loss={"after A": 0.2, "after B": 1.5, "after recovery": 0.2}, static_k=2,
        static={"gradient SVD": (0.02, 0.0)}, paper_static={"gradient SVD": (0.02, 0.0), "task-A adapter": (0.01, 0.0)},
        prefix_at_static_k=(0.5, 0.0), halving_lags=[4.0, 8.0], halving_lag=(6.0, 2.8), seconds_per_run=[1.0, 1.0],
        cpu_seconds_per_run=[1.0, 1.0])
    return dataclasses.replace(base, **changes)


def test_c4_rule_gives_each_verdict():
    edge = REGISTRY["C4"].paper - threshold("C4", "lora_tolerance")
    partly = threshold("C4", "lora_partly")
    assert c4_verdict(summary(prefix_at_k_ref=(edge, 0.0))) == "reproduced"
    assert c4_verdict(summary(prefix_at_k_ref=(edge - 1e-9, 0.0))) == "partly"
    assert c4_verdict(summary(prefix_at_k_ref=(partly, 0.0))) == "partly"
    assert c4_verdict(summary(prefix_at_k_ref=(partly - 1e-9, 0.0))) == "not reproduced"


def test_c4_capped_at_partly_when_most_runs_did_not_forget():
    assert c4_verdict(summary(forgotten=[True, False])) == "reproduced"  # half forgotten: no cap
    assert c4_verdict(summary(forgotten=[True, False, False])) == "partly"
    assert c4_verdict(summary(forgotten=[False, False], prefix_at_k_ref=(0.4, 0.0))) == "not reproduced"
    c4 = {c.id: c for c in ch.claims(summary(forgotten=[False, False]))}["C4"]
    assert c4.verdict == "partly" and "0 of 2 runs" in c4.note and c4.paper == REGISTRY["C4"].paper


def test_c2_rule_gives_each_verdict():
    assert c2_verdict(summary()) == "reproduced"
    bound = summary().prefix_at_static_k[0] * threshold("C2", "lora_prefix_fraction")
    assert c2_verdict(summary(paper_static={"random": (bound - 1e-9, None)})) == "reproduced"
    assert c2_verdict(summary(paper_static={"random": (bound, None)})) == "not reproduced"
    c2 = {c.id: c for c in ch.claims(summary(paper_static={"a": (0.1, 0.0), "b": (0.3, 0.1)}))}["C2"]
    assert c2.value == pytest.approx(0.3) and c2.spread == pytest.approx(0.1) and "(b; of a, b)" in c2.note


def test_c3_rule_gives_each_verdict():
    limit = REGISTRY["C3"].paper
    assert c3_verdict(summary(halving_lags=[20.0, limit])) == "reproduced"
    assert c3_verdict(summary(halving_lags=[20.0, limit + 20])) == "partly"
    assert c3_verdict(summary(halving_lags=[20.0, None])) == "partly"
    assert c3_verdict(summary(halving_lags=[None, None], halving_lag=(None, None))) == "not reproduced"
    c3 = {c.id: c for c in ch.claims(summary())}["C3"]
    assert c3.value == 6.0 and c3.unit == "steps" and "[4.0, 8.0]" in c3.note


# --- one tiny run --------------------------------------------------------------------------------


def test_one_tiny_run_end_to_end():
    cfg = resolve("03_lora_drift", "smoke", models="tiny-gpt2", pairs=1, **TINY)
    (spec,) = ch.run_specs(cfg)
    r = ch.run.uncached(spec)
    assert r.prefix.shape == r.prefix_dw.shape == (8,)
    assert r.prefix[-1] == pytest.approx(1.0, abs=1e-4)       # all T updates span Delta exactly
    assert r.prefix_dw[-1] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(r.prefix) >= -1e-6) and np.all(np.diff(r.prefix_dw) >= -1e-6)
    assert set(r.static) == {"gradient SVD", "random", "Hessian top-k", "Krylov (HVPs)"}
    assert r.drift_steps == [0, 4, 8]
    np.testing.assert_allclose(np.diag(r.overlap), 1.0, atol=1e-5)
    assert r.drift_capture.shape == (3, 3)
    assert list(r.evals) == ["start", "after A", "after B", "after recovery"]
    assert len(r.losses["A"]) == 3 and len(r.losses["B"]) == 3 and len(r.losses["recovery"]) == 8
    cl = {c.id: c for c in ch.claims(ch.summarize(cfg, [r]))}
    assert set(cl) == {"C2", "C3", "C4"} and cl["C4"].value == pytest.approx(r.prefix[2])
