"""Chapter 3 (LoRA drift): its measures, the recorded trajectory, and one tiny end-to-end run."""

import numpy as np
import pytest
import torch

from lls import lora, models, subspace
from lls.chapters import lora_drift as ch
from lls.errors import ConfigError, MissingModelError
from lls.presets import resolve
from lls.train import train

TINY = dict(steps_a=3, steps_b=3, steps_recover=8, k_max=8, k_ref=3, k_static=2, n_grad=3, lanczos_iter=3,
            drift_every=4, drift_k=2, n_eval=4, batch_size=2, rank=2, alpha=4, lr=1e-2)


def test_gram_prefix_capture_matches_explicit_rows():
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(6, 40, generator=gen, dtype=torch.float64)
    rows[3] = rows[0] - 2 * rows[1]  # a dependent row adds nothing
    v = torch.randn(40, generator=gen, dtype=torch.float64)
    ks = range(1, 7)
    got = ch.gram_prefix_capture(rows @ rows.T, rows @ v, float(v @ v), ks)
    np.testing.assert_allclose(got, subspace.prefix_capture(rows, v, ks), atol=1e-9)
    assert got[2] == pytest.approx(got[3], abs=1e-9)


def test_basis_capture_curve_and_thresholds():
    basis = torch.eye(5)[:, :3]
    v = torch.tensor([3.0, 0.0, 4.0, 0.0, 0.0])
    curve = ch.basis_capture_curve(basis, v, [1, 2, 3, 4])
    np.testing.assert_allclose(curve[:3], [9 / 25, 9 / 25, 1.0], rtol=1e-6)
    assert np.isnan(curve[3])
    assert ch.first_k_reaching(np.array([0.2, 0.5, 0.8, 0.9]), 0.77) == 3
    assert ch.first_k_reaching(np.array([0.2, 0.5]), 0.77) is None


def test_halving_lag():
    steps = [0, 10, 20, 30]
    lags = np.abs(np.subtract.outer(steps, steps))
    assert ch.halving_lag(np.exp(-lags / 15.0), steps) == 20.0   # exp(-20/15) < 0.5 < exp(-10/15)
    assert ch.halving_lag(np.ones((4, 4)), steps) is None


def test_recorded_updates_sum_to_displacement():
    model, tok = models.load("tiny-gpt2")
    peft_model = lora.add_lora(model, r=2, alpha=4)
    space = lora.adapter_space(peft_model)
    data = ch.TaskBatches(tok, "plural", 2, 24, 4, 0)
    traj = train(space, ch.batch_loss, data, 5, lr=1e-2, record_first=5, progress=False)
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
    got = ch._weight_change_captures(peft_model, traj, theta_a, 4)
    states = torch.cat([start[None], start + updates.cumsum(0)]).double()
    dw = torch.stack([lora.delta_weights(peft_model, s) for s in states])
    delta_w = lora.delta_weights(peft_model, end.double()) - dw[0]
    np.testing.assert_allclose(got["prefix"], subspace.prefix_capture(dw[1:] - dw[:-1], delta_w, range(1, 5)),
                               atol=1e-6)
    dw_a = lora.delta_weights(peft_model, theta_a.double())
    assert got["task_vector"] == pytest.approx(float((dw_a @ delta_w) ** 2 / (dw_a @ dw_a) / (delta_w @ delta_w)))


def test_check_rejects_inconsistent_parameters():
    with pytest.raises(ConfigError, match="k_ref"):
        ch.check(resolve("03_lora_drift", "smoke", k_ref=50))
    with pytest.raises(ConfigError, match="Unknown model"):
        ch.check(resolve("03_lora_drift", "smoke", models="tiny-llama,nonsense"))
    ch.check(resolve("03_lora_drift", "smoke"))


def test_check_stops_at_once_on_a_missing_hub_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingModelError, match="not in the local Hugging Face cache"):
        ch.check(resolve("03_lora_drift", "paper", models="lls-test-owner/no-such-model"))


def test_one_tiny_run_end_to_end():
    cfg = resolve("03_lora_drift", "smoke", models="tiny-gpt2", **TINY)
    r = ch.run.uncached(cfg, "tiny-gpt2", 0, 0, True)
    assert r.prefix.shape == r.prefix_dw.shape == (8,)
    assert r.prefix[-1] == pytest.approx(1.0, abs=1e-4)       # all T updates span Delta exactly
    assert r.prefix_dw[-1] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(r.prefix) >= -1e-6) and np.all(np.diff(r.prefix_dw) >= -1e-6)
    assert set(r.static) == {"gradient SVD", "random", "Hessian top-k", "Krylov (HVPs)"}
    assert r.drift_steps == [0, 4, 8]
    np.testing.assert_allclose(np.diag(r.overlap), 1.0, atol=1e-5)
    assert r.drift_capture.shape == (3, 3)
    assert list(r.evals) == ["start", "after A", "after B", "after recovery"]
    cl = {c.id: c for c in ch.claims(cfg, [r])}
    assert set(cl) == {"C2", "C3", "C4"} and cl["C4"].value == pytest.approx(r.prefix[2])


def test_run_key_ignores_what_only_selects_or_summarises_runs():
    base = resolve("03_lora_drift", "smoke")
    same = resolve("03_lora_drift", "smoke", n_seeds=3, k_ref=2, seed=5, curvature_runs=0)
    assert ch.run_config(base) == ch.run_config(same)
    assert ch.run_config(base) != ch.run_config(resolve("03_lora_drift", "smoke", lr=0.5))
    assert ch.run_keys(same) == [("tiny-llama", p, s) for p in (0, 1) for s in (5, 6, 7)]


def fake_run(seed: int, prefix_at_3: float, loss_after_b: float) -> ch.RunResult:
    prefix = np.linspace(0.1, 1.0, 8)
    prefix[2] = prefix_at_3
    evals = {p: {"plural": {"loss": 0.2, "accuracy": 1.0}, "past_tense": {"loss": 0.2, "accuracy": 1.0}}
             for p in ("start", "after A", "after B", "after recovery")}
    evals["start"] = {**evals["start"], "plural": {"loss": 2.0, "accuracy": 0.0}}
    evals["after B"] = {**evals["after B"], "plural": {"loss": loss_after_b, "accuracy": 0.5}}
    return ch.RunResult(model="m", pair=("plural", "past_tense"), seed=seed, dim=100, dim_dw=1000, prefix=prefix,
                        prefix_dw=prefix, static={"gradient SVD": np.array([0.01, 0.02])}, task_vector=0.01,
                        task_vector_dw=0.01, drift_steps=[0, 4, 8], overlap=np.eye(3), drift_capture=np.zeros((3, 3)),
                        evals=evals, losses={})


def test_c4_verdict_follows_the_stated_rules():
    cfg = resolve("03_lora_drift", "smoke", **TINY)
    verdict = {c.id: c.verdict for c in ch.claims(cfg, [fake_run(0, 0.8, 1.5), fake_run(1, 0.8, 1.5)])}
    assert verdict == {"C4": "reproduced", "C2": "reproduced", "C3": "reproduced"}
    c4 = {c.id: c for c in ch.claims(cfg, [fake_run(0, 0.8, 0.3), fake_run(1, 0.8, 1.5)])}["C4"]
    assert c4.verdict == "reproduced"           # A forgotten in half of the runs: no cap
    assert c4.value == pytest.approx(0.8) and c4.spread == pytest.approx(0.0)
    c4 = {c.id: c for c in ch.claims(cfg, [fake_run(0, 0.8, 0.3), fake_run(1, 0.8, 0.3)])}["C4"]
    assert c4.verdict == "partly" and "0 of 2 runs" in c4.note
    assert ch.undone(fake_run(0, 0.8, 1.1)) == pytest.approx(0.5)
    assert {c.id: c.verdict for c in ch.claims(cfg, [fake_run(0, 0.4, 1.5)])}["C4"] == "not reproduced"
