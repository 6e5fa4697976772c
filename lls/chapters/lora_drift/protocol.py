"""Chapter 3's experiment: learn, forget and recover a task in a LoRA adapter's space; measure.

Protocol (reconstructed, see ``PAPER.md``): a fresh LoRA adapter (peft) on a pretrained causal
LM is trained on task A (theta_A), then, through :func:`lls.protocols.forget_recover.forget_then_recover`,
on task B (theta_f: A is forgotten) and on A again (theta_r). The *recovery displacement* is
Delta = theta_r - theta_f, a vector of the adapter space (D = the adapter's parameter count) and,
through ``dW = scaling * B @ A``, of the space of effective weight changes (D_W). One run
(:func:`run`, cached on a :class:`RunSpec`) measures:

* C4: capture of Delta by the span of the first k recovery updates, k = 1..k_max;
* C2: capture of Delta by *static* bases computed at theta_f before any recovery step: top-k
  SVD of per-batch task-A gradients, the task-A adapter (theta_A - theta_0), top-k Hessian
  eigenvectors (Lanczos on Hessian-vector products), a random subspace, and (beyond the paper)
  the Krylov basis span{g, Hg, ..., H^(k-1) g} from Hessian-vector products;
* C3: the top-k gradient subspace at recovery checkpoints, their pairwise overlaps (mean
  squared cosine of the principal angles) and the capture of Delta by each checkpoint's basis.

All vectors are float32 torch tensors; bases are (D, k) with orthonormal columns; results are
numpy arrays in a :class:`RunResult`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lls import curvature, lora, models, seeds, subspace, textdata
from lls.cache import cached
from lls.chapters.lora_drift.config import Config
from lls.evaluation import answer_loss, answer_metrics
from lls.params import batch_gradients
from lls.protocols.forget_recover import Phases, forget_then_recover
from lls.train import Trajectory, train


@dataclass(frozen=True)
class RunSpec:
    """Everything one (model, pair, seed) run depends on, and nothing else: the key of its cache entry.

    Parameters that only select or summarise runs (``models``, ``pairs``, ``n_seeds``, the base
    ``seed``, ``k_ref``, ``curvature_runs``) are not here, so changing them reuses the runs done.
    The other fields mean what the :class:`Config` fields of the same name mean.
    """

    model: str
    """registry name of the pretrained model"""
    pair: int
    """index into lls.textdata.TASK_PAIRS"""
    seed: int
    """this run's seed"""
    with_curvature: bool
    """whether the Hessian top-k and Krylov bases are computed"""
    device: str
    """resolved torch device"""
    lora_rank: int
    lora_alpha: int
    lr: float
    batch_size: int
    max_length: int
    learn_steps: int
    forget_steps: int
    recover_steps: int
    k_max: int
    k_static: int
    n_grad_batches: int
    lanczos_iter: int
    checkpoint_every: int
    drift_k: int
    n_eval: int


def run_specs(cfg: Config) -> list[RunSpec]:
    """Every run of the chapter, models outermost, then pairs, then seeds ``seed, seed+1, ...``.

    The first ``cfg.curvature_runs`` runs compute the curvature bases.
    """
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(RunSpec) if hasattr(cfg, f.name)}
    shared["device"] = cfg.torch_device()
    keys = [(m, p, cfg.seed + s) for m in models.names_from(cfg.models) for p in range(cfg.pairs)
            for s in range(cfg.n_seeds)]
    return [RunSpec(**{**shared, "model": m, "pair": p, "seed": s, "with_curvature": i < cfg.curvature_runs})
            for i, (m, p, s) in enumerate(keys)]


class TaskBatches:
    """Encoded training examples of one task, served as batches ``step -> batch``.

    A pool of ``n_batches * batch_size`` examples, drawn with ``seed``, is encoded once; batch ``s``
    is slice ``s mod n_batches`` of a shuffle by the ``"batch order"`` stream of ``seed``, so steps
    cycle through the pool. Each batch is a dict of (batch_size, max_length) int64 tensors on ``device``.
    """

    def __init__(self, tokenizer, task: str, batch_size: int, max_length: int, n_batches: int, seed: int,
                 device: str = "cpu"):
        data = textdata.encode(tokenizer, textdata.examples(task, "train", n_batches * batch_size, seed),
                               max_length)
        order = torch.randperm(n_batches * batch_size, generator=seeds.generator(seed, "batch order"))
        self.data = {k: v[order].to(device) for k, v in data.items()}
        self.batch_size, self.n_batches = batch_size, n_batches

    def __call__(self, step: int) -> dict:
        start = (step % self.n_batches) * self.batch_size
        return {k: v[start:start + self.batch_size] for k, v in self.data.items()}


def evaluate(model, tokenizer, task: str, n: int, max_length: int, device: str = "cpu") -> dict[str, float]:
    """Answer loss (nats per answer token) and accuracy (fraction) of ``model`` on ``n`` test examples.

    The same test examples for every run and seed (``textdata.examples``'s fixed draw 0).
    """
    batch = textdata.encode(tokenizer, textdata.examples(task, "test", n, 0), max_length)
    return answer_metrics(model, {k: v.to(device) for k, v in batch.items()})


@dataclass
class RunResult:
    """What one (model, pair, seed) run measured. ks run from 1; captures are fractions in [0, 1].

    ``prefix`` (k_max,) and ``prefix_dw`` (k_max,): capture of Delta (adapter space) and of
    Delta_W (weight-change space) by the first k recovery updates; ``static`` maps a basis name
    to its capture curve over k = 1..k_static (nan where a basis has fewer columns);
    ``task_vector``/``task_vector_dw``: capture by the 1-d span of theta_A - theta_0 (resp.
    dW(theta_A)); ``drift_steps`` (S,), ``overlap`` (S, S), ``drift_capture`` (S, n_grad_batches):
    checkpoints of the recovery, overlaps of their top-``drift_k`` gradient subspaces, capture
    of Delta by their top-k gradient bases for k = 1..n_grad_batches; ``evals``: per phase ("start",
    "after A", "after B", "after recovery"), task A/B answer loss and accuracy; ``losses``: training loss per step per
    phase; ``seconds``: wall time per part of the run; ``cpu_seconds``: CPU time of the whole run
    (all threads; robust to a busy machine).
    """

    model: str
    pair: tuple[str, str]
    seed: int
    dim: int
    dim_dw: int
    prefix: np.ndarray
    prefix_dw: np.ndarray
    static: dict[str, np.ndarray]
    task_vector: float
    task_vector_dw: float
    drift_steps: list[int]
    overlap: np.ndarray
    drift_capture: np.ndarray
    evals: dict[str, dict[str, dict[str, float]]]
    losses: dict[str, list[float]]
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0


class Stopwatch:
    """Wall time of the consecutive parts of a run: ``lap(name)`` closes the part named ``name``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.clock, self.cpu_start = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self.clock = now - self.clock, now

    def cpu_seconds(self) -> float:
        """CPU seconds (all threads) since the stopwatch started."""
        return time.process_time() - self.cpu_start


@cached
def run(spec: RunSpec) -> RunResult:
    """Learn ``TASK_PAIRS[spec.pair]``'s task A with a LoRA adapter, forget it on B, recover it; measure."""
    watch, dev = Stopwatch(), spec.device
    task_a, task_b = textdata.TASK_PAIRS[spec.pair]
    torch.manual_seed(seeds.derive(spec.seed, "lora init"))  # the adapter's initial A factors
    model, tok = models.load(spec.model, device=dev)
    peft_model = lora.add_lora(model, r=spec.lora_rank, alpha=spec.lora_alpha)
    space = lora.adapter_space(peft_model)
    n_batches = max(spec.learn_steps, spec.forget_steps, spec.recover_steps, spec.n_grad_batches)
    data_a, data_b = (TaskBatches(tok, task, spec.batch_size, spec.max_length, n_batches,
                                  seeds.derive(spec.seed, "training data", role), dev)
                      for task, role in ((task_a, "task A"), (task_b, "task B")))
    grad_batches = [data_a(n_batches - 1 - i) for i in range(spec.n_grad_batches)]  # fixed: the last ones

    def evals():
        return {t: evaluate(peft_model, tok, t, spec.n_eval, spec.max_length, dev) for t in (task_a, task_b)}

    def before_recovery(space) -> dict[str, torch.Tensor]:
        results["after B"] = evals()
        watch.lap("train A, B")
        return static_bases(spec, space, grad_batches, watch)

    results = {"start": evals()}
    theta_0 = space.get().cpu()
    learned = train(space, answer_loss, data_a, spec.learn_steps, lr=spec.lr)
    results["after A"] = evals()
    phases = Phases(forget_steps=spec.forget_steps, recover_steps=spec.recover_steps, lr=spec.lr,
                    record_first=spec.k_max, checkpoint_every=spec.checkpoint_every)
    done = forget_then_recover(space, answer_loss, forget_data=data_b, recover_data=data_a, phases=phases,
                               before_recovery=before_recovery)
    results["after recovery"] = evals()
    recovered, theta_a = _on_cpu(done.recovery), learned.end.cpu()
    delta = recovered.displacement()
    watch.lap("recovery")

    ks = range(1, spec.k_max + 1)
    static = {name: subspace.capture_curve(b, delta, range(1, spec.k_static + 1))
              for name, b in done.before_recovery.items()}
    drift_steps, overlap, drift_capture = drift(space, recovered, grad_batches, spec.drift_k, spec.n_grad_batches)
    watch.lap("drift")
    dw = weight_change_captures(peft_model, recovered, theta_a, spec.k_max)
    watch.lap("weight-change space")
    return RunResult(
        model=spec.model, pair=(task_a, task_b), seed=spec.seed, dim=space.dim, dim_dw=lora.delta_dim(peft_model),
        prefix=subspace.prefix_capture(recovered.updates, delta, ks), prefix_dw=dw["prefix"], static=static,
        task_vector=subspace.capture(subspace.orthonormal_basis((theta_a - theta_0)[None]), delta),
        task_vector_dw=dw["task_vector"], drift_steps=drift_steps, overlap=overlap, drift_capture=drift_capture,
        evals=results, losses={"A": learned.losses, "B": done.forgetting.losses, "recovery": recovered.losses},
        seconds=watch.seconds, cpu_seconds=watch.cpu_seconds())


def static_bases(spec: RunSpec, space, grad_batches: list[dict], watch: Stopwatch) -> dict[str, torch.Tensor]:
    """The static bases at theta_f (the space's current point), each (D, <= k_static) on the CPU.

    Gradient SVD of the per-batch gradients on ``grad_batches`` and a random subspace; with
    ``spec.with_curvature`` also the top Hessian eigenvectors (Lanczos) and the Krylov basis of the
    mean gradient, both from Hessian-vector products of the answer loss on the first two batches.
    """
    grads = batch_gradients(space, answer_loss, grad_batches).cpu()
    bases = {"gradient SVD": subspace.top_k_basis(grads, min(spec.k_static, subspace.numerical_rank(grads))),
             "random": subspace.random_basis(space.dim, spec.k_static,
                                             seeds.generator(spec.seed, "random basis"))}
    watch.lap("gradient SVD")
    if spec.with_curvature:
        loss_fn = space.loss_closure(answer_loss, _concat(grad_batches[:2]))
        matvec = curvature.hessian_operator(loss_fn, space.get())
        _, eigvecs = curvature.lanczos_topk(matvec, space.dim, spec.k_static, spec.lanczos_iter,
                                            seeds.generator(spec.seed, "lanczos start", device=spec.device))
        bases["Hessian top-k"] = eigvecs.cpu()
        bases["Krylov (HVPs)"] = curvature.krylov_basis(matvec, grads.mean(0).to(spec.device), spec.k_static).cpu()
        watch.lap("Hessian, Krylov")
    return bases


def drift(space, recovered: Trajectory, grad_batches: list[dict], drift_k: int,
          n_grad_batches: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Top-k gradient subspaces at the recovery's checkpoints, on the same gradient batches each time.

    Returns the checkpoint steps (S,), the (S, S) overlaps of their top-``drift_k`` subspaces and the
    (S, n_grad_batches) capture of Delta by each checkpoint's top-k gradient basis, k = 1..n_grad_batches
    (nan beyond its numerical rank). Leaves ``space`` at theta_r.
    """
    delta = recovered.displacement()
    steps = sorted(recovered.checkpoints)
    bases, captures = [], []
    for step in steps:
        space.set_(recovered.checkpoints[step])
        g = batch_gradients(space, answer_loss, grad_batches).cpu()
        full = subspace.top_k_basis(g, subspace.numerical_rank(g))
        bases.append(full[:, :drift_k])
        captures.append(subspace.capture_curve(full, delta, range(1, n_grad_batches + 1)))
    space.set_(recovered.end)
    return steps, subspace.overlap_matrix(bases), np.asarray(captures)


def weight_change_captures(peft_model, recovered, theta_a: torch.Tensor, k_max: int) -> dict:
    """Prefix and task-vector capture of Delta_W = dW(theta_r) - dW(theta_f), from Gram matrices.

    ``recovered`` has ``start``, ``end`` (D,) and ``updates`` (>= k_max, D). States theta_0..theta_K
    of the recovery (start + cumulative updates), its end and theta_A are mapped to weight changes
    only through their inner products (:func:`lls.lora.delta_gram`). Returns ``prefix`` (k_max,)
    and ``task_vector`` (a fraction).
    """
    states = torch.cat([recovered.start[None], recovered.start + recovered.updates.cumsum(0),
                        recovered.end[None], theta_a[None]])
    m = lora.delta_gram(peft_model, states)             # (K+3, K+3): <dW_i, dW_j>
    k, end, a = k_max, k_max + 1, k_max + 2
    diff = torch.zeros(k + 1, states.shape[0], dtype=torch.float64)   # rows: updates, then Delta_W
    idx = torch.arange(k)
    diff[idx, idx + 1], diff[idx, idx] = 1.0, -1.0
    diff[k, end], diff[k, 0] = 1.0, -1.0
    g = diff @ m @ diff.T                                 # Gram of [updates; Delta_W]
    norm2 = float(g[k, k])
    prefix = subspace.gram_prefix_capture(g[:k, :k], g[:k, k], norm2, range(1, k + 1))
    cross_a = float(diff[k] @ m[:, a])                    # <Delta_W, dW(theta_A)> (dW(theta_0) = 0)
    return {"prefix": prefix, "task_vector": cross_a**2 / (float(m[a, a]) * norm2)}


def run_all(cfg: Config) -> list[RunResult]:
    """Every run of :func:`run_specs`, each cached on its own (changing ``n_seeds``, ``pairs`` or
    ``k_ref`` reuses the runs already done)."""
    from tqdm.auto import tqdm

    return [run(spec) for spec in tqdm(run_specs(cfg), desc="runs")]


def _on_cpu(traj: Trajectory) -> Trajectory:
    """``traj`` with its start, end and updates moved to the CPU (checkpoints stay where they are)."""
    return dataclasses.replace(traj, start=traj.start.cpu(), end=traj.end.cpu(), updates=traj.updates.cpu())


def _concat(batches: list[dict]) -> dict:
    """One batch holding ``batches`` one after the other."""
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
