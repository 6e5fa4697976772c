"""Chapter 5's numbers: the C8 rows (cosines against their nulls), the C9 rows (test gains of
vectors picked on validation, against their nulls), the tuning check, and the :class:`Summary`
the notebook's prose, tables and claims read.

A C8 row is one (model, concept, variant, shift) with a t-interval over data splits; a C9 row
one (model, concept, variant, target) with bootstrap intervals over test units (statements or
twin pairs). Gains are in accuracy points (of 100) against the unsteered model on the same units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lls.chapters.steering.auc import auroc_interval
from lls.chapters.steering.protocol import Alignment, Results, SteeringGrid, Tuning
from lls.chapters.steering.targets import best_threshold, correct, margins
from lls.claims import threshold
from lls.stats import Interval, bootstrap_interval, t_interval

SHIFTS = {"mean shift": ("cos_full", "cos_shuffled"), "ΔCAA": ("delta_full", "delta_shuffled")}
"""The two shifts C8 reads: the step's mean shift (the paper's object) and its ΔCAA."""


@dataclass(frozen=True)
class C8Row:
    """C8 on one model, concept, variant and shift, at block ``layer``: ``cosine`` with CAA and
    ``vs_shuffled`` (minus the shuffled-label step's, paired) over data splits; ``null_bound``
    the ``null_quantile`` of |cos| of random directions (``null_cos`` ``(n_null,)`` their
    cosines); ``ceiling`` the mean split-half CAA cosine and ``of_ceiling`` cosine / ceiling;
    ``lora``, ``contrast``, ``shuffled`` mean cosines of the other steps' same shift;
    ``consistency`` the contrast consistency; ``loss`` the step's loss before/after (nats);
    ``pred_error`` the worst block's relative jvp error."""

    model: str
    concept: str
    variant: str
    shift: str
    layer: int
    cosine: Interval
    vs_shuffled: Interval
    null_bound: float
    null_cos: np.ndarray = field(repr=False)
    ceiling: float
    of_ceiling: float
    lora: float
    contrast: float
    shuffled: float
    consistency: float
    loss: tuple[float, float]
    pred_error: float


def _mean_or_nan(values: np.ndarray) -> float:
    """The mean of the finite ``values`` (NaN when none is)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def c8_rows(found: Alignment, layer: int) -> list[C8Row]:
    """The two :class:`C8Row` (mean shift, ΔCAA) of one alignment, read at block ``layer``."""
    rows = []
    null = found.null_cos[layer]
    bound = float(np.quantile(np.abs(null), threshold("C8", "null_quantile")))
    ceiling = float(found.caa_split[:, layer].mean())
    for shift, (name, shuffled_name) in SHIFTS.items():
        values, shuffled = getattr(found, name)[:, layer], getattr(found, shuffled_name)[:, layer]
        lora = (found.cos_lora if shift == "mean shift" else found.delta_lora)[:, layer]
        cosine = t_interval(values, "data splits")
        rows.append(C8Row(
            found.model, found.concept, found.variant, shift, layer, cosine,
            t_interval(values - shuffled, "data splits"), bound, null, ceiling,
            cosine.mean / ceiling if ceiling > 0 else float("nan"), float(lora.mean()),
            _mean_or_nan(found.cos_contrast[:, layer]) if shift == "mean shift" else float("nan"),
            float(shuffled.mean()), float(found.consistency[:, layer].mean()),
            (float(found.loss_full[:, 0].mean()), float(found.loss_full[:, 1].mean())),
            float(found.pred_error_full.max())))
    return rows


@dataclass(frozen=True)
class C9Row:
    """C9 on one model, concept, variant and target (test units ``n_units``): the step vector's
    pick (``layer``, ``scale``); intervals (accuracy points) of its gain ``step``, of
    ``vs_null`` (minus the best null's gain) and ``vs_caa`` (minus ``caa_fraction`` times CAA's);
    point gains of every tested vector (``gains``), ``null`` which null was best on validation,
    ``random_val`` the validation gains of every random direction, ``anti`` the anti-steerable
    fraction of each vector (units whose margin fell), ``margin`` mean margin change (nats),
    ``side`` perplexity change (%), ``base_accuracy`` unsteered test accuracy (fraction)."""

    model: str
    concept: str
    variant: str
    target: str
    n_units: int
    layer: int
    scale: float
    step: Interval
    vs_null: Interval
    vs_caa: Interval
    gains: dict[str, float]
    null: str
    random_val: list[float]
    anti: dict[str, float]
    margin: dict[str, float]
    side: dict[str, float]
    base_accuracy: float


def _unit_gains(grid: SteeringGrid, numbers: dict, target: str) -> np.ndarray:
    """``(units,)`` per-unit accuracy change (points) on the test split against the unsteered model."""
    return 100 * (correct(numbers, grid.test_statements, target) - correct(grid.base_test, grid.test_statements, target))


def _bias_null(grid: SteeringGrid) -> tuple[float, np.ndarray]:
    """The pure threshold shift (question target): its validation gain and per-statement test gains
    (points), with the threshold that maximises validation accuracy of the unsteered scores."""
    labels = lambda ss: np.array([s.label for s in ss])  # noqa: E731
    t = best_threshold(grid.base_val["score"], labels(grid.val_statements))
    acc = lambda scores, ss, cut: ((scores > cut) == labels(ss)).astype(float)  # noqa: E731
    val_gain = 100 * (acc(grid.base_val["score"], grid.val_statements, t).mean()
                      - acc(grid.base_val["score"], grid.val_statements, 0.0).mean())
    test = 100 * (acc(grid.base_test["score"], grid.test_statements, t) - acc(grid.base_test["score"], grid.test_statements, 0.0))
    return float(val_gain), test


def c9_row(grid: SteeringGrid, target: str) -> C9Row:
    """The :class:`C9Row` of ``target`` on one grid."""
    unit = "test statements" if target == "question" else "test pairs"
    per = {name: _unit_gains(grid, numbers, target) for name, numbers in grid.test.items()}
    best_random = next(name for name in grid.test if name.startswith("random"))
    layer, scale = grid.picked["step (all params)"]
    val_gain = lambda name: 100 * (correct(grid.val[(name, layer, scale)], grid.val_statements, target).mean()  # noqa: E731
                                   - correct(grid.base_val, grid.val_statements, target).mean())
    null, null_units = best_random, per[best_random]
    if target == "question":
        bias_val, bias_test = _bias_null(grid)
        if bias_val > val_gain(best_random):
            null, null_units = "threshold shift", bias_test
    step = per["step (all params)"]
    base_margin = margins(grid.base_test, grid.test_statements, target)
    margin_change = {n: margins(v, grid.test_statements, target) - base_margin for n, v in grid.test.items()}
    return C9Row(
        grid.model, grid.concept, grid.variant, target, len(step), layer, scale,
        bootstrap_interval(step, unit), bootstrap_interval(step - null_units, unit),
        bootstrap_interval(step - threshold("C9", "caa_fraction") * per["CAA"], unit),
        {n: float(v.mean()) for n, v in per.items()} | ({null: float(null_units.mean())} if null != best_random else {}),
        null, [val_gain(n) for n in grid.picked if n.startswith("random")],
        {n: float((m < 0).mean()) for n, m in margin_change.items()},
        {n: float(m.mean()) for n, m in margin_change.items()},
        {n: float(100 * (v["perplexity"] / grid.base_test["perplexity"] - 1)) for n, v in grid.test.items()},
        float(correct(grid.base_test, grid.test_statements, target).mean()))


@dataclass(frozen=True)
class TuningRow:
    """The format tuning of one model: AUROC intervals on the held-out truth statements before
    and after, on validation (the gate) and test; first and last tuning loss (nats)."""

    model: str
    topics: list[str]
    n_statements: int
    auroc: dict[str, Interval]
    """keys ``"<before|after> <validation|test>"``"""
    loss: tuple[float, float]


def tuning_row(t: Tuning, seed: int = 0) -> TuningRow:
    """The :class:`TuningRow` of one :class:`Tuning`."""
    out = {}
    for when, scores in (("before", t.before), ("after", t.after)):
        for split in ("validation", "test"):
            keep = np.array([s == split for s in t.split])
            out[f"{when} {split}"] = auroc_interval(scores[keep], t.labels[keep], seed)
    return TuningRow(t.model, t.topics, t.n_statements, out, (t.losses[0], t.losses[-1]))


@dataclass(frozen=True)
class Summary:
    """Every row of the chapter, and whose claims count (:attr:`claim_model`, the first model)."""

    c8: list[C8Row]
    c9: list[C9Row]
    tunings: dict[str, TuningRow]
    skipped: dict[tuple[str, str, str], str]
    claim_model: str

    def extra(self) -> dict[str, list]:
        """The numbers ``metrics.json`` keeps beside the claims: every C9 row's point gains, anti-steerable
        fractions and side costs (``c9_rows``) and every C8 row's nulls and ceiling (``c8_rows``)."""
        c8 = [{"model": r.model, "concept": r.concept, "model_variant": r.variant, "shift": r.shift,
               "cosine": r.cosine.mean, "null_bound": r.null_bound, "ceiling": r.ceiling, "of_ceiling": r.of_ceiling,
               "shuffled": r.shuffled, "consistency": r.consistency} for r in self.c8]
        c9 = [{"model": r.model, "concept": r.concept, "model_variant": r.variant, "target": r.target,
               "layer": r.layer, "scale": r.scale, "gains": r.gains, "null": r.null, "anti": r.anti,
               "side": r.side, "base_accuracy": r.base_accuracy} for r in self.c9]
        return {"c8_rows": c8, "c9_rows": c9}


def summarize(results: Results, seed: int = 0) -> Summary:
    """The chapter's :class:`Summary` (claims count for the first model); ``seed`` the run's, so that
    the tuning's AUROC intervals are the bootstrap the gate decided on
    (:func:`lls.chapters.steering.auc.tuning_gate`)."""
    c8 = [row for key, found in results.found.items() for row in c8_rows(found, results.grids[key].read_layer)]
    c9 = [c9_row(grid, target) for grid in results.grids.values() for target in grid.targets]
    models = [key[0] for key in (*results.found, *results.skipped)]
    return Summary(c8, c9, {m: tuning_row(t, seed) for m, t in results.tunings.items()}, dict(results.skipped),
                   models[0] if models else "")
