"""Chapter 2's figures (plotly) over the per-seed results; bands are mean ± 1 SD over seeds."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lls.chapters.synthetic.protocol import REGIMES, RegimeRun, SeedRun
from lls.claims import REGISTRY, threshold
from lls.plots import band, captioned, drift_explorer, panels
from lls.subspace import overlap_by_lag
from lls.synthetic import TASKS

COLORS = {"trajectory prefix": "#d62728", "gradient SVD at θ0": "#1f77b4", "gradient SVD at θ_f": "#17becf",
          "Hessian top-k at θ_f": "#2ca02c", "Krylov at θ_f": "#9467bd", "task vector θ0−θ_f": "#8c564b",
          "random": "#7f7f7f", "θ0": "#1f77b4", "θ_f": "#17becf", "unstructured": "#7f7f7f",
          "sign(g) (Adam's first steps)": "#e377c2", "Adam-preconditioned gradients": "#bcbd22",
          "preconditioned Krylov": "#ff7f0e", "shuffled targets": "#e377c2", "other tasks": "#bcbd22",
          "centred": "#ff7f0e"}
RANK_ROWS = ("θ0", "θ_f", "shuffled targets", "other tasks", "centred", "unstructured")
"""The gradient stacks of the C1 figure: task A at θ0 and θ_f, the structured baselines, Gaussian rows."""
REGIME_COLORS = {"sequential": "#ff7f0e", "simultaneous": "#1f77b4"}


def _over(runs: list) -> str:
    """What a mean and its error bars summarise, for a caption: ``"3 seeds (0, 1, 2)"``."""
    seeds = ", ".join(str(r.seed) for r in runs)
    return f"{len(runs)} seed{'' if len(runs) == 1 else 's'} ({seeds})"


def _bars(runs: list) -> str:
    """The error bars of :func:`lls.plots.band` over ``runs``, for a caption."""
    return "error bars one SD across seeds" if len(runs) > 1 else "no error bars with one seed"


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
    bars = "error bars the population SD across seeds" if len(runs) > 1 else "no error bars with one seed"
    return captioned(fig, (
        f"Exact-match accuracy (fraction of test sequences whose whole answer is right) on each of the "
        f"{len(TASKS)} tasks at θ0 (multitask training), θ_f (after training on the other tasks) and θ_r (after "
        f"recovering on task A = {task}); bars are means over {_over(runs)}, {bars}. Look for the drop on "
        f"{task} from θ0 to θ_f and its return at θ_r."))


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
    steps = runs[0].drift_steps
    return captioned(fig, (
        f"Left: exact-match accuracy on task A = {task} at the {len(steps)} recovery checkpoints (every "
        f"{steps[1] - steps[0]} steps); right: the training loss (cross-entropy of the answer tokens, nats per "
        f"token, log scale) at every step of the forgetting run on the other tasks (negative steps) and of the "
        f"recovery on {task} (from step 0). Means over {_over(runs)}, {_bars(runs)}; look for the jump in the "
        f"loss when training switches back to the forgotten task and how few steps the accuracy needs to return."))


def spectrum_figure(runs: list[SeedRun]) -> go.Figure:
    """C1: normalised singular values of the probe gradients, effective rank against n and along recovery."""
    fig = panels(rows=1, cols=3, subplot_titles=(
        "singular values σ_i / σ_1", "effective rank (90 %) vs batches n", "effective rank along recovery"))
    for point in RANK_ROWS:
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
    return captioned(fig, (
        f"C1 on the gradients of {runs[0].rank_n[-1]} task-A probe batches. Left: their singular values divided "
        f"by the largest (log scale) at θ0 and at θ_f, and for the baselines at θ_f: task-A batches with their "
        f"answers shuffled across sequences, batches of the other tasks, the task-A gradients minus their mean "
        f"(centred), and unstructured Gaussian rows of the same norms; middle: "
        f"the effective rank (fewest directions holding 90 % of the squared norm) of the first n batch gradients; "
        f"right: the effective rank of the probe gradients at each recovery checkpoint, against unstructured rows "
        f"(dotted). Means over {_over(runs)}, {_bars(runs)}; low rank shows as spectra that fall fast and "
        f"effective ranks far below the unstructured ones."))


def capture_figure(runs: list[SeedRun], arm: str = "adam") -> go.Figure:
    """C2/C4: capture of Δ against k by every basis, with k/D and the paper's LoRA prefix capture;
    ``arm`` ``"adam"`` (the chapter's recovery) or ``"sgd"`` (the SGD arm from the same θ_f)."""
    fig = go.Figure()
    k_list = runs[0].ks
    tables = [r.capture if arm == "adam" else r.sgd["capture"] for r in runs]
    for name in tables[0]:
        band(fig, k_list, [t[name] for t in tables], name, COLORS[name],
             dash="dash" if "Krylov" in name else None)
    fig.add_trace(go.Scatter(x=k_list, y=[k / runs[0].dim for k in k_list], name="k/D (random, expected)",
                             mode="lines", line={"color": "black", "dash": "dot"}))
    paper = REGISTRY["C4"].paper
    fig.add_hline(y=paper, line_dash="dot", line_color="#d62728", annotation_text=f"paper, LoRA prefix: {paper:g}")
    optimizer = "Adam" if arm == "adam" else "SGD (rate " + ", ".join(f"{r.sgd['lr']:g}" for r in runs) + ")"
    fig.update_layout(title=f"C2/C4: capture of the recovery displacement Δ, {optimizer} recovery", height=450,
                      xaxis={"title": "k (basis size)", "type": "log"},
                      yaxis={"title": "‖U_kᵀΔ‖² / ‖Δ‖²", "range": [0, 1.02]})
    return captioned(fig, (
        f"C2/C4: capture of the recovery displacement Δ = θ_r − θ_f of the {optimizer} recovery (fraction of ‖Δ‖²) "
        f"against the basis size k (log axis) by the span of the first k recovery updates (trajectory prefix) and "
        f"by bases computed at θ0 "
        f"or θ_f before recovery, with the expected capture k/D of a random subspace (D = {runs[0].dim:,}, dotted black) and the "
        f"paper's LoRA prefix capture {paper:g} (dotted red; chapter 3's setting, not this model). Means over "
        f"{_over(runs)}, {_bars(runs)}; look for how far the prefix lies above every static basis, and whether "
        f"the Krylov bases (dashed), built from Hessian-vector products before any step, or the Adam-aware bases "
        f"(sign(g), preconditioned gradients and Krylov) follow it. A basis with fewer than k directions stops "
        f"where it ends."))


def drift_figure(run: SeedRun, k: int) -> go.Figure:
    """C3: the drift explorer of one seed (overlap heatmap, capture of Δ by each step's basis)."""
    fig = drift_explorer(run.drift_steps, run.drift_overlap, run.drift_ks, run.drift_capture,
                         title=f"C3: drift of the top-{k} gradient subspace (seed {run.seed})",
                         capture_label="capture of Δ by the top-k basis at step s")
    steps = run.drift_steps
    return captioned(fig, (
        f"C3 on seed {run.seed}. Left: the overlap (mean squared cosine of the principal angles; 1 = the same "
        f"subspace, 0 = unrelated) between the top-{k} task-A gradient subspaces at recovery steps s and t, "
        f"{len(steps)} checkpoints every {steps[1] - steps[0]} steps; right: the capture of Δ (fraction of ‖Δ‖²) "
        f"by the top-k gradient basis taken at the step the slider selects, k = {run.drift_ks[0]} to "
        f"{run.drift_ks[-1]}, with the step-{steps[0]} basis in grey. One seed, so no bands; look for the overlap "
        f"fading away from the diagonal (the subspace drifts) and for how much of Δ later bases capture "
        f"compared with the first."))


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
    return captioned(fig, (
        f"C3: overlap (mean squared cosine of the principal angles, 0 to 1) of top-k task-A gradient subspaces "
        f"taken a given number of recovery steps apart, averaged over all pairs of checkpoints at that lag, "
        f"against the lag in steps. Means over {_over(runs)}, {_bars(runs)}; the dotted lines mark the level "
        f"{level:g} at which the overlap counts as halved and the paper's {paper:g} steps: C3 asks every seed's "
        f"overlap to fall to {level:g} within {paper:g} steps."))


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
    counts = "; ".join(f"{regime}: {_over([r for r in regime_runs if r.regime == regime])}" for regime in REGIMES)
    return captioned(fig, (
        f"C10: exact-match accuracy of the model trained on the tasks one after another (sequential) and on all "
        f"at once (simultaneous). Left: mean accuracy over the {len(TASKS)} tasks under Gaussian noise of "
        f"standard deviation σ added to every weight (each point also averaged over noise draws); right: "
        f"accuracy on task A = {task} at checkpoints of a forgetting run on the other tasks. Means over seeds "
        f"({counts}), error bars one SD across seeds where there are several; brittleness shows as the curve "
        f"that falls faster."))
