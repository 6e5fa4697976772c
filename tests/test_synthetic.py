"""Synthetic tasks, their loss and exact-match accuracy; chapter 2's config, rules and protocol on a micro config."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lls.chapters import synthetic as ch
from lls.chapters.synthetic import figures, protocol
from lls.chapters.synthetic.analysis import Summary
from lls.chapters.synthetic.claims import c1_verdict, c2_verdict, c3_verdict, c4_verdict, c10_verdict
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
    values = dict(pretrain_steps=8, forget_steps=4, recover_steps=8, k_max=8, checkpoint_every=4,
                  n_grad_batches=8, grad_batch_size=4, drift_batches=4, drift_k=2, lanczos_iter=8,
                  hvp_batch_size=8, n_eval=16, n_layer=1, n_embd=16, n_head=2, batch_size=8)
    return resolve("02_synthetic", "smoke", **{**values, **kw})


@pytest.mark.parametrize("values, words", [
    ({"n_embd": 30, "n_head": 4}, "divisible"),
    ({"k_max": 64}, "k_max"),
    ({"k_max": 16, "recover_steps": 40, "n_grad_batches": 8}, "n_grad_batches"),
    ({"lanczos_iter": 4}, "lanczos_iter"),
    ({"drift_k": 5}, "drift_k"),
    ({"checkpoint_every": 3}, "checkpoint_every"),
    ({"task": "divide"}, "task"),
])
def test_config_rejects_bad_combinations(values, words):
    with pytest.raises(ConfigError, match=words):
        resolve("02_synthetic", "smoke", **values)


@pytest.mark.parametrize("old, new", [("tune_lr", "lr"), ("eval_n", "n_eval"), ("record_first", "k_max")])
def test_old_spellings_name_the_new_one(old, new):
    with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
        resolve("02_synthetic", "smoke", **{old: 1})


def test_training_holds_only_what_theta0_and_theta_f_depend_on():
    cfg = resolve("02_synthetic", "cpu")
    training = cfg.training()
    assert (training.lr, training.pretrain_lr, training.n_eval) == (3e-3, 5e-3, 512)
    for recovery_only in ({"recover_steps": 100}, {"k_max": 32}, {"drift_k": 4}, {"noise_sigma": 0.05}):
        assert resolve("02_synthetic", "cpu", **recovery_only).training() == training
    assert resolve("02_synthetic", "cpu", lr=1e-3).training() != training
    phases = training.phases(200, 64, 10)
    assert (phases.forget_steps, phases.recover_steps, phases.lr, phases.record_first) == (300, 200, 3e-3, 64)
    assert cfg.seeds() == [0, 1, 2]


def test_unstructured_baseline_keeps_row_norms():
    rows = torch.randn(5, 50) * torch.arange(1, 6)[:, None]
    noise = protocol.unstructured_like(rows, torch.Generator().manual_seed(0))
    assert torch.allclose(noise.norm(dim=1), rows.norm(dim=1))


def summary(**kw):
    """A hand-built Summary of two seeds whose claims all come out reproduced; ``kw`` changes fields."""
    values = dict(
        task="reverse", seeds=[0, 1], dim=1000, k_max=8, small=8, min_accuracy=0.9, acc0=1.0, acc_f=0.1,
        acc_r=1.0, recovery_accuracy={0: 1.0, 1: 1.0},
        capture={"trajectory prefix": (0.9, 0.05), "gradient SVD at θ_f": (0.1, 0.01), "Krylov at θ_f": (0.2, 0.0)},
        prefix_small=0.9, best_static="gradient SVD at θ_f", krylov=0.2, random_expected=0.008, rank_n=64,
        rank_f=(10.0, 2.0), rank_0=9.0, rank_u=50.0, lags=[40, 60], drift_window=200,
        regimes={}, noise_gap=(0.05, 0.01), forget_gap=0.1, regime_seeds=[0, 1], trajectory_bytes=0)
    return Summary(**{**values, **kw})


def test_claim_rules_give_every_verdict():
    assert [c1_verdict(r) for r in (0.25, 0.6, 0.61)] == ["reproduced", "partly", "not reproduced"]
    assert [c2_verdict(b, 0.9) for b in (0.49, 0.5, 0.9)] == ["reproduced", "partly", "not reproduced"]
    assert c2_verdict(0.3, 0.2) == "not reproduced"
    assert c3_verdict([100, 20]) == "reproduced"
    assert c3_verdict([100, None]) == c3_verdict([110, 100]) == "partly"
    assert c3_verdict([110, None]) == "not reproduced"
    assert [c4_verdict(p) for p in (0.5, 0.25, 0.24)] == ["reproduced", "partly", "not reproduced"]
    assert c10_verdict(0.03, 0.03) == "reproduced"
    assert c10_verdict(0.02, 0.03) == c10_verdict(0.03, -0.1) == "partly"
    assert c10_verdict(0.02, 0.02) == "not reproduced"


def test_claims_read_the_summary():
    cfg = resolve("02_synthetic", "cpu")
    claims = ch.claims(summary(), cfg)
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4", "C10"]
    assert all(c.verdict == "reproduced" for c in claims)
    assert [c.value for c in claims] == pytest.approx([10.0, 0.1, 50.0, 0.9, 5.0])
    assert claims[2].spread == pytest.approx(np.std([40, 60], ddof=1)) and claims[4].spread == pytest.approx(1.0)
    assert claims[3].paper == 0.77 and claims[2].paper == 100
    worse = ch.claims(summary(rank_f=(40.0, 1.0), lags=[None, None], capture={
        "trajectory prefix": (0.2, None), "gradient SVD at θ_f": (0.3, None), "Krylov at θ_f": (0.0, None)},
        noise_gap=(-0.05, None), forget_gap=0.0), cfg)
    assert all(c.verdict == "not reproduced" for c in worse)
    assert worse[2].value is None


def fake_seed_run(seed: int) -> protocol.SeedRun:
    """A hand-made chapter 2 run: 4 batch gradients, k in (1, 2, 4), three drift checkpoints 5 steps apart."""
    ks, steps = [1, 2, 4], [0, 5, 10]
    acc = {t: 0.5 for t in TASKS}
    captures = {name: np.array([0.1, 0.2, 0.4]) for name in ("trajectory prefix", "gradient SVD at θ_f",
                                                             "Krylov at θ_f", "random")}
    points = {name: np.array([4.0, 2.0, 1.0, 0.5]) for name in ("θ0", "θ_f", "unstructured")}
    return protocol.SeedRun(
        seed=seed, dim=1000, acc0=acc, acc_f=acc, acc_r=acc, losses={"forget": [1.0, 0.9], "recover": [2.0, 0.5]},
        ks=ks, capture=captures, spectra=points, rank_n=[1, 2, 4], eff_rank={k: v[:3] for k, v in points.items()},
        hessian_eigvals=np.ones(4), drift_steps=steps, drift_overlap=np.eye(3), drift_ks=[1, 2],
        drift_capture=np.full((3, 2), 0.3), drift_eff_rank=np.ones(3), drift_eff_rank_random=np.full(3, 3.0),
        recover_accuracy=np.array([0.1, 0.5, 0.9]), trajectory_bytes=0)


def test_every_figure_builder_stores_a_caption():
    runs = [fake_seed_run(0), fake_seed_run(1)]
    regimes = [protocol.RegimeRun(seed, regime, {t: 0.9 for t in TASKS}, [0.0, 0.1],
                                  np.full((2, len(TASKS)), 0.8), [0, 5], np.array([0.9, 0.3]))
               for seed in (0, 1) for regime in protocol.REGIMES]
    built = {"accuracy_figure": ch.accuracy_figure(runs, "reverse"),
             "recovery_figure": ch.recovery_figure(runs, "reverse"), "spectrum_figure": ch.spectrum_figure(runs),
             "capture_figure": ch.capture_figure(runs), "drift_figure": ch.drift_figure(runs[0], 2),
             "lag_figure": ch.lag_figure(runs), "regime_figure": ch.regime_figure(regimes, "reverse")}
    assert set(built) == {name for name in vars(figures) if name.endswith("_figure")}  # none left out
    for name, fig in built.items():
        caption = fig.layout.meta["caption"]
        assert caption.strip() and "<" not in caption and "**" not in caption, name  # plain text
    assert "2 seeds (0, 1)" in built["capture_figure"].layout.meta["caption"]
    assert "seed 0" in built["drift_figure"].layout.meta["caption"]
    assert "no error bars" in ch.lag_figure(runs[:1]).layout.meta["caption"]


def test_protocol_on_a_micro_model():
    cfg = micro()
    run = protocol.recovered.uncached(cfg, 0)
    assert run.ks == [1, 2, 4, 8] and set(run.acc0) == set(TASKS)
    assert run.acc_f == protocol.forgotten(cfg.training(), 0).accuracy
    # the prefix of *all* recovery updates spans the displacement exactly
    assert run.capture["trajectory prefix"][-1] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(run.capture["trajectory prefix"]) >= -1e-6)
    for name, curve in run.capture.items():
        assert curve.shape == (4,) and np.all((curve >= -1e-6) & (curve <= 1 + 1e-5)), name
    assert run.capture["random"][-1] < 0.05
    assert run.drift_steps == [0, 4, 8] and np.allclose(np.diag(run.drift_overlap), 1, atol=1e-5)
    assert run.eff_rank["θ_f"].shape == (4,) and run.eff_rank["unstructured"][-1] >= run.eff_rank["θ_f"][-1]
    assert run.trajectory_bytes == (8 + 3 + 2) * run.dim * 4
    regimes = [protocol.robustness.uncached(cfg.training(), cfg.noise_sigma, 0, r) for r in protocol.REGIMES]
    assert regimes[0].noise_accuracy.shape == (len(protocol.NOISE_MULTIPLES), len(TASKS))
    s = ch.summarize(cfg, [run], regimes)
    claims = ch.claims(s, cfg)
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4", "C10"]
    assert claims[3].value == pytest.approx(1.0, abs=1e-4)
    for fig in (ch.capture_figure([run]), ch.spectrum_figure([run]), ch.drift_figure(run, 2),
                ch.lag_figure([run]), ch.recovery_figure([run], "reverse"), ch.regime_figure(regimes, cfg.task),
                ch.accuracy_figure([run], "reverse")):
        assert len(fig.data) > 0
    assert "sequential" in ch.regime_table(s, cfg.noise_sigma) and "k=8" in ch.capture_table([run])
    assert ch.seed_table([run], cfg.task).count("\n") == 2 and "seed 0" in ch.lag_lines(s)
    assert ch.examples(cfg).shape == (len(TASKS), ch.task_family(cfg.training()).seq_len)


def test_a_recovery_parameter_does_not_retrain(isolated, monkeypatch):
    import lls.protocols.forget_recover as fr
    from lls.train import train

    cfg = micro()
    protocol.recovered(cfg, 0)
    steps = []

    def counting(space, loss, batches, n, **kw):
        steps.append(n)
        return train(space, loss, batches, n, **kw)

    monkeypatch.setattr(protocol, "train", counting)
    monkeypatch.setattr(fr, "train", counting)
    run = protocol.recovered(micro(recover_steps=12, checkpoint_every=4), 0)
    assert steps == [12] and run.drift_steps == [0, 4, 8, 12]  # theta0 and theta_f came from the cache
    protocol.recovered(micro(forget_steps=5), 0)
    assert steps == [12, 8, 5, 8]  # a training parameter: theta0, theta_f and the recovery again


def test_multitask_training_learns_copy():
    cfg = micro(n_embd=32, length=3, n_symbols=4, pretrain_steps=150, pretrain_lr=1e-2, batch_size=32, n_eval=64)
    trained = protocol.pretrain.uncached(cfg.training(), 0)
    assert np.mean(trained.losses[-10:]) < 0.7 * np.mean(trained.losses[:10])
    space = ch.build(cfg.training(), 0)
    before = accuracies(space.model, ch.task_family(cfg.training()), 64, 0)
    assert sum(trained.accuracy.values()) > sum(before.values()) + 0.2
