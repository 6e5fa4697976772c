"""Chapter 3's experiment: screen task pairs for forgetting; learn, forget and recover a task in a LoRA adapter's space.

Protocol (reconstructed, see ``PAPER.md``): a fresh LoRA adapter (peft) on a pretrained causal
LM is trained on task A (theta_A), then, through :func:`lls.protocols.forget_recover.forget_then_recover`,
on task B (theta_f) and on A again for T steps (theta_r). Delta = theta_r - theta_f lives in the adapter
space (D coordinates) and, through ``dW = scaling * B @ A``, in the space of weight changes (D_W).

* **Screen** (:func:`screen`, cached per pair): learn A and train on B on a seed stream of its own
  and measure how much of A's gain B undid; :mod:`lls.chapters.lora_drift.plan` applies the registry's
  rule and picks the pairs. The screen never sees a recovery.
* **Run** (:func:`run`, cached on a :class:`RunSpec`): C4's prefix captures at several horizons T
  (the recovery to T_max passes through every shorter T), the prefix's own share and its capture of
  the remaining displacement; C2's static bases at theta_f (gradient SVD, random, task-A adapter,
  Adam-aware bases; with curvature Hessian top-k, Krylov, preconditioned Krylov); C3's drift from two
  independent gradient sets at each checkpoint (their same-step overlap is the noise ceiling); an
  optional second recovery from theta_f with plain SGD.

Vectors are float32 torch tensors; bases are (D, k) with orthonormal columns; results are numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from lls import adam_bases, curvature, lora, seeds, subspace
from lls.cache import cached
from lls.chapters.lora_drift.setup import Setup, undone_fraction
from lls.evaluation import answer_loss
from lls.params import batch_gradients
from lls.protocols.forget_recover import Phases, forget, forget_then_recover, recover
from lls.train import Trajectory, train


@dataclass(frozen=True)
class ScreenSpec:
    """What the forgetting screen of one (model, pair) depends on; fields as in :class:`Config`."""

    model: str
    pair: tuple[str, str]
    seed: int
    """the chapter's base seed; the screen draws its own streams from it ("forgetting screen")"""
    device: str
    lora_rank: int
    lora_alpha: int
    lr: float
    batch_size: int
    max_length: int
    learn_steps: int
    forget_steps: int
    n_eval: int


@dataclass(frozen=True)
class RunSpec(ScreenSpec):
    """Everything one (model, pair, seed) run depends on: the key of its cache entry.

    Parameters that only select or summarise runs (``pairs``, ``n_seeds``, ``k_static`` below
    k_max, the screen's ``screen_max``) are not here; ``seed`` is this run's seed.
    """

    with_curvature: bool = False
    """whether the Hessian top-k, Krylov and preconditioned-Krylov bases are computed"""
    with_sgd: bool = False
    """whether a second recovery from theta_f runs with plain SGD"""
    recover_steps: int = 0
    horizons: tuple[int, ...] = ()
    horizon_ks: tuple[int, ...] = ()
    """C4's prefix length k at each horizon (the last one is the number of recovery updates recorded)"""
    k_static: int = 1
    n_grad_batches: int = 1
    lanczos_iter: int = 1
    checkpoint_every: int = 1
    drift_window: int = 1
    drift_k: int = 1


@cached
def screen(spec: ScreenSpec) -> dict:
    """The forgetting screen of one pair: learn A, train on B (``"forgetting screen"`` seed stream).

    Returns ``undone`` (fraction of A's test-loss gain undone by B) and ``losses`` (task-A test loss at
    start, after A, after B); whether the pair passes is decided outside the cache
    (:func:`lls.chapters.lora_drift.plan.screen_results`), so the registry is not part of its key.
    """
    seed = seeds.derive(spec.seed, "forgetting screen")
    s = Setup(spec, seed, max(spec.learn_steps, spec.forget_steps))
    a = s.tasks[0]
    losses = [s.evals([a])[a]["loss"]]
    train(s.space, answer_loss, s.data[0], spec.learn_steps, lr=spec.lr, progress=False)
    losses.append(s.evals([a])[a]["loss"])
    forget(s.space, answer_loss, s.data[1], Phases(spec.forget_steps, 1, spec.lr), progress=False)
    losses.append(s.evals([a])[a]["loss"])
    return {"pair": spec.pair, "model": spec.model, "undone": undone_fraction(*losses), "losses": losses}


@dataclass
class RunResult:
    """What one (model, pair, seed) run measured. ks run from 1; captures are fractions in [0, 1].

    ``prefix``/``prefix_dw`` (k_max,): capture of Delta (adapter space) / Delta_W (weight-change
    space) by the first k recovery updates at the longest horizon; ``horizon`` maps T to the C4
    numbers at k = k_max * T / T_max rounded (:func:`horizon_measures`); ``static``: basis name ->
    capture curve of Delta over k = 1..k_static (nan beyond a basis's columns; the task-A adapter
    theta_A - theta_0 is one of them); ``task_vector_dw``: capture of Delta_W by dW(theta_A); ``drift_steps`` (S,), ``cross_overlap`` (S, S):
    overlap of the top-``drift_k`` subspace of gradient set 1 at step i with that of set 2 at step j
    (diagonal: the noise ceiling), ``cross_overlap_dw`` the same in weight-change space, ``drift_capture`` (S, n): capture of Delta by set 1's top-k basis
    at each checkpoint; ``sgd``: the SGD arm (``{}`` when not run; see :func:`sgd_arm`); ``evals``:
    per phase, task A/B answer loss and accuracy; ``losses``: training loss per step per phase;
    ``seconds``: wall time per part; ``cpu_seconds``: CPU time of the run (all threads).
    """

    model: str
    pair: tuple[str, str]
    seed: int
    dim: int
    dim_dw: int
    prefix: np.ndarray
    prefix_dw: np.ndarray
    horizon: dict[int, dict[str, float]]
    static: dict[str, np.ndarray]
    task_vector_dw: float
    drift_steps: list[int]
    cross_overlap: np.ndarray
    cross_overlap_dw: np.ndarray
    drift_capture: np.ndarray
    evals: dict[str, dict[str, dict[str, float]]]
    losses: dict[str, list[float]]
    sgd: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0


@cached
def run(spec: RunSpec) -> RunResult:
    """Learn ``spec.pair``'s task A with a LoRA adapter, forget it on B, recover it (Adam; SGD arm); measure."""
    n_batches = max(spec.learn_steps, spec.forget_steps, spec.recover_steps, 2 * spec.n_grad_batches)
    s = watch = Setup(spec, spec.seed, n_batches)
    space, (data_a, data_b) = s.space, s.data
    grad_batches = [data_a(n_batches - 1 - i) for i in range(2 * spec.n_grad_batches)]  # fixed: set 1, then set 2
    results = {"start": s.evals()}
    theta_0 = space.get().cpu()
    learned = train(space, answer_loss, data_a, spec.learn_steps, lr=spec.lr, progress=False)
    results["after A"] = s.evals()

    def before_recovery(space):
        results["after B"] = s.evals()
        watch.lap("train A, B")
        return static_bases(spec, space, grad_batches, learned.end.cpu() - theta_0, watch)

    phases = Phases(spec.forget_steps, spec.recover_steps, spec.lr, record_first=spec.horizon_ks[-1],
                    checkpoint_every=spec.checkpoint_every)
    done = forget_then_recover(space, answer_loss, forget_data=data_b, recover_data=data_a, phases=phases,
                               before_recovery=before_recovery, progress=False)
    results["after recovery"] = s.evals()
    recovered, (bases, grads_f, sgd_lr) = _on_cpu(done.recovery), done.before_recovery
    delta = recovered.displacement()
    watch.lap("recovery")
    ks = range(1, spec.k_static + 1)
    static = {name: subspace.capture_curve(b, delta, ks) for name, b in bases.items()}
    drift_steps, cross, cross_dw, drift_capture = drift(space, recovered, grad_batches, grads_f, spec)
    watch.lap("drift")
    dw = lora.weight_change_captures(s.peft, recovered, learned.end.cpu(), spec.horizon_ks[-1])
    watch.lap("weight-change space")
    sgd = sgd_arm(s, spec, recovered.start, bases, sgd_lr) if spec.with_sgd else {}
    watch.lap("SGD arm")
    return RunResult(
        model=spec.model, pair=spec.pair, seed=spec.seed, dim=space.dim, dim_dw=lora.delta_dim(s.peft),
        prefix=subspace.prefix_capture(recovered.updates, delta, range(1, spec.horizon_ks[-1] + 1)),
        prefix_dw=dw["prefix"], horizon=horizon_measures(recovered, spec), static=static,
        task_vector_dw=dw["task_vector"], drift_steps=drift_steps, cross_overlap=cross,
        cross_overlap_dw=cross_dw,
        drift_capture=drift_capture, evals=results, sgd=sgd,
        losses={"A": learned.losses, "B": done.forgetting.losses, "recovery": recovered.losses},
        seconds=s.seconds, cpu_seconds=s.cpu_seconds())


def static_bases(spec: RunSpec, space, grad_batches: list[dict], task_vector: torch.Tensor,
                 watch: Setup) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
    """The static bases at theta_f (the space's point), each (D, <= k_static) on the CPU, the (2n, D)
    gradients at theta_f, and the SGD arm's learning rate (its rule: ``1 / lambda_max``, the top Hessian
    eigenvalue from Lanczos, the largest step a quadratic model at theta_f takes without overshooting
    its sharpest direction; ``nan`` without curvature).

    Gradient SVD of all 2n per-batch gradients, a random subspace, the task-A adapter (1-d) and the
    Adam-aware bases of :mod:`lls.adam_bases`; with ``spec.with_curvature`` also the top Hessian
    eigenvectors (Lanczos), the Krylov basis of the mean gradient and the preconditioned Krylov
    basis, from Hessian-vector products of the answer loss on the first two gradient batches.
    """
    grads = batch_gradients(space, answer_loss, grad_batches).cpu()
    k = spec.k_static
    bases = {"gradient SVD": subspace.top_k_basis(grads, min(k, subspace.numerical_rank(grads))),
             "random": subspace.random_basis(space.dim, k, seeds.generator(spec.seed, "random basis")),
             "task-A adapter": subspace.orthonormal_basis(task_vector[None])}
    matvec, sgd_lr = None, float("nan")
    if spec.with_curvature:
        hvp = curvature.hessian_operator(space.loss_closure(answer_loss, _concat(grad_batches[:2])), space.get())

        def matvec(v: torch.Tensor) -> torch.Tensor:
            return hvp(v.to(spec.device)).cpu()

        eigvals, eigvecs = curvature.lanczos_topk(hvp, space.dim, k, spec.lanczos_iter,
                                                  seeds.generator(spec.seed, "lanczos start", device=spec.device))
        sgd_lr = 1.0 / float(eigvals[0])
        bases["Hessian top-k"] = eigvecs.cpu()
        bases["Krylov (HVPs)"] = curvature.krylov_basis(matvec, grads.mean(0), k).cpu()
    bases.update({name: b.cpu() for name, b in adam_bases.adam_static_bases(grads, k, matvec).items()})
    watch.lap("static bases")
    return bases, grads, sgd_lr


def horizon_measures(traj: Trajectory, spec: RunSpec) -> dict[int, dict[str, float]]:
    """C4 at each horizon T (a checkpoint of ``traj``), with k = ``spec.horizon_ks`` and Delta_T = theta_T - theta_f.

    ``prefix``: capture of Delta_T by the span of the first k updates; ``own``: the prefix's own
    share |sum_{s<k} u_s|^2 / |Delta_T|^2; ``remaining``: capture of theta_T - theta_k (what is left
    after the prefix) by the same span; ``k``: the prefix length.
    """
    out = {}
    for horizon, k in zip(spec.horizons, spec.horizon_ks, strict=True):
        delta = traj.checkpoints[horizon].cpu() - traj.start
        rows = traj.updates[:k]
        head = rows.sum(0)
        out[horizon] = {"k": k, "prefix": float(subspace.prefix_capture(rows, delta, [k])[0]),
                        "own": float(head.pow(2).sum() / delta.pow(2).sum()),
                        "remaining": float(subspace.prefix_capture(rows, delta - head, [k])[0])}
    return out


def drift(space, recovered: Trajectory, grad_batches: list[dict], grads_f: torch.Tensor,
          spec: RunSpec) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Top-``drift_k`` subspaces of two independent gradient sets (n batches each) at the checkpoints
    within ``drift_window``; the same batches at every checkpoint (``grads_f`` are those at step 0).

    Returns the steps (S,); the (S, S) overlaps of set 1 at step i with set 2 at step j in the adapter
    space (the diagonal is the noise ceiling: two estimates at the same step); the same in weight-change
    space, each gradient mapped to the first-order change of dW it makes (:func:`lls.lora.tangent_gram`);
    and the (S, n) capture of Delta by set 1's top-k basis, k = 1..n (nan beyond its numerical rank).
    Leaves ``space`` at theta_r.
    """
    n, k, delta = spec.n_grad_batches, spec.drift_k, recovered.displacement()
    steps = [t for t in sorted(recovered.checkpoints) if t <= spec.drift_window]
    ones, twos, captures, grads = [], [], [], []
    for step in steps:
        space.set_(recovered.checkpoints[step])
        g = grads_f if step == 0 else batch_gradients(space, answer_loss, grad_batches).cpu()
        full = subspace.top_k_basis(g[:n], subspace.numerical_rank(g[:n]))
        ones.append(full[:, :k])
        twos.append(subspace.top_k_basis(g[n:], k))
        captures.append(subspace.capture_curve(full, delta, range(1, n + 1)))
        grads.append(g)
    space.set_(recovered.end)
    points = torch.cat([recovered.checkpoints[t].cpu().expand(2 * n, -1) for t in steps])
    gram = lora.tangent_gram(space.model, points, torch.cat(grads))
    rows = [(list(range(2 * n * i, 2 * n * i + n)), list(range(2 * n * i + n, 2 * n * (i + 1))))
            for i in range(len(steps))]
    cross = np.array([[subspace.overlap(u, v) for v in twos] for u in ones])
    cross_dw = np.array([[lora.gram_overlap(gram, one, two, k) for _, two in rows] for one, _ in rows])
    return steps, cross, cross_dw, np.asarray(captures)


def sgd_arm(s: Setup, spec: RunSpec, theta_f: torch.Tensor, bases: dict[str, torch.Tensor], lr: float) -> dict:
    """A second recovery from theta_f with plain SGD at ``lr``, on the same task-A batches in the same order.

    Returns ``lr``, ``horizon`` (:func:`horizon_measures`), ``static`` (capture curves of its Delta by
    the Adam run's static bases), ``prefix`` (k_max,) and ``loss_after`` (task-A test loss at its end).
    """
    s.space.set_(theta_f.to(spec.device))
    phases = Phases(0, spec.recover_steps, lr, record_first=spec.horizon_ks[-1],
                    checkpoint_every=spec.checkpoint_every, optimizer="sgd")
    traj = _on_cpu(recover(s.space, answer_loss, s.data[0], phases, progress=False))
    delta, a = traj.displacement(), s.tasks[0]
    return {"lr": lr, "horizon": horizon_measures(traj, spec), "loss_after": s.evals([a])[a]["loss"],
            "static": {n: subspace.capture_curve(b, delta, range(1, spec.k_static + 1)) for n, b in bases.items()},
            "prefix": subspace.prefix_capture(traj.updates, delta, range(1, spec.horizon_ks[-1] + 1))}


def _on_cpu(traj: Trajectory) -> Trajectory:
    """``traj`` with its start, end and updates moved to the CPU (checkpoints stay where they are)."""
    return dataclasses.replace(traj, start=traj.start.cpu(), end=traj.end.cpu(), updates=traj.updates.cpu())


def _concat(batches: list[dict]) -> dict:
    """One batch holding ``batches`` one after the other."""
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
