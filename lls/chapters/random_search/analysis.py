"""Chapter 4's numbers: the searches' results -> one :class:`Summary` that the prose, tables and claims read."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from lls import theory
from lls.chapters.random_search.config import ODD_TOL, Config
from lls.chapters.random_search.protocol import Curves, Ranking, claim_n
from lls.f1f2 import local_linear, spread_range
from lls.randopt import RandOptResult
from lls.search import SearchResult
from lls.stats import Interval, mean_spread, t_interval

MIN_N = 32
"""C5 leaves out searches of fewer candidates than this, unless none has that many (``smoke``)."""


def predicted(ranking: Ranking) -> np.ndarray:
    """Theory at norm r: ``r sqrt(density) e_n - r^2 curvature / 2`` for each subspace, (S,)."""
    e_n = theory.expected_max_normal(ranking.n)
    return ranking.norm * np.sqrt(ranking.density) * e_n - 0.5 * ranking.norm**2 * ranking.curvature


def spearman(ranking: Ranking, against: str, first_order: bool = False) -> np.ndarray:
    """Spearman correlation, per seed, of the gains (or first-order gains) with ``density`` or ``mass``: (seeds,)."""
    ref = {"density": ranking.density, "mass": ranking.mass}[against]
    gains = ranking.first_order if first_order else ranking.gain
    return np.array([stats.spearmanr(row, ref).statistic for row in gains])


def _ratio(run: SearchResult, norm_g: float) -> float:
    """Measured first-order best-of-N gain over Theorem 1's ``sigma ||U^T g|| e_N`` at N = claim_n."""
    n = claim_n(run.n)
    return float(run.first_order_curve([n])[0]) / theory.first_order_gain(run.sigma, norm_g, n)


def _cases(curves: list[Curves], rankings: list[Ranking]) -> list[tuple]:
    """``(space, dim, search, ||U^T g||, stream, local-linear)`` for every search. ``stream`` names the
    perturbations: a grid's sigmas share theirs, and the C6 subspaces of one dimension k searched with
    one seed draw the same ``z`` in every subspace and at every norm (:func:`_c6_stream`). ``local-linear`` comes from the F1/F2 diagnostic only, never from a ratio: the
    grid's test (with :data:`ODD_TOL`) at each sigma and at the long search's sigma; each C6 search's own
    F1 spread against its |mean F2| (:func:`lls.f1f2.local_linear`)."""
    cases = []
    for c in curves:
        ok = dict(zip(c.diag.sigmas.tolist(), c.diag.linear(odd_tol=ODD_TOL).tolist(), strict=True))
        cases += [(c.name, c.dim, run, c.grad_norm, f"{c.name}: σ grid", ok[run.sigma]) for run in c.diag.runs]
        if c.best is not None:
            cases.append((c.name, c.dim, c.best, c.grad_norm, f"{c.name}: long search", ok.get(c.best.sigma, False)))
    for ranking in rankings:
        for j, name in enumerate(ranking.names):
            cases += [(f"synthetic, {name} (r={ranking.norm:.2g})", ranking.dims[j], row[j], float(np.sqrt(m)),
                       _c6_stream(name, j, ranking.dims[j], row[j].seed), local_linear(row[j]))
                      for row, m in zip(ranking.searches, ranking.mass_seed[:, j], strict=True)]
    return cases


def _c6_stream(name: str, j: int, k: int, seed: int) -> str:
    """The noise stream of a C6 search: the full space and the LoRA space (``j`` 0 and 1, no basis) draw
    their own noise; every subspace given by a basis of the same ``k`` draws the same ``z_i`` for one
    seed (``eps = U z``), so those share one stream per seed."""
    return f"synthetic, {name}: seed {seed}" if j < 2 else f"synthetic, bases of k={k}: seed {seed}"


def c5_ratios(curves: list[Curves], rankings: list[Ranking], min_n: int = MIN_N) -> list[dict]:
    """One row per search of every space: measured first-order best-of-N gain over Theorem 1's
    ``sigma ||U^T g|| e_N`` at N = :func:`claim_n` of its candidates, with its noise ``stream``, its
    F1/F2 flag ``local-linear`` and ``in C5``: local-linear and at least ``min_n`` candidates (unless no
    search has that many, ``smoke``). Every search is reported; which enter C5 is fixed before any ratio."""
    cases = _cases(curves, rankings)
    enough = min_n if any(run.n >= min_n for _, _, run, *_ in cases) else 0
    return [{"space": name, "dim": dim, "sigma": run.sigma, "N": claim_n(run.n), "seed": run.seed,
             "stream": stream, "local-linear": linear, "in C5": bool(linear and run.n >= enough),
             "ratio": _ratio(run, norm_g)} for name, dim, run, norm_g, stream, linear in cases]


def stream_interval(rows: list[dict], every: bool = False) -> Interval | None:
    """95 % t-interval of the mean ratio over noise streams (each stream's rows averaged into one unit):
    the rows ``in C5``, or ``every`` row. The units are searches of one synthetic model at one theta_f
    and of one LM, not independent training seeds; the method says so. ``None`` when no row counts."""
    units: dict[str, list[float]] = {}
    for r in rows:
        if every or r["in C5"]:
            units.setdefault(r["stream"], []).append(r["ratio"])
    if not units:
        return None
    found = t_interval([float(np.mean(v)) for v in units.values()], unit="noise streams")
    searches = sum(len(v) for v in units.values())
    return replace(found, method=f"{found.method} ({searches} searches; those sharing their directions, the σ of "
                                 "a grid or the bases of one k with one seed, pooled), all on one synthetic model at one "
                                 "θ_f and one LM: a spread over searches, not over training seeds")


def dimension_slope(rows: list[dict], level: float = 0.95) -> tuple[float, float, float, int] | None:
    """The sceptic's test of dimension independence (shown, not part of the C5 rule): the least-squares
    slope of the ratio on log10 of the space's dimension over the noise streams in C5 (one point per
    stream), with its ``level`` t-interval: ``(slope, low, high, streams)``; ``None`` with fewer than 3
    streams or a single dimension. Theorem 1 says 0; a gain shrinking like ``D^(-1/2)`` would give a
    clearly negative slope."""
    units: dict[str, tuple[int, list[float]]] = {}
    for r in rows:
        if r["in C5"]:
            units.setdefault(r["stream"], (r["dim"], []))[1].append(r["ratio"])
    x = np.log10([dim for dim, _ in units.values()])
    y = np.array([np.mean(v) for _, v in units.values()])
    if len(y) < 3 or np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.5 + level / 2, len(y) - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half), len(y)


def gradient_check(c: Curves, level: float = 0.95) -> dict:
    """Why F1 spread / sigma can miss the autograd ``||g||``: at the smallest grid sigma, the largest
    relative gap between F1/sigma and ``g^T eps`` of the same directions (over their RMS), the F1
    estimate, the SD of ``g^T eps`` over those P directions, ``||g||``, the ``level`` sampling range of
    an SD of P Gaussian draws around ``||g||``, and the relative drift of F1/sigma at the largest sigma."""
    d, proj = c.diag, c.projection_grid
    i0 = int(np.argmin(d.sigmas))
    low, high = spread_range(len(proj), level)
    gap = np.abs(d.f1[i0] / d.sigmas[i0] - proj).max() / np.sqrt(np.mean(proj**2))
    return {"space": c.name, "pairs": len(proj), "f1_vs_projection": float(gap), "f1_norm": float(d.grad_norm[i0]),
            "projection_sd": float(proj.std(ddof=1)), "autograd": c.grad_norm, "range": (low * c.grad_norm,
            high * c.grad_norm), "long_projection_sd": float(c.projection_best.std(ddof=1)),
            "long_pairs": len(c.projection_best), "drift": float(d.odd_deviation.max())}


@dataclass
class Correlations:
    """C6 at one norm: per-seed Spearman correlations of the measured gains with density and mass."""

    norm: float
    density: np.ndarray
    mass: np.ndarray
    density_first_order: np.ndarray

    @property
    def density_mean(self) -> float:
        return mean_spread(self.density)[0]

    @property
    def mass_mean(self) -> float:
        return mean_spread(self.mass)[0]


def correlations(ranking: Ranking) -> Correlations:
    """The :class:`Correlations` of one ranking."""
    return Correlations(ranking.norm, spearman(ranking, "density"), spearman(ranking, "mass"),
                        spearman(ranking, "density", first_order=True))


@dataclass
class Summary:
    """Every number chapter 4 reports (losses in nats, accuracies exact-match fractions)."""

    task: str
    acc0: dict[str, float]
    acc_f: dict[str, float]
    synthetic_dim: int
    synthetic_base: float
    synthetic_grad_norm: float
    synthetic_trace: float
    synthetic_trace_se: float
    sigma_star: float
    """``||g|| e_N / tr H`` from the diagnostic's estimates at N = ``n_max``"""
    lm_name: str
    lm_dim: int
    lm_loss: float
    lm_accuracy: float
    lm_grad_norm: float
    lm_best_n: int
    lm_best_sigma: float
    lm_evals_per_s: float
    c5_rows: list[dict]
    """every search of the chapter with its ratio, F1/F2 flag and whether it enters C5 (:func:`c5_ratios`)"""
    c5_interval: Interval | None
    """the C5 interval: searches ``in C5``, one unit per noise stream (:func:`stream_interval`)"""
    c5_all_interval: Interval | None
    """the same over every search, local-linear or not (shown, not judged)"""
    c5_slope: tuple[float, float, float, int] | None
    """:func:`dimension_slope` of the C5 searches (shown, not judged)"""
    gradient_checks: list[dict]
    """:func:`gradient_check` of the synthetic model's and the LM's grids"""
    local: Correlations
    practical: Correlations
    c6_n: int
    c6_subspaces: int
    c6_seeds: list[int]
    randopt_sigma: float
    randopt: RandOptResult
    seeds: list[int]

    @property
    def ratios(self) -> np.ndarray:
        """The ratios of the searches in C5, (searches in C5,)."""
        return np.array([r["ratio"] for r in self.c5_rows if r["in C5"]])

    @property
    def randopt_member_mean(self) -> float:
        """Mean test accuracy of RandOpt's top-K members."""
        return float(self.randopt.member_accuracy.mean())

    @property
    def dims(self) -> list[int]:
        """The distinct dimensions of the C5 searches, ascending."""
        return sorted({r["dim"] for r in self.c5_rows if r["in C5"]})


def summarize(cfg: Config, synth: Curves, lm: Curves, local: Ranking, practical: Ranking,
              opt: tuple[RandOptResult, float]) -> Summary:
    """The chapter's :class:`Summary` from its cached results."""
    rows = c5_ratios([synth, lm], [local, practical])
    return Summary(
        task=synth.extra["task"], acc0=synth.extra["acc0"], acc_f=synth.extra["acc_f"], synthetic_dim=synth.dim,
        synthetic_base=synth.diag.base, synthetic_grad_norm=synth.grad_norm, synthetic_trace=synth.trace,
        synthetic_trace_se=synth.trace_se, sigma_star=synth.diag.sigma_star(cfg.n_max),
        lm_name=lm.name, lm_dim=lm.dim, lm_loss=lm.extra["loss"], lm_accuracy=lm.extra["accuracy"],
        lm_grad_norm=lm.grad_norm, lm_best_n=lm.best.n, lm_best_sigma=lm.best.sigma,
        lm_evals_per_s=lm.extra["evals_per_s"], c5_rows=rows, c5_interval=stream_interval(rows),
        c5_all_interval=stream_interval(rows, every=True), c5_slope=dimension_slope(rows),
        gradient_checks=[gradient_check(c) for c in (synth, lm)],
        local=correlations(local), practical=correlations(practical),
        c6_n=local.n, c6_subspaces=len(local.names), c6_seeds=local.seeds, randopt_sigma=opt[1], randopt=opt[0],
        seeds=[cfg.seed],
    )


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".5g")


def ratios_table(rows: list[dict]) -> str:
    """Markdown table of C5 ratio rows (:func:`c5_ratios`)."""
    return _markdown(pd.DataFrame(rows))


def curves_table(curves: list[Curves]) -> str:
    """Markdown table, per space and sigma: F1 spread, mean F2, the zeroth-order ||g|| and tr H
    estimates against autograd and Hutchinson, the SD of ``g^T eps / sigma`` over the grid's own
    directions, and whether the sigma is local-linear (the C5 test, with :data:`ODD_TOL`)."""
    rows = []
    for c in curves:
        d = c.diag
        for j, sigma in enumerate(d.sigmas):
            rows.append({"space": c.name, "σ": sigma, "F1 spread": d.f1_spread[j], "mean F2": d.f2_mean[j],
                         "‖g‖ from F1": d.grad_norm[j], "SD of gᵀε/σ, same ε": c.projection_grid.std(ddof=1),
                         "‖g‖ autograd": c.grad_norm, "tr H from F2": d.trace[j], "tr H Hutchinson": c.trace,
                         "local-linear": bool(d.linear(odd_tol=ODD_TOL)[j])})
    return _markdown(pd.DataFrame(rows))


def ranking_table(ranking: Ranking) -> str:
    """Markdown table per subspace: k, density, mass, mean curvature, measured gain (mean, SD over
    seeds), first-order gain and the theory's gain, sorted by measured gain."""
    frame = pd.DataFrame({
        "subspace": ranking.names, "k": ranking.dims, "density ‖Uᵀg‖²/k": ranking.density,
        "mass ‖Uᵀg‖²": ranking.mass, "curvature tr(UᵀHU)/k": ranking.curvature,
        "gain (mean)": ranking.gain.mean(axis=0), "gain (SD over seeds)": ranking.gain.std(axis=0, ddof=1) if len(ranking.seeds) > 1 else np.nan,
        "first-order gain": ranking.first_order.mean(axis=0), "theory gain": predicted(ranking),
    }).sort_values("gain (mean)", ascending=False)
    return _markdown(frame)
