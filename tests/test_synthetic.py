"""Synthetic tasks, their loss and exact-match accuracy; chapter 2's config, rules and protocol on a micro config."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lls.chapters import synthetic as ch
from lls.chapters.synthetic import figures, protocol
from lls.chapters.synthetic.analysis import Arm, Summary
from lls.chapters.synthetic.measures import prefix_parts, shuffled_targets
from lls.errors import ConfigError
from lls.presets import resolve
from lls.synthetic import TASKS, Tasks, accuracies, answer_logits, batch_loss, exact_match, held_out


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


def test_held_out_inputs_are_never_trained_on_and_are_the_only_test_inputs():
    tasks = Tasks(length=4, n_symbols=6)
    gen = torch.Generator().manual_seed(0)
    train, test = tasks.batch(list(TASKS), 4000, gen), tasks.batch("reverse", 500, gen, "test")
    assert not held_out(train[:, 1:5]).any() and held_out(test[:, 1:5]).all()
    every = torch.cartesian_prod(*[torch.arange(6)] * 4)
    assert 0.05 < held_out(every).float().mean() < 0.15  # about one input in HOLDOUT = 10
    assert len(torch.unique(test[:, 1:5], dim=0)) > 50  # many distinct held-out inputs, not one repeated
    with pytest.raises(ValueError, match="too few"):
        Tasks(length=2, n_symbols=2)
    with pytest.raises(ValueError, match="split"):
        tasks.batch("copy", 2, gen, "validation")


def test_sampler_seeds_do_not_overflow_or_collide():
    tasks = Tasks(length=3, n_symbols=7)
    big = tasks.sampler("copy", 4, seed=2**62)  # seed * 1_000_003 + step overflowed 64 bits before
    assert big(0).shape == (4, 8)
    assert not torch.equal(tasks.sampler("copy", 4, seed=0)(1_000_003), tasks.sampler("copy", 4, seed=1)(0))


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
    assert cfg.seeds() == [0, 1, 2, 3, 4]


def test_structured_baselines_and_prefix_parts():
    batch = Tasks(length=4, n_symbols=6).batch("reverse", 16, torch.Generator().manual_seed(0))
    shuffled = shuffled_targets(batch, 4, torch.Generator().manual_seed(1))
    assert torch.equal(shuffled[:, :-4], batch[:, :-4]) and not torch.equal(shuffled[:, -4:], batch[:, -4:])
    assert sorted(map(tuple, shuffled[:, -4:].tolist())) == sorted(map(tuple, batch[:, -4:].tolist()))
    updates = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    parts = prefix_parts(updates, torch.tensor([2.0, 1.0, 1.0]))  # rest (1, 0, 1): half in the span
    assert parts["share"] == pytest.approx(2 / 6) and parts["remaining capture"] == pytest.approx(0.5)


def test_unstructured_baseline_keeps_row_norms():
    rows = torch.randn(5, 50) * torch.arange(1, 6)[:, None]
    noise = protocol.unstructured_like(rows, torch.Generator().manual_seed(0))
    assert torch.allclose(noise.norm(dim=1), rows.norm(dim=1))


def arm_of(prefix, static, name="gradient SVD at θ_f"):
    return Arm(prefix=list(prefix), static=list(static), static_name=[name] * len(prefix), share=[0.3] * len(prefix),
               remaining=[0.5] * len(prefix))


def summary(**kw):
    """A hand-built Summary of three seeds whose claims all come out reproduced; ``kw`` changes fields."""
    values = dict(
        task="reverse", seeds=[0, 1, 2], dim=1000, k_max=8, small=8, min_accuracy=0.9, acc0=1.0, acc_f=0.1,
        acc_r=1.0, recovery_accuracy={0: 1.0, 1: 1.0, 2: 1.0},
        capture={"trajectory prefix": (0.9, 0.05), "gradient SVD at θ_f": (0.1, 0.01)},
        prefix_small=0.9, random_expected=0.008, adam=arm_of([0.9, 0.92, 0.88], [0.1, 0.12, 0.08]),
        sgd=arm_of([0.6, 0.65, 0.7], [0.3, 0.35, 0.4], "Krylov at θ_f"), sgd_lr=[0.1] * 3, sgd_accuracy=[0.9] * 3,
        by_horizon={50: (16, 0.8, 0.01), 100: (32, 0.85, 0.01), 200: (64, 0.9, 0.01)}, rank_n=64,
        ranks={"θ0": [9.0] * 3, "θ_f": [10.0, 11.0, 9.0], "shuffled targets": [50.0] * 3, "other tasks": [60.0] * 3,
               "centred": [55.0] * 3, "unstructured": [60.0] * 3},
        rank_ratio=[0.2, 0.22, 0.18], strongest=["shuffled targets"] * 3, lags=[40, 60, 50], drift_window=200,
        regimes={"sequential": {"reverse": 1.0, "mean": 0.25}, "simultaneous": {"reverse": 0.99, "mean": 0.97}},
        noise_gaps=[0.05, 0.06, 0.07], forget_gaps=[0.1, 0.12, 0.11], regime_seeds=[0, 1, 2], trajectory_bytes=0)
    return Summary(**{**values, **kw})


def test_claims_read_the_summary():
    cfg = resolve("02_synthetic", "cpu")
    claims = ch.claims(summary(), cfg)
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4", "C10"]
    assert [c.verdict for c in claims] == ["reproduced"] * 5
    assert [c.value for c in claims] == pytest.approx([0.2, 0.1, 50.0, 0.9, 6.0])
    assert all(c.n == 3 and c.ci[0] < c.value < c.ci[1] and "t-interval over 3 seeds" in c.interval_method
               for c in claims)
    assert claims[2].spread == pytest.approx(10.0) and claims[4].spread == pytest.approx(1.0)
    assert claims[3].paper == 0.77 and claims[2].paper == 100
    assert "confounded" in claims[4].note and "SGD arm" in claims[1].note and "SGD arm" in claims[3].note
    worse = ch.claims(summary(rank_ratio=[1.5, 1.6, 1.55], lags=[None, None, None],
                              adam=arm_of([0.1, 0.12, 0.11], [0.5, 0.52, 0.51]), noise_gaps=[-0.05, -0.06, -0.05],
                              forget_gaps=[-0.1, -0.11, -0.1]), cfg)
    assert [c.verdict for c in worse] == ["contradicted", "contradicted", "not reproduced", "not reproduced",
                                          "contradicted"]
    assert worse[2].value == 200  # never halved: counted at the window, a lower bound
    extra = ch.extra_numbers(summary())
    assert extra["arms"]["sgd"]["verdicts"] == {"C2": "reproduced", "C4": "reproduced"}
    assert extra["arms"]["sgd"]["lr"] == [0.1] * 3 and extra["c4_by_horizon"]["50"]["k"] == 16
    assert "C10" in ch.rules_markdown() and "0.25" in ch.rules_markdown()


def fake_seed_run(seed: int) -> protocol.SeedRun:
    """A hand-made chapter 2 run: 4 batch gradients, k in (1, 2, 4), three drift checkpoints 5 steps apart."""
    ks, steps = [1, 2, 4], [0, 5, 10]
    acc = {t: 0.5 for t in TASKS}
    captures = {name: np.array([0.1, 0.2, 0.4]) for name in ("trajectory prefix", "gradient SVD at θ_f",
                                                             "Krylov at θ_f", "preconditioned Krylov", "random")}
    points = {name: np.array([4.0, 2.0, 1.0, 0.5]) for name in figures.RANK_ROWS}
    return protocol.SeedRun(
        seed=seed, dim=1000, acc0=acc, acc_f=acc, acc_r=acc, losses={"forget": [1.0, 0.9], "recover": [2.0, 0.5]},
        ks=ks, capture=captures, spectra=points, rank_n=[1, 2, 4], eff_rank={k: v[:3] for k, v in points.items()},
        hessian_eigvals=np.ones(4), drift_steps=steps, drift_overlap=np.eye(3), drift_ks=[1, 2],
        drift_capture=np.full((3, 2), 0.3), drift_eff_rank=np.ones(3), drift_eff_rank_random=np.full(3, 3.0),
        recover_accuracy=np.array([0.1, 0.5, 0.9]), trajectory_bytes=0,
        sgd={"lr": 0.1, "capture": captures, "accuracy": 0.9, "share": 0.2, "remaining capture": 0.3})


def test_every_figure_builder_stores_a_caption():
    runs = [fake_seed_run(0), fake_seed_run(1)]
    regimes = [protocol.RegimeRun(seed, regime, {t: 0.9 for t in TASKS}, [0.0, 0.1],
                                  np.full((2, len(TASKS)), 0.8), [0, 5], np.array([0.9, 0.3]))
               for seed in (0, 1) for regime in protocol.REGIMES]
    built = {"accuracy_figure": ch.accuracy_figure(runs, "reverse"),
             "recovery_figure": ch.recovery_figure(runs, "reverse"), "spectrum_figure": ch.spectrum_figure(runs),
             "capture_figure": ch.capture_figure(runs), "drift_figure": ch.drift_figure(runs[0], 2),
             "capture_figure (SGD)": ch.capture_figure(runs, "sgd"),
             "lag_figure": ch.lag_figure(runs), "regime_figure": ch.regime_figure(regimes, "reverse")}
    assert {name.split(" ")[0] for name in built} == {name for name in vars(figures) if name.endswith("_figure")}
    for name, fig in built.items():
        caption = fig.layout.meta["caption"]
        assert caption.strip() and "<" not in caption and "**" not in caption, name  # plain text
    assert "2 seeds (0, 1)" in built["capture_figure"].layout.meta["caption"]
    assert "seed 0" in built["drift_figure"].layout.meta["caption"]
    assert "no error bars" in ch.lag_figure(runs[:1]).layout.meta["caption"]
    assert "SGD (rate 0.1, 0.1)" in built["capture_figure (SGD)"].layout.meta["caption"]


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
    assert set(run.eff_rank) == set(figures.RANK_ROWS)
    assert {"sign(g) (Adam's first steps)", "Adam-preconditioned gradients", "preconditioned Krylov"} < set(run.capture)
    assert run.trajectory_bytes == (8 + 3 + 2) * run.dim * 4
    assert 0 <= run.prefix["share"] <= 1 and 0 <= run.prefix["remaining capture"] <= 1 + 1e-5
    assert sorted(run.by_horizon) == [4, 8] and run.by_horizon[8][1] == pytest.approx(1.0, abs=1e-4)
    assert run.sgd["lr"] in run.sgd["tried"] and set(run.sgd["capture"]) == set(run.capture)
    assert run.sgd["capture"]["trajectory prefix"][-1] == pytest.approx(1.0, abs=1e-4)
    regimes = [protocol.robustness.uncached(cfg.training(), cfg.noise_sigma, 0, r) for r in protocol.REGIMES]
    assert regimes[0].noise_accuracy.shape == (len(protocol.NOISE_MULTIPLES), len(TASKS))
    s = ch.summarize(cfg, [run], regimes)
    claims = ch.claims(s, cfg)
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4", "C10"]
    assert claims[3].value == pytest.approx(1.0, abs=1e-4)
    assert all(c.verdict == "inconclusive" and c.n == 1 for c in claims)  # one seed: no interval
    for fig in (ch.capture_figure([run]), ch.spectrum_figure([run]), ch.drift_figure(run, 2),
                ch.lag_figure([run]), ch.recovery_figure([run], "reverse"), ch.regime_figure(regimes, cfg.task),
                ch.accuracy_figure([run], "reverse")):
        assert len(fig.data) > 0
    assert "sequential" in ch.regime_table(s, cfg.noise_sigma) and "k=8" in ch.capture_table([run])
    assert "SGD" in ch.arm_table(s, cfg.lr) and "k=8" in ch.capture_table([run], "sgd") and ch.horizon_table(s)
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
    # theta0 and theta_f came from the cache: only the Adam recovery and the SGD arm's recoveries ran
    assert steps[0] == 12 and set(steps) == {12} and run.drift_steps == [0, 4, 8, 12]
    steps.clear()
    protocol.recovered(micro(forget_steps=5), 0)
    assert steps[:3] == [8, 5, 8] and set(steps[3:]) == {8}  # a training parameter: theta0, theta_f, recoveries


def test_multitask_training_learns_copy():
    cfg = micro(n_embd=32, length=3, n_symbols=4, pretrain_steps=150, pretrain_lr=1e-2, batch_size=32, n_eval=64)
    trained = protocol.pretrain.uncached(cfg.training(), 0)
    assert np.mean(trained.losses[-10:]) < 0.7 * np.mean(trained.losses[:10])
    space = ch.build(cfg.training(), 0)
    before = accuracies(space.model, ch.task_family(cfg.training()), 64, 0)
    assert sum(trained.accuracy.values()) > sum(before.values()) + 0.2


def test_the_protocols_measurements_key_its_cache():
    import lls.cache

    files = {p.name for p in lls.cache.dependencies("lls.chapters.synthetic.protocol")}
    assert {"measures.py", "adam_bases.py", "synthetic.py"} <= files
    assert "claims.py" not in files and "analysis.py" not in files
