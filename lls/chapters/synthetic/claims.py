"""Chapter 2's verdicts: C1, C2, C3, C4 and C10 from the :class:`Summary`, each decided on a 95 %
t-interval over seeds with :func:`lls.claims.decide`, thresholds from the registry."""

from __future__ import annotations

from lls.chapters.synthetic.analysis import Arm, Summary
from lls.chapters.synthetic.config import Config
from lls.claims import REGISTRY, Claim, decide, threshold
from lls.stats import Interval, t_interval


def c1_verdict(ratio: Interval) -> str:
    """C1 on the per-seed ratio of the effective rank at θ_f to the lowest-rank structured baseline's
    (shuffled targets, other tasks, centred gradients): reproduced when the interval lies at or below
    ``rank_ratio_reproduced``, partly when within ``rank_ratio_partly``; contradicted when it lies above
    ``structured_null`` (the task gradients have significantly *higher* rank than the baseline)."""
    return decide(ratio, threshold("C1", "rank_ratio_reproduced"), partly_at=threshold("C1", "rank_ratio_partly"),
                  null=threshold("C1", "structured_null"), higher_supports=False)


def c2_verdict(best_static: Interval, gap: Interval) -> str:
    """C2 on two per-seed intervals: ``gap`` = prefix capture minus the best static capture (every static
    basis, Krylov and Adam-aware ones included) and ``best_static`` itself. The gap must be significantly
    positive (else *contradicted* when significantly negative, *inconclusive* when it straddles
    ``synthetic_no_gap``); then reproduced when the best static capture lies below ``synthetic_static_max``,
    partly when it lies wholly above it, inconclusive when it straddles it."""
    no_gap = threshold("C2", "synthetic_no_gap")
    first = decide(gap, no_gap, null=no_gap)
    if first != "reproduced":
        return first
    return decide(best_static, threshold("C2", "synthetic_static_max"), partly_at=1.0, higher_supports=False)


def c3_verdict(lags: list[int | None], window: int) -> str:
    """C3 on the per-seed halving lags (steps): reproduced when their interval lies at or below the paper's
    100 steps, not reproduced when above it, contradicted when above ``synthetic_stable_lag``. A seed
    whose overlap never halved within the ``window`` counts at the window (a lower bound): then only
    *not reproduced* or *contradicted* can be concluded (true lags are larger), anything else is
    inconclusive."""
    verdict = decide(t_interval([window if lag is None else lag for lag in lags]), REGISTRY["C3"].paper,
                     null=threshold("C3", "synthetic_stable_lag"), higher_supports=False)
    if None in lags and verdict not in ("not reproduced", "contradicted"):
        return "inconclusive"
    return verdict


def c4_verdict(prefix: Interval, random_expected: float) -> str:
    """C4 on the per-seed capture of Δ by the first ``k_max`` updates: reproduced when the interval lies at
    or above ``synthetic_reproduced`` ("most"), partly at or above ``synthetic_partly``; contradicted when
    it lies below ``random_expected`` (k/D, a random subspace of the same size)."""
    return decide(prefix, threshold("C4", "synthetic_reproduced"), partly_at=threshold("C4", "synthetic_partly"),
                  null=random_expected)


def c10_part(gap: Interval) -> str:
    """One C10 gap (sequential loss minus simultaneous loss on A): reproduced when its interval lies at or
    above ``margin``; contradicted when below ``no_gap`` (the sequential model loses significantly less)."""
    return decide(gap, threshold("C10", "margin"), null=threshold("C10", "no_gap"))


def c10_verdict(noise: Interval, forget: Interval, accuracy_gap: float) -> str:
    """C10 from the noise and forgetting gaps: reproduced when both are reproduced, partly when one is and
    the other is not contradicted; contradicted when one is and neither is reproduced; not reproduced
    when both are; inconclusive otherwise, and whenever the two models' clean accuracies on A differ
    by more than ``comparable_accuracy`` (``accuracy_gap``: their absolute difference, mean over seeds)."""
    if abs(accuracy_gap) > threshold("C10", "comparable_accuracy"):
        return "inconclusive"
    parts = sorted((c10_part(noise), c10_part(forget)))
    if parts == ["reproduced", "reproduced"]:
        return "reproduced"
    if "reproduced" in parts:
        return "inconclusive" if "contradicted" in parts else "partly"
    if "contradicted" in parts:
        return "contradicted"
    return "not reproduced" if parts == ["not reproduced", "not reproduced"] else "inconclusive"


def _ci(interval: Interval, scale: float = 1.0, digits: int = 2) -> str:
    """An interval as text, e.g. ``"[0.12, 0.30]"`` (``"no interval"`` with one seed)."""
    if not interval.known:
        return "no interval (one seed)"
    return f"[{scale * interval.low:.{digits}f}, {scale * interval.high:.{digits}f}]"


def arm_verdicts(a: Arm, random_expected: float) -> dict[str, str]:
    """The C2 and C4 verdicts of one recovery arm (Adam or SGD) by the rules above."""
    return {"C2": c2_verdict(t_interval(a.static), t_interval(a.gap)),
            "C4": c4_verdict(t_interval(a.prefix), random_expected)}


def _scale(interval: Interval, factor: float) -> Interval:
    """``interval`` in other units (e.g. fractions -> points)."""
    low, high = (None, None) if not interval.known else (factor * interval.low, factor * interval.high)
    return Interval(factor * interval.mean, None if interval.sd is None else factor * interval.sd, interval.n,
                    low, high, interval.method)


def c1_claim(s: Summary) -> Claim:
    """C1: the rank ratio against the strongest structured baseline, per seed."""
    means = {name: sum(v) / len(v) for name, v in s.ranks.items()}
    interval = t_interval(s.rank_ratio)
    baselines = ", ".join(f"{name} {means[name]:.1f}" for name in means if name not in ("θ0", "θ_f"))
    return Claim.from_interval("C1", interval, c1_verdict(interval), (
        f"effective rank (90 % energy) of {s.rank_n} per-batch task-A gradients at θ_f ({means['θ_f']:.1f}) over "
        f"that of the lowest-rank structured baseline of the same seed ({', '.join(sorted(set(s.strongest)))}); "
        f"mean ranks: θ0 {means['θ0']:.1f}, {baselines} (synthetic transformer, D = {s.dim:,})"),
        "ratio of effective ranks", s.seeds)


def c2_claim(s: Summary) -> Claim:
    """C2: the best static capture (every static basis) against the trajectory prefix, per seed."""
    interval, gap = t_interval(s.adam.static), t_interval(s.adam.gap)
    sgd = arm_verdicts(s.sgd, s.random_expected)["C2"]
    return Claim.from_interval("C2", interval, c2_verdict(interval, gap), (
        f"per seed, the best capture of Δ by any static basis at k ≤ {s.k_max} (all of them: gradient SVDs, "
        f"Hessian top-k, task vector, Krylov, sign(g), Adam-preconditioned gradients and Krylov; best: "
        f"{', '.join(sorted(set(s.adam.static_name)))}), Adam recovery; prefix minus best static {_ci(gap)}. "
        f"SGD arm (rate {', '.join(f'{r:g}' for r in s.sgd_lr)}): best static {_mean(s.sgd.static):.2f}, "
        f"prefix {_mean(s.sgd.prefix):.2f}, by the same rule {sgd}"), "fraction of ‖Δ‖²", s.seeds)


def c3_claim(s: Summary, cfg: Config) -> Claim:
    """C3: the halving lags of the top-k gradient subspace along recovery, per seed."""
    interval = t_interval([s.drift_window if lag is None else lag for lag in s.lags])
    found = sum(lag is not None for lag in s.lags)
    return Claim.from_interval("C3", interval, c3_verdict(s.lags, s.drift_window), (
        f"per seed, the step lag at which the overlap of top-{cfg.drift_k} task-A gradient subspaces along "
        f"recovery falls to {threshold('C3', 'overlap_halved'):g} or below: {s.lags_text} ({found} of "
        f"{len(s.lags)} seeds within {s.drift_window} steps; a seed that never halves counts at the window, a "
        f"lower bound)"), "steps", s.seeds)


def c4_claim(s: Summary, cfg: Config) -> Claim:
    """C4: the capture of Δ by the first k_max updates, per seed, with the prefix's own share."""
    interval = t_interval(s.adam.prefix)
    horizons = "; ".join(f"T = {T}: k = {k}, {mean:.2f}" for T, (k, mean, _) in s.by_horizon.items())
    sgd = arm_verdicts(s.sgd, s.random_expected)["C4"]
    return Claim.from_interval("C4", interval, c4_verdict(interval, s.random_expected), (
        f"capture of Δ by the span of the first {s.k_max} of {cfg.recover_steps} Adam recovery updates "
        f"({s.prefix_small:.2f} by the first {s.small}); their own sum holds {_mean(s.adam.share):.2f} of ‖Δ‖² and "
        f"their span captures {_mean(s.adam.remaining):.2f} of the rest θ_r − θ_k; at k = "
        f"{s.k_max / cfg.recover_steps:.2g}·T for shorter horizons: {horizons}. SGD arm: prefix "
        f"{_mean(s.sgd.prefix):.2f} (own share {_mean(s.sgd.share):.2f}), by the same rule {sgd}. Synthetic "
        f"transformer; the paper's {100 * REGISTRY['C4'].paper:g} % is for LoRA (chapter 3)"),
        "fraction of ‖Δ‖²", s.seeds)


def c10_claim(s: Summary) -> Claim:
    """C10: extra accuracy lost on A by the sequential model, under weight noise and forgetting, per seed."""
    noise, forget = _scale(t_interval(s.noise_gaps), 100), _scale(t_interval(s.forget_gaps), 100)
    seq, sim = s.regimes["sequential"], s.regimes["simultaneous"]
    verdict = c10_verdict(t_interval(s.noise_gaps), t_interval(s.forget_gaps), seq[s.task] - sim[s.task])
    return Claim.from_interval("C10", noise, verdict, (
        f"extra accuracy on {s.task} lost by the sequential model (task by task, {s.task} last) over the "
        f"simultaneous one under weight noise (this row) and by the forgetting run ({forget.mean:+.1f} points, "
        f"95 % interval {_ci(forget, digits=1)}); a gap counts above {100 * threshold('C10', 'margin'):g} points. "
        f"Compared on {s.task} only, where both hold the task (clean accuracy {seq[s.task]:.2f} against "
        f"{sim[s.task]:.2f}); still confounded: the sequential model holds only {s.task} (mean accuracy "
        f"{seq['mean']:.2f} over the tasks against {sim['mean']:.2f}), so it is a one-task network compared "
        f"with a four-task one"), "points", s.regime_seeds)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def extra_numbers(s: Summary) -> dict:
    """Per-seed numbers behind the verdicts, for ``metrics.json``'s ``extra`` (the SGD arm's C2/C4
    verdicts by the chapter's rules included; they are not scorecard rows)."""
    arms = {}
    for name, a in (("adam", s.adam), ("sgd", s.sgd)):
        arms[name] = {"prefix": a.prefix, "best_static": a.static, "best_static_name": a.static_name,
                      "prefix_own_share": a.share, "remaining_capture": a.remaining,
                      "verdicts": arm_verdicts(a, s.random_expected),
                      "ci": {"C2_best_static": _ends(t_interval(a.static)), "C2_gap": _ends(t_interval(a.gap)),
                             "C4_prefix": _ends(t_interval(a.prefix))}}
    arms["sgd"].update(lr=s.sgd_lr, accuracy=s.sgd_accuracy)
    return {"c1_rank_ratio": s.rank_ratio, "c1_strongest_baseline": s.strongest, "c1_ranks": s.ranks,
            "arms": arms, "c4_by_horizon": {str(T): {"k": k, "capture": m, "sd": sd} for T, (k, m, sd) in
                                            s.by_horizon.items()},
            "c3_lags": s.lags, "c10_noise_gaps": s.noise_gaps, "c10_forget_gaps": s.forget_gaps}


def _ends(interval: Interval) -> list[float] | None:
    return [interval.low, interval.high] if interval.known else None


def rules_markdown() -> str:
    """The chapter's verdict rules with their thresholds read from the registry, as Markdown bullets."""
    t = {cid: REGISTRY[cid].thresholds for cid in ("C1", "C2", "C3", "C4", "C10")}
    return "\n".join([
        f"- **C1**: ratio of θ_f's effective rank to the lowest-rank structured baseline's, per seed: reproduced "
        f"at or below {t['C1']['rank_ratio_reproduced']:g}, partly at or below {t['C1']['rank_ratio_partly']:g}, "
        f"contradicted above {t['C1']['structured_null']:g}.",
        f"- **C2**: prefix minus best static capture must be above {t['C2']['synthetic_no_gap']:g} (contradicted "
        f"below); then the best static capture below {t['C2']['synthetic_static_max']:g}: reproduced (wholly "
        f"above it: partly).",
        f"- **C3**: halving lag (overlap ≤ {t['C3']['overlap_halved']:g}) at or below the paper's "
        f"{REGISTRY['C3'].paper:g} steps: reproduced; above: not reproduced; above "
        f"{t['C3']['synthetic_stable_lag']:g} steps: contradicted; a seed that never halves allows only the "
        f"last two.",
        f"- **C4**: prefix capture at or above {t['C4']['synthetic_reproduced']:g}: reproduced, at or above "
        f"{t['C4']['synthetic_partly']:g}: partly; below k/D (a random subspace): contradicted.",
        f"- **C10**: each gap (noise, forgetting) at or above {t['C10']['margin']:g} supports, below "
        f"{t['C10']['no_gap']:g} contradicts; reproduced when both support, partly when one does and the other "
        f"does not contradict, contradicted when one contradicts and none supports; inconclusive when the "
        f"clean accuracies on A differ by more than {t['C10']['comparable_accuracy']:g}.",
        "- Every verdict reads the 95 % t-interval over seeds (`lls.claims.decide`): an interval that straddles "
        "a threshold is inconclusive, and one seed gives no interval.",
    ])


def claims(s: Summary, cfg: Config) -> list[Claim]:
    """The chapter's claims C1, C2, C3, C4, C10 (rules above)."""
    return [c1_claim(s), c2_claim(s), c3_claim(s, cfg), c4_claim(s, cfg), c10_claim(s)]
