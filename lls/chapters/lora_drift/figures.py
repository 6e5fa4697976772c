"""Chapter 3's figures: prefix capture (C4), static bases (C2), drift explorer and overlap by lag (C3)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lls import plots, subspace
from lls.chapters.lora_drift.analysis import Summary, run_label
from lls.chapters.lora_drift.config import Config
from lls.chapters.lora_drift.protocol import RunResult
from lls.claims import REGISTRY, threshold

STATIC_COLORS = {"gradient SVD": "seagreen", "Hessian top-k": "firebrick", "Krylov (HVPs)": "purple",
                 "random": "grey"}
"""Colour of each static basis in :func:`static_figure`."""


def prefix_figure(cfg: Config, runs: list[RunResult]) -> go.Figure:
    """C4: capture of Delta by the first k recovery updates, k = 1..k_max (mean, min-max band over runs)."""
    paper = REGISTRY["C4"].paper
    ks = list(range(1, cfg.k_max + 1))
    fig = go.Figure()
    plots.band(fig, ks, np.stack([r.prefix for r in runs]), "adapter space (A, B factors)", "royalblue",
               spread="range")
    plots.band(fig, ks, np.stack([r.prefix_dw for r in runs]), "weight-change space (dW = s·B·A)", "darkorange",
               spread="range", dash="dash")
    fig.add_hline(y=paper, line_dash="dot", annotation_text=f"paper {paper:.0%}")
    fig.add_vline(x=cfg.k_ref, line_dash="dot", line_color="grey", annotation_text=f"k_ref = {cfg.k_ref}")
    fig.update_layout(title=f"Trajectory-prefix capture of the recovery displacement ({len(runs)} runs)",
                      xaxis_title="k (first recovery updates)", yaxis_title="capture of Δ",
                      yaxis_range=[0, 1.02], height=420)
    return fig


def static_figure(cfg: Config, runs: list[RunResult], s: Summary) -> go.Figure:
    """C2: capture of Delta by the static bases (computed at theta_f) against the prefix, k <= k_static."""
    ks = list(range(1, cfg.k_static + 1))
    fig = go.Figure()
    plots.band(fig, ks, np.stack([r.prefix[:cfg.k_static] for r in runs]), "trajectory prefix", "royalblue",
               spread="range")
    for name, color in STATIC_COLORS.items():
        curves = [r.static[name] for r in runs if name in r.static]
        if curves:
            plots.band(fig, ks, np.stack(curves), f"{name} ({len(curves)} runs)", color, spread="range")
    fig.add_trace(go.Scatter(x=[1], y=[s.task_vector[0]], mode="markers",
                             marker={"size": 11, "symbol": "diamond", "color": "black"},
                             name="task-A adapter θ_A − θ_0 (1-d)"))
    fig.update_layout(title="Static bases, computed before recovery, against the trajectory prefix",
                      xaxis_title="k (basis dimension)", yaxis_title="capture of Δ", yaxis_range=[0, 1.02],
                      height=420)
    return fig


def drift_figure(cfg: Config, r: RunResult) -> go.Figure:
    """C3: the drift explorer of one run (overlap heatmap, capture by each checkpoint's basis)."""
    return plots.drift_explorer(r.drift_steps, r.overlap, list(range(1, r.drift_capture.shape[1] + 1)),
                                r.drift_capture,
                                title=f"Drift of the top-{cfg.drift_k} gradient subspace ({r.pair[0]}, seed {r.seed})",
                                capture_label="capture of Δ by the top-k gradient basis at that step")


def lag_figure(runs: list[RunResult]) -> go.Figure:
    """C3: mean overlap of gradient subspaces against the lag (recovery steps) between them, per run."""
    fig = go.Figure()
    for r in runs:
        lags, means = subspace.overlap_by_lag(r.drift_steps, r.overlap)
        fig.add_trace(go.Scatter(x=lags, y=means, mode="lines+markers", name=f"{r.model} {r.pair[0]} s{r.seed}"))
    fig.add_hline(y=threshold("C3", "overlap_halved"), line_dash="dot", annotation_text="half")
    fig.update_layout(title="Overlap of top-k gradient subspaces against the lag between them",
                      xaxis_title="lag (recovery steps)", yaxis_title="mean overlap", yaxis_range=[0, 1.02],
                      height=380)
    return fig


def drift_picker(cfg: Config, runs: list[RunResult]) -> None:
    """Live notebooks only: a dropdown that shows :func:`drift_figure` of the chosen run."""
    import ipywidgets as widgets

    by_label = {run_label(r): r for r in runs}
    widgets.interact(lambda run: plots.show(drift_figure(cfg, by_label[run])),
                     run=widgets.Dropdown(options=list(by_label)))
