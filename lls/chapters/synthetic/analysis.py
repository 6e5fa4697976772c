"""Chapter 2's numbers: per-seed results -> one :class:`Summary` that the prose, tables and claims read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lls.chapters.synthetic.config import Config
from lls.chapters.synthetic.protocol import NOISE_MULTIPLES, REGIMES, RegimeRun, SeedRun, task_family
from lls.claims import threshold
from lls.seeds import generator
from lls.stats import mean_spread
from lls.subspace import halving_lag
from lls.synthetic import TASKS
from lls.tables import markdown_table

STATIC_BASES = ("gradient SVD at θ0", "gradient SVD at θ_f", "Hessian top-k at θ_f", "task vector θ0−θ_f")
"""The bases computed before recovery that C2 compares (the Krylov basis is reported beside them)."""
SMALL_PREFIX = 8
"""A short trajectory prefix also reported for C4: the capture by the first 8 updates (or ``k_max``)."""


@dataclass
class Summary:
    """Every number chapter 2 reports; means (and sample SDs) over seeds unless stated.

    Accuracies are exact-match fractions; captures fractions of ``‖Δ‖²``; ranks dimensions;
    lags recovery steps; the C10 gaps accuracy fractions (positive: the sequential model loses more).
    """

    task: str
    seeds: list[int]
    dim: int
    k_max: int
    small: int
    """the short prefix length: ``min(SMALL_PREFIX, k_max)``"""
    min_accuracy: float
    """lowest multitask (theta0) accuracy over tasks and seeds"""
    acc0: float
    acc_f: float
    acc_r: float
    recovery_accuracy: dict[int, float]
    """per seed, accuracy on task A at theta_r"""
    capture: dict[str, tuple[float, float | None]]
    """per basis, capture of Δ at k = k_max (mean, SD)"""
    prefix_small: float
    best_static: str
    krylov: float
    random_expected: float
    """k_max / D, the expected capture by a random k_max-dim subspace"""
    rank_n: int
    rank_f: tuple[float, float | None]
    rank_0: float
    rank_u: float
    lags: list[int | None]
    """per seed, the lag at which the overlap of top-k gradient subspaces halves (None: never)"""
    drift_window: int
    regimes: dict[str, dict[str, float]]
    """per regime: accuracy per task and overall, accuracy lost under noise (A, all), by forgetting (A)"""
    noise_gap: tuple[float, float | None]
    forget_gap: float
    regime_seeds: list[int]
    trajectory_bytes: int

    @property
    def prefix(self) -> tuple[float, float | None]:
        """Capture of Δ by the trajectory prefix at k_max (mean, SD)."""
        return self.capture["trajectory prefix"]

    @property
    def rank_ratio(self) -> float:
        """Effective rank at theta_f over the unstructured baseline's."""
        return self.rank_f[0] / self.rank_u

    @property
    def lags_text(self) -> str:
        """The per-seed halving lags as text, e.g. ``"110, 100, never"``."""
        return ", ".join("never" if lag is None else f"{lag}" for lag in self.lags)

    @property
    def lag(self) -> tuple[float | None, float | None]:
        """Mean and SD of the halving lags over the seeds where the overlap halved."""
        found = [lag for lag in self.lags if lag is not None]
        return mean_spread(found) if found else (None, None)


def noise_loss(run: RegimeRun, columns: list[int]) -> float:
    """Accuracy lost (mean over task ``columns``) under weight noise of std ``noise_sigma``."""
    at = NOISE_MULTIPLES.index(1.0)
    return float(run.noise_accuracy[0, columns].mean() - run.noise_accuracy[at, columns].mean())


def regime_summary(regime_runs: list[RegimeRun], task: str) -> dict[str, dict[str, float]]:
    """Per regime, means over seeds: accuracy per task and overall ("mean"); accuracy lost under weight
    noise of std ``noise_sigma`` on task A ("noise loss A") and on all tasks ("noise loss"); accuracy
    lost on A by the forgetting run ("forget loss A")."""
    out = {}
    for regime in REGIMES:
        runs = [r for r in regime_runs if r.regime == regime]
        if not runs:
            continue
        row = {t: float(np.mean([r.accuracy[t] for r in runs])) for t in TASKS}
        row["mean"] = float(np.mean([row[t] for t in TASKS]))
        row["noise loss A"] = float(np.mean([noise_loss(r, [TASKS.index(task)]) for r in runs]))
        row["noise loss"] = float(np.mean([noise_loss(r, list(range(len(TASKS)))) for r in runs]))
        row["forget loss A"] = float(np.mean([r.forget_accuracy[0] - r.forget_accuracy[-1] for r in runs]))
        out[regime] = row
    return out


def regime_gaps(regime_runs: list[RegimeRun], task: str) -> tuple[tuple[float, float | None], float, list[int]]:
    """C10 on task A, per seed: extra accuracy the sequential model loses over the simultaneous one
    under weight noise (mean, SD) and by the forgetting run (mean); and the seeds."""
    column = [TASKS.index(task)]
    by_seed = {(r.seed, r.regime): r for r in regime_runs}
    seeds = sorted({r.seed for r in regime_runs})
    pairs = [(by_seed[s, "sequential"], by_seed[s, "simultaneous"]) for s in seeds]
    noise = mean_spread([noise_loss(q, column) - noise_loss(m, column) for q, m in pairs])
    forget, _ = mean_spread([(q.forget_accuracy[0] - q.forget_accuracy[-1])
                             - (m.forget_accuracy[0] - m.forget_accuracy[-1]) for q, m in pairs])
    return noise, forget, seeds


def summarize(cfg: Config, runs: list[SeedRun], regime_runs: list[RegimeRun]) -> Summary:
    """The chapter's :class:`Summary` from its per-seed recovery runs and robustness runs."""
    task, k_max = cfg.task, runs[0].ks[-1]
    small = min(SMALL_PREFIX, k_max)
    capture = {name: mean_spread([r.capture[name][-1] for r in runs]) for name in runs[0].capture}
    noise_gap, forget_gap, regime_seeds = regime_gaps(regime_runs, task)
    return Summary(
        task=task, seeds=[r.seed for r in runs], dim=runs[0].dim, k_max=k_max, small=small,
        min_accuracy=min(min(r.acc0.values()) for r in runs),
        acc0=float(np.mean([r.acc0[task] for r in runs])), acc_f=float(np.mean([r.acc_f[task] for r in runs])),
        acc_r=float(np.mean([r.acc_r[task] for r in runs])),
        recovery_accuracy={r.seed: r.acc_r[task] for r in runs}, capture=capture,
        prefix_small=float(np.mean([r.capture["trajectory prefix"][r.ks.index(small)] for r in runs])),
        best_static=max(STATIC_BASES, key=lambda b: capture[b][0]), krylov=capture["Krylov at θ_f"][0],
        random_expected=k_max / runs[0].dim, rank_n=runs[0].rank_n[-1],
        rank_f=mean_spread([r.eff_rank["θ_f"][-1] for r in runs]),
        rank_0=mean_spread([r.eff_rank["θ0"][-1] for r in runs])[0],
        rank_u=mean_spread([r.eff_rank["unstructured"][-1] for r in runs])[0],
        lags=[halving_lag(r.drift_steps, r.drift_overlap, threshold("C3", "overlap_halved")) for r in runs],
        drift_window=runs[0].drift_steps[-1], regimes=regime_summary(regime_runs, task),
        noise_gap=noise_gap, forget_gap=forget_gap, regime_seeds=regime_seeds,
        trajectory_bytes=runs[0].trajectory_bytes,
    )


def seed_table(runs: list[SeedRun], task: str) -> str:
    """Markdown table, one row per seed: accuracy per task at theta0, on A at theta_f and theta_r, memory."""
    head = ["seed", *(f"{t} at θ0" for t in TASKS), f"{task} at θ_f", f"{task} at θ_r", "trajectory memory (MiB)"]
    return markdown_table(head, [[r.seed, *(f"{r.acc0[t]:.3f}" for t in TASKS), f"{r.acc_f[task]:.3f}",
                                  f"{r.acc_r[task]:.3f}", f"{r.trajectory_bytes / 2**20:.1f}"] for r in runs])


def capture_table(runs: list[SeedRun]) -> str:
    """Markdown table: capture of Δ by each basis for each k (mean over seeds), with k/D."""
    k_list = runs[0].ks
    rows = [[name, *(f"{v:.3f}" for v in np.mean([r.capture[name] for r in runs], axis=0))] for name in runs[0].capture]
    rows.append(["k/D (random, expected)", *(f"{k / runs[0].dim:.1e}" for k in k_list)])
    return "Capture of Δ, mean over seeds:\n\n" + markdown_table(["basis", *(f"k={k}" for k in k_list)], rows)


def regime_table(summary: Summary, sigma: float) -> str:
    """A Markdown table shaped like the paper's Table 5 (means over seeds, accuracies in %)."""
    task = summary.task
    head = ["regime", *TASKS, "mean", f"lost on {task}, noise σ={sigma:g}", f"lost (all tasks), noise σ={sigma:g}",
            f"lost on {task} by forgetting"]
    columns = (*TASKS, "mean", "noise loss A", "noise loss", "forget loss A")
    return markdown_table(head, [[regime, *(f"{100 * row[t]:.1f}" for t in columns)]
                                 for regime, row in summary.regimes.items()])


def lag_lines(summary: Summary) -> str:
    """One line per seed: the lag at which the overlap of top-k gradient subspaces halves."""
    level = threshold("C3", "overlap_halved")
    return "\n".join(f"seed {s}: overlap falls to {level:g} or below at lag "
                     + (f"{lag} steps" if lag is not None else f"> {summary.drift_window} steps (never in this run)")
                     for s, lag in zip(summary.seeds, summary.lags, strict=True))


def examples(cfg: Config) -> torch.Tensor:
    """One sequence of every task ``(len(TASKS), 2L+2)``, rows in :data:`TASKS` order."""
    gen = generator(cfg.seed, "examples")
    return torch.cat([task_family(cfg.training()).batch(t, 1, gen) for t in TASKS])
