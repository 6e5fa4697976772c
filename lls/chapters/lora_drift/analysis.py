"""Chapter 3's numbers: runs -> one :class:`Summary`, plus the tables and report lines the notebook shows.

Pure functions of :class:`lls.chapters.lora_drift.protocol.RunResult` lists. Captures are fractions
of ``|Delta|^2`` in [0, 1]; a ``MeanSpread`` is ``(mean, sample SD over runs or None)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lls import subspace
from lls.chapters.lora_drift.config import Config
from lls.chapters.lora_drift.protocol import RunResult
from lls.claims import REGISTRY, threshold
from lls.stats import mean_spread
from lls.tables import markdown_table

MeanSpread = tuple[float | None, float | None]

BEYOND_PAPER = ("Krylov (HVPs)",)
"""Static bases we add to the paper's; C2's verdict compares only the paper's bases."""


@dataclass(frozen=True)
class Summary:
    """Every number chapter 3 reports, computed once from its runs.

    ``k_ref``, ``recover_steps``, ``drift_k``: the parameters the numbers are read at.
    Per-run lists follow the order of the runs.
    """

    seeds: list[int]
    n_runs: int
    k_ref: int
    recover_steps: int
    drift_k: int
    adapter_dim: int
    weight_change_dim: int
    random_at_k_ref: float
    """expected capture of a random k_ref-dim subspace of the adapter space, k_ref / D"""
    prefix_at_k_ref: MeanSpread
    prefix_dw_at_k_ref: MeanSpread
    prefix_at_k_ref_by_pair: dict[str, MeanSpread]
    """per ``"model: A -> B"``"""
    prefix_at_k_ref_forgotten: MeanSpread
    """over the runs where A was forgotten only; (None, None) if there is none"""
    k_reaching_paper: list[int | None]
    """per run, the smallest k whose prefix captures the paper's fraction (None: never)"""
    k_reaching_paper_dw: list[int | None]
    task_vector: MeanSpread
    task_vector_dw: MeanSpread
    undone: list[float]
    """per run, the fraction of task A's loss gain that training on B undid (nan: no gain)"""
    forgotten: list[bool]
    task_a_loss: dict[str, float]
    """mean task-A answer loss (nats per token) after each phase"""
    static_k: int
    """the k at which static bases are compared with the prefix, min(k_ref, k_static)"""
    static: dict[str, MeanSpread]
    """capture at static_k of each static basis (sorted names; runs with a finite value)"""
    paper_static: dict[str, MeanSpread]
    """the paper's static bases (``static`` without :data:`BEYOND_PAPER`, plus the task-A adapter)"""
    prefix_at_static_k: MeanSpread
    halving_lags: list[float | None]
    """per run, recovery steps until the drift overlap falls to the C3 level (None: not within the run)"""
    halving_lag: MeanSpread
    """over the runs with a finite lag; (None, None) if there is none"""
    seconds_per_run: list[float]
    cpu_seconds_per_run: list[float]


def undone(r: RunResult) -> float:
    """Fraction of task A's gain (drop of its test loss during A's training) that B's training undid.

    0: B left A's loss where A's training brought it; 1: back to the loss before any training;
    nan when A's training brought no gain.
    """
    loss = {phase: r.evals[phase][r.pair[0]]["loss"] for phase in ("start", "after A", "after B")}
    gain = loss["start"] - loss["after A"]
    return (loss["after B"] - loss["after A"]) / gain if gain > 0 else float("nan")


def first_k_reaching(curve: np.ndarray, level: float) -> int | None:
    """Smallest k (curve[k-1] is the capture by k rows) with capture >= ``level``, else None."""
    hits = np.nonzero(np.asarray(curve) >= level)[0]
    return int(hits[0]) + 1 if len(hits) else None


def halving_lag(r: RunResult) -> float | None:
    """Recovery steps until the mean overlap of a run's drift bases falls to C3's ``overlap_halved``."""
    lag = subspace.halving_lag(r.drift_steps, r.overlap, threshold("C3", "overlap_halved"))
    return None if lag is None else float(lag)


def _or_none(values: list[float]) -> MeanSpread:
    return mean_spread(values) if values else (None, None)


def _static(runs: list[RunResult], k: int) -> dict[str, MeanSpread]:
    """Capture at ``k`` of each static basis, over the runs that computed it with a finite value."""
    names = sorted({n for r in runs for n in r.static})
    return {n: mean_spread(v) for n in names
            if (v := [r.static[n][k - 1] for r in runs if n in r.static and np.isfinite(r.static[n][k - 1])])}


def summarize(cfg: Config, runs: list[RunResult]) -> Summary:
    """The chapter's numbers: means and spreads over runs at k_ref, forgetting, static bases, drift lags."""
    k, paper = cfg.k_ref, REGISTRY["C4"].paper
    at_k = [r.prefix[k - 1] for r in runs]
    gone = [undone(r) for r in runs]
    forgotten = [u >= threshold("C4", "forgotten_undone") for u in gone]
    groups = sorted({(r.model, r.pair) for r in runs})
    static_k = min(k, cfg.k_static)
    static = _static(runs, static_k)
    task_vector = mean_spread([r.task_vector for r in runs])
    lags = [halving_lag(r) for r in runs]
    return Summary(
        seeds=sorted({r.seed for r in runs}), n_runs=len(runs), k_ref=k, recover_steps=cfg.recover_steps,
        drift_k=cfg.drift_k, adapter_dim=runs[0].dim, weight_change_dim=runs[0].dim_dw,
        random_at_k_ref=k / runs[0].dim, prefix_at_k_ref=mean_spread(at_k),
        prefix_dw_at_k_ref=mean_spread([r.prefix_dw[k - 1] for r in runs]),
        prefix_at_k_ref_by_pair={
            f"{m}: {a} -> {b}": mean_spread([r.prefix[k - 1] for r in runs if (r.model, r.pair) == (m, (a, b))])
            for m, (a, b) in groups},
        prefix_at_k_ref_forgotten=_or_none([c for c, f in zip(at_k, forgotten, strict=True) if f]),
        k_reaching_paper=[first_k_reaching(r.prefix, paper) for r in runs],
        k_reaching_paper_dw=[first_k_reaching(r.prefix_dw, paper) for r in runs],
        task_vector=task_vector, task_vector_dw=mean_spread([r.task_vector_dw for r in runs]),
        undone=gone, forgotten=forgotten,
        task_a_loss={phase: mean_spread([r.evals[phase][r.pair[0]]["loss"] for r in runs])[0]
                     for phase in runs[0].evals},
        static_k=static_k, static=static,
        paper_static={**{n: v for n, v in static.items() if n not in BEYOND_PAPER}, "task-A adapter": task_vector},
        prefix_at_static_k=mean_spread([r.prefix[static_k - 1] for r in runs]),
        halving_lags=lags, halving_lag=_or_none([lag for lag in lags if lag is not None]),
        seconds_per_run=[round(sum(r.seconds.values()), 1) for r in runs],
        cpu_seconds_per_run=[round(r.cpu_seconds, 1) for r in runs])


def extra_numbers(s: Summary) -> dict:
    """Further numbers for ``metrics.json``: weight-change space, each static basis, timings."""
    return {"prefix_dw_at_k_ref": s.prefix_dw_at_k_ref[0], "k_reaching_paper": s.k_reaching_paper,
            "k_reaching_paper_dw": s.k_reaching_paper_dw, "task_vector_capture": s.task_vector[0],
            "task_vector_capture_dw": s.task_vector_dw[0], "static_k": s.static_k,
            **{f"static_{n}": m for n, (m, _) in s.static.items()},
            "prefix_at_static_k": s.prefix_at_static_k[0], "adapter_dim": s.adapter_dim,
            **{f"prefix_at_k_ref [{g}]": m for g, (m, _) in s.prefix_at_k_ref_by_pair.items()},
            "weight_change_dim": s.weight_change_dim,
            **{f"task_A_loss_{phase}": v for phase, v in s.task_a_loss.items()},
            "fraction_of_A_gain_undone_by_B": s.undone,
            "prefix_at_k_ref_where_A_forgotten": s.prefix_at_k_ref_forgotten[0],
            "seconds_per_run": s.seconds_per_run, "cpu_seconds_per_run": s.cpu_seconds_per_run}


def fmt(value: MeanSpread, digits: int = 3) -> str:
    """``"m ± sd"`` (``"m"`` for one run, ``"none"`` when there is no mean), ``digits`` decimals."""
    m, sd = value
    if m is None:
        return "none"
    return f"{m:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def dimensions_report(s: Summary) -> str:
    """One line: the adapter and weight-change dimensions and the random baseline at k_ref."""
    return (f"adapter dimension D = {s.adapter_dim:,}, weight-change dimension D_W = {s.weight_change_dim:,}; "
            f"a random k-dim subspace captures k/D = {s.random_at_k_ref:.1e} at k = {s.k_ref}")


def forgetting_report(s: Summary) -> str:
    """One line: per run, the fraction of task A's loss gain that training on B undid (2 decimals)."""
    return f"fraction of task A's loss gain undone by training on B, per run: {[round(u, 2) for u in s.undone]}"


def prefix_report(s: Summary) -> str:
    """C4's lines: capture at k_ref in both spaces, per pair, where A was forgotten, k reaching the paper's."""
    paper = REGISTRY["C4"].paper
    lines = [f"capture by the first {s.k_ref} updates: adapter space {fmt(s.prefix_at_k_ref)}, weight-change "
             f"space {fmt(s.prefix_dw_at_k_ref)}   (paper: {paper})"]
    lines += [f"  {group}: {fmt(v)}" for group, v in s.prefix_at_k_ref_by_pair.items()]
    lines.append(f"  runs where task A was forgotten ({sum(s.forgotten)} of {s.n_runs}): "
                 f"{fmt(s.prefix_at_k_ref_forgotten)}")
    lines.append(f"k at which {paper * 100:g} % is first reached, per run: adapter {s.k_reaching_paper}, "
                 f"weight change {s.k_reaching_paper_dw}")
    return "\n".join(lines)


def static_report(s: Summary) -> str:
    """C2's line: capture at static_k by the prefix, each static basis and the task-A adapter."""
    return (f"capture of Δ at k = {s.static_k}: prefix {s.prefix_at_static_k[0]:.3f}; "
            + "; ".join(f"{name} {m:.3f}" for name, (m, _) in s.static.items())
            + f"; task-A adapter (1 direction) {s.task_vector[0]:.4f} "
              f"(weight-change space {s.task_vector_dw[0]:.4f})")


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
