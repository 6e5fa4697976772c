"""Chapter 2: local linear structure of a small multitask transformer on synthetic tasks.

Protocol (reconstructed from the paper's abstract, see PAPER.md), per seed:

1. *multitask training* of a tiny GPT-2 on all tasks of :mod:`lls.synthetic` -> theta0;
2. *forgetting*: train on the other tasks only -> theta_f (task A degrades);
3. *recovery*: train on A from theta_f -> theta_r, recording the first ``record_first`` updates
   and a checkpoint every ``checkpoint_every`` steps; Delta = theta_r - theta_f.

Measured on it: local rank of per-batch task-A gradients (C1), capture of Delta by static bases
and by the trajectory prefix (C2, C4), drift of the top-k gradient subspace along recovery (C3);
and, separately, sequential against simultaneous multitask training (C10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lls import subspace
from lls.cache import cached
from lls.curvature import hessian_operator, krylov_basis, lanczos_topk
from lls.errors import ConfigError
from lls.metrics import Claim, mean_spread
from lls.params import ParamSpace, batch_gradients
from lls.presets import Config, Param
from lls.synthetic import TASKS, Tasks, accuracies, batch_loss, exact_match
from lls.train import train


def _p(kind, doc, smoke, cpu, paper, **kw) -> Param:
    return Param(kind, doc, {"smoke": smoke, "cpu": cpu, "paper": paper}, **kw)


PARAMS: dict[str, Param] = {
    "task": _p(str, "task A, forgotten and recovered", "reverse", "reverse", "reverse", choices=TASKS),
    "length": _p(int, "symbols per input sequence", 4, 5, 6, low=2, high=16),
    "n_symbols": _p(int, "alphabet size", 6, 8, 10, low=2, high=64),
    "n_layer": _p(int, "transformer blocks", 1, 2, 4, low=1, high=8),
    "n_embd": _p(int, "model width", 32, 64, 128, low=8, high=512),
    "n_head": _p(int, "attention heads", 2, 4, 4, low=1, high=16),
    "batch_size": _p(int, "training batch size (sequences)", 32, 64, 128, low=1, high=4096),
    "lr": _p(float, "peak Adam learning rate of (multitask or sequential) training", 1e-2, 5e-3, 5e-3,
             low=1e-6, high=1.0),
    "tune_lr": _p(float, "constant Adam learning rate of forgetting and recovery", 3e-3, 3e-3, 3e-3,
                  low=1e-6, high=1.0),
    "pretrain_steps": _p(int, "multitask training steps (theta0)", 60, 1500, 4000, low=1, high=100_000),
    "forget_steps": _p(int, "steps on the other tasks (theta_f)", 15, 300, 500, low=1, high=100_000),
    "recover_steps": _p(int, "steps on task A (theta_r)", 20, 200, 500, low=1, high=100_000),
    "record_first": _p(int, "recovery updates recorded = largest basis size k", 8, 64, 64, low=1, high=512),
    "checkpoint_every": _p(int, "recovery steps between drift checkpoints", 5, 10, 10, low=1, high=10_000),
    "n_grad_batches": _p(int, "per-batch task-A gradients for spectra and SVD bases", 8, 64, 128,
                         low=2, high=4096),
    "grad_batch_size": _p(int, "sequences per gradient batch", 8, 16, 32, low=1, high=4096),
    "drift_batches": _p(int, "per-batch gradients at each drift checkpoint", 4, 16, 32, low=2, high=512),
    "drift_k": _p(int, "size of the top-k gradient subspaces compared in the drift map", 2, 8, 8,
                  low=1, high=512),
    "lanczos_iter": _p(int, "Lanczos iterations (HVPs) for the Hessian top-k", 12, 80, 128, low=2, high=2048),
    "hvp_batch_size": _p(int, "task-A sequences in the Hessian's batch", 32, 64, 256, low=1, high=65536),
    "noise_sigma": _p(float, "std of the weight noise in the robustness table", 0.02, 0.02, 0.02,
                      low=0.0, high=10.0),
    "eval_n": _p(int, "test sequences per task for exact-match accuracy", 64, 512, 2048, low=1, high=100_000),
    "n_seeds": _p(int, "seeds (seed, seed+1, ...) for means and spreads", 1, 3, 5, low=1, high=50),
}


def check(cfg: Config) -> None:
    """Chapter-specific checks (raise :class:`ConfigError`); call right after ``start()``."""
    rules = [
        (cfg.n_embd % cfg.n_head == 0, f"n_embd ({cfg.n_embd}) must be divisible by n_head ({cfg.n_head})"),
        (cfg.record_first <= cfg.recover_steps,
         f"record_first ({cfg.record_first}) cannot exceed recover_steps ({cfg.recover_steps})"),
        (cfg.record_first <= cfg.n_grad_batches,
         f"the gradient SVD bases need n_grad_batches >= record_first (the largest k); "
         f"got {cfg.n_grad_batches} < {cfg.record_first}"),
        (cfg.record_first <= cfg.lanczos_iter,
         f"lanczos_iter ({cfg.lanczos_iter}) must be >= record_first ({cfg.record_first})"),
        (cfg.drift_k <= cfg.drift_batches,
         f"drift_k ({cfg.drift_k}) cannot exceed drift_batches ({cfg.drift_batches})"),
        (2 * cfg.checkpoint_every <= cfg.recover_steps and cfg.recover_steps % cfg.checkpoint_every == 0,
         f"checkpoint_every ({cfg.checkpoint_every}) must divide recover_steps ({cfg.recover_steps}) "
         f"and leave >= 3 checkpoints"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message + ".")


def seeds(cfg: Config) -> list[int]:
    return [cfg.seed + i for i in range(cfg.n_seeds)]


def ks(k_max: int) -> list[int]:
    """Basis sizes 1, 2, 4, ... up to and including ``k_max``."""
    out = [1]
    while out[-1] * 2 < k_max:
        out.append(out[-1] * 2)
    return out + [k_max] if out[-1] != k_max else out


def task_family(cfg: Config) -> Tasks:
    return Tasks(cfg.length, cfg.n_symbols)


def build(cfg: Config, seed: int) -> ParamSpace:
    """The synthetic GPT-2 of ``cfg`` initialised with ``seed``, as the space of all its weights."""
    from lls.models import load

    tasks = task_family(cfg)
    model, _ = load("synthetic-gpt2", vocab_size=tasks.vocab_size, n_layer=cfg.n_layer,
                    n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=tasks.seq_len, seed=seed)
    return ParamSpace(model)


def stream(seed: int, stage: int) -> int:
    """Data seed of one stage of one seed's protocol (distinct streams, reproducible)."""
    return 1000 * seed + stage


@dataclass
class Trained:
    """A trained model: its parameters, exact-match accuracy per task, training losses."""

    theta: torch.Tensor
    accuracy: dict[str, float]
    losses: list[float]


def warmup_decay(steps: int, warmup: int = 50, final: float = 0.05):
    """Learning-rate factor of the (pre)training runs: linear warm-up over ``warmup`` steps, then
    linear decay to ``final`` times the peak at the last step."""
    return lambda step: min(1.0, (step + 1) / warmup) * (1 - (1 - final) * step / max(steps, 1))


@cached
def pretrain(cfg: Config, seed: int, regime: str = "simultaneous") -> Trained:
    """Train a fresh model on all tasks: ``simultaneous`` (mixed batches, ``pretrain_steps``) or
    ``sequential`` (task by task, ``pretrain_steps / #tasks`` each, ending with task A), with
    Adam and the :func:`warmup_decay` schedule (restarted for each task when sequential)."""
    tasks = task_family(cfg)
    space = build(cfg, seed)
    if regime == "simultaneous":
        schedule = [(TASKS, cfg.pretrain_steps)]
    elif regime == "sequential":
        order = [t for t in TASKS if t != cfg.task] + [cfg.task]
        schedule = [(t, cfg.pretrain_steps // len(TASKS)) for t in order]
    else:
        raise ValueError(f"regime {regime!r} is not 'simultaneous' or 'sequential'")
    losses = []
    for j, (which, steps) in enumerate(schedule):
        run = train(space, batch_loss, tasks.sampler(which, cfg.batch_size, stream(seed, 10 + j)), steps,
                    lr=cfg.lr, lr_factor=warmup_decay(steps))
        losses += run.losses
    return Trained(space.get(), accuracies(space.model, tasks, cfg.eval_n, seed), losses)


@dataclass
class SeedRun:
    """Everything chapter 2 measured on one seed (numpy arrays, floats)."""

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


def unstructured_like(rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian rows with the same norms as ``rows`` (the no-structure baseline for spectra)."""
    gauss = torch.randn(rows.shape, generator=generator)
    return gauss * (rows.norm(dim=1, keepdim=True) / gauss.norm(dim=1, keepdim=True))


def _rank_curve(rows: torch.Tensor, ns: list[int]) -> np.ndarray:
    return np.array([subspace.effective_rank(rows[:n]) for n in ns])


def _capture_curve(basis: torch.Tensor, v: torch.Tensor, k_list: list[int]) -> np.ndarray:
    return np.array([subspace.capture(basis[:, :min(k, basis.shape[1])], v) for k in k_list])


@cached
def forget_recover(cfg: Config, seed: int) -> SeedRun:
    """One seed of the forget/recover protocol and all its measurements (see the module doc)."""
    tasks = task_family(cfg)
    start = pretrain(cfg, seed)
    space = build(cfg, seed)
    space.set_(start.theta)
    model, a = space.model, cfg.task
    others = [t for t in TASKS if t != a]
    gen = torch.Generator().manual_seed(stream(seed, 1))
    probe = [tasks.batch(a, cfg.grad_batch_size, gen) for _ in range(cfg.n_grad_batches)]
    grads0 = batch_gradients(space, batch_loss, probe)

    forget = train(space, batch_loss, tasks.sampler(others, cfg.batch_size, stream(seed, 2)),
                   cfg.forget_steps, lr=cfg.tune_lr)
    theta_f = space.get()
    acc_f = accuracies(model, tasks, cfg.eval_n, seed)
    grads_f = batch_gradients(space, batch_loss, probe)

    k_max = cfg.record_first
    hbatch = tasks.batch(a, cfg.hvp_batch_size, gen)
    closure = space.loss_closure(batch_loss, hbatch)
    hess = hessian_operator(closure, theta_f)
    eigvals, eigvecs = lanczos_topk(hess, space.dim, k_max, cfg.lanczos_iter, gen)
    g_f = batch_gradients(space, batch_loss, [hbatch])[0]
    krylov = krylov_basis(hess, g_f, k_max)

    recover = train(space, batch_loss, tasks.sampler(a, cfg.batch_size, stream(seed, 3)),
                    cfg.recover_steps, lr=cfg.tune_lr, record_first=k_max,
                    checkpoint_every=cfg.checkpoint_every)
    acc_r = accuracies(model, tasks, cfg.eval_n, seed)
    delta = recover.displacement()

    k_list = ks(k_max)
    capture = {
        "trajectory prefix": subspace.prefix_capture(recover.updates, delta, k_list),
        "gradient SVD at θ0": _capture_curve(subspace.top_k_basis(grads0, k_max), delta, k_list),
        "gradient SVD at θ_f": _capture_curve(subspace.top_k_basis(grads_f, k_max), delta, k_list),
        "Hessian top-k at θ_f": _capture_curve(eigvecs, delta, k_list),
        "Krylov at θ_f": _capture_curve(krylov, delta, k_list),
        "task vector θ0−θ_f": np.full(len(k_list), subspace.capture(
            subspace.orthonormal_basis((start.theta - theta_f)[None]), delta)),
        "random": np.array([subspace.capture(subspace.random_basis(space.dim, k, gen), delta)
                            for k in k_list]),
    }

    ns = ks(cfg.n_grad_batches)
    noise = unstructured_like(grads_f, gen)
    steps = sorted(recover.checkpoints)
    drift_ks = ks(cfg.drift_batches)
    test = tasks.batch(a, cfg.eval_n, torch.Generator().manual_seed(10_000 + seed))
    drift_bases, drift_capture, drift_rank, drift_rank_random, curve = [], [], [], [], []
    for s in steps:
        space.set_(recover.checkpoints[s])
        curve.append(exact_match(model, test))
        rows = batch_gradients(space, batch_loss, probe[:cfg.drift_batches])
        basis = subspace.top_k_basis(rows, cfg.drift_batches)
        drift_bases.append(basis[:, :cfg.drift_k])
        drift_capture.append(_capture_curve(basis, delta, drift_ks))
        drift_rank.append(subspace.effective_rank(rows))
        drift_rank_random.append(subspace.effective_rank(unstructured_like(rows, gen)))
    space.set_(recover.end)

    return SeedRun(
        seed=seed, dim=space.dim, acc0=start.accuracy, acc_f=acc_f, acc_r=acc_r,
        losses={"pretrain": start.losses, "forget": forget.losses, "recover": recover.losses},
        ks=k_list, capture=capture,
        spectra={"θ0": subspace.singular_values(grads0), "θ_f": subspace.singular_values(grads_f),
                 "unstructured": subspace.singular_values(noise)},
        rank_n=ns,
        eff_rank={"θ0": _rank_curve(grads0, ns), "θ_f": _rank_curve(grads_f, ns),
                  "unstructured": _rank_curve(noise, ns)},
        hessian_eigvals=eigvals.numpy(), drift_steps=steps,
        drift_overlap=subspace.overlap_matrix(drift_bases), drift_ks=drift_ks,
        drift_capture=np.array(drift_capture), drift_eff_rank=np.array(drift_rank),
        drift_eff_rank_random=np.array(drift_rank_random), recover_accuracy=np.array(curve),
        trajectory_bytes=recover.nbytes,
    )


def drift_lag(steps: list[int], overlap: np.ndarray, threshold: float = 0.5) -> int | None:
    """Smallest step lag at which the mean overlap between bases that far apart drops below
    ``threshold`` (``None`` if it never does within the run). Steps must be evenly spaced."""
    spacing = steps[1] - steps[0]
    for lag in range(1, len(steps)):
        if np.diagonal(overlap, lag).mean() < threshold:
            return lag * spacing
    return None


def mean_overlap_by_lag(steps: list[int], overlap: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Lags (in steps) and the mean overlap of basis pairs that many steps apart."""
    spacing = steps[1] - steps[0]
    lags = list(range(len(steps)))
    return [lag * spacing for lag in lags], np.array([np.diagonal(overlap, lag).mean() for lag in lags])


# --- C10: sequential against simultaneous training ---------------------------------------------

REGIMES = ("sequential", "simultaneous")
NOISE_MULTIPLES = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)


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
def robustness(cfg: Config, seed: int, regime: str, noise_draws: int = 3) -> RegimeRun:
    """Accuracy of the ``regime`` model under Gaussian weight noise (std ``noise_sigma`` times
    :data:`NOISE_MULTIPLES`, every weight) and along the forgetting run (other tasks only)."""
    tasks = task_family(cfg)
    trained = pretrain(cfg, seed, regime)
    space = build(cfg, seed)
    gen = torch.Generator().manual_seed(stream(seed, 4))
    sigmas = [cfg.noise_sigma * m for m in NOISE_MULTIPLES]
    noise_acc = np.zeros((len(sigmas), len(TASKS)))
    for i, sigma in enumerate(sigmas):
        for _ in range(noise_draws if sigma > 0 else 1):
            space.set_(trained.theta + sigma * torch.randn(space.dim, generator=gen))
            acc = accuracies(space.model, tasks, cfg.eval_n, seed)
            noise_acc[i] += np.array([acc[t] for t in TASKS]) / (noise_draws if sigma > 0 else 1)
    space.set_(trained.theta)
    others = [t for t in TASKS if t != cfg.task]
    every = max(1, cfg.forget_steps // 10)
    run = train(space, batch_loss, tasks.sampler(others, cfg.batch_size, stream(seed, 2)),
                cfg.forget_steps, lr=cfg.tune_lr, checkpoint_every=every)
    test = tasks.batch(cfg.task, cfg.eval_n, torch.Generator().manual_seed(10_000 + seed))
    curve = []
    for step in sorted(run.checkpoints):
        space.set_(run.checkpoints[step])
        curve.append(exact_match(space.model, test))
    return RegimeRun(seed, regime, trained.accuracy, sigmas, noise_acc, sorted(run.checkpoints),
                     np.array(curve))


# --- claims -----------------------------------------------------------------------------------

C10_MARGIN = 0.02  # accuracy gap (2 points) below which the two regimes count as equally robust
STATIC_BASES = ("gradient SVD at θ0", "gradient SVD at θ_f", "Hessian top-k at θ_f", "task vector θ0−θ_f")


def capture_at_kmax(runs: list[SeedRun], basis: str) -> tuple[float, float | None]:
    return mean_spread([r.capture[basis][-1] for r in runs])


def claims(cfg: Config, runs: list[SeedRun], regime_runs: list[RegimeRun]) -> list[Claim]:
    """The chapter's claims C1, C2, C3, C4, C10 from the per-seed results (rules fixed up front)."""
    seed_list = [r.seed for r in runs]
    k_max, n = runs[0].ks[-1], runs[0].rank_n[-1]
    out = []

    rank_f, rank_f_sd = mean_spread([r.eff_rank["θ_f"][-1] for r in runs])
    rank_0, _ = mean_spread([r.eff_rank["θ0"][-1] for r in runs])
    rank_u, _ = mean_spread([r.eff_rank["unstructured"][-1] for r in runs])
    ratio = rank_f / rank_u
    verdict = "reproduced" if ratio <= 0.25 else "partly" if ratio <= 0.6 else "not reproduced"
    out.append(Claim("C1", rank_f, None, verdict,
                     f"effective rank (90 % energy) of {n} per-batch task-A gradients at θ_f; "
                     f"{rank_0:.1f} at θ0, {rank_u:.1f} for unstructured rows of equal norm "
                     f"(synthetic transformer, D = {runs[0].dim:,})", "dims", rank_f_sd, seed_list))

    prefix, prefix_sd = capture_at_kmax(runs, "trajectory prefix")
    static = {b: capture_at_kmax(runs, b)[0] for b in STATIC_BASES}
    best = max(static, key=static.get)
    krylov, _ = capture_at_kmax(runs, "Krylov at θ_f")
    best_sd = capture_at_kmax(runs, best)[1]
    verdict = ("reproduced" if static[best] < 0.5 and static[best] < prefix
               else "partly" if static[best] < prefix else "not reproduced")
    out.append(Claim("C2", static[best], None, verdict,
                     f"best static basis at k = {k_max} ({best}) captures this share of Δ, against "
                     f"{prefix:.2f} for the trajectory prefix; Krylov basis at θ_f (beyond the paper, "
                     f"also static): {krylov:.2f}", "fraction of ‖Δ‖²", best_sd, seed_list))

    lags = [drift_lag(r.drift_steps, r.drift_overlap) for r in runs]
    found = [lag for lag in lags if lag is not None]
    within = sum(lag <= 100 for lag in found)
    verdict = ("reproduced" if within == len(runs) else "partly" if within else "not reproduced")
    lag, lag_sd = mean_spread(found) if found else (None, None)
    out.append(Claim("C3", lag, 100, verdict,
                     f"step lag at which the overlap of top-{cfg.drift_k} task-A gradient subspaces "
                     f"along recovery falls below 0.5 ({len(found)} of {len(runs)} seeds fall below "
                     f"within {runs[0].drift_steps[-1]} steps)", "steps", lag_sd, seed_list))

    verdict = "reproduced" if prefix >= 0.5 else "partly" if prefix >= 0.25 else "not reproduced"
    small = min(8, k_max)
    at_small = float(np.mean([r.capture["trajectory prefix"][r.ks.index(small)] for r in runs]))
    out.append(Claim("C4", prefix, 0.77, verdict,
                     f"capture of Δ by the first {k_max} of {cfg.recover_steps} recovery updates "
                     f"({at_small:.2f} by the first {small}), synthetic transformer (the paper's 77 % "
                     f"is for LoRA; see chapter 3)", "fraction of ‖Δ‖²", prefix_sd, seed_list))

    # C10 on task A, which both regimes learnt last or jointly: extra accuracy the sequential
    # model loses, per seed; a difference counts when it exceeds C10_MARGIN.
    column = [TASKS.index(cfg.task)]
    by_seed = {(r.seed, r.regime): r for r in regime_runs}
    pairs = [(by_seed[s, "sequential"], by_seed[s, "simultaneous"]) for s in sorted({r.seed for r in regime_runs})]
    noise_gap, noise_sd = mean_spread([_noise_loss(q, column) - _noise_loss(m, column) for q, m in pairs])
    forget_gap, _ = mean_spread([(q.forget_accuracy[0] - q.forget_accuracy[-1])
                                 - (m.forget_accuracy[0] - m.forget_accuracy[-1]) for q, m in pairs])
    hits = (noise_gap > C10_MARGIN) + (forget_gap > C10_MARGIN)
    verdict = "reproduced" if hits == 2 else "partly" if hits == 1 else "not reproduced"
    out.append(Claim("C10", 100 * noise_gap, None, verdict,
                     f"extra accuracy on {cfg.task} lost by the sequential model (task by task, {cfg.task} "
                     f"last) over the simultaneous one under weight noise σ = {cfg.noise_sigma:g}; under "
                     f"the forgetting run it loses {100 * forget_gap:+.1f} points more (a gap counts "
                     f"above {100 * C10_MARGIN:g} points)", "points",
                     None if noise_sd is None else 100 * noise_sd, [q.seed for q, _ in pairs]))
    return out


def _noise_loss(run: RegimeRun, columns: list[int]) -> float:
    """Accuracy lost (mean over ``columns`` = tasks) under weight noise of std ``noise_sigma``."""
    at = NOISE_MULTIPLES.index(1.0)
    return float(run.noise_accuracy[0, columns].mean() - run.noise_accuracy[at, columns].mean())


def regime_summary(regime_runs: list[RegimeRun], task: str) -> dict[str, dict[str, float]]:
    """Per regime, means over seeds: accuracy per task and overall; accuracy lost under weight
    noise of std ``noise_sigma`` on task A and on all tasks; accuracy lost on A by forgetting."""
    out = {}
    for regime in REGIMES:
        runs = [r for r in regime_runs if r.regime == regime]
        if not runs:
            continue
        row = {t: float(np.mean([r.accuracy[t] for r in runs])) for t in TASKS}
        row["mean"] = float(np.mean([row[t] for t in TASKS]))
        row["noise loss A"] = float(np.mean([_noise_loss(r, [TASKS.index(task)]) for r in runs]))
        row["noise loss"] = float(np.mean([_noise_loss(r, list(range(len(TASKS)))) for r in runs]))
        row["forget loss A"] = float(np.mean([r.forget_accuracy[0] - r.forget_accuracy[-1] for r in runs]))
        out[regime] = row
    return out


def regime_table(regime_runs: list[RegimeRun], task: str, sigma: float) -> str:
    """A Markdown table shaped like the paper's Table 5 (means over seeds, accuracies in %)."""
    summary = regime_summary(regime_runs, task)
    head = ["regime", *TASKS, "mean", f"lost on {task}, noise σ={sigma:g}", f"lost (all tasks), noise σ={sigma:g}",
            f"lost on {task} by forgetting"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for regime, row in summary.items():
        cells = [f"{100 * row[t]:.1f}" for t in (*TASKS, "mean", "noise loss A", "noise loss", "forget loss A")]
        rows.append(f"| {regime} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# --- figures ----------------------------------------------------------------------------------

def _band(fig, x, ys, name, color, row=None, col=None, dash=None, legend=True):
    """Mean line with a ±1 sd error band over seeds (``ys``: (seeds, len(x)))."""
    import plotly.graph_objects as go

    ys = np.asarray(ys, dtype=float)
    mean, sd = ys.mean(0), (ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(ys.shape[1]))
    kw = {} if row is None else {"row": row, "col": col}
    fig.add_trace(go.Scatter(x=list(x), y=mean, name=name, mode="lines+markers", legendgroup=name,
                             showlegend=legend,
                             line={"color": color, "dash": dash},
                             error_y={"type": "data", "array": sd, "visible": len(ys) > 1}), **kw)


COLORS = {"trajectory prefix": "#d62728", "gradient SVD at θ0": "#1f77b4", "gradient SVD at θ_f": "#17becf",
          "Hessian top-k at θ_f": "#2ca02c", "Krylov at θ_f": "#9467bd", "task vector θ0−θ_f": "#8c564b",
          "random": "#7f7f7f", "θ0": "#1f77b4", "θ_f": "#17becf", "unstructured": "#7f7f7f"}


def accuracy_figure(runs: list[SeedRun], task: str):
    """Exact-match accuracy per task at θ0, θ_f and θ_r (mean ± sd over seeds)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, attr in (("θ0 (multitask)", "acc0"), ("θ_f (after forgetting)", "acc_f"),
                        ("θ_r (after recovery)", "acc_r")):
        vals = np.array([[getattr(r, attr)[t] for t in TASKS] for r in runs])
        fig.add_trace(go.Bar(x=list(TASKS), y=vals.mean(0), name=label,
                             error_y={"type": "data", "array": vals.std(0), "visible": len(runs) > 1}))
    fig.update_layout(barmode="group", title=f"Exact-match accuracy per task (A = {task})",
                      yaxis={"title": "accuracy", "range": [0, 1.05]}, height=380)
    return fig


def recovery_figure(runs: list[SeedRun], task: str):
    """Accuracy on A and training loss along the recovery run (mean ± sd over seeds)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"accuracy on {task} during recovery",
                                                        "training loss (forgetting, then recovery)"))
    _band(fig, runs[0].drift_steps, [r.recover_accuracy for r in runs], "accuracy", "#d62728", 1, 1)
    n_forget = len(runs[0].losses["forget"])
    losses = [r.losses["forget"] + r.losses["recover"] for r in runs]
    x = list(range(-n_forget, len(losses[0]) - n_forget))
    _band(fig, x, losses, "loss (other tasks, then A)", "#1f77b4", 1, 2)
    fig.update_traces(mode="lines", row=1, col=2)
    fig.update_xaxes(title_text="recovery step", row=1, col=1)
    fig.update_xaxes(title_text="step (recovery starts at 0)", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=360, showlegend=False)
    return fig


def spectrum_figure(runs: list[SeedRun]):
    """C1: normalised singular values of the probe gradients, and effective rank against n."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "singular values σ_i / σ_1", "effective rank (90 %) vs batches n", "effective rank along recovery"))
    for point in ("θ0", "θ_f", "unstructured"):
        sv = np.array([r.spectra[point] / r.spectra[point][0] for r in runs])
        _band(fig, range(1, sv.shape[1] + 1), sv, point, COLORS[point], 1, 1)
        _band(fig, runs[0].rank_n, [r.eff_rank[point] for r in runs], point, COLORS[point], 1, 2,
              legend=False)
    _band(fig, runs[0].drift_steps, [r.drift_eff_rank for r in runs], "along recovery", "#d62728", 1, 3)
    _band(fig, runs[0].drift_steps, [r.drift_eff_rank_random for r in runs], "unstructured", COLORS["random"],
          1, 3, dash="dot", legend=False)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="i", row=1, col=1)
    fig.update_xaxes(title_text="n", type="log", row=1, col=2)
    fig.update_xaxes(title_text="recovery step", row=1, col=3)
    fig.update_layout(title="C1: local rank of per-batch task-A gradients", height=400,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def capture_figure(runs: list[SeedRun]):
    """C2/C4: capture of Δ against k by every basis (mean ± sd over seeds), with k/D."""
    import plotly.graph_objects as go

    fig = go.Figure()
    k_list = runs[0].ks
    for name in runs[0].capture:
        _band(fig, k_list, [r.capture[name] for r in runs], name, COLORS[name],
              dash="dash" if name.startswith("Krylov") else None)
    fig.add_trace(go.Scatter(x=k_list, y=[k / runs[0].dim for k in k_list], name="k/D (random, expected)",
                             mode="lines", line={"color": "black", "dash": "dot"}))
    fig.add_hline(y=0.77, line_dash="dot", line_color="#d62728",
                  annotation_text="paper, LoRA prefix: 0.77")
    fig.update_layout(title="C2/C4: capture of the recovery displacement Δ", height=450,
                      xaxis={"title": "k (basis size)", "type": "log"},
                      yaxis={"title": "‖U_kᵀΔ‖² / ‖Δ‖²", "range": [0, 1.02]})
    return fig


def drift_figure(run: SeedRun, k: int):
    """C3: the drift explorer of one seed (overlap heatmap, capture of Δ by each step's basis)."""
    from lls.plots import drift_explorer

    return drift_explorer(run.drift_steps, run.drift_overlap, run.drift_ks, run.drift_capture,
                          title=f"C3: drift of the top-{k} task-A gradient subspace along recovery "
                                f"(seed {run.seed})",
                          capture_label="capture of Δ by the top-k basis at step s")


def lag_figure(runs: list[SeedRun]):
    """C3: mean overlap against lag (mean ± sd over seeds), with the 0.5 threshold."""
    import plotly.graph_objects as go

    fig = go.Figure()
    lags = mean_overlap_by_lag(runs[0].drift_steps, runs[0].drift_overlap)[0]
    _band(fig, lags, [mean_overlap_by_lag(r.drift_steps, r.drift_overlap)[1] for r in runs],
          "mean overlap", "#1f77b4")
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="0.5")
    fig.add_vline(x=100, line_dash="dot", annotation_text="paper: within 100 steps")
    fig.update_layout(title="C3: overlap of top-k gradient subspaces against step lag", height=380,
                      xaxis={"title": "lag t − s (steps)"}, yaxis={"title": "overlap", "range": [0, 1.02]})
    return fig


def regime_figure(regime_runs: list[RegimeRun], task: str):
    """C10 (like the paper's Figure 4): accuracy under weight noise, and on A while forgetting."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "mean accuracy under weight noise", f"accuracy on {task} during the forgetting run"))
    colors = {"sequential": "#ff7f0e", "simultaneous": "#1f77b4"}
    for regime in REGIMES:
        runs = [r for r in regime_runs if r.regime == regime]
        if runs:
            _band(fig, runs[0].sigmas, [r.noise_accuracy.mean(1) for r in runs], regime, colors[regime], 1, 1)
            _band(fig, runs[0].forget_steps, [r.forget_accuracy for r in runs], regime, colors[regime], 1, 2,
                  dash="dash", legend=False)
    fig.update_xaxes(title_text="noise σ (every weight)", row=1, col=1)
    fig.update_xaxes(title_text="forgetting step", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(title="C10: sequential vs simultaneous training", height=400,
                      legend={"orientation": "h", "y": -0.2})
    return fig


# --- small printouts --------------------------------------------------------------------------

def examples(cfg: Config) -> torch.Tensor:
    """One sequence of every task ``(len(TASKS), 2L+2)``, rows in :data:`TASKS` order."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return torch.cat([task_family(cfg).batch(t, 1, gen) for t in TASKS])


def min_accuracy(runs: list[SeedRun]) -> float:
    """Lowest multitask (θ0) exact-match accuracy over tasks and seeds."""
    return min(min(r.acc0.values()) for r in runs)


def capture_table(runs: list[SeedRun]) -> str:
    """Markdown table: capture of Δ by each basis for each k (mean over seeds)."""
    k_list = runs[0].ks
    rows = ["| basis | " + " | ".join(f"k={k}" for k in k_list) + " |", "|---" * (len(k_list) + 1) + "|"]
    for name in runs[0].capture:
        mean = np.mean([r.capture[name] for r in runs], axis=0)
        rows.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    rows.append("| k/D (random, expected) | " + " | ".join(f"{k / runs[0].dim:.1e}" for k in k_list) + " |")
    return "Capture of Δ, mean over seeds:\n\n" + "\n".join(rows)


def findings(cfg: Config, runs: list[SeedRun], regime_runs: list[RegimeRun]) -> str:
    """A short Markdown paragraph stating what was measured, generated from the results."""
    k_max, seeds_n = runs[0].ks[-1], len(runs)
    prefix = capture_at_kmax(runs, "trajectory prefix")[0]
    small = min(8, k_max)
    at_small = float(np.mean([r.capture["trajectory prefix"][r.ks.index(small)] for r in runs]))
    static = {b: capture_at_kmax(runs, b)[0] for b in STATIC_BASES}
    best = max(static, key=static.get)
    krylov = capture_at_kmax(runs, "Krylov at θ_f")[0]
    lags = [drift_lag(r.drift_steps, r.drift_overlap) for r in runs]
    lag_text = ", ".join("never" if lag is None else f"{lag}" for lag in lags)
    acc_f = np.mean([r.acc_f[cfg.task] for r in runs])
    acc_r = np.mean([r.acc_r[cfg.task] for r in runs])
    table = regime_summary(regime_runs, cfg.task)
    return (
        f"**Measured here** (means over {seeds_n} seed(s), D = {runs[0].dim:,}). Forgetting took "
        f"{cfg.task} from {np.mean([r.acc0[cfg.task] for r in runs]):.2f} to {acc_f:.2f} exact-match "
        f"accuracy and recovery brought it to {acc_r:.2f}. "
        f"The first {k_max} of {cfg.recover_steps} recovery updates capture {prefix:.2f} of Δ "
        f"(the first {small}: {at_small:.2f}); the best static basis "
        f"({best}) captures {static[best]:.2f}, a random {k_max}-dim subspace {k_max / runs[0].dim:.1e} in "
        f"expectation, and the Krylov basis built at θ_f before recovery {krylov:.2f}. "
        f"The effective rank of {runs[0].rank_n[-1]} task-A batch gradients at θ_f is "
        f"{np.mean([r.eff_rank['θ_f'][-1] for r in runs]):.1f} against "
        f"{np.mean([r.eff_rank['unstructured'][-1] for r in runs]):.1f} for unstructured rows. "
        f"The top-{cfg.drift_k} gradient subspace's overlap falls below 0.5 at lags of {lag_text} steps. "
        f"Under weight noise σ = {cfg.noise_sigma:g} the sequential model loses "
        f"{100 * table['sequential']['noise loss A']:.1f} points on {cfg.task}, the simultaneous one "
        f"{100 * table['simultaneous']['noise loss A']:.1f}; the forgetting run costs them "
        f"{100 * table['sequential']['forget loss A']:.1f} and "
        f"{100 * table['simultaneous']['forget loss A']:.1f} points."
    )
