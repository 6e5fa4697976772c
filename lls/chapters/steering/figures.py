"""Chapter 5's figures: C8's cosines against their nulls, C9's test gains against theirs, and a
validation explorer (gain against scale, one slider position per candidate block)."""

from __future__ import annotations

import plotly.graph_objects as go

from lls.chapters.steering.analysis import C8Row, C9Row
from lls.chapters.steering.protocol import STEP_VECTORS, SteeringGrid
from lls.chapters.steering.rules import c8_bar
from lls.chapters.steering.targets import correct
from lls.claims import REGISTRY, threshold
from lls.plots import captioned, panels, slider_figure

COLORS = {"CAA": "#2ca02c", "step (all params)": "#1f77b4", "step (LoRA)": "#ff7f0e", "random": "#7f7f7f",
          "mean shift": "#1f77b4", "ΔCAA": "#d62728", "shuffled": "#7f7f7f", "ceiling": "#2ca02c"}


def _err(iv) -> dict:
    """Plotly asymmetric error bars of an interval (none when unknown)."""
    if not iv.known:
        return {"visible": False}
    return {"type": "data", "symmetric": False, "array": [iv.high - iv.mean], "arrayminus": [iv.mean - iv.low]}


def c8_figure(rows: list[C8Row]) -> go.Figure:
    """One line per (concept, variant): each shift's cosine with CAA (95 % interval over data
    splits), the shuffled-label step, the split-half CAA ceiling, and the random-direction null
    as a box of its ≥ 100 cosines; the paper's cosine minus the tolerance marked."""
    fig = go.Figure()
    shown: set[str] = set()
    for r in rows:
        label = f"{r.concept} · {r.variant}"
        if label not in shown:
            fig.add_trace(go.Box(x=r.null_cos, y=[label] * len(r.null_cos), name="random directions", orientation="h",
                                 marker_color=COLORS["random"], boxpoints=False, showlegend=not shown,
                                 legendgroup="random"))
            for name, value in (("shuffled", r.shuffled), ("ceiling", r.ceiling)):
                fig.add_trace(go.Scatter(x=[value], y=[label], mode="markers", name=f"{name} ({r.shift})" if
                                         name == "shuffled" else "split-half CAA ceiling", legendgroup=name,
                                         marker={"color": COLORS[name], "symbol": "x" if name == "shuffled" else
                                                 "diamond"}, showlegend=not shown))
            shown.add(label)
        fig.add_trace(go.Scatter(x=[r.cosine.mean], y=[label], mode="markers", name=r.shift, error_x=_err(r.cosine),
                                 marker={"color": COLORS[r.shift], "size": 9}, legendgroup=r.shift,
                                 showlegend=r.shift not in shown))
        shown.add(r.shift)
    fig.add_vline(x=c8_bar(), line_dash="dot", annotation_text=f"paper − tolerance ({c8_bar():.2f})")
    fig.update_layout(title="C8: cosine of the step's shift with CAA, against its nulls", xaxis_title="cosine",
                      xaxis_range=[-1.05, 1.05], height=220 + 40 * len(shown))
    first = rows[0] if rows else None
    caption = (f"Cosine (unitless) with the CAA vector at block {first.layer if first else '?'} of the shift one "
               f"gradient step (all parameters) causes: its mean over the probe prompts (blue) and its ΔCAA, the "
               f"shift on positive probes minus the shift on negative ones (red), each with a 95 % t-interval over "
               f"{first.cosine.n if first else 0} data splits. Grey boxes: the cosines "
               f"of {len(first.null_cos) if first else 0} random Gaussian directions with CAA (the null; C8 calls "
               f"'partly' above their {threshold('C8', 'null_quantile'):.0%} |cos|). Grey x: the same step on "
               "shuffled labels; green diamond: CAA on one half of the data against the other half, the ceiling any "
               f"cosine here can reach; dotted line: the paper's {REGISTRY['C8'].paper} minus the tolerance.")
    return captioned(fig, caption)


def c9_figure(rows: list[C9Row]) -> go.Figure:
    """One line per (concept, variant, target): test accuracy gains (points) of the step vector
    (95 % bootstrap interval), CAA and the best null, and the validation gains of
    every random direction (grey dots)."""
    fig = go.Figure()
    seen: set[str] = set()
    for r in rows:
        label = f"{r.concept} · {r.variant} · {r.target}"
        fig.add_trace(go.Scatter(x=r.random_val, y=[label] * len(r.random_val), mode="markers", name="random (validation)",
                                 marker={"color": COLORS["random"], "size": 5, "opacity": 0.5},
                                 legendgroup="random", showlegend="random" not in seen))
        seen.add("random")
        for name in (*STEP_VECTORS, r.null):
            color = COLORS.get(name, "#000000")
            key = name if name in STEP_VECTORS else "best null"
            fig.add_trace(go.Scatter(x=[r.gains[name]], y=[label], mode="markers", name=key, legendgroup=key,
                                     marker={"color": color, "size": 9 if name == "step (all params)" else 7,
                                             "symbol": "circle" if name in STEP_VECTORS else "x"},
                                     error_x=_err(r.step) if name == "step (all params)" else {"visible": False},
                                     showlegend=key not in seen))
            seen.add(key)
    fig.add_vline(x=0, line_dash="dot")
    fig.update_layout(title="C9: test accuracy gain of each vector, picked on validation", height=240 + 35 * len(rows),
                      xaxis_title="accuracy gain on the test split (points of 100)")
    caption = ("Change of test accuracy (points of 100) against the unsteered model when each vector, rescaled to the "
               "CAA vector's norm at its block, is added at the block and scale it got on the validation split "
               "(never on test). Blue: the gradient step's shift, with a 95 % bootstrap interval over test units "
               "(statements for the question target, twin pairs for the likelihood target); green: CAA; x: the best null on validation (a random direction of equal norm, or a pure threshold "
               "shift); grey dots: validation gains of every random direction at the step's block and scale. Look "
               "for a blue interval clear of the x and of zero.")
    return captioned(fig, caption)


def explorer_figure(grid: SteeringGrid) -> go.Figure:
    """Validation explorer of one grid: accuracy gain (points, primary target) against scale for
    CAA and the steps, one slider position per candidate block."""
    target, base = grid.targets[0], grid.base_val
    acc0 = correct(base, grid.val_statements, target).mean()

    def gains(name: str, layer: int) -> list[float]:
        return [float(100 * (correct(grid.val[(name, layer, s)], grid.val_statements, target).mean() - acc0))
                for s in grid.scales]

    fig = panels(rows=1, cols=1, subplot_titles=(f"validation accuracy gain, {target} target (points)",))
    active = grid.layers.index(grid.picked["step (all params)"][0])
    for name in STEP_VECTORS:
        fig.add_trace(go.Scatter(x=grid.scales, y=gains(name, grid.layers[active]), mode="lines+markers", name=name,
                                 line={"color": COLORS[name]}))
    frames = [[{"y": gains(name, layer)} for name in STEP_VECTORS] for layer in grid.layers]
    same = all(frame == frames[0] for frame in frames)
    if not same:
        fig = slider_figure(frames, [str(layer) for layer in grid.layers], fig, list(range(len(STEP_VECTORS))),
                            "block", active=active)
    fig.update_xaxes(title_text="scale (× CAA norm at the block)")
    fig.update_layout(title=f"Validation explorer ({grid.model}, {grid.concept}, {grid.variant})", height=440)
    n = len(grid.val_statements)
    where = (f"at block {grid.layers[active]}: every one of the {len(grid.layers)} candidate blocks gives these same "
             "gains, so there is no block slider" if same else
             f"at the block the slider picks ({len(grid.layers)} candidates)")
    return captioned(fig, (f"Validation accuracy gain (points of 100, {target} target, {n} validation statements) of "
                           f"each vector against the scale, {where}; one run, no error bars. Each vector's block "
                           "and scale were picked where this is highest; the test split was read only at that "
                           "pick."))

