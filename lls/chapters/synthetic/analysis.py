"""Chapter 2's numbers: per-seed results -> one :class:`Summary` that the prose, tables and claims read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lls.chapters.synthetic.config import Config
from lls.chapters.synthetic.measures import STRUCTURED_BASELINES
from lls.chapters.synthetic.protocol import NOISE_MULTIPLES, REGIMES, RegimeRun, SeedRun, task_family
from lls.claims import threshold
from lls.seeds import generator
from lls.stats import Interval, mean_spread, t_interval
from lls.subspace import halving_lag
from lls.synthetic import TASKS
from lls.tables import markdown_table

NOT_STATIC = ("trajectory prefix", "random")
"""The rows of a capture table that are not static bases (every other row is one, computed before recovery)."""
SMALL_PREFIX = 8
"""A short trajectory prefix also reported for C4: the capture by the first 8 updates (or ``k_max``)."""


@dataclass
class Arm:
    """C2/C4 of one recovery optimizer, per seed (lists in seed order; captures at k = ``k_max``)."""

    prefix: list[float]
    """capture of Δ by the trajectory prefix"""
    static: list[float]
    """the best capture of Δ by any static basis (all of them, the Adam-aware and Krylov ones included)"""
    static_name: list[str]
    """which basis that was"""
    share: list[float]
    """the prefix's own share ``‖Σ_{s<k} u_s‖² / ‖Δ‖²``"""
    remaining: list[float]
    """capture of the remaining displacement ``θ_r - θ_k`` by the prefix span"""

    @property
    def gap(self) -> list[float]:
        """Per seed, prefix capture minus the best static capture."""
        return [p - b for p, b in zip(self.prefix, self.static, strict=True)]


def _last(curve: np.ndarray) -> float:
    """The capture of a basis at its largest available k (curves are ``nan`` beyond a basis's size)."""
    known = curve[~np.isnan(curve)]
    return float(known[-1]) if known.size else 0.0


def arm(captures: list[dict[str, np.ndarray]], parts: list[dict[str, float]]) -> Arm:
    """The :class:`Arm` of per-seed capture tables (basis -> curve over k) and prefix parts."""
    best = [max((n for n in c if n not in NOT_STATIC), key=lambda n: _last(c[n])) for c in captures]
    return Arm(prefix=[_last(c["trajectory prefix"]) for c in captures],
               static=[_last(c[n]) for c, n in zip(captures, best, strict=True)], static_name=best,
               share=[p["share"] for p in parts], remaining=[p["remaining capture"] for p in parts])


@dataclass
class Summary:
    """Every number chapter 2 reports; means (and sample SDs) over seeds unless stated.

    Accuracies are exact-match fractions (held-out inputs); captures fractions of ``‖Δ‖²``; ranks
    dimensions; lags recovery steps; the C10 gaps accuracy fractions (positive: the sequential model
    loses more). Per-seed lists are in ``seeds`` order (C10's in ``regime_seeds`` order).
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
    random_expected: float
    """k_max / D, the expected capture by a random k_max-dim subspace"""
    adam: Arm
    sgd: Arm
    sgd_lr: list[float]
    sgd_accuracy: list[float]
    """per seed, the SGD arm's accuracy on task A after recovery (held-out inputs)"""
    by_horizon: dict[int, tuple[int, float, float | None]]
    """C4 at k a fixed fraction of the horizon T: ``{T: (k, mean capture, SD)}``"""
    rank_n: int
    ranks: dict[str, list[float]]
    """per point or baseline, the effective rank of ``rank_n`` rows per seed"""
    rank_ratio: list[float]
    """per seed, the rank at θ_f over the lowest-rank structured baseline's"""
    strongest: list[str]
    """per seed, that baseline"""
    lags: list[int | None]
    """per seed, the lag at which the overlap of top-k gradient subspaces halves (None: never)"""
    drift_window: int
    regimes: dict[str, dict[str, float]]
    """per regime: accuracy per task and overall, accuracy lost under noise (A, all), by forgetting (A)"""
    noise_gaps: list[float]
    forget_gaps: list[float]
    regime_seeds: list[int]
    trajectory_bytes: int

    @property
    def prefix(self) -> tuple[float, float | None]:
        """Capture of Δ by the trajectory prefix at k_max (mean, SD)."""
        return self.capture["trajectory prefix"]

    @property
    def rank_f(self) -> tuple[float, float | None]:
        """Effective rank at θ_f (mean, SD over seeds)."""
        return mean_spread(self.ranks["θ_f"])

    def interval(self, values: list[float]) -> Interval:
        """The 95 % t-interval over seeds of per-seed ``values``."""
        return t_interval(values, "seeds")

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


def regime_gaps(regime_runs: list[RegimeRun], task: str) -> tuple[list[float], list[float], list[int]]:
    """C10 on task A, per seed: the extra accuracy the sequential model loses over the simultaneous one
    under weight noise, and by the forgetting run; and the seeds."""
    column = [TASKS.index(task)]
    by_seed = {(r.seed, r.regime): r for r in regime_runs}
    seeds = sorted({r.seed for r in regime_runs})
    pairs = [(by_seed[s, "sequential"], by_seed[s, "simultaneous"]) for s in seeds]
    noise = [noise_loss(q, column) - noise_loss(m, column) for q, m in pairs]
    forget = [(q.forget_accuracy[0] - q.forget_accuracy[-1]) - (m.forget_accuracy[0] - m.forget_accuracy[-1])
              for q, m in pairs]
    return noise, forget, seeds


def _ranks(runs: list[SeedRun]) -> tuple[dict[str, list[float]], list[float], list[str]]:
    """C1: effective ranks per point and baseline, and per seed the ratio of θ_f's rank to the
    lowest-rank structured baseline's (:data:`STRUCTURED_BASELINES`), with that baseline."""
    ranks = {name: [float(r.eff_rank[name][-1]) for r in runs] for name in runs[0].eff_rank}
    strongest = [min(STRUCTURED_BASELINES, key=lambda b: r.eff_rank[b][-1]) for r in runs]
    ratio = [float(r.eff_rank["θ_f"][-1] / max(r.eff_rank[b][-1], 1)) for r, b in zip(runs, strongest, strict=True)]
    return ranks, ratio, strongest


def summarize(cfg: Config, runs: list[SeedRun], regime_runs: list[RegimeRun]) -> Summary:
    """The chapter's :class:`Summary` from its per-seed recovery runs and robustness runs."""
    task, k_max = cfg.task, runs[0].ks[-1]
    small = min(SMALL_PREFIX, k_max)
    capture = {name: mean_spread([_last(r.capture[name]) for r in runs]) for name in runs[0].capture}
    noise_gaps, forget_gaps, regime_seeds = regime_gaps(regime_runs, task)
    ranks, ratio, strongest = _ranks(runs)
    horizons = runs[0].by_horizon
    return Summary(
        task=task, seeds=[r.seed for r in runs], dim=runs[0].dim, k_max=k_max, small=small,
        min_accuracy=min(min(r.acc0.values()) for r in runs),
        acc0=float(np.mean([r.acc0[task] for r in runs])), acc_f=float(np.mean([r.acc_f[task] for r in runs])),
        acc_r=float(np.mean([r.acc_r[task] for r in runs])),
        recovery_accuracy={r.seed: r.acc_r[task] for r in runs}, capture=capture,
        prefix_small=float(np.mean([r.capture["trajectory prefix"][r.ks.index(small)] for r in runs])),
        random_expected=k_max / runs[0].dim,
        adam=arm([r.capture for r in runs], [r.prefix for r in runs]),
        sgd=arm([r.sgd["capture"] for r in runs], [r.sgd for r in runs]),
        sgd_lr=[r.sgd["lr"] for r in runs], sgd_accuracy=[r.sgd["accuracy"] for r in runs],
        by_horizon={T: (k, *mean_spread([r.by_horizon[T][1] for r in runs])) for T, (k, _) in horizons.items()},
        rank_n=runs[0].rank_n[-1], ranks=ranks, rank_ratio=ratio, strongest=strongest,
        lags=[halving_lag(r.drift_steps, r.drift_overlap, threshold("C3", "overlap_halved")) for r in runs],
        drift_window=runs[0].drift_steps[-1], regimes=regime_summary(regime_runs, task),
        noise_gaps=noise_gaps, forget_gaps=forget_gaps, regime_seeds=regime_seeds,
        trajectory_bytes=runs[0].trajectory_bytes,
    )


def seed_table(runs: list[SeedRun], task: str) -> str:
    """Markdown table, one row per seed: accuracy per task at theta0, on A at theta_f and theta_r, memory."""
    head = ["seed", *(f"{t} at θ0" for t in TASKS), f"{task} at θ_f", f"{task} at θ_r", "trajectory memory (MiB)"]
    return markdown_table(head, [[r.seed, *(f"{r.acc0[t]:.3f}" for t in TASKS), f"{r.acc_f[task]:.3f}",
                                  f"{r.acc_r[task]:.3f}", f"{r.trajectory_bytes / 2**20:.1f}"] for r in runs])


def capture_table(runs: list[SeedRun], arm: str = "adam") -> str:
    """Markdown table: capture of Δ by each basis for each k (mean over seeds; "—" beyond a basis's
    size), with k/D; ``arm`` "adam" (the recovery) or "sgd" (the SGD arm)."""
    k_list = runs[0].ks
    tables = [r.capture if arm == "adam" else r.sgd["capture"] for r in runs]
    rows = [[name, *("—" if np.isnan(v) else f"{v:.3f}" for v in np.mean([t[name] for t in tables], axis=0))]
            for name in tables[0]]
    rows.append(["k/D (random, expected)", *(f"{k / runs[0].dim:.1e}" for k in k_list)])
    return "Capture of Δ, mean over seeds:\n\n" + markdown_table(["basis", *(f"k={k}" for k in k_list)], rows)


def arm_table(s: Summary, adam_lr: float) -> str:
    """Markdown table, one row per recovery optimizer: rate, accuracy on A after recovery, and C2/C4's
    numbers at k = k_max (means over seeds)."""
    head = ["recovery", "rate", f"accuracy on {s.task}", "prefix capture", "best static capture",
            "prefix own share ‖Σu‖²/‖Δ‖²", "capture of θ_r − θ_k by the prefix"]
    rows = []
    for name, a, lr, acc in (("Adam", s.adam, f"{adam_lr:g}", s.acc_r),
                             ("SGD", s.sgd, ", ".join(f"{r:g}" for r in s.sgd_lr), float(np.mean(s.sgd_accuracy)))):
        rows.append([name, lr, f"{acc:.3f}", f"{np.mean(a.prefix):.3f}", f"{np.mean(a.static):.3f}",
                     f"{np.mean(a.share):.3f}", f"{np.mean(a.remaining):.3f}"])
    return markdown_table(head, rows)


def horizon_table(s: Summary) -> str:
    """Markdown table: C4 at k a fixed fraction of the horizon T (capture of θ_T − θ_f by the first k)."""
    return markdown_table(["horizon T (steps)", "k", "capture (mean)", "SD over seeds"],
                          [[T, k, f"{mean:.3f}", "—" if sd is None else f"{sd:.3f}"]
                           for T, (k, mean, sd) in s.by_horizon.items()])


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
