"""Plotly figures for the book: one house style, one renderer, a slider figure, the drift explorer.

Style is chosen once, here: the ``lls`` template (:data:`HOUSE`, on top of ``plotly_white``) sets
fonts, margins that grow to fit titles and legends, a colour-blind-safe colour order
(Okabe–Ito), hover formats, and keeps the legend at plotly's place, right of the plot area: the
margin grows to hold it, so it never sits on a title, a panel title or a slider (sliders span the
plot area only). It is the default for every figure built after ``lls.plots`` is imported, and
:func:`show` applies it again to any figure it is given. Multi-panel figures use :func:`panels`,
whose panel titles wrap to fit their panel.

Rendering is chosen once, here. :func:`show` emits a MIME bundle holding both ``text/html`` (a
``<figure>`` with the plot's ``<div>``, a small script calling ``Plotly.newPlot`` *without*
plotly.js, a caption and a link that downloads the plotted numbers as CSV, all inline) and
plotly's own JSON. The built book loads plotly.js from its own ``_static`` folder (no CDN, works
offline) and renders the HTML; a live JupyterLab renders the JSON. Sliders are plotly sliders,
so they work in the static HTML without a kernel.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

PLOTLY_JSON = "application/vnd.plotly.v1+json"
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
"""Okabe–Ito colour order: distinguishable with the common colour-vision deficiencies."""

HOUSE = go.layout.Template(layout={
    "font": {"family": "Inter, 'Helvetica Neue', Arial, sans-serif", "size": 13, "color": "#222"},
    "title": {"font": {"size": 15}, "x": 0, "xanchor": "left", "xref": "paper", "yref": "container", "y": 1,
              "yanchor": "top", "pad": {"t": 10}},
    "margin": {"l": 60, "r": 24, "t": 60, "b": 50, "autoexpand": True},
    "legend": {"font": {"size": 11}, "bgcolor": "rgba(255,255,255,0)", "tracegroupgap": 2},
    "colorway": list(COLORS),
    "hovermode": "closest",
    "hoverlabel": {"font": {"size": 12}},
    "xaxis": {"automargin": True, "title": {"standoff": 8}, "hoverformat": ".4g"},
    "yaxis": {"automargin": True, "title": {"standoff": 8}, "hoverformat": ".4g"},
})
pio.templates["lls"] = HOUSE
pio.templates.default = "plotly_white+lls"


NARROW_PLOT_PX = 480
"""Width of a figure's plot area on a narrow page (an 800 px window, the legend beside the plot)."""


def _wrapped(text: str, width_px: float, font_px: float) -> str:
    """``text`` broken with ``<br>`` at spaces so each line is at most ``width_px`` wide."""
    per_line = max(8, int(width_px / (0.55 * font_px)))
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > per_line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def panels(rows: int, cols: int, subplot_titles: Sequence[str] = (), title_px: int = 12, **kwargs) -> go.Figure:
    """``make_subplots`` with each panel title wrapped to fit its panel on a narrow page."""
    spacing = kwargs.get("horizontal_spacing", 0.2 / cols if cols > 1 else 0.0)
    width = NARROW_PLOT_PX * (1 - spacing * (cols - 1)) / cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_wrapped(t, width, title_px) for t in subplot_titles],
                        **kwargs)
    fig.update_annotations(font_size=title_px)
    return fig


def fit_top_margin(fig: go.Figure) -> None:
    """Make the top margin hold the title (at the top of the figure) and, under it, the panel titles
    (annotations just above the plot area), counted in lines, so that they never meet."""
    title = fig.layout.title.text or ""
    extra = title.count("<br>")  # plotly lifts a multi-line title by about half a line per extra line
    fig.update_layout(title_pad_t=10 + 14 * extra)
    title_px = (10 + 14 * extra + 21 * (extra + 1)) if title else 8
    panel_lines = [a.text.count("<br>") + 1 for a in fig.layout.annotations
                   if a.yref == "paper" and a.y is not None and a.y >= 1 and a.text]
    panel_px = 8 + 17 * max(panel_lines) if panel_lines else 0
    fig.update_layout(margin_t=title_px + panel_px + 10)


def fit_legend_height(fig: go.Figure) -> None:
    """Grow the figure's height so that its vertical legend (one line per named trace, a small gap
    between legend groups) fits beside the plot instead of running past the figure's bottom."""
    if fig.layout.showlegend is False or fig.layout.legend.orientation == "h":
        return
    entries = [t for t in fig.data if t.showlegend is not False and t.name]
    groups = {t.legendgroup for t in entries}
    font = fig.layout.legend.font.size or HOUSE.layout.legend.font.size
    gap = fig.layout.legend.tracegroupgap or HOUSE.layout.legend.tracegroupgap
    legend_px = len(entries) * (font + 12) + len(groups) * gap + 10  # plotly scrolls a legend taller than the plot
    needed = (fig.layout.margin.t or 60) + legend_px + (fig.layout.margin.b or 50)
    if needed > (fig.layout.height or 450):
        fig.update_layout(height=needed)


def captioned(fig: go.Figure, caption: str) -> go.Figure:
    """Store ``caption`` with ``fig`` (in ``layout.meta``) for :func:`show`; returns ``fig``."""
    fig.update_layout(meta={**(fig.layout.meta if isinstance(fig.layout.meta, dict) else {}), "caption": caption})
    return fig


def figure_csv(fig: go.Figure) -> str:
    """The numbers ``fig`` plots as CSV, one row per point: trace, x, y (and z for heatmaps, error)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trace", "x", "y", "z", "error"])
    for index, trace in enumerate(fig.data):
        name = trace.name or f"trace {index}"
        x, y = getattr(trace, "x", None), getattr(trace, "y", None)
        z = getattr(trace, "z", None)
        if z is not None:
            z = np.asarray(z, dtype=float)
            xs = list(x) if x is not None else list(range(z.shape[1]))
            ys = list(y) if y is not None else list(range(z.shape[0]))
            writer.writerows([name, xs[j], ys[i], z[i, j], ""] for i in range(z.shape[0]) for j in range(z.shape[1]))
            continue
        if x is None and y is None:
            continue
        n = len(x if x is not None else y)
        err = getattr(getattr(trace, "error_y", None), "array", None)
        writer.writerows([name, x[i] if x is not None else i, y[i] if y is not None else "", "",
                          err[i] if err is not None and i < len(err) else ""] for i in range(n))
    return out.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "figure"


def show(fig: go.Figure, caption: str | None = None, name: str | None = None) -> None:
    """Display ``fig`` in the house style, so that it renders in the offline book and in JupyterLab.

    ``caption`` (plain text: what is plotted, units, n, what to look for; default: the one a figure
    builder stored with :func:`captioned`) is shown under the figure with a link that downloads
    the plotted numbers (:func:`figure_csv`) as ``<name>.csv``; the data travel inside the page,
    so the link works offline.
    """
    from IPython.display import display

    fig.update_layout(template="plotly_white+lls")
    stored = fig.layout.meta.get("caption") if isinstance(fig.layout.meta, dict) else None
    caption = caption or stored
    title = fig.layout.title.text or "figure"
    if fig.layout.title.text and "<br>" not in title:  # a long title wraps rather than runs off a narrow page
        fig.update_layout(title_text=_wrapped(title, NARROW_PLOT_PX + 60, HOUSE.layout.title.font.size))
    fit_top_margin(fig)
    fit_legend_height(fig)
    name = _slug(name or title)
    plot = fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})
    data = base64.b64encode(figure_csv(fig).encode()).decode()
    link = (f'<a class="lls-csv" download="{name}.csv" href="data:text/csv;charset=utf-8;base64,{data}">'
            f"data (CSV)</a>")
    text = html.escape(caption) + " " if caption else ""
    page = f'<figure class="lls-figure">{plot}<figcaption>{text}{link}</figcaption></figure>'
    display({"text/html": page, PLOTLY_JSON: fig.to_plotly_json()}, raw=True)


def band(fig: go.Figure, x: Sequence, ys, name: str, color: str, *, spread: str = "sd", row: int | None = None,
         col: int | None = None, dash: str | None = None, legend: bool = True) -> None:
    """Add the mean over runs of ``ys`` (runs, len(x)) with its spread across runs.

    ``spread="sd"``: error bars of one sample standard deviation across runs (none for one run);
    ``spread="range"``: a shaded band from the minimum to the maximum run. NaNs are ignored.
    """
    ys, x = np.asarray(ys, dtype=float), list(x)
    mean = np.nanmean(ys, 0)
    where = {} if row is None else {"row": row, "col": col}
    line = {"color": color, "dash": dash}
    if spread == "range":
        lo, hi = np.nanmin(ys, 0), np.nanmax(ys, 0)
        fig.add_trace(go.Scatter(x=x + x[::-1], y=list(hi) + list(lo[::-1]), fill="toself", line={"width": 0},
                                 fillcolor=color, opacity=0.2, showlegend=False, hoverinfo="skip",
                                 legendgroup=name), **where)
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=name, legendgroup=name, showlegend=legend,
                                 line=line), **where)
        return
    if spread != "sd":
        raise ValueError(f"spread must be 'sd' or 'range', got {spread!r}")
    sd = np.nanstd(ys, 0, ddof=1) if len(ys) > 1 else np.zeros(ys.shape[1])
    fig.add_trace(go.Scatter(x=x, y=mean, name=name, mode="lines+markers", legendgroup=name, showlegend=legend,
                             line=line, error_y={"type": "data", "array": sd, "visible": len(ys) > 1}), **where)


def slider_figure(
    frames: Sequence[Sequence[dict]],
    labels: Sequence[str],
    base: go.Figure,
    trace_indices: Sequence[int],
    slider_title: str,
    active: int = 0,
) -> go.Figure:
    """Attach a static-HTML slider to ``base`` that restyles some of its traces.

    ``frames[j]`` is a list of dicts of trace properties (e.g. ``{"x": ..., "y": ...}``), one per
    index in ``trace_indices``, applied when the slider sits on ``labels[j]``. Uses plotly's
    ``restyle`` method, which needs no kernel and no animation frames.
    """
    if len(frames) != len(labels):
        raise ValueError(f"{len(frames)} frames but {len(labels)} labels")
    steps = []
    for label, frame in zip(labels, frames, strict=True):
        if len(frame) != len(trace_indices):
            raise ValueError("each frame needs one property dict per trace index")
        keys = sorted(frame[0])
        if any(sorted(props) != keys for props in frame):
            # restyle resets a property given as null, so every trace must name the same ones
            raise ValueError("within a frame, give every trace the same properties")
        update = {k: [_plain(props[k]) for props in frame] for k in keys}
        steps.append({"method": "restyle", "label": str(label), "args": [update, list(trace_indices)]})
    for props, idx in zip(frames[active], trace_indices, strict=True):
        base.data[idx].update(**{k: _plain(v) for k, v in props.items()})
    base.update_layout(sliders=[{"active": active, "currentvalue": {"prefix": f"{slider_title}: "},
                                 "pad": {"t": 50}, "steps": steps}])
    return base


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def drift_explorer(
    steps: Sequence[int],
    overlap: np.ndarray,
    ks: Sequence[int],
    capture: np.ndarray,
    title: str = "Subspace drift",
    capture_label: str = "capture of the final displacement",
    reference: float | None = None,
) -> go.Figure:
    """The book's drift explorer: overlap heatmap and capture curves with a slider over steps.

    ``steps`` (S,) training steps at which a top-k basis was taken; ``overlap`` (S, S) overlap
    (mean squared cosine of principal angles, in [0, 1]) between the bases at step s and step t;
    ``ks`` (K,) basis sizes; ``capture`` (S, K) capture of the final displacement by the basis
    taken at each step. The slider selects a step: the right panel shows that basis's capture
    against k (with the step-0 basis in grey for reference), the left panel marks the step on the
    heatmap. ``reference`` draws a horizontal line (e.g. the paper's 0.77).
    """
    overlap = np.asarray(overlap, dtype=float)
    capture = np.asarray(capture, dtype=float)
    steps = [int(s) for s in steps]
    if overlap.shape != (len(steps), len(steps)) or capture.shape != (len(steps), len(ks)):
        raise ValueError(f"shapes: overlap {overlap.shape}, capture {capture.shape}, "
                         f"{len(steps)} steps, {len(ks)} ks")
    gap = 0.24  # room between the panels for the colour bar and its ticks
    fig = panels(1, 2, ("overlap of top-k gradient subspaces", capture_label), horizontal_spacing=gap)
    fig.add_trace(go.Heatmap(z=overlap, x=steps, y=steps, zmin=0, zmax=1, colorscale="Viridis",
                             colorbar={"x": (1 - gap) / 2 + 0.01, "xanchor": "left", "len": 0.9, "thickness": 12,
                                       "tickfont": {"size": 10}}, name="overlap"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[steps[0]] * 2, y=[steps[0], steps[-1]], mode="lines",
                             line={"color": "red", "width": 2}, name="selected step"), row=1, col=1)
    fig.add_trace(go.Scatter(x=list(ks), y=capture[0], mode="lines+markers", line={"color": "grey"},
                             name=f"basis at step {steps[0]}"), row=1, col=2)
    fig.add_trace(go.Scatter(x=list(ks), y=capture[0], mode="lines+markers", line={"color": "red"},
                             name="basis at selected step"), row=1, col=2)
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", row=1, col=2, annotation_text=f"paper {reference:g}")
    fig.update_xaxes(title_text="step t", row=1, col=1)
    fig.update_yaxes(title_text="step s", row=1, col=1)
    fig.update_xaxes(title_text="k", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    frames = [[{"x": [s, s], "y": [steps[0], steps[-1]]}, {"x": list(ks), "y": capture[j]}]
              for j, s in enumerate(steps)]
    fig = slider_figure(frames, [str(s) for s in steps], fig, [1, 3], "basis taken at step")
    fig.update_layout(title=title, height=520)
    return fig
