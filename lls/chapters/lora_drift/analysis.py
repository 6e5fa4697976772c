"""Chapter 3's numbers: runs -> one :class:`Summary`, plus the tables and report lines the notebook shows.

Pure functions of :class:`lls.chapters.lora_drift.protocol.RunResult` lists and the screen's records.
Captures are fractions of ``|Delta|^2`` in [0, 1]; an :class:`lls.stats.Interval` is a mean over
independent runs with its SD and 95 % t-interval; a ``MeanSpread`` is ``(mean, SD over runs or None)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lls import subspace
from lls.chapters.lora_drift.config import Config
from lls.chapters.lora_drift.protocol import RunResult
from lls.chapters.lora_drift.setup import undone_fraction
from lls.claims import REGISTRY, threshold
from lls.stats import Interval, mean_spread, t_interval
from lls.tables import markdown_table

MeanSpread = tuple[float | None, float | None]
HORIZON_MEASURES = ("prefix", "own", "remaining")
"""C4's numbers at each horizon: the prefix's capture of Delta_T, its own share, its capture of the rest."""


@dataclass(frozen=True)
class Summary:
    """Every number chapter 3 reports, computed once from its runs. Per-run lists follow the runs' order.

    C2 and C4 are read over the runs where task A was forgotten (``forgotten``); the others are
    reported beside, never averaged in. C3 is read over every run. Intervals are ``None`` without runs.
    """

    seeds: list[int]
    n_runs: int
    horizons: list[int]
    horizon_ks: list[int]
    k_fraction: float
    drift_k: int
    adapter_dim: int
    weight_change_dim: int
    screen: list[dict]
    """per screened candidate: model, pair, undone (fraction of A's gain), passed"""
    undone: list[float]
    """per run, the fraction of task A's test-loss gain that training on B undid (nan: no gain)"""
    forgotten: list[bool]
    c4: Interval | None
    """capture of Delta by the first k = k_fraction * T_max updates, runs where A was forgotten"""
    c4_not_forgotten: Interval | None
    horizon: dict[int, dict[str, Interval | None]]
    """per horizon T, each of HORIZON_MEASURES over the forgotten runs"""
    prefix_dw: Interval | None
    prefix_by_pair: dict[str, MeanSpread]
    """C4's capture per ``"model: A -> B"`` (all runs of the pair)"""
    task_a_loss: dict[str, float]
    """mean task-A answer loss (nats per token) after each phase, all runs"""
    static_k: int
    static_capture: dict[str, MeanSpread]
    """capture of Delta at static_k (1 for the task-A adapter) by each static basis, forgotten runs"""
    static_ratio: dict[str, Interval | None]
    """per static basis, its capture over the prefix's at the same k (forgotten runs that computed it)"""
    sgd_lr: list[float]
    sgd_horizon: dict[int, dict[str, Interval | None]]
    sgd_static_ratio: dict[str, Interval | None]
    sgd_task_a_loss: MeanSpread
    halving_lags: list[float | None]
    """per run, the lag (steps) at which the cross-set overlap falls to lora_ceiling_fraction of the ceiling"""
    lag: Interval | None
    """over the runs whose overlap falls that low within the window"""
    ceiling: MeanSpread
    end_ratio: Interval | None
    """overlap at the window's largest lag over the ceiling, all runs"""
    halving_lags_dw: list[float | None]
    """the same lags in weight-change space (gradients mapped to the change of dW they make); beside C3"""
    lag_dw: Interval | None
    ceiling_dw: MeanSpread
    drift_window: int
    checkpoint_every: int
    seconds_per_run: list[float]
    cpu_seconds_per_run: list[float]


def undone(r: RunResult) -> float:
    """Fraction of task A's gain (drop of its test loss during A's training) that B's training undid."""
    return undone_fraction(*(r.evals[phase][r.pair[0]]["loss"] for phase in ("start", "after A", "after B")))


def first_k_reaching(curve: np.ndarray, level: float) -> int | None:
    """Smallest k (curve[k-1] is the capture by k rows) with capture >= ``level``, else None."""
    hits = np.nonzero(np.asarray(curve) >= level)[0]
    return int(hits[0]) + 1 if len(hits) else None


def normalized_overlaps(cross: np.ndarray) -> np.ndarray:
    """``(cross[i, j] + cross[j, i]) / 2 / sqrt(cross[i, i] cross[j, j])``, (S, S): overlaps over their noise ceilings."""
    cross = np.asarray(cross, dtype=float)
    ceilings = np.clip(np.diag(cross), 1e-12, None)
    return (cross + cross.T) / 2 / np.sqrt(np.outer(ceilings, ceilings))


def ceiling_drift(steps: list[int], cross: np.ndarray) -> tuple[float | None, float, float]:
    """(lag, ceiling, end ratio) of one run's (S, S) cross-set overlaps.

    The ceiling at step i is the same-step overlap of the two independent gradient sets,
    ``c_i = cross[i, i]``; the overlap of steps i and j, ``(cross[i, j] + cross[j, i]) / 2``, is divided
    by ``sqrt(c_i c_j)`` (a fading gradient signal lowers both steps' ceilings, not only the
    overlap), and the drift curve is its mean at each lag (1 at lag 0). The lag is where the curve first
    falls to ``lora_ceiling_fraction`` or below (:func:`lls.subspace.halving_lag`, ``<=``; None: not
    within the window); the end ratio is the curve at the largest lag; the ceiling returned is the mean c_i.
    """
    normalized = normalized_overlaps(cross)
    lag = subspace.halving_lag(steps, normalized, threshold("C3", "lora_ceiling_fraction"))
    _, curve = subspace.overlap_by_lag(steps, normalized)
    return (None if lag is None else float(lag)), float(np.mean(np.diag(np.asarray(cross)))), float(curve[-1])


def ratio_at(curve: np.ndarray, prefix: np.ndarray, k: int) -> float:
    """A static basis's capture over the prefix's, at k or at the basis's own dimension if smaller."""
    finite = [i for i in range(k) if np.isfinite(curve[i])]
    i = finite[-1]
    return float(curve[i] / prefix[i])


def _interval(values: list[float]) -> Interval | None:
    return t_interval(values, unit="runs") if values else None


def _ratios(pairs: list[tuple[dict, np.ndarray]], k: int) -> dict[str, Interval | None]:
    """Per basis name, the interval of :func:`ratio_at` over the (static curves, prefix) pairs that have it."""
    names = sorted({n for static, _ in pairs for n in static})
    return {n: _interval([ratio_at(static[n], prefix, k) for static, prefix in pairs if n in static]) for n in names}


def _horizons(records: list[dict[int, dict[str, float]]], horizons: list[int]) -> dict[int, dict[str, Interval | None]]:
    return {t: {m: _interval([rec[t][m] for rec in records]) for m in HORIZON_MEASURES} for t in horizons}


def summarize(cfg: Config, runs: list[RunResult], screen: list[dict]) -> Summary:
    """The chapter's numbers: C4 at each horizon, static bases against the prefix, drift against its ceiling."""
    gone = [undone(r) for r in runs]
    forgotten = [bool(u >= threshold("C4", "forgotten_undone")) for u in gone]
    kept = [r for r, f in zip(runs, forgotten, strict=True) if f]
    ts, k = cfg.horizon_list(), cfg.k_at(cfg.recover_steps)
    static_k = min(k, cfg.k_static)
    drift = [ceiling_drift(r.drift_steps, r.cross_overlap) for r in runs]
    drift_dw = [ceiling_drift(r.drift_steps, r.cross_overlap_dw) for r in runs]
    sgd = [r for r in kept if r.sgd]
    return Summary(
        seeds=sorted({r.seed for r in runs}), n_runs=len(runs), horizons=ts, horizon_ks=[cfg.k_at(t) for t in ts],
        k_fraction=cfg.k_fraction, drift_k=cfg.drift_k, adapter_dim=runs[0].dim if runs else 0,
        weight_change_dim=runs[0].dim_dw if runs else 0, screen=screen, undone=gone, forgotten=forgotten,
        c4=_interval([r.prefix[k - 1] for r in kept]),
        c4_not_forgotten=_interval([r.prefix[k - 1] for r, f in zip(runs, forgotten, strict=True) if not f]),
        horizon=_horizons([r.horizon for r in kept], ts), prefix_dw=_interval([r.prefix_dw[k - 1] for r in kept]),
        prefix_by_pair={f"{m}: {a} -> {b}": mean_spread([r.prefix[k - 1] for r in runs if (r.model, r.pair) == (m, (a, b))])
                        for m, (a, b) in dict.fromkeys((r.model, r.pair) for r in runs)},
        task_a_loss={p: mean_spread([r.evals[p][r.pair[0]]["loss"] for r in runs])[0] for p in
                     (runs[0].evals if runs else {})},
        static_k=static_k,
        static_capture={n: mean_spread([r.static[n][min(static_k, np.isfinite(r.static[n]).sum()) - 1]
                                        for r in kept if n in r.static]) for n in sorted({n for r in kept for n in r.static})},
        static_ratio=_ratios([(r.static, r.prefix) for r in kept], static_k),
        sgd_lr=[r.sgd["lr"] for r in runs if r.sgd], sgd_horizon=_horizons([r.sgd["horizon"] for r in sgd], ts),
        sgd_static_ratio=_ratios([(r.sgd["static"], r.sgd["prefix"]) for r in sgd], static_k),
        sgd_task_a_loss=mean_spread([r.sgd["loss_after"] for r in sgd]) if sgd else (None, None),
        halving_lags=[d[0] for d in drift], lag=_interval([d[0] for d in drift if d[0] is not None]),
        ceiling=mean_spread([d[1] for d in drift]) if drift else (None, None),
        end_ratio=_interval([d[2] for d in drift]), halving_lags_dw=[d[0] for d in drift_dw],
        lag_dw=_interval([d[0] for d in drift_dw if d[0] is not None]),
        ceiling_dw=mean_spread([d[1] for d in drift_dw]) if drift_dw else (None, None), drift_window=cfg.drift_window,
        checkpoint_every=cfg.checkpoint_every, seconds_per_run=[round(sum(r.seconds.values()), 1) for r in runs],
        cpu_seconds_per_run=[round(r.cpu_seconds, 1) for r in runs])


def fmt(value: Interval | MeanSpread | None, digits: int = 3) -> str:
    """``"m ± sd [low, high] (n)"`` for an interval, ``"m ± sd"`` for a mean and spread, ``"none"`` without one."""
    if value is None or (isinstance(value, tuple) and value[0] is None):
        return "none"
    if isinstance(value, Interval):
        ci = f" [{value.low:.{digits}f}, {value.high:.{digits}f}]" if value.known else ""
        sd = f" ± {value.sd:.{digits}f}" if value.sd is not None else ""
        return f"{value.mean:.{digits}f}{sd}{ci} (n = {value.n})"
    m, sd = value
    return f"{m:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def dimensions_report(s: Summary) -> str:
    """One line: the adapter and weight-change dimensions and the random baseline at the longest horizon's k."""
    k = s.horizon_ks[-1]
    return (f"adapter dimension D = {s.adapter_dim:,}, weight-change dimension D_W = {s.weight_change_dim:,}; "
            f"a random k-dim subspace captures k/D = {k / max(s.adapter_dim, 1):.1e} at k = {k}")


def forgetting_report(s: Summary) -> str:
    """The screen (each candidate's undone fraction, passed or not) and, per run, the undone fraction."""
    level = threshold("C4", "lora_screen_undone")
    lines = [f"forgetting screen (passes when B undoes at least {level:g} of A's test-loss gain):"]
    lines += [f"  {c['model']}: {c['pair'][0]} -> {c['pair'][1]}: {c['undone']:.2f} "
              f"{'passed' if c['passed'] else 'failed'}" for c in s.screen]
    lines.append(f"measured runs: fraction of A's gain undone by B, per run {[round(u, 2) for u in s.undone]}; "
                 f"A forgotten in {sum(s.forgotten)} of {s.n_runs} (C2 and C4 read on those only)")
    return "\n".join(lines)


def _horizon_lines(s: Summary, by_horizon: dict[int, dict[str, Interval | None]]) -> list[str]:
    """One line per horizon T: the prefix's capture of Delta_T, its own share, its capture of the rest."""
    return [f"  T = {t}, k = {k}: capture of Δ_T {fmt(by_horizon[t]['prefix'])}; own share "
            f"{fmt(by_horizon[t]['own'])}; capture of θ_T − θ_k {fmt(by_horizon[t]['remaining'])}"
            for t, k in zip(s.horizons, s.horizon_ks, strict=True)]


def prefix_report(s: Summary) -> str:
    """C4's lines: per horizon the prefix capture, its own share and its capture of the rest; other runs beside."""
    lines = [f"k = {s.k_fraction:g}·T; 95 % t-intervals over the runs where A was forgotten "
             f"(paper: {REGISTRY['C4'].paper})"]
    lines += _horizon_lines(s, s.horizon)
    lines.append(f"  weight-change space at T = {s.horizons[-1]}: {fmt(s.prefix_dw)}")
    lines.append(f"  runs where A was NOT forgotten (not in C4): {fmt(s.c4_not_forgotten)}")
    lines += [f"  {group}: {fmt(v)}" for group, v in s.prefix_by_pair.items()]
    return "\n".join(lines)


def static_report(s: Summary) -> str:
    """C2's lines: per static basis, its capture and its capture over the prefix's (Adam; SGD arm)."""
    lines = [f"at k = {s.static_k} (1 for the task-A adapter): capture of Δ, and capture / prefix capture"]
    lines += [f"  {n}: {fmt(s.static_capture.get(n))}; ratio {fmt(r)}; SGD arm ratio {fmt(s.sgd_static_ratio.get(n))}"
              for n, r in s.static_ratio.items()]
    return "\n".join(lines)


def sgd_report(s: Summary) -> str:
    """The SGD arm: its learning rates (by the fixed rule), task-A loss and C4 numbers per horizon."""
    lines = [f"SGD arm: lr per run {[f'{lr:.3g}' for lr in s.sgd_lr]} (rule: 1/λ_max of the task-A Hessian at θ_f); "
             f"task-A test loss after SGD recovery {fmt(s.sgd_task_a_loss)} (Adam: {s.task_a_loss.get('after recovery', float('nan')):.3f})"]
    return "\n".join(lines + _horizon_lines(s, s.sgd_horizon))


def drift_report(s: Summary) -> str:
    """C3's lines: ceiling, lags per run, their interval, the overlap at the window's end; weight-change space."""
    return (f"noise ceiling (same-step overlap of two independent gradient sets) {fmt(s.ceiling)}; lag at which "
            f"the cross-set overlap falls to {threshold('C3', 'lora_ceiling_fraction'):g} of it, per run "
            f"{s.halving_lags} (checkpoints every {s.checkpoint_every} steps, window {s.drift_window}); "
            f"lag {fmt(s.lag, 1)}; overlap at lag {s.drift_window} over the ceiling {fmt(s.end_ratio)}\n"
            f"weight-change space (each gradient mapped to the change of dW = s·B·A it makes): ceiling "
            f"{fmt(s.ceiling_dw)}; lags per run {s.halving_lags_dw}; lag {fmt(s.lag_dw, 1)}")


def run_label(r: RunResult) -> str:
    """``"model · task A · seed s"``: how a run is named in tables, figures and pickers."""
    return f"{r.model} · {r.pair[0]} · seed {r.seed}"


def evals_table(runs: list[RunResult]) -> str:
    """Markdown table: task-A and task-B answer loss (accuracy) after each phase, per run."""
    head = ["model", "pair (A, B)", "seed", "task", "start", "after A", "after B", "after recovery"]
    return markdown_table(head, [[r.model, ", ".join(r.pair), r.seed, task,
                                  *(f"{r.evals[p][task]['loss']:.2f} ({r.evals[p][task]['accuracy']:.0%})"
                                    for p in r.evals)] for r in runs for task in r.pair])


def timings_report(runs: list[RunResult]) -> str:
    """One line per run: wall seconds per part of the run and its CPU seconds (all threads)."""
    return "\n".join(f"{run_label(r)}: " + ", ".join(f"{name} {sec:.0f}" for name, sec in r.seconds.items())
                     + f"; CPU {r.cpu_seconds:.0f} s" for r in runs)


def _mean(value: Interval | None) -> float | None:
    return None if value is None else value.mean


def extra_numbers(s: Summary) -> dict:
    """Further numbers for ``metrics.json``: horizons, weight-change space, each basis, SGD arm, drift, timings."""
    return {"forgotten": s.forgotten, "fraction_of_A_gain_undone_by_B": s.undone,
            "screen": [{**c, "pair": list(c["pair"])} for c in s.screen],
            **{f"C4 {m} at T={t}": _mean(v) for t, ms in s.horizon.items() for m, v in ms.items()},
            **{f"SGD C4 {m} at T={t}": _mean(v) for t, ms in s.sgd_horizon.items() for m, v in ms.items()},
            "C4 where A was not forgotten": _mean(s.c4_not_forgotten), "prefix_dw": _mean(s.prefix_dw),
            **{f"static ratio {n}": _mean(v) for n, v in s.static_ratio.items()},
            **{f"SGD static ratio {n}": _mean(v) for n, v in s.sgd_static_ratio.items()},
            "sgd_lr": s.sgd_lr, "drift_lags": s.halving_lags, "noise_ceiling": s.ceiling[0],
            "drift_lags_weight_change": s.halving_lags_dw, "noise_ceiling_weight_change": s.ceiling_dw[0],
            "end_ratio": _mean(s.end_ratio), "adapter_dim": s.adapter_dim, "weight_change_dim": s.weight_change_dim,
            **{f"task_A_loss_{phase}": v for phase, v in s.task_a_loss.items()},
            "seconds_per_run": s.seconds_per_run, "cpu_seconds_per_run": s.cpu_seconds_per_run}
