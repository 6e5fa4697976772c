"""Chapter 2's experiments, the only cached code of the chapter.

Per seed (reconstructed from the paper's abstract, see PAPER.md):

1. :func:`pretrain`: *multitask training* of a tiny GPT-2 on all tasks of :mod:`lls.synthetic`
   -> theta0 (or, for C10, *sequential* training task by task);
2. :func:`forgotten`: the *forgetting* run, training on the other tasks only -> theta_f (task A
   degrades); chapter 4 searches around this same cached theta_f;
3. :func:`recovered`: static bases at theta_f (gradient SVDs, Hessian top-k, Krylov), then the
   *recovery* run on A -> theta_r, recording the first ``k_max`` updates and a checkpoint every
   ``checkpoint_every`` steps; Delta = theta_r - theta_f; then the drift of the top-k gradient
   subspace along recovery;
4. :func:`robustness`: accuracy of the simultaneous and sequential models under weight noise and
   along the forgetting run (C10).

Stages 1 and 2 are keyed on :class:`~lls.chapters.synthetic.config.Training` only, so changing a
recovery parameter does not retrain theta0 or theta_f.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lls import subspace
from lls.adam_bases import adam_static_bases
from lls.cache import cached
from lls.chapters.synthetic.config import Config, Training
from lls.chapters.synthetic.measures import (
    capture_by_horizon,
    captures,
    prefix_parts,
    rank_curve,
    sgd_arm,
    structured_baselines,
    unstructured_like,
)
from lls.curvature import hessian_operator, krylov_basis, lanczos_topk
from lls.grids import powers_of_two
from lls.params import ParamSpace, batch_gradients
from lls.protocols.forget_recover import forget, recover
from lls.seeds import derive, generator
from lls.synthetic import TASKS, Tasks, accuracies, batch_loss, exact_match
from lls.train import Trajectory, train

REGIMES = ("sequential", "simultaneous")
NOISE_MULTIPLES = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
"""Weight-noise stds of the robustness curve, in units of ``noise_sigma``."""


def task_family(training: Training) -> Tasks:
    """The synthetic task family of ``training``."""
    return Tasks(training.length, training.n_symbols)


def build(training: Training, seed: int) -> ParamSpace:
    """The synthetic GPT-2 of ``training`` (initialised from ``seed``'s model-init stream), as the space
    of all its weights."""
    from lls.models import load

    tasks = task_family(training)
    model, _ = load("synthetic-gpt2", vocab_size=tasks.vocab_size, n_layer=training.n_layer,
                    n_embd=training.n_embd, n_head=training.n_head, n_positions=tasks.seq_len,
                    seed=derive(seed, "model init"))
    return ParamSpace(model)


def batches(training: Training, which: str | Sequence[str], seed: int,
            *stream: str | int) -> Callable[[int], Tensor]:
    """``step -> batch``: ``batch_size`` sequences of the tasks ``which``, batch ``step`` drawn from the
    named stream ``(seed, *stream, step)`` of :mod:`lls.seeds` (for :func:`lls.train.train`)."""
    tasks = task_family(training)
    return lambda step: tasks.batch(which, training.batch_size, generator(seed, *stream, step))


def recovery_batches(training: Training, seed: int) -> Callable[[int], Tensor]:
    """The recovery run's data: batches of task A (chapter 4's trajectory prefix uses them too)."""
    return batches(training, training.task, seed, "recovery data")


def forgetting_batches(training: Training, seed: int) -> Callable[[int], Tensor]:
    """The forgetting run's data: batches of the other tasks (the same for both C10 regimes)."""
    return batches(training, [t for t in TASKS if t != training.task], seed, "forgetting data")


def test_batch(training: Training, seed: int) -> Tensor:
    """``n_eval`` test sequences of task A on held-out inputs (never trained on), for accuracy curves."""
    return task_family(training).batch(training.task, training.n_eval, generator(seed, "test", training.task), "test")


def evaluation_seed(seed: int) -> int:
    """The seed of the held test sequences of a run (:func:`lls.synthetic.accuracies` draws them)."""
    return derive(seed, "test")


@dataclass
class Trained:
    """A trained model: its parameters ``theta`` (D,), exact-match accuracy per task, training losses."""

    theta: torch.Tensor
    accuracy: dict[str, float]
    losses: list[float]


def warmup_decay(steps: int, warmup: int = 50, final: float = 0.05):
    """Learning-rate factor of the (pre)training runs: linear warm-up over ``warmup`` steps, then
    linear decay to ``final`` times the peak at the last step."""
    return lambda step: min(1.0, (step + 1) / warmup) * (1 - (1 - final) * step / max(steps, 1))


@cached
def pretrain(training: Training, seed: int, regime: str = "simultaneous") -> Trained:
    """Train a fresh model on all tasks: ``simultaneous`` (mixed batches, ``pretrain_steps``) or
    ``sequential`` (task by task, ``pretrain_steps / #tasks`` each, ending with task A), with
    Adam at peak rate ``pretrain_lr`` and the :func:`warmup_decay` schedule (restarted for each
    task when sequential)."""
    tasks = task_family(training)
    space = build(training, seed)
    if regime == "simultaneous":
        schedule = [(TASKS, training.pretrain_steps)]
    elif regime == "sequential":
        order = [t for t in TASKS if t != training.task] + [training.task]
        schedule = [(t, training.pretrain_steps // len(TASKS)) for t in order]
    else:
        raise ValueError(f"regime {regime!r} is not one of {REGIMES}")
    losses = []
    for j, (which, steps) in enumerate(schedule):
        run = train(space, batch_loss, batches(training, which, seed, "pretraining data", regime, j), steps,
                    lr=training.pretrain_lr, lr_factor=warmup_decay(steps))
        losses += run.losses
    return Trained(space.get(), accuracies(space.model, tasks, training.n_eval, evaluation_seed(seed)), losses)


@cached
def forgotten(training: Training, seed: int) -> Trained:
    """theta_f: the multitask model (:func:`pretrain`) after ``forget_steps`` Adam steps at rate ``lr``
    on the other tasks, with its accuracy per task and the forgetting run's losses."""
    tasks = task_family(training)
    space = build(training, seed)
    space.set_(pretrain(training, seed).theta)
    run = forget(space, batch_loss, forgetting_batches(training, seed), training.phases(recover_steps=0))
    return Trained(space.get(), accuracies(space.model, tasks, training.n_eval, evaluation_seed(seed)), run.losses)


@dataclass
class SeedRun:
    """Everything chapter 2 measured on one seed (numpy arrays, floats). ``S``: drift checkpoints."""

    seed: int
    dim: int
    acc0: dict[str, float]
    acc_f: dict[str, float]
    acc_r: dict[str, float]
    losses: dict[str, list[float]]
    ks: list[int]
    capture: dict[str, np.ndarray]          # basis name -> capture of Delta for each k in ks
    spectra: dict[str, np.ndarray]          # point -> singular values of the probe gradients
    rank_n: list[int]                       # numbers of batches n
    eff_rank: dict[str, np.ndarray]         # point (and "unstructured") -> effective rank vs n
    hessian_eigvals: np.ndarray
    drift_steps: list[int]
    drift_overlap: np.ndarray               # (S, S)
    drift_ks: list[int]
    drift_capture: np.ndarray               # (S, len(drift_ks))
    drift_eff_rank: np.ndarray              # (S,) effective rank of the drift gradients
    drift_eff_rank_random: np.ndarray       # (S,) the same for unstructured rows of equal norms
    recover_accuracy: np.ndarray            # (S,) exact-match accuracy on A at each drift step
    trajectory_bytes: int
    prefix: dict[str, float] = field(default_factory=dict)
    """:func:`~lls.chapters.synthetic.measures.prefix_parts` of the first ``k_max`` updates ("share",
    "remaining capture")"""
    by_horizon: dict[int, tuple[int, float]] = field(default_factory=dict)
    """C4 at k a fixed fraction (k_max / recover_steps) of the horizon T: ``{T: (k, capture)}``"""
    sgd: dict = field(default_factory=dict)
    """the SGD recovery arm: "lr", "tried" ({lr: accuracy on A}), "accuracy", "capture" (like
    ``capture``), "share", "remaining capture")"""


def _static_bases(cfg: Config, space: ParamSpace, seed: int,
                  grads_f: torch.Tensor) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """At theta_f (the space's current point), before any recovery step: the Hessian's top-``k_max``
    eigenvectors (Lanczos) and the Krylov basis of the task-A gradient, each (D, <=k_max), on one
    batch of ``hvp_batch_size`` sequences; the Adam-aware bases of :func:`lls.adam_bases.adam_static_bases`
    from the probe gradients ``grads_f`` (n, D) and that Hessian; and the top eigenvalues."""
    hbatch = task_family(cfg.training()).batch(cfg.task, cfg.hvp_batch_size, generator(seed, "hessian batch"))
    theta_f = space.get()
    hess = hessian_operator(space.loss_closure(batch_loss, hbatch), theta_f)
    eigvals, eigvecs = lanczos_topk(hess, space.dim, cfg.k_max, cfg.lanczos_iter, generator(seed, "lanczos start"))
    g_f = batch_gradients(space, batch_loss, [hbatch])[0]
    return {"Hessian top-k at θ_f": eigvecs, "Krylov at θ_f": krylov_basis(hess, g_f, cfg.k_max),
            **adam_static_bases(grads_f, cfg.k_max, hess)}, eigvals.numpy()


def _drift(cfg: Config, space: ParamSpace, recovery: Trajectory, probe: list, delta: torch.Tensor,
           seed: int) -> dict:
    """C3 along recovery: at each checkpoint the top-``drift_k`` basis of ``drift_batches`` probe
    gradients, its capture of ``delta`` (D,), effective ranks and the accuracy on task A."""
    steps = sorted(recovery.checkpoints)
    drift_ks = powers_of_two(cfg.drift_batches)
    test = test_batch(cfg.training(), seed)
    gen = generator(seed, "unstructured along recovery")
    bases, capture, rank, rank_random, curve = [], [], [], [], []
    for s in steps:
        space.set_(recovery.checkpoints[s])
        curve.append(exact_match(space.model, test))
        rows = batch_gradients(space, batch_loss, probe[:cfg.drift_batches])
        basis = subspace.top_k_basis(rows, cfg.drift_batches)
        bases.append(basis[:, :cfg.drift_k])
        capture.append(subspace.capture_curve(basis, delta, drift_ks))
        rank.append(subspace.effective_rank(rows))
        rank_random.append(subspace.effective_rank(unstructured_like(rows, gen)))
    space.set_(recovery.end)
    return {"drift_steps": steps, "drift_overlap": subspace.overlap_matrix(bases), "drift_ks": drift_ks,
            "drift_capture": np.array(capture), "drift_eff_rank": np.array(rank),
            "drift_eff_rank_random": np.array(rank_random), "recover_accuracy": np.array(curve)}


def _probe_gradients(cfg: Config, space: ParamSpace, start: Trained, point: Trained, seed: int) -> dict:
    """Per-batch task-A gradients (n, D) at theta0 ("θ0") and theta_f ("θ_f"), C1's baselines at theta_f
    (:func:`~lls.chapters.synthetic.measures.structured_baselines`, Gaussian rows of equal norms
    "unstructured") and the probe batches ("probe"). The space ends at theta_f."""
    training = cfg.training()
    tasks = task_family(training)
    gen = generator(seed, "probe batches")
    probe = [tasks.batch(cfg.task, cfg.grad_batch_size, gen) for _ in range(cfg.n_grad_batches)]
    others = [t for t in TASKS if t != cfg.task]
    gen = generator(seed, "other-task probe batches")
    other = [tasks.batch(others, cfg.grad_batch_size, gen) for _ in range(cfg.n_grad_batches)]
    space.set_(start.theta)
    rows = {"θ0": batch_gradients(space, batch_loss, probe)}
    space.set_(point.theta)
    rows["θ_f"] = batch_gradients(space, batch_loss, probe)
    rows.update(structured_baselines(space, probe, other, rows["θ_f"], cfg.length, generator(seed, "shuffled targets")))
    rows["unstructured"] = unstructured_like(rows["θ_f"], generator(seed, "unstructured at theta_f"))
    return {"rows": rows, "probe": probe}


@cached
def recovered(cfg: Config, seed: int) -> SeedRun:
    """From :func:`forgotten`'s theta_f: probe gradients at theta0 and theta_f with C1's baselines, static
    bases at theta_f (plain and Adam-aware), then recovery on task A (``recover_steps`` of Adam at rate
    ``lr``), the SGD arm from the same theta_f, and every measurement of the chapter."""
    training = cfg.training()
    tasks = task_family(training)
    start, point = pretrain(training, seed), forgotten(training, seed)
    space = build(training, seed)
    probed = _probe_gradients(cfg, space, start, point, seed)
    rows = probed["rows"]
    static, eigvals = _static_bases(cfg, space, seed, rows["θ_f"])
    ks = powers_of_two(cfg.k_max)
    bases = {"gradient SVD at θ0": subspace.top_k_basis(rows["θ0"], cfg.k_max),
             "gradient SVD at θ_f": subspace.top_k_basis(rows["θ_f"], cfg.k_max), **static}
    fixed = {"task vector θ0−θ_f": subspace.orthonormal_basis((start.theta - point.theta)[None]),
             **{f"random {k}": subspace.random_basis(space.dim, k, generator(seed, "random basis", k)) for k in ks}}
    space.set_(point.theta)
    recovery = recover(space, batch_loss, recovery_batches(training, seed),
                       training.phases(cfg.recover_steps, cfg.k_max, cfg.checkpoint_every))
    acc_r = accuracies(space.model, tasks, cfg.n_eval, evaluation_seed(seed))
    delta = recovery.displacement()
    drift = _drift(cfg, space, recovery, probed["probe"], delta, seed)
    space.set_(point.theta)
    sgd = sgd_arm(cfg, space, recovery_batches(training, seed), test_batch(training, seed),
                  float(drift["recover_accuracy"][-1]), bases, fixed, ks)
    sgd["capture"] = _with_random(sgd["capture"], ks)
    ns = powers_of_two(cfg.n_grad_batches)
    return SeedRun(
        seed=seed, dim=space.dim, acc0=start.accuracy, acc_f=point.accuracy, acc_r=acc_r,
        losses={"pretrain": start.losses, "forget": point.losses, "recover": recovery.losses},
        ks=ks, capture=_with_random(captures(bases, fixed, delta, recovery.updates, ks), ks),
        spectra={name: subspace.singular_values(r) for name, r in rows.items()},
        rank_n=ns, eff_rank={name: rank_curve(r, ns) for name, r in rows.items()},
        hessian_eigvals=eigvals, trajectory_bytes=recovery.nbytes, prefix=prefix_parts(recovery.updates, delta),
        by_horizon=capture_by_horizon(recovery.updates, recovery.checkpoints, cfg.k_max / cfg.recover_steps),
        sgd=sgd, **drift,
    )


def _with_random(capture: dict[str, np.ndarray], ks: list[int]) -> dict[str, np.ndarray]:
    """``capture`` with the per-k random subspaces ("random 1", "random 2", ...) folded into one
    "random" curve (the k-dim random subspace's capture at each k)."""
    out = {name: curve for name, curve in capture.items() if not name.startswith("random ")}
    out["random"] = np.array([capture[f"random {k}"][j] for j, k in enumerate(ks)])
    return out


def seed_runs(cfg: Config) -> list[SeedRun]:
    """:func:`recovered` for every seed of ``cfg``."""
    return [recovered(cfg, s) for s in cfg.seeds()]


@dataclass
class RegimeRun:
    """Robustness of one trained model: weight noise and the forgetting run of chapter 2."""

    seed: int
    regime: str
    accuracy: dict[str, float]
    sigmas: list[float]
    noise_accuracy: np.ndarray       # (len(sigmas), len(TASKS)) mean over noise draws
    forget_steps: list[int]
    forget_accuracy: np.ndarray      # (len(forget_steps),) accuracy on task A along forgetting


@cached
def robustness(training: Training, noise_sigma: float, seed: int, regime: str, noise_draws: int = 3) -> RegimeRun:
    """Accuracy of the ``regime`` model under Gaussian weight noise (std ``noise_sigma`` times
    :data:`NOISE_MULTIPLES`, every weight; ``noise_draws`` draws per std) and on task A along the
    forgetting run (other tasks only, ``forget_steps`` at rate ``lr``, ~10 checkpoints)."""
    tasks = task_family(training)
    trained = pretrain(training, seed, regime)
    space = build(training, seed)
    gen = generator(seed, "weight noise")  # the same draws for both regimes
    sigmas = [noise_sigma * m for m in NOISE_MULTIPLES]
    noise_acc = np.zeros((len(sigmas), len(TASKS)))
    for i, sigma in enumerate(sigmas):
        draws = noise_draws if sigma > 0 else 1
        for _ in range(draws):
            space.set_(trained.theta + sigma * torch.randn(space.dim, generator=gen))
            acc = accuracies(space.model, tasks, training.n_eval, evaluation_seed(seed))
            noise_acc[i] += np.array([acc[t] for t in TASKS]) / draws
    space.set_(trained.theta)
    run = train(space, batch_loss, forgetting_batches(training, seed), training.forget_steps, lr=training.lr,
                checkpoint_every=max(1, training.forget_steps // 10))
    test = test_batch(training, seed)
    curve = []
    for step in sorted(run.checkpoints):
        space.set_(run.checkpoints[step])
        curve.append(exact_match(space.model, test))
    return RegimeRun(seed, regime, trained.accuracy, sigmas, noise_acc, sorted(run.checkpoints), np.array(curve))


def regime_runs(cfg: Config) -> list[RegimeRun]:
    """:func:`robustness` of both regimes for every seed of ``cfg`` (seed-major order)."""
    return [robustness(cfg.training(), cfg.noise_sigma, s, regime) for s in cfg.seeds() for regime in REGIMES]
