"""Chapter 4's low-rank section, pure functions: the Monte-Carlo check of the law of ``g^T eps`` under
low-rank noise (:class:`LawCheck`) and the low-rank against Gaussian searches (:class:`NoiseSearches`)
-> rows, tables and one :class:`LowRankSummary`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lls import theory
from lls.chapters.random_search.curves import claim_n
from lls.chapters.random_search.lowrank_noise import LAW_BATCHES, LawCheck, NoiseSearches
from lls.f1f2 import local_linear
from lls.lowrank_law import expected_max_lowrank
from lls.search import expected_best
from lls.stats import Interval, t_interval
from lls.tables import markdown_table


def _batches(draws: np.ndarray) -> np.ndarray:
    """The draws cut into :data:`LAW_BATCHES` equal batches, (LAW_BATCHES, M // LAW_BATCHES)."""
    usable = len(draws) - len(draws) % LAW_BATCHES
    return draws[:usable].reshape(LAW_BATCHES, -1)


def law_rows(law: LawCheck) -> list[dict]:
    """Per rank and N: the Monte-Carlo variance and excess kurtosis of ``Y`` (t-intervals over the draws,
    from the means of ``Y^2`` and ``Y^4 - 3``: ``Y`` is divided by the exact ``||G||_F``) and ``e~_N``
    (t-interval over :data:`LAW_BATCHES` batches of the unbiased best-of-N estimate), with the law's values
    and whether each lies in its interval."""
    rows = []
    for k, r in enumerate(law.ranks):
        y = law.draws[k]
        var, kurt = t_interval(y**2, unit="draws"), t_interval(y**4 - 3, unit="draws")
        for j, n in enumerate(law.ns):
            emax = t_interval([expected_best(b, [n])[0] for b in _batches(y)], unit="batches")
            rows.append({"rank": r, "N": n, "variance": var, "kurtosis": kurt, "kurtosis_law": law.predicted_kurtosis[k],
                         "emax": emax, "emax_law": float(law.predicted_emax[k, j]),
                         "emax_gauss": float(law.gaussian_emax[j])})
    return rows


def _inside(value: float, interval: Interval) -> bool:
    return bool(interval.known and interval.low <= value <= interval.high)


def _ci(interval: Interval, digits: int = 3) -> str:
    return f"{interval.mean:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def law_table(rows: list[dict]) -> str:
    """Markdown table of :func:`law_rows`: moments per rank (first N of each rank), then ``e~_N`` per N."""
    header = ["rank r", "N", "Var Y (law: 1)", "excess kurtosis", "law 6/(r r_eff)", "e~_N Monte Carlo", "e~_N law",
              "e_N Gaussian"]
    cells = [[r["rank"], r["N"], _ci(r["variance"]), _ci(r["kurtosis"]), f"{r['kurtosis_law']:.3f}", _ci(r["emax"]),
              f"{r['emax_law']:.3f}", f"{r['emax_gauss']:.3f}"] for r in rows]
    return markdown_table(header, cells)


def noise_rows(searches: NoiseSearches, law: LawCheck) -> list[dict]:
    """Per noise (Gaussian, then each rank): at N = :func:`claim_n` of the candidates, per seed, the
    first-order gain over ``sigma ||G||_F`` and the best-of-N loss decrease (nats), the decrease's paired
    difference from the Gaussian search of the same seed; t-intervals over the seeds; the law's ``e_N``
    or ``e~_N`` and how many searches the F1/F2 diagnostic calls local-linear."""
    n = claim_n(searches.gaussian[0].n)
    base = np.array([run.gain_curve([n])[0] for run in searches.gaussian])
    noises = [("Gaussian", None, searches.gaussian)]
    noises += [(f"low-rank r={r}", r, runs) for r, runs in zip(searches.ranks, searches.lowrank, strict=True)]
    rows = []
    for label, rank, runs in noises:
        gain = np.array([run.gain_curve([n])[0] for run in runs])
        first = [run.first_order_curve([n])[0] / (run.sigma * searches.grad_norm) for run in runs]
        law_value = (theory.expected_max_normal(n) if rank is None
                     else float(expected_max_lowrank([n], law.singular_values, rank)[0]))
        rows.append({"noise": label, "rank": rank, "N": n, "first_order": t_interval(first, "seeds"), "law": law_value,
                     "gain": t_interval(gain, "seeds"), "difference": t_interval(gain - base, "seeds"),
                     "linear": sum(local_linear(run) for run in runs), "searches": len(runs)})
    return rows


def noise_table(rows: list[dict]) -> str:
    """Markdown table of :func:`noise_rows` (95 % t-intervals over search seeds)."""
    header = ["noise", "N", "first-order gain / (σ‖G‖)", "law (e_N or e~_N)", "best-of-N gain (nats)",
              "gain − Gaussian (nats, paired)", "local-linear searches"]
    cells = [[r["noise"], r["N"], _ci(r["first_order"]), f"{r['law']:.3f}", _ci(r["gain"], 4),
              "—" if r["rank"] is None else _ci(r["difference"], 4), f"{r['linear']} of {r['searches']}"]
             for r in rows]
    return markdown_table(header, cells)


@dataclass
class LowRankSummary:
    """The section's numbers: the law rows, the search rows, and the counts the prose reads."""

    law: list[dict]
    searches: list[dict]
    effective_rank: float
    matrices_dim: int
    sigma: float
    seeds: int
    pairs: int

    def _checks(self) -> list[tuple[str, float, Interval]]:
        """``(what, law value, Monte-Carlo interval)`` for the variance and excess kurtosis of each rank
        and ``e~_N`` of each rank and N."""
        firsts = {r["rank"]: r for r in self.law}.values()  # the moments once per rank
        checks = [(f"Var Y at r={r['rank']}", 1.0, r["variance"]) for r in firsts]
        checks += [(f"excess kurtosis at r={r['rank']}", r["kurtosis_law"], r["kurtosis"]) for r in firsts]
        return checks + [(f"ẽ_N at r={r['rank']}, N={r['N']}", r["emax_law"], r["emax"]) for r in self.law]

    @property
    def law_inside(self) -> tuple[int, int]:
        """(law values inside their Monte-Carlo interval, law values checked): variance, kurtosis, e~_N."""
        checks = self._checks()
        return sum(_inside(value, found) for _, value, found in checks), len(checks)

    @property
    def law_misses(self) -> list[str]:
        """One phrase per law value outside its Monte-Carlo interval: what, the law's value, the interval."""
        return [f"{what}: law {value:.3f}, Monte Carlo {_ci(found)}" for what, value, found in self._checks()
                if not _inside(value, found)]


def summarize_lowrank(law: LawCheck, searches: NoiseSearches) -> LowRankSummary:
    """The section's :class:`LowRankSummary` from its cached results."""
    return LowRankSummary(law=law_rows(law), searches=noise_rows(searches, law), effective_rank=law.effective_rank,
                          matrices_dim=searches.dim, sigma=searches.sigma, seeds=len(searches.seeds),
                          pairs=searches.gaussian[0].n)
