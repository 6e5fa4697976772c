"""Chapter 5's figures: cosine with CAA per block, and the layer-by-scale steering explorer."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lls.chapters.steering.analysis import gain, side_cost
from lls.chapters.steering.protocol import Alignment, SteeringGrid
from lls.claims import REGISTRY
from lls.plots import band, captioned, panels, slider_figure

COLORS = {"CAA": "#2ca02c", "step (all params)": "#1f77b4", "step (LoRA)": "#ff7f0e", "random": "#7f7f7f"}


def cosine_figure(found: Alignment, layer: int) -> go.Figure:
    """Cosine with CAA per block: mean over seeds with ±1 sd error bars, the random null shaded,
    the paper's cosine and the steering block ``layer`` marked."""
    x = list(range(found.cos_full.shape[1]))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x + x[::-1], y=list(found.null_q95) + list(-found.null_q95[::-1]),
                             fill="toself", fillcolor="rgba(128,128,128,0.2)", line={"width": 0},
                             name="random directions (95 % of |cos|)", hoverinfo="skip"))
    series = [("step, all params (measured)", found.cos_full, "#1f77b4", "solid"),
              ("step, all params (jvp prediction)", found.cos_full_pred, "#1f77b4", "dot"),
              ("step, LoRA (measured)", found.cos_lora, "#ff7f0e", "solid"),
              ("step, LoRA (jvp prediction)", found.cos_lora_pred, "#ff7f0e", "dot"),
              ("step on shuffled labels", found.cos_shuffled, "#7f7f7f", "dash"),
              ("two-answer step (labels only)", found.cos_contrast, "#9467bd", "solid"),
              ("CAA on the other half of the data", found.caa_split, "#2ca02c", "solid")]
    for name, values, color, dash in series:
        band(fig, x, values, name, color, dash=dash)
    paper = REGISTRY["C8"].paper
    fig.add_hline(y=paper, line_dash="dot", annotation_text=f"paper {paper}")
    fig.add_vline(x=layer, line_dash="dot", line_color="red", annotation_text="steering layer")
    fig.update_layout(title=f"Cosine with the CAA vector, per block ({found.model}, {len(found.seeds)} splits)",
                      xaxis_title="block (residual stream after it)", yaxis_title="cosine",
                      yaxis_range=[-1.05, 1.05], height=460)
    return captioned(fig, _cosine_caption(found, layer, paper))


def _cosine_caption(found: Alignment, layer: int, paper: float) -> str:
    """The caption of :func:`cosine_figure`."""
    n = len(found.seeds)
    spread = (f"mean over {n} data splits, error bars one standard deviation across them" if n > 1
              else "one data split, no error bars")
    return (f"Cosine (unitless) between the CAA vector and each step's mean activation shift in the residual stream "
            f"after each of the {found.cos_full.shape[1]} blocks of {found.model} ({spread}; solid: measured, "
            f"dotted: the jvp prediction). Grey band: the 95th percentile of |cosine| with random Gaussian directions in "
            f"{found.d_model} dimensions; dotted line: the paper's {paper}; red line: the steering block {layer}. "
            f"C8's number is the blue line at block {layer}; it means something only where it clears the grey band "
            "and the dashed shuffled-label line, and the green line shows how far CAA agrees with itself on other data.")


def explorer_figure(grid: SteeringGrid) -> go.Figure:
    """Layer-by-scale explorer: a slider over grid blocks; :func:`gain` and :func:`side_cost`
    against the scale for every vector at the selected block (static-HTML slider)."""
    fig = panels(rows=1, cols=2, subplot_titles=("target: accuracy gain (points)",
                                                        "side cost: perplexity change (%)"))
    measures = (gain(grid), side_cost(grid))
    active = grid.layers.index(grid.layer)
    for col, values in enumerate(measures, start=1):
        for v, name in enumerate(grid.vectors):
            fig.add_trace(go.Scatter(x=grid.scales, y=_json_list(values[v, active]), mode="lines+markers", name=name,
                                     line={"color": COLORS.get(name)}, legendgroup=name, showlegend=col == 1),
                          row=1, col=col)
    frames = [[{"y": _json_list(values[v, g])} for values in measures for v in range(len(grid.vectors))]
              for g in range(len(grid.layers))]
    fig = slider_figure(frames, [str(layer) for layer in grid.layers], fig,
                        list(range(2 * len(grid.vectors))), "steering at block", active=active)
    fig.update_xaxes(title_text="scale (× CAA norm at the block)")
    fig.update_layout(title=f"Steering explorer ({grid.model})", height=460)
    return captioned(fig, _explorer_caption(grid))


def _explorer_caption(grid: SteeringGrid) -> str:
    """The caption of :func:`explorer_figure`, naming the vectors the grid measured at the steering block only."""
    others = [g for g, layer in enumerate(grid.layers) if layer != grid.layer]
    only = [f'"{name}"' for v, name in enumerate(grid.vectors)
            if others and not np.isfinite(grid.accuracy[v][others]).any()]
    plural = len(only) > 1
    where = (f", the only block where the vector{'s' if plural else ''} {' and '.join(only)} "
             f"{'are' if plural else 'is'} measured") if only else ""
    return (f"Change of accuracy on {grid.n_eval} held-out statements (points of 100, left) and of the perplexity "
            f"of {grid.side_tokens} tokens of unrelated prose (%, right; positive is worse) when each vector, "
            "rescaled to the CAA vector's norm at the block, is added times the scale to the residual stream; "
            f"one run, no error bars. The slider picks one of {len(grid.layers)} blocks and opens "
            f"on the steering block {grid.layer}{where}. Look for a vector that raises accuracy more than the "
            "random control at a small perplexity cost.")


def _json_list(values: np.ndarray) -> list:
    """A list of floats with ``None`` for NaN (not measured), which JSON and plotly accept."""
    return [None if not np.isfinite(x) else float(x) for x in values]
