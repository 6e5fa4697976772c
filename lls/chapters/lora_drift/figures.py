"""Chapter 3's figures: prefix capture (C4), static bases (C2), drift explorer and overlap by lag (C3)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lls import plots, subspace
from lls.chapters.lora_drift.analysis import Summary, normalized_overlaps, run_label
from lls.chapters.lora_drift.config import Config
from lls.chapters.lora_drift.protocol import RunResult
from lls.claims import REGISTRY, threshold
from lls.plots import captioned

STATIC_COLORS = {"gradient SVD": "seagreen", "Hessian top-k": "firebrick", "Krylov (HVPs)": "purple",
                 "random": "grey", "sign(g) (Adam's first steps)": "goldenrod", "Adam-preconditioned gradients": "teal",
                 "preconditioned Krylov": "hotpink"}
"""Colour of each static basis in :func:`static_figure`."""


def _over(runs: list[RunResult]) -> str:
    """Which runs a band summarises, for a caption: ``"6 runs (smollm2-135m; task A plural, arithmetic; seeds 0, 1, 2)"``."""
    models = ", ".join(dict.fromkeys(r.model for r in runs))
    tasks = ", ".join(dict.fromkeys(r.pair[0] for r in runs))
    seeds = ", ".join(str(s) for s in sorted({r.seed for r in runs}))
    return f"{len(runs)} run{'' if len(runs) == 1 else 's'} ({models}; task A {tasks}; seeds {seeds})"


def prefix_figure(cfg: Config, runs: list[RunResult]) -> go.Figure:
    """C4: capture of Delta by the first k recovery updates, k = 1..k_max (mean, min-max band over runs)."""
    paper = REGISTRY["C4"].paper
    k_max = cfg.k_at(cfg.recover_steps)
    ks = list(range(1, k_max + 1))
    fig = go.Figure()
    plots.band(fig, ks, np.stack([r.prefix for r in runs]), "adapter space (A, B factors)", "royalblue",
               spread="range")
    plots.band(fig, ks, np.stack([r.prefix_dw for r in runs]), "weight-change space (dW = s·B·A)", "darkorange",
               spread="range", dash="dash")
    fig.add_hline(y=paper, line_dash="dot", annotation_text=f"paper {paper:.0%}")
    fig.add_vline(x=k_max, line_dash="dot", line_color="grey", annotation_text=f"k = {cfg.k_fraction:g}·T")
    fig.update_layout(title=f"Trajectory-prefix capture of the recovery displacement ({len(runs)} runs)",
                      xaxis_title="k (first recovery updates)", yaxis_title="capture of Δ",
                      yaxis_range=[0, 1.02], height=420)
    reproduced = paper - threshold("C4", "lora_tolerance")
    return captioned(fig, (
        f"C4: capture of the recovery displacement Δ = θ_r − θ_f (fraction of ‖Δ‖²) by the span of the first k "
        f"recovery updates, k = 1 to {k_max} of T = {cfg.recover_steps}, in the adapter space (A, B factors) and "
        f"in the weight-change space dW = s·B·A; lines are means and shaded bands the min–max over "
        f"{_over(runs)} (forgotten or not). The dotted line is the paper's {paper:.0%}, the grey one k = "
        f"{cfg.k_fraction:g}·T, fixed in advance, where C4 is read: look for the mean there against the paper's line (C4 is reproduced from "
        f"{reproduced:.0%} on) and for the weight-change curve (dashed) beside the adapter one."))


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
    fig.add_trace(go.Scatter(x=[1], y=[s.static_capture.get("task-A adapter", (None,))[0]], mode="markers",
                             marker={"size": 11, "symbol": "diamond", "color": "black"},
                             name="task-A adapter θ_A − θ_0 (1-d)"))
    fig.update_layout(title="Static bases, computed before recovery, against the trajectory prefix",
                      xaxis_title="k (basis dimension)", yaxis_title="capture of Δ", yaxis_range=[0, 1.02],
                      height=420)
    fraction = threshold("C2", "lora_prefix_fraction")
    return captioned(fig, (
        f"C2: capture of Δ (fraction of ‖Δ‖²) against the basis dimension k = 1 to {cfg.k_static} by bases "
        f"computed at θ_f before recovery (top-k gradient SVD of {2 * cfg.n_grad_batches} per-batch gradients, "
        f"Hessian top-k by Lanczos, Krylov from Hessian-vector products, random, and the Adam-aware sign(g), "
        f"preconditioned-gradient and preconditioned-Krylov bases) and by the trajectory prefix; "
        f"lines are means and shaded bands the min–max over {_over(runs)}, or over the runs counted in the legend "
        f"for the bases not computed in every run, and the diamond is the mean capture by the 1-d task-A adapter "
        f"θ_A − θ_0 over the runs where A was forgotten. Look for the static bases' curves below the prefix: C2 "
        f"holds where every static basis captures less than {fraction:g} times what the prefix of the same size "
        f"captures."))


def drift_figure(cfg: Config, r: RunResult) -> go.Figure:
    """C3: the drift explorer of one run (overlap heatmap, capture by each checkpoint's basis)."""
    fig = plots.drift_explorer(r.drift_steps, r.cross_overlap, list(range(1, r.drift_capture.shape[1] + 1)),
                               r.drift_capture,
                               title=f"Drift of the top-{cfg.drift_k} gradient subspace ({r.pair[0]}, seed {r.seed})",
                               capture_label="capture of Δ by the top-k gradient basis at that step")
    return captioned(fig, (
        f"C3 on one run ({run_label(r)}). Left: the overlap (mean squared cosine of the principal angles; 1 = the "
        f"same subspace, 0 = unrelated) between the top-{cfg.drift_k} subspace of {cfg.n_grad_batches} per-batch "
        f"task-A gradients (set 1) at recovery step s and that of {cfg.n_grad_batches} other batches (set 2) at "
        f"step t, so the diagonal is the noise ceiling, {len(r.drift_steps)} checkpoints every "
        f"{cfg.checkpoint_every} steps; right: the capture of Δ (fraction of ‖Δ‖²) by the top-k gradient basis "
        f"taken at the step the slider selects, k = 1 to {r.drift_capture.shape[1]}, with the step-"
        f"{r.drift_steps[0]} basis in grey. One run, so no bands; look for the overlap fading away from the "
        f"diagonal (the subspace drifts) and for how much of Δ later bases capture compared with the first."))


def lag_figure(runs: list[RunResult]) -> go.Figure:
    """C3: mean overlap of gradient subspaces against the lag (recovery steps) between them, per run."""
    fig = go.Figure()
    for i, r in enumerate(runs):
        color = plots.COLORS[i % len(plots.COLORS)]
        for cross, dash, space in ((r.cross_overlap, None, "adapter"), (r.cross_overlap_dw, "dash", "dW")):
            lags, means = subspace.overlap_by_lag(r.drift_steps, normalized_overlaps(cross))
            fig.add_trace(go.Scatter(x=lags, y=means, mode="lines+markers", line={"dash": dash, "color": color},
                                     name=f"{r.pair[0]} s{r.seed} ({space})"))
    level = threshold("C3", "lora_ceiling_fraction")
    fig.add_hline(y=level, line_dash="dot", annotation_text=f"{level:g} of the ceiling")
    fig.update_layout(title="Overlap of gradient subspaces (independent batches) against the lag, over the ceiling",
                      xaxis_title="lag (recovery steps)", yaxis_title="overlap / noise ceiling",
                      height=380)
    return captioned(fig, (
        f"C3: overlap (mean squared cosine of the principal angles) of top-k gradient subspaces from two independent "
        f"batch sets taken a given number of recovery steps apart, averaged over all pairs of checkpoints at that "
        f"lag, each pair divided by the geometric mean of its two steps' same-step overlaps (the noise ceiling, "
        f"lag 0 = 1), against the lag in steps, in the adapter space (solid) and in weight-change space (dashed: "
        f"each gradient mapped to the change of dW = s·B·A it makes); one colour "
        f"per run, {_over(runs)}, not averaged across runs. The dotted line is {level:g} of the ceiling: C3 asks "
        f"every run's line to reach it within "
        f"{REGISTRY['C3'].paper:g} steps."))


def drift_picker(cfg: Config, runs: list[RunResult]) -> None:
    """Live notebooks only: a dropdown that shows :func:`drift_figure` of the chosen run."""
    import ipywidgets as widgets

    by_label = {run_label(r): r for r in runs}
    widgets.interact(lambda run: plots.show(drift_figure(cfg, by_label[run])),
                     run=widgets.Dropdown(options=list(by_label)))
