"""Chapter 2's figures (plotly) over the per-seed results; bands are mean ± 1 SD over seeds."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lls.chapters.synthetic.protocol import REGIMES, RegimeRun, SeedRun
from lls.claims import REGISTRY, threshold
from lls.plots import band, drift_explorer, panels
from lls.subspace import overlap_by_lag
from lls.synthetic import TASKS

COLORS = {"trajectory prefix": "#d62728", "gradient SVD at θ0": "#1f77b4", "gradient SVD at θ_f": "#17becf",
          "Hessian top-k at θ_f": "#2ca02c", "Krylov at θ_f": "#9467bd", "task vector θ0−θ_f": "#8c564b",
          "random": "#7f7f7f", "θ0": "#1f77b4", "θ_f": "#17becf", "unstructured": "#7f7f7f"}
REGIME_COLORS = {"sequential": "#ff7f0e", "simultaneous": "#1f77b4"}


def accuracy_figure(runs: list[SeedRun], task: str) -> go.Figure:
    """Exact-match accuracy per task at θ0, θ_f and θ_r (bars: mean over seeds, error: population SD)."""
    fig = go.Figure()
    for label, attr in (("θ0 (multitask)", "acc0"), ("θ_f (after forgetting)", "acc_f"),
                        ("θ_r (after recovery)", "acc_r")):
        vals = np.array([[getattr(r, attr)[t] for t in TASKS] for r in runs])
        fig.add_trace(go.Bar(x=list(TASKS), y=vals.mean(0), name=label,
                             error_y={"type": "data", "array": vals.std(0), "visible": len(runs) > 1}))
    fig.update_layout(barmode="group", title=f"Exact-match accuracy per task (A = {task})",
                      yaxis={"title": "accuracy", "range": [0, 1.05]}, height=380)
    return fig


def recovery_figure(runs: list[SeedRun], task: str) -> go.Figure:
    """Accuracy on A along recovery, and the training loss of forgetting then recovery."""
    fig = panels(rows=1, cols=2, subplot_titles=(f"accuracy on {task} during recovery",
                                                        "training loss (forgetting, then recovery)"))
    band(fig, runs[0].drift_steps, [r.recover_accuracy for r in runs], "accuracy", "#d62728", row=1, col=1)
    n_forget = len(runs[0].losses["forget"])
    losses = [r.losses["forget"] + r.losses["recover"] for r in runs]
    x = list(range(-n_forget, len(losses[0]) - n_forget))
    band(fig, x, losses, "loss (other tasks, then A)", "#1f77b4", row=1, col=2)
    fig.update_traces(mode="lines", row=1, col=2)
    fig.update_xaxes(title_text="recovery step", row=1, col=1)
    fig.update_xaxes(title_text="step (recovery starts at 0)", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=360, showlegend=False)
    return fig


def spectrum_figure(runs: list[SeedRun]) -> go.Figure:
    """C1: normalised singular values of the probe gradients, effective rank against n and along recovery."""
    fig = panels(rows=1, cols=3, subplot_titles=(
        "singular values σ_i / σ_1", "effective rank (90 %) vs batches n", "effective rank along recovery"))
    for point in ("θ0", "θ_f", "unstructured"):
        sv = np.array([r.spectra[point] / r.spectra[point][0] for r in runs])
        band(fig, range(1, sv.shape[1] + 1), sv, point, COLORS[point], row=1, col=1)
        band(fig, runs[0].rank_n, [r.eff_rank[point] for r in runs], point, COLORS[point], row=1, col=2,
             legend=False)
    steps = runs[0].drift_steps
    band(fig, steps, [r.drift_eff_rank for r in runs], "along recovery", "#d62728", row=1, col=3)
    band(fig, steps, [r.drift_eff_rank_random for r in runs], "unstructured", COLORS["random"], row=1, col=3,
         dash="dot", legend=False)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="i", row=1, col=1)
    fig.update_xaxes(title_text="n", type="log", row=1, col=2)
    fig.update_xaxes(title_text="recovery step", row=1, col=3)
    fig.update_layout(title="C1: local rank of per-batch task-A gradients", height=400)
    return fig


def capture_figure(runs: list[SeedRun]) -> go.Figure:
    """C2/C4: capture of Δ against k by every basis, with k/D and the paper's LoRA prefix capture."""
    fig = go.Figure()
    k_list = runs[0].ks
    for name in runs[0].capture:
        band(fig, k_list, [r.capture[name] for r in runs], name, COLORS[name],
             dash="dash" if name.startswith("Krylov") else None)
    fig.add_trace(go.Scatter(x=k_list, y=[k / runs[0].dim for k in k_list], name="k/D (random, expected)",
                             mode="lines", line={"color": "black", "dash": "dot"}))
    paper = REGISTRY["C4"].paper
    fig.add_hline(y=paper, line_dash="dot", line_color="#d62728", annotation_text=f"paper, LoRA prefix: {paper:g}")
    fig.update_layout(title="C2/C4: capture of the recovery displacement Δ", height=450,
                      xaxis={"title": "k (basis size)", "type": "log"},
                      yaxis={"title": "‖U_kᵀΔ‖² / ‖Δ‖²", "range": [0, 1.02]})
    return fig


def drift_figure(run: SeedRun, k: int) -> go.Figure:
    """C3: the drift explorer of one seed (overlap heatmap, capture of Δ by each step's basis)."""
    return drift_explorer(run.drift_steps, run.drift_overlap, run.drift_ks, run.drift_capture,
                          title=f"C3: drift of the top-{k} gradient subspace (seed {run.seed})",
                          capture_label="capture of Δ by the top-k basis at step s")


def lag_figure(runs: list[SeedRun]) -> go.Figure:
    """C3: mean overlap against lag, with the halving level and the paper's 100 steps."""
    fig = go.Figure()
    lags = overlap_by_lag(runs[0].drift_steps, runs[0].drift_overlap)[0]
    band(fig, lags, [overlap_by_lag(r.drift_steps, r.drift_overlap)[1] for r in runs], "mean overlap", "#1f77b4")
    level, paper = threshold("C3", "overlap_halved"), REGISTRY["C3"].paper
    fig.add_hline(y=level, line_dash="dot", annotation_text=f"{level:g}")
    fig.add_vline(x=paper, line_dash="dot", annotation_text=f"paper: within {paper:g} steps")
    fig.update_layout(title="C3: overlap of top-k gradient subspaces against step lag", height=380,
                      xaxis={"title": "lag t − s (steps)"}, yaxis={"title": "overlap", "range": [0, 1.02]})
    return fig


def regime_figure(regime_runs: list[RegimeRun], task: str) -> go.Figure:
    """C10 (like the paper's Figure 4): accuracy under weight noise, and on A while forgetting."""
    fig = panels(rows=1, cols=2, subplot_titles=(
        "mean accuracy under weight noise", f"accuracy on {task} during the forgetting run"))
    for regime in REGIMES:
        runs = [r for r in regime_runs if r.regime == regime]
        if runs:
            color = REGIME_COLORS[regime]
            band(fig, runs[0].sigmas, [r.noise_accuracy.mean(1) for r in runs], regime, color, row=1, col=1)
            band(fig, runs[0].forget_steps, [r.forget_accuracy for r in runs], regime, color, row=1, col=2,
                 dash="dash", legend=False)
    fig.update_xaxes(title_text="noise σ (every weight)", row=1, col=1)
    fig.update_xaxes(title_text="forgetting step", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(title="C10: sequential vs simultaneous training", height=400)
    return fig
