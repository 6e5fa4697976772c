"""Synthetic tasks, their loss and exact-match accuracy, and chapter 2's protocol on a micro config."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lls.chapters import synthetic as ch
from lls.errors import ConfigError
from lls.presets import resolve
from lls.synthetic import TASKS, Tasks, accuracies, answer_logits, batch_loss, exact_match


def test_answers_of_every_task():
    tasks = Tasks(length=4, n_symbols=5)
    x = torch.tensor([[3, 0, 4, 1]])
    assert tasks.answer("copy", x).tolist() == [[3, 0, 4, 1]]
    assert tasks.answer("reverse", x).tolist() == [[1, 4, 0, 3]]
    assert tasks.answer("sort", x).tolist() == [[0, 1, 3, 4]]
    assert tasks.answer("add", x).tolist() == [[4, 4, 4, 4]]  # (3+1, 0+4, 4+0, 1+3) mod 5
    with pytest.raises(ValueError):
        tasks.answer("divide", x)


def test_batch_layout_and_reproducible_sampler():
    tasks = Tasks(length=3, n_symbols=7)
    batch = tasks.batch(list(TASKS), 64, torch.Generator().manual_seed(0))
    assert batch.shape == (64, tasks.seq_len) and tasks.seq_len == 8
    assert (batch[:, 4] == tasks.sep).all() and batch.max() < tasks.vocab_size
    for task in TASKS:
        rows = batch[batch[:, 0] == tasks.task_token(task)]
        assert len(rows) > 0
        assert torch.equal(rows[:, 5:], tasks.answer(task, rows[:, 1:4]))
    a, b = tasks.sampler("sort", 5, seed=3), tasks.sampler("sort", 5, seed=3)
    assert torch.equal(a(1), b(1)) and torch.equal(a(0), b(0)) and not torch.equal(a(1), b(0))
    assert not torch.equal(a(0), tasks.sampler("sort", 5, seed=4)(0))


class Oracle(torch.nn.Module):
    """Predicts every next token right (one-hot logits), except the last answer token of the
    sequences equal to a row of ``wrong``."""

    def __init__(self, vocab, wrong=None):
        super().__init__()
        self.vocab, self.wrong = vocab, wrong

    def forward(self, input_ids):
        nxt = torch.roll(input_ids, -1, dims=1)
        if self.wrong is not None:
            rows = (input_ids[:, None, :] == self.wrong[None]).all(-1).any(1)
            nxt[rows, -2] = (nxt[rows, -2] + 1) % self.vocab
        return SimpleNamespace(logits=10.0 * F.one_hot(nxt, self.vocab).float())


def test_exact_match_and_loss_only_on_answers():
    tasks = Tasks(length=4, n_symbols=6)
    batch = tasks.batch("reverse", 10, torch.Generator().manual_seed(1))
    assert exact_match(Oracle(tasks.vocab_size), batch) == 1.0
    assert exact_match(Oracle(tasks.vocab_size, batch[[2, 7]]), batch, chunk=3) == 0.8
    logits = answer_logits(Oracle(tasks.vocab_size), batch)
    assert logits.shape == (10, 4, tasks.vocab_size)
    model = Oracle(tasks.vocab_size)
    expected = F.cross_entropy(logits.reshape(-1, tasks.vocab_size), batch[:, -4:].reshape(-1))
    assert torch.allclose(batch_loss(model, batch), expected)
    assert batch_loss(model, batch) < 1e-3 < batch_loss(Oracle(tasks.vocab_size, batch[[0]]), batch)


def micro(**kw):
    values = dict(pretrain_steps=8, forget_steps=4, recover_steps=8, record_first=8, checkpoint_every=4,
                  n_grad_batches=8, grad_batch_size=4, drift_batches=4, drift_k=2, lanczos_iter=8,
                  hvp_batch_size=8, eval_n=16, n_layer=1, n_embd=16, n_head=2, batch_size=8)
    cfg = resolve("02_synthetic", "smoke", **{**values, **kw})
    ch.check(cfg)
    return cfg


def test_chapter_checks_reject_bad_combinations():
    with pytest.raises(ConfigError, match="divisible"):
        ch.check(resolve("02_synthetic", "smoke", n_embd=30, n_head=4))
    with pytest.raises(ConfigError, match="record_first"):
        ch.check(resolve("02_synthetic", "smoke", record_first=64))
    with pytest.raises(ConfigError):
        resolve("02_synthetic", "smoke", task="divide")
    assert ch.ks(64) == [1, 2, 4, 8, 16, 32, 64] and ch.ks(6) == [1, 2, 4, 6]


def test_drift_lag_and_unstructured_baseline():
    steps = [0, 10, 20, 30]
    overlap = np.array([[1, .8, .4, .2], [.8, 1, .6, .3], [.4, .6, 1, .7], [.2, .3, .7, 1]])
    assert ch.drift_lag(steps, overlap) == 20  # lag 10: mean .7; lag 20: mean .35
    assert ch.drift_lag(steps, np.ones((4, 4))) is None
    rows = torch.randn(5, 50) * torch.arange(1, 6)[:, None]
    noise = ch.unstructured_like(rows, torch.Generator().manual_seed(0))
    assert torch.allclose(noise.norm(dim=1), rows.norm(dim=1))


def test_protocol_on_a_micro_model():
    cfg = micro()
    run = ch.forget_recover.uncached(cfg, 0)
    assert run.ks == [1, 2, 4, 8] and set(run.acc0) == set(TASKS)
    # the prefix of *all* recovery updates spans the displacement exactly
    assert run.capture["trajectory prefix"][-1] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(run.capture["trajectory prefix"]) >= -1e-6)
    for name, curve in run.capture.items():
        assert curve.shape == (4,) and np.all((curve >= -1e-6) & (curve <= 1 + 1e-5)), name
    assert run.capture["random"][-1] < 0.05
    assert run.drift_steps == [0, 4, 8] and np.allclose(np.diag(run.drift_overlap), 1, atol=1e-5)
    assert run.eff_rank["θ_f"].shape == (4,) and run.eff_rank["unstructured"][-1] >= run.eff_rank["θ_f"][-1]
    assert run.trajectory_bytes == (8 + 3 + 2) * run.dim * 4
    regimes = [ch.robustness.uncached(cfg, 0, r) for r in ch.REGIMES]
    assert regimes[0].noise_accuracy.shape == (len(ch.NOISE_MULTIPLES), len(TASKS))
    claims = ch.claims(cfg, [run], regimes)
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4", "C10"]
    assert claims[3].value == pytest.approx(1.0, abs=1e-4)
    for fig in (ch.capture_figure([run]), ch.spectrum_figure([run]), ch.drift_figure(run, 2),
                ch.lag_figure([run]), ch.recovery_figure([run], "reverse"), ch.regime_figure(regimes, cfg.task), ch.accuracy_figure([run], "reverse")):
        assert len(fig.data) > 0
    assert "sequential" in ch.regime_table(regimes, cfg.task, cfg.noise_sigma)
    assert "Measured here" in ch.findings(cfg, [run], regimes)


def test_multitask_training_learns_copy():
    cfg = micro(n_embd=32, length=3, n_symbols=4, pretrain_steps=150, lr=1e-2, batch_size=32, eval_n=64)
    trained = ch.pretrain.uncached(cfg, 0)
    assert np.mean(trained.losses[-10:]) < 0.7 * np.mean(trained.losses[:10])
    space = ch.build(cfg, 0)
    before = accuracies(space.model, ch.task_family(cfg), 64, 0)
    assert sum(trained.accuracy.values()) > sum(before.values()) + 0.2
