"""Chapter 4's figures (plotly): the F1/F2 diagnostic, best-of-N against Theorem 1, C6 density, RandOpt."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lls import theory
from lls.chapters.random_search.analysis import predicted
from lls.chapters.random_search.config import ODD_TOL
from lls.chapters.random_search.lowrank_analysis import law_rows
from lls.chapters.random_search.lowrank_noise import LawCheck, NoiseSearches
from lls.chapters.random_search.protocol import Curves, Ranking
from lls.grids import powers_of_two
from lls.lowrank_law import expected_max_lowrank
from lls.plots import band, captioned, panels
from lls.randopt import RandOptResult

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def figure_diagnostic(curves: list[Curves]) -> go.Figure:
    """F1 spread and |mean F2| against sigma (log-log) with Theorem 1's lines, one panel per space."""
    fig = panels(rows=1, cols=len(curves), subplot_titles=[c.name for c in curves])
    for j, c in enumerate(curves, start=1):
        d, first = c.diag, j == 1
        fig.add_trace(go.Scatter(x=d.sigmas, y=d.f1_spread, mode="markers+lines", name="F1 spread (odd part)",
                                 marker={"color": "royalblue"}, showlegend=first), row=1, col=j)
        fig.add_trace(go.Scatter(x=d.sigmas, y=np.abs(d.f2_mean), mode="markers+lines",
                                 name="|mean F2| (even part)", marker={"color": "firebrick"},
                                 error_y={"array": d.f2_sem}, showlegend=first), row=1, col=j)
        fig.add_trace(go.Scatter(x=d.sigmas, y=d.sigmas * c.grad_norm, mode="lines", name="σ‖g‖ (autograd)",
                                 line={"dash": "dot", "color": "royalblue"}, showlegend=first), row=1, col=j)
        fig.add_trace(go.Scatter(x=d.sigmas, y=0.5 * d.sigmas**2 * abs(c.trace), mode="lines",
                                 name="σ² |tr H| / 2 (Hutchinson)", line={"dash": "dot", "color": "firebrick"},
                                 showlegend=first), row=1, col=j)
        fig.update_xaxes(type="log", title_text="σ (per coordinate)", row=1, col=j)
        fig.update_yaxes(type="log", row=1, col=j)
    fig.update_layout(title="F1/F2 diagnostic: local-linear where the odd part dominates", height=420)
    grids = "; ".join(f"{c.name}: {c.diag.f1.shape[1]} pairs at each of {len(c.diag.sigmas)} σ" for c in curves)
    return captioned(fig, (
        "Markers: the spread (standard deviation over the antithetic pairs) of the odd part F1 = [L(θ+ε) − L(θ−ε)]/2 "
        "and the absolute mean of the even part F2 (error bars: one standard error of that mean), in nats, against "
        f"the per-coordinate σ on log-log axes, the same directions ε reused at every σ ({grids}); dotted: "
        "σ‖g‖ from the autograd gradient and σ² |tr H| / 2 from the Hutchinson trace. Look for the σ where the "
        "blue markers lie above the red ones and on their dotted line: there a random perturbation acts mostly "
        "through its first-order term (local-linear)."))


def _gain_panel(fig: go.Figure, synthetic: Curves) -> None:
    """Left panel: measured best-of-N gain against N per sigma, with the theory (dotted)."""
    for j, run in enumerate(synthetic.searches()):
        ns = powers_of_two(run.n)
        color = COLORS[j % len(COLORS)]
        fig.add_trace(go.Scatter(x=ns, y=run.gain_curve(ns), mode="lines+markers", line={"color": color},
                                 name=f"σ={run.sigma:.2g}, N≤{run.n} measured", legendgroup=f"s{j}"),
                      row=1, col=1)
        pred = [theory.first_order_gain(run.sigma, synthetic.grad_norm, n)
                - theory.second_order_mean(run.sigma, synthetic.trace) for n in ns]
        fig.add_trace(go.Scatter(x=ns, y=pred, mode="lines", line={"color": color, "dash": "dot"},
                                 name=f"σ={run.sigma:.2g} σ‖g‖e_N − σ²trH/2", legendgroup=f"s{j}"),
                      row=1, col=1)


def figure_best_of_n(synthetic: Curves, c5_curves: list[Curves], ranking: Ranking) -> go.Figure:
    """Left: measured best-of-N gain against N per sigma with theory. Right: first-order gain
    divided by sigma ||U^T g|| in every space, against e_N (dimension independence)."""
    fig = panels(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        f"best-of-N gain, {synthetic.name}", "first-order gain / (σ‖Uᵀg‖) in every space"))
    _gain_panel(fig, synthetic)
    ns_all = powers_of_two(max(run.n for c in c5_curves for run in c.searches()))
    fig.add_trace(go.Scatter(x=ns_all, y=[theory.expected_max_normal(n) for n in ns_all], mode="lines",
                             line={"color": "black", "width": 3}, name="e_N (Theorem 1)"), row=1, col=2)
    dims = []  # the dimension of each search on the right, for the caption
    for c in c5_curves:
        linear = dict(zip(c.diag.sigmas.tolist(), c.diag.linear(odd_tol=ODD_TOL).tolist(), strict=True))
        for run in c.searches():
            if linear[run.sigma]:
                ns = powers_of_two(run.n)
                fig.add_trace(go.Scatter(x=ns, y=run.first_order_curve(ns) / (run.sigma * c.grad_norm),
                                         mode="lines", opacity=0.6, name=f"{c.name}, σ={run.sigma:.2g}"),
                              row=1, col=2)
                dims.append(c.dim)
    for j, name in enumerate(ranking.names):
        run = ranking.searches[0][j]
        ns = powers_of_two(run.n)
        scale = run.sigma * np.sqrt(ranking.mass_seed[0, j])
        fig.add_trace(go.Scatter(x=ns, y=run.first_order_curve(ns) / scale,
                                 mode="lines", opacity=0.6, name=f"{name} (k={ranking.dims[j]:,})"), row=1, col=2)
        dims.append(int(ranking.dims[j]))
    fig.update_xaxes(type="log", title_text="N", row=1, col=1)
    fig.update_xaxes(type="log", title_text="N", row=1, col=2)
    fig.update_yaxes(title_text="loss decrease (nats)", row=1, col=1)
    fig.update_layout(height=520, legend={"font": {"size": 9}})
    return captioned(fig, _best_of_n_caption(synthetic, ranking, dims))


def _best_of_n_caption(synthetic: Curves, ranking: Ranking, dims: list[int]) -> str:
    """The caption of :func:`figure_best_of_n`; ``dims``: the dimension of each search on the right."""
    left = synthetic.searches()
    return (f"Left: expected loss decrease (nats) of the best of N random perturbations of {synthetic.name} "
            f"against N, one line per search ({len(left)} searches, one seed each, up to "
            f"{max(run.n for run in left)} candidates), estimated without bias from all subsets of the candidates "
            "evaluated; dotted: Theorem 1's σ‖g‖e_N minus σ² tr H / 2. Right: the first-order part E[max of N (−F1)] "
            f"divided by σ‖Uᵀg‖ for {len(dims)} searches in spaces of {min(dims):,} to {max(dims):,} dimensions "
            f"(each grid's local-linear σ and the {len(ranking.names)} C6 subspaces at norm r = {ranking.norm:.3g}, "
            "first search seed), against e_N (black). Look for the right-hand curves falling on e_N whatever the "
            "dimension of the space.")


def figure_density(ranking: Ranking) -> go.Figure:
    """Figure 2b-like: measured best-of-N gain at fixed norm against density (left) and mass (right)."""
    mean = ranking.gain.mean(axis=0)
    sd = ranking.gain.std(axis=0, ddof=1) if len(ranking.seeds) > 1 else np.zeros_like(mean)
    fig = panels(rows=1, cols=2, shared_yaxes=True, subplot_titles=(
        "gain vs density ‖Uᵀg‖²/k", "gain vs mass ‖Uᵀg‖²"))
    for col, x in ((1, ranking.density), (2, ranking.mass)):
        for j, name in enumerate(ranking.names):  # one legend entry per subspace: no crowded labels
            fig.add_trace(go.Scatter(x=[x[j]], y=[mean[j]], error_y={"array": [sd[j]]}, mode="markers",
                                     marker={"size": 10, "color": COLORS[j % len(COLORS)]}, name=name,
                                     legendgroup=name, showlegend=col == 1,
                                     hovertemplate=f"{name}: %{{y:.3g}} nats<extra></extra>"), row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=predicted(ranking), mode="markers", marker={"symbol": "x", "size": 9},
                                 marker_color="black", name="theory", showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(type="log", row=1, col=col)
    fig.update_yaxes(title_text=f"best-of-{ranking.n} loss decrease (nats)", row=1, col=1)
    fig.update_layout(title=f"C6: subspaces at one norm, r = {ranking.norm:.3g}", height=460)
    seeds = len(ranking.seeds)
    spread = (f"mean over {seeds} search seeds, error bars one standard deviation across them" if seeds > 1
              else "one search seed, no error bars")
    return captioned(fig, (
        f"Expected loss decrease (nats) of the best of {ranking.n} random perturbations ({spread}) in each of "
        f"{len(ranking.names)} subspaces searched at the same expected perturbation norm r = {ranking.norm:.3g}, "
        "against the gradient's density ‖Uᵀg‖²/k in the subspace (left) and its mass ‖Uᵀg‖² (right), log x; "
        "black crosses: Proposition 1's r √density e_N minus the curvature term r² tr(UᵀHU) / (2k). "
        "C6 holds where the gains rise with density on the left, whatever their order by mass on the right."))


def figure_randopt(result: RandOptResult) -> go.Figure:
    """Task-A test accuracy: unperturbed, each of the top-K members, their majority vote."""
    labels = ["unperturbed", *(f"#{j + 1}" for j in range(len(result.top))), "majority vote"]
    values = [result.base_accuracy, *result.member_accuracy, result.ensemble_accuracy]
    colors = ["grey", *["lightsteelblue"] * len(result.top), "darkorange"]
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=colors))
    fig.update_layout(title="RandOpt: the top K and their vote",
                      yaxis_title="accuracy", height=380)
    return captioned(fig, (
        "Task-A exact-match accuracy (fraction of test sequences whose whole answer is right) of the unperturbed "
        f"model (grey), of each of the top {len(result.top)} of {len(result.scores)} random perturbations ranked "
        "by task-A loss on the search batch (#1 the best), and of their majority vote (orange); one selection run, "
        "no error bars. Look for the vote above the unperturbed model and above its best member."))


def figure_lowrank(law: LawCheck, searches: NoiseSearches) -> go.Figure:
    """Left: Monte-Carlo ``e~_N / e_N`` of the low-rank signal per rank against the law. Right: measured
    first-order best-of-N gain over ``sigma ||G||_F e_N`` per noise (mean over seeds) against the law."""
    fig = panels(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "Monte Carlo vs the law: e~_N / e_N", "searches: first-order gain / (σ‖G‖ e_N)"))
    rows = law_rows(law)
    ns = [n for n in powers_of_two(searches.gaussian[0].n) if n >= 2]  # e_1 = 0
    gauss = np.array([theory.expected_max_normal(n) for n in ns])
    for k, r in enumerate(law.ranks):
        color, mine = COLORS[k % len(COLORS)], [row for row in rows if row["rank"] == r]
        ratio = np.array([row["emax"].mean / row["emax_gauss"] for row in mine])
        half = np.array([(row["emax"].high - row["emax"].low) / 2 / row["emax_gauss"] for row in mine])
        fig.add_trace(go.Scatter(x=law.ns, y=ratio, error_y={"array": half}, mode="markers", legendgroup=f"r{r}",
                                 marker={"color": color}, name=f"rank {r}, Monte Carlo"), row=1, col=1)
        fig.add_trace(go.Scatter(x=law.ns, y=law.predicted_emax[k] / law.gaussian_emax, mode="lines",
                                 line={"color": color, "dash": "dot"}, name=f"rank {r}, law", legendgroup=f"r{r}"),
                      row=1, col=1)
        runs = searches.lowrank[k]
        band(fig, ns, [run.first_order_curve(ns) / (run.sigma * searches.grad_norm) / gauss for run in runs],
             f"rank {r}, searches", color, row=1, col=2)
        fig.add_trace(go.Scatter(x=ns, y=expected_max_lowrank(ns, law.singular_values, r) / gauss, mode="lines",
                                 line={"color": color, "dash": "dot"}, showlegend=False, legendgroup=f"r{r}"),
                      row=1, col=2)
    band(fig, ns, [run.first_order_curve(ns) / (run.sigma * searches.grad_norm) / gauss for run in searches.gaussian],
         "Gaussian, searches", "black", row=1, col=2)
    for col in (1, 2):
        fig.add_hline(y=1.0, line={"color": "black", "width": 1}, row=1, col=col)
        fig.update_xaxes(type="log", title_text="N", row=1, col=col)
    fig.update_layout(height=480, legend={"font": {"size": 9}})
    return captioned(fig, (
        f"Left: the expected maximum of N standardised first-order signals gᵀε / (σ‖G‖) under low-rank noise "
        f"of rank r, over the Gaussian e_N, from {law.draws.shape[1]:,} Monte-Carlo draws per rank (explicit "
        f"factors A, B and the autograd gradient of the synthetic model's weight matrices at θ_f, "
        f"{len(law.singular_values)} singular values pooled; error bars: 95 % t-interval over batches of the "
        "draws), with the law of lls.lowrank_law (dotted). Right: the measured first-order best-of-N gain E[max of N (−F1)] of "
        f"{len(searches.seeds)} searches per noise ({searches.gaussian[0].n} antithetic pairs each, σ = "
        f"{searches.sigma:.3g} per coordinate on the {searches.dim:,} matrix weights, so every noise has the same "
        "expected norm), over σ‖G‖e_N; mean over seeds, error bars one SD across them; dotted: the law. Look for "
        "low-rank noise below 1 at small N and above 1 at large N, more so at low rank."))
