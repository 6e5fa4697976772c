"""Chapter 1's figures: plotly builders over its results and summaries (no numbers decided here)."""

from __future__ import annotations

import math

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from lls import plots, theory
from lls.chapters.theory.analysis import DensitySummary, F1F2Summary, PushforwardSummary, Theorem1Summary
from lls.chapters.theory.results import Lemma1Result, Theorem1Row
from lls.claims import threshold
from lls.plots import captioned, panels


def _vline(x: float, y0: float, y1: float, name: str, **line) -> go.Scatter:
    """A vertical line as a legend entry (plotly's add_vline misplaces its label on log axes)."""
    return go.Scatter(x=[x, x], y=[y0, y1], mode="lines", name=name, line={"dash": "dot", "color": "black", **line})


def _draws(t1: list[Theorem1Row]) -> str:
    """The candidates drawn per dimension, for a caption: ``"48 to 8192"`` (or one number)."""
    low, high = min(r.draws for r in t1), max(r.draws for r in t1)
    return f"{low}" if low == high else f"{low} to {high}"


def fig_collapse(t1: list[Theorem1Row]) -> go.Figure:
    """Best-of-N first-order gain / (sigma ||g||) against N, one curve per D, with e_N."""
    fig = go.Figure()
    logs = [math.log10(r.dim) for r in t1]
    for r in t1:
        shade = (math.log10(r.dim) - min(logs)) / max(max(logs) - min(logs), 1)
        colour = px.colors.sample_colorscale("Viridis", shade)[0]
        fig.add_trace(go.Scatter(x=r.ns, y=r.first, mode="markers+lines", name=f"D = {r.dim:.0e}",
                                 line={"color": colour, "width": 1}, marker={"color": colour, "size": 7},
                                 error_y={"type": "data", "array": r.first_se, "thickness": 1}))
    ns = sorted({n for r in t1 for n in r.ns})
    grid = np.unique(np.geomspace(1, max(ns), 60).round().astype(int))
    fig.add_trace(go.Scatter(x=grid, y=[theory.expected_max_normal(int(n)) for n in grid], mode="lines",
                             name="e_N (exact)", line={"color": "black", "width": 3}))
    fig.add_trace(go.Scatter(x=grid, y=theory.asymptotic_max_normal(grid), mode="lines",
                             name="sqrt(2 ln N)", line={"color": "black", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="none",
                             marker={"colorscale": "Viridis", "cmin": min(logs), "cmax": max(logs),
                                     "color": [min(logs)], "showscale": True,
                                     "colorbar": {"title": "log10 D"}}))
    fig.update_xaxes(type="log", title="N (candidates)")
    fig.update_yaxes(title="best-of-N first-order gain / (sigma ||g||)")
    fig.update_layout(title="Theorem 1: the best-of-N first-order gain does not depend on D",
                      height=480, legend={"x": 0.01, "y": 0.99})
    dims = [r.dim for r in t1]
    return captioned(fig, (
        f"Monte-Carlo best-of-N first-order gain of Gaussian candidates on a quadratic with ||g|| = 1, divided by "
        f"sigma ||g|| (dimensionless), against the number of candidates N, one curve per dimension D for "
        f"{len(t1)} dimensions from {min(dims):.0e} to {max(dims):.0e} ({_draws(t1)} candidates drawn per D); error bars are the disjoint-groups standard error sd(max_N) / sqrt(draws // N). "
        f"The black lines are e_N (exact, solid) and its asymptote sqrt(2 ln N) (dashed): if Theorem 1 holds, "
        f"every D lies on e_N within its error bars, and the asymptote lies above it at every N."))


def fig_second_order(t1: list[Theorem1Row], s: Theorem1Summary) -> go.Figure:
    """First-order best-of-N gain and mean second-order term against D (log-log), with the crossover."""
    d = np.array(s.dims, dtype=float)
    first = np.array([r.net_first for r in t1])
    second = np.array([r.second for r in t1])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d, y=first, mode="markers", name=f"measured best-of-{s.n} first-order gain",
                             marker={"size": 10}))
    fig.add_trace(go.Scatter(x=d, y=second, mode="markers", name="measured mean of eps^T H eps / 2",
                             marker={"size": 10, "symbol": "square"}))
    line = np.geomspace(d.min(), d.max(), 50)
    fig.add_trace(go.Scatter(x=line, y=[theory.first_order_gain(s.sigma, 1.0, s.n)] * len(line),
                             mode="lines", name="sigma ||g|| e_N"))
    fig.add_trace(go.Scatter(x=line, y=theory.second_order_mean(s.sigma, s.curvature * line),
                             mode="lines", name="sigma^2 tr H / 2"))
    if d.min() <= s.crossover <= d.max():
        fig.add_trace(_vline(s.crossover, min(second.min(), first.min()), max(second.max(), first.max()),
                             f"crossover D = {s.crossover:.3g}"))
    fig.update_xaxes(type="log", title="D")
    fig.update_yaxes(type="log", title="loss change")
    fig.update_layout(title="Where the shared second-order term takes over", height=440)
    shown = "dotted line" if d.min() <= s.crossover <= d.max() else "outside this sweep"
    return captioned(fig, (
        f"On the quadratic with ||g|| = 1 and H = {s.curvature:g} I (tr H = {s.curvature:g} D) at sigma = "
        f"{s.sigma:g}: the measured best-of-{s.n} first-order gain (circles) and the measured mean second-order "
        f"term eps^T H eps / 2 (squares), in the quadratic's loss units, against D (log-log), each a mean over "
        f"the {_draws(t1)} candidates drawn at that D; the lines are "
        f"the closed forms sigma ||g|| e_N and sigma^2 tr H / 2. Look for the first-order gain staying flat while "
        f"the shared second-order term grows in proportion to D and overtakes it at the predicted crossover "
        f"D_c = {s.crossover:.3g} ({shown})."))


def fig_f1f2(s: F1F2Summary, pairs: int) -> go.Figure:
    """F1 spread and mean F2 against sigma, with the closed forms and sigma* (closed form and measured).

    ``pairs``: the antithetic pairs per sigma (``f1f2_pairs``) that the points summarise.
    """
    sig = s.sigmas
    fig = panels(rows=1, cols=2, subplot_titles=("odd and even parts", f"best-of-{s.n} gain"))
    fig.add_trace(go.Scatter(x=sig, y=s.f1_spread, mode="markers", name="spread of F1 (odd)",
                             marker={"size": 9}), row=1, col=1)
    fig.add_trace(go.Scatter(x=sig, y=np.abs(s.f2_mean), mode="markers", name="|mean F2| (even)",
                             marker={"size": 9, "symbol": "square"},
                             error_y={"type": "data", "array": s.f2_sem}), row=1, col=1)
    fig.add_trace(go.Scatter(x=sig, y=sig * s.grad_norm, mode="lines", name="sigma ||g|| (autograd)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=sig, y=0.5 * sig**2 * abs(s.trace), mode="lines",
                             name="sigma^2 |tr H| / 2 (Hutchinson)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=sig, y=s.gains, mode="markers+lines", name="measured gain"), row=1, col=2)
    fine = np.geomspace(sig[0], sig[-1], 80)
    closed = theory.first_order_gain(fine, s.grad_norm, s.n) - theory.second_order_mean(fine, s.trace)
    fig.add_trace(go.Scatter(x=fine, y=closed, mode="lines", name="sigma ||g|| e_N - sigma^2 tr H / 2"),
                  row=1, col=2)
    top = max(float(np.max(s.gains)), float(np.max(closed)))
    if math.isfinite(s.sigma_star):
        fig.add_trace(_vline(s.sigma_star, -1.5 * top, 1.5 * top, f"sigma* closed form = {s.sigma_star:.2g}"),
                      row=1, col=2)
    fig.update_xaxes(type="log", title="sigma")
    fig.update_yaxes(type="log", row=1, col=1, title="loss change")
    fig.update_yaxes(title="loss decrease", range=[-1.5 * top, 1.5 * top], row=1, col=2)
    fig.update_layout(title=f"F1/F2 diagnostic on {s.model}", height=460)
    star = f"sigma* = {s.sigma_star:.2g}, dotted" if math.isfinite(s.sigma_star) else "no finite sigma*"
    return captioned(fig, (
        f"The F1/F2 diagnostic on {s.model} ({s.dim:,} searched parameters in {s.n_tensors} tensors; losses in "
        f"nats) against the perturbation scale sigma, from {pairs} antithetic pairs per sigma. Left: the SD of "
        f"the odd part F1 and |mean F2| of the even part (error bars: standard error of mean F2 over the pairs), "
        f"with sigma ||g|| (||g|| by autograd) and sigma^2 |tr H| / 2 (tr H by Hutchinson, {s.probes} probes); "
        f"right: the measured best-of-{s.n} loss decrease with the closed form sigma ||g|| e_N - sigma^2 tr H / 2 "
        f"({star}). Look for the markers on their lines at small sigma (the local-linear regime), the two lines "
        f"crossing where the second-order term takes over, and the measured best sigma next to sigma*."))


def fig_density(s: DensitySummary, trials: int) -> go.Figure:
    """Measured subspace search gain against signal density (log-log), with Proposition 1's line.

    ``trials``: the searches per subspace (``p1_trials``) that each point averages.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=s.density, y=s.gain, mode="markers+text",
                             text=[f"{nm} (mass {m:.2f})" for nm, m in zip(s.names, s.mass, strict=True)],
                             textposition="top center", error_y={"type": "data", "array": s.gain_se},
                             marker={"size": 11}, name="measured"))
    dens = np.geomspace(s.density.min(), s.density.max(), 50)
    fig.add_trace(go.Scatter(x=dens, y=np.sqrt(dens) * theory.expected_max_normal(s.n), mode="lines",
                             name="r sqrt(density) e_N"))
    fig.update_xaxes(type="log", title="signal density ||U^T g||^2 / k")
    fig.update_yaxes(type="log", title=f"best-of-{s.n} gain (E||eps||^2 = 1)")
    fig.update_layout(title="Proposition 1: search gain follows density, not mass", height=460)
    return captioned(fig, (
        f"Proposition 1 on a constructed problem (D = {s.dim:,}, unit gradient): the best-of-{s.n} search gain "
        f"at E||eps||^2 = 1 inside each of {len(s.names)} subspaces against its signal density ||U^T g||^2 / k "
        f"(log-log), each point labelled with its mass ||U^T g||^2; each point is the mean over {trials} "
        f"searches with an error bar of one standard error, and the line is Proposition 1's sqrt(density) e_N. If the gain "
        f"follows density rather than mass, the points lie on the line in density order, whatever their mass."))


def fig_krylov(l1: Lemma1Result) -> go.Figure:
    """Krylov residuals of the updates (left) and captures of the final displacement (right)."""
    fig = panels(rows=1, cols=2, subplot_titles=("update s outside K_(s+1)(H, g)",
                                                        "capture of the final displacement"))
    steps = np.arange(len(l1.gd.residual))
    for name, r, colour in (("GD", l1.gd, "royalblue"), ("ADAM", l1.adam, "darkorange")):
        fig.add_trace(go.Scatter(x=steps, y=np.maximum(r.residual, 1e-17), mode="markers+lines",
                                 name=f"{name} residual", line={"color": colour}), row=1, col=1)
        fig.add_trace(go.Scatter(x=l1.ks, y=r.prefix, mode="markers+lines", line={"color": colour},
                                 name=f"{name}: first k updates (prefix)"), row=1, col=2)
        fig.add_trace(go.Scatter(x=l1.ks, y=r.krylov, mode="lines", line={"color": colour, "dash": "dot"},
                                 name=f"{name}: Krylov basis from HVPs"), row=1, col=2)
    fig.add_trace(go.Scatter(x=l1.ks, y=np.array(l1.ks) / l1.dim, mode="lines",
                             line={"color": "grey"}, name="random k-dim subspace (k/D)"), row=1, col=2)
    fig.update_yaxes(type="log", title="relative residual", row=1, col=1)
    fig.update_xaxes(title="update s", row=1, col=1)
    fig.update_xaxes(title="k", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], title="capture", row=1, col=2)
    fig.update_layout(title="Lemma 1: gradient descent stays in the Krylov space; Adam does not", height=460)
    return captioned(fig, (
        f"Lemma 1 on a quadratic of dimension {l1.dim}, one run each of gradient descent (GD) and Adam. Left: "
        f"the relative residual of update s outside the Krylov space K_(s+1)(H, g) built from Hessian-vector "
        f"products (log scale); right: the capture of each optimiser's final displacement (fraction of its "
        f"squared norm) by its first k updates (solid) and by the first k Krylov vectors (dotted), "
        f"k = 1..{l1.ks[-1]}, against a random subspace's k/D. Look for GD's residuals at rounding level "
        f"(C7 asks for less than {threshold('C7', 'residual_max'):g}) with its two capture curves together, "
        f"and Adam's residuals far above them."))


def fig_pushforward(s: PushforwardSummary) -> go.Figure:
    """Relative error of the first-order activation shift against the step norm (log-log)."""
    fig = go.Figure()
    x, err = s.steps, s.rel_error
    fig.add_trace(go.Scatter(x=x, y=err, mode="markers+lines", name="||shift - J dtheta|| / ||shift||",
                             marker={"size": 9}))
    j = min(int(np.argmin(err)) + 1, len(x) - 1)  # anchor past the rounding floor
    fig.add_trace(go.Scatter(x=x, y=err[j] * x / x[j], mode="lines", line={"dash": "dot"},
                             name="slope 1 (second-order remainder)"))
    fig.add_hline(y=s.tol, line_dash="dash", line_color="grey")
    fig.update_xaxes(type="log", title="step norm / ||theta||")
    fig.update_yaxes(type="log", title="relative error")
    fig.update_layout(title=f"Pushforward at block {s.layer} of {s.model} (float64)", height=420)
    return captioned(fig, (
        f"Relative error ||shift - J dtheta|| / ||shift|| of the first-order prediction of the mean last-token "
        f"shift of the residual stream at block {s.layer} of {s.model} (float64, {s.dim:,} parameters), against "
        f"the norm of one normalised gradient step as a fraction of ||theta|| (log-log), one measurement at each "
        f"of {len(s.steps)} step sizes. The dotted line has slope 1 (a second-order remainder), the dashed grey "
        f"line is the {s.tol:.0%} tolerance: look for the error falling along slope 1 as the step shrinks, "
        f"below the tolerance, until rounding takes over at the smallest steps."))


def _positive(values) -> list[float | None]:
    """``values`` as a list with non-positive entries as ``None`` (off a log axis)."""
    return [float(v) if v > 0 else None for v in np.atleast_1d(values)]


def fig_sigma_explorer(s: Theorem1Summary) -> go.Figure:
    """Expected best-of-N gain against sigma (Theorem 1's closed form, log scale) with a slider over D.

    Uses the sweep's quadratic (``||g|| = 1``, ``H = curvature I``): the first-order gain does not
    move with D, the net gain ``sigma e_N - sigma^2 curvature D / 2`` peaks at ``sigma*`` and
    turns negative (off the log axis) at ``2 sigma*``. The measured best-of-N net gain at the
    sweep's sigma is marked for each D where it is positive.
    """
    sig = np.geomspace(1e-5, 1.0, 120)
    first = sig * theory.expected_max_normal(s.n)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sig, y=first, mode="lines", name="first order sigma ||g|| e_N",
                             line={"dash": "dash"}))
    fig.add_trace(go.Scatter(x=sig, y=first, mode="lines", name="net: sigma ||g|| e_N - sigma^2 tr H / 2",
                             line={"width": 3}))
    fig.add_trace(go.Scatter(x=[s.sigma], y=[None], mode="markers", name="measured at sigma (MC)",
                             marker={"size": 12, "color": "black"}))
    fig.add_trace(go.Scatter(x=[s.sigma], y=[None], mode="markers", name="sigma*",
                             marker={"size": 14, "symbol": "star", "color": "red"}))
    frames, labels = [], []
    for d, net in zip(s.dims, s.net, strict=True):
        trace = s.curvature * d
        star = theory.sigma_star(1.0, trace, s.n)
        net_star = theory.first_order_gain(star, 1.0, s.n) - theory.second_order_mean(star, trace)
        frames.append([{"x": sig, "y": _positive(first - theory.second_order_mean(sig, trace))},
                       {"x": [s.sigma], "y": _positive(net)}, {"x": [star], "y": _positive(net_star)}])
        labels.append(f"{d:.0e}")
    fig = plots.slider_figure(frames, labels, fig, [1, 2, 3], "D", active=len(labels) // 2)
    fig.update_xaxes(type="log", title="sigma")
    fig.update_yaxes(type="log", range=[-8, 0.5], title=f"expected best-of-{s.n} loss decrease")
    fig.update_layout(title="Explore: the best sigma, and the best gain, shrink as D (and tr H) grows", height=460)
    return captioned(fig, (
        f"Theorem 1's closed form for the expected best-of-{s.n} loss decrease against sigma on the sweep's "
        f"quadratic (||g|| = 1, H = {s.curvature:g} I, so tr H = {s.curvature:g} D), log-log, with a slider "
        f"over D from {min(s.dims):.0e} to {max(s.dims):.0e}: dashed, the first-order gain sigma e_N, which does "
        f"not move with D; solid, the net gain, which turns negative (off the axis) at twice sigma*. The star "
        f"marks sigma* and its gain, the black dot the Monte-Carlo net gain measured at sigma = {s.sigma:g} "
        f"(absent where negative): move the slider and watch sigma* and the best gain shrink like 1/D."))


def explore_text(log10_n: float, log10_d: float, log10_sigma: float, h: float) -> str:
    """One line of Theorem 1's closed forms for the live explorer (``||g|| = 1``, ``H = h I``)."""
    n, d, s = int(round(10**log10_n)), 10**log10_d, 10**log10_sigma
    first, second = theory.first_order_gain(s, 1.0, n), theory.second_order_mean(s, h * d)
    return (f"N = {n}, D = {d:.3g}, sigma = {s:.3g}: e_N = {theory.expected_max_normal(n):.4f}, "
            f"first-order gain {first:.4g}, mean second-order term {second:.4g}, net {first - second:+.4g}, "
            f"sigma* = {theory.sigma_star(1.0, h * d, n):.3g}")
