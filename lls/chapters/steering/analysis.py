"""Chapter 5's numbers: Table 6, the lean-profile correlations and the :class:`Summary` the
notebook's prose, tables and claims read.

The target gain and side cost of a steering vector are defined once, here (:func:`gain`,
:func:`side_cost`); Table 6, the explorer figure and the live controls all read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lls.chapters.steering.protocol import Alignment, Results, SteeringGrid
from lls.stats import mean_spread
from lls.tables import markdown_table


def gain(grid: SteeringGrid) -> np.ndarray:
    """``(V, G, S)`` target gain: accuracy while steering minus unsteered accuracy, in points (of 100)."""
    return 100 * (grid.accuracy - grid.baseline["accuracy"])


def side_cost(grid: SteeringGrid) -> np.ndarray:
    """``(V, G, S)`` side cost: perplexity change of the unrelated prose, % (positive = worse)."""
    return 100 * (grid.perplexity / grid.baseline["perplexity"] - 1)


def table6(grid: SteeringGrid) -> list[dict]:
    """Rows shaped like the paper's Table 6, at the steering layer, one per vector.

    For each vector the scale with the largest :func:`gain` on the held-out statements is picked
    (the same selection for every vector, so the random control measures its optimism);
    ``target_gain`` = accuracy gain (points), ``margin_gain`` = change of the mean signed margin
    (nats), ``lean`` = change of the mean margin toward " True" (nats), ``side_cost`` =
    :func:`side_cost` (%, positive = worse).
    """
    g = grid.layers.index(grid.layer)
    gains, costs = gain(grid), side_cost(grid)
    rows = []
    for v, name in enumerate(grid.vectors):
        s = int(np.argmax(gains[v, g]))
        rows.append({
            "model": grid.model, "vector": name, "layer": grid.layer, "scale": grid.scales[s],
            "target_gain": float(gains[v, g, s]),
            "margin_gain": float(grid.signed_margin[v, g, s] - grid.baseline["signed_margin"]),
            "lean": float(grid.margin[v, g, s] - grid.baseline["margin"]),
            "side_cost": float(costs[v, g, s]),
        })
    return rows


def table6_markdown(rows: list[dict], baselines: dict[str, dict]) -> str:
    """A Markdown table of :func:`table6` rows (several models), with each model's baseline."""
    head = ["model", "vector", "layer", "best scale", "target gain (acc. pts)", "Δ signed margin (nats)",
            "Δ lean to True (nats)", "side cost (Δ ppl %)"]
    steered = [[r["model"], r["vector"], r["layer"], f"{r['scale']:+g}", f"{r['target_gain']:+.1f}",
                f"{r['margin_gain']:+.2f}", f"{r['lean']:+.2f}", f"{r['side_cost']:+.1f}"] for r in rows]
    unsteered = [[model, "(unsteered)", "—", 0, f"acc. {100 * base['accuracy']:.1f} %", f"{base['signed_margin']:.2f}",
                  f"{base['margin']:.2f}", f"ppl {base['perplexity']:.1f}"] for model, base in baselines.items()]
    return markdown_table(head, steered + unsteered)


def response_similarity(grid: SteeringGrid, vector: str, reference: str = "CAA") -> float:
    """Pearson correlation, over the whole layer-by-scale grid, of the lean (mean margin change)
    that ``vector`` causes with the lean ``reference`` causes, where both were measured: 1 = steers
    exactly alike; NaN with fewer than three common points or a constant lean."""
    a = grid.at(vector, "margin").ravel() - grid.baseline["margin"]
    b = grid.at(reference, "margin").ravel() - grid.baseline["margin"]
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def scale_report(grid: SteeringGrid, block: int, vector: str) -> str:
    """One line per scale: :func:`gain` and :func:`side_cost` of ``vector`` at grid block ``block``."""
    if block not in grid.layers:
        return f"block {block} is not in the grid {grid.layers}"
    g, v = grid.layers.index(block), grid.vectors.index(vector)
    gains, costs = gain(grid), side_cost(grid)
    return "\n".join(f"scale {scale:+5g}: accuracy gain {gains[v, g, s]:+5.1f} pts, perplexity {costs[v, g, s]:+6.1f} %"
                     for s, scale in enumerate(grid.scales))


@dataclass(frozen=True)
class ModelSummary:
    """Every number the chapter reports for one model. Cosines are at the steering block
    ``layer``, means over the data splits ``seeds``; losses are mean truth losses (nats) on the
    probe ``(before, after)`` the step; ``pred_error_*`` the worst block's relative jvp error."""

    model: str
    layer: int
    n_layers: int
    d_model: int
    dim_full: int
    dim_lora: int
    seeds: list[int]
    loss_full: tuple[float, float]
    loss_lora: tuple[float, float]
    pred_error_full: float
    pred_error_lora: float
    cos_step: float
    """mean cosine of the full-parameter step's measured shift with CAA (C8's value)"""
    cos_step_sd: float | None
    """its sample standard deviation over splits (``None`` for one split)"""
    cos_lora: float
    cos_contrast: float
    cos_shuffled: float
    cos_shuffled_max: float
    """largest |cosine| of the shuffled-label step over splits (a null)"""
    null_q95: float
    """95 % quantile of |cosine| of random directions with CAA (a null)"""
    caa_split: float
    cos_by_layer: list[float]
    """mean cosine of the full step with CAA at every block"""
    table6: list[dict]
    baseline: dict[str, float]
    similarity: dict[str, float]
    """lean-profile correlation with CAA (:func:`response_similarity`) of each other vector"""
    n_eval: int

    def row(self, vector: str) -> dict:
        """The :func:`table6` row of ``vector``."""
        return next(r for r in self.table6 if r["vector"] == vector)


def summarize_model(found: Alignment, grid: SteeringGrid) -> ModelSummary:
    """The :class:`ModelSummary` of one model's alignment and steering grid."""
    lay = grid.layer
    value, spread = mean_spread(found.cos_full[:, lay])
    return ModelSummary(
        model=found.model, layer=lay, n_layers=found.cos_full.shape[1], d_model=found.d_model,
        dim_full=found.dim_full, dim_lora=found.dim_lora, seeds=list(found.seeds),
        loss_full=(float(found.loss_full[:, 0].mean()), float(found.loss_full[:, 1].mean())),
        loss_lora=(float(found.loss_lora[:, 0].mean()), float(found.loss_lora[:, 1].mean())),
        pred_error_full=float(found.pred_error_full.max()), pred_error_lora=float(found.pred_error_lora.max()),
        cos_step=value, cos_step_sd=spread, cos_lora=float(found.cos_lora[:, lay].mean()),
        cos_contrast=float(found.cos_contrast[:, lay].mean()), cos_shuffled=float(found.cos_shuffled[:, lay].mean()),
        cos_shuffled_max=float(np.abs(found.cos_shuffled[:, lay]).max()), null_q95=float(found.null_q95[lay]),
        caa_split=float(found.caa_split[:, lay].mean()), cos_by_layer=found.cos_full.mean(axis=0).tolist(),
        table6=table6(grid), baseline=dict(grid.baseline),
        similarity={v: response_similarity(grid, v) for v in grid.vectors if v != "CAA"}, n_eval=grid.n_eval)


@dataclass(frozen=True)
class Summary:
    """Every model's :class:`ModelSummary`, Table 6 as Markdown, and whose claims count."""

    models: dict[str, ModelSummary]
    claim_model: str
    """the model the claims are judged on: the first of ``cfg.models`` (the others are reported)"""
    table6_markdown: str

    @property
    def judged(self) -> ModelSummary:
        """The summary of :attr:`claim_model`."""
        return self.models[self.claim_model]

    def extra(self) -> dict[str, list]:
        """The numbers ``metrics.json`` keeps beside the claims: per model, the mean cosine of the
        full step with CAA at every block (``<model>/cos_full_by_layer``) and Table 6 (``<model>/table6``)."""
        out: dict[str, list] = {f"{name}/cos_full_by_layer": m.cos_by_layer for name, m in self.models.items()}
        out.update({f"{name}/table6": m.table6 for name, m in self.models.items()})
        return out


def summarize(results: Results) -> Summary:
    """The chapter's :class:`Summary`: per model, in order; the claims count for the first model."""
    per_model = {name: summarize_model(results.found[name], grid) for name, grid in results.grids.items()}
    rows = [row for s in per_model.values() for row in s.table6]
    markdown = table6_markdown(rows, {name: s.baseline for name, s in per_model.items()})
    return Summary(models=per_model, claim_model=next(iter(per_model)), table6_markdown=markdown)
