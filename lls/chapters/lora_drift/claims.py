"""Chapter 3's verdicts on C2, C3 and C4, decided on 95 % intervals over runs; thresholds from :mod:`lls.claims`.

Each rule is a small function of intervals (never of a point estimate), unit-tested to give every
verdict it can give. C2 and C4 read the runs where task A was forgotten; the others are reported
beside (:mod:`lls.chapters.lora_drift.analysis`).
"""

from __future__ import annotations

import dataclasses

from lls.chapters.lora_drift.analysis import Summary, fmt
from lls.claims import REGISTRY, Claim, decide, threshold
from lls.stats import Interval, t_interval

SUPPORT = ("contradicted", "not reproduced", "inconclusive", "partly", "reproduced")
"""Verdicts from least to most supportive: C2 takes its weakest basis."""


def c4_verdict(capture: Interval | None) -> str:
    """C4: *reproduced* when the interval of the prefix capture at k = k_fraction·T_max lies at or above the
    paper's 0.77 minus ``lora_tolerance``; *partly* when within [``lora_partly``, that); *contradicted*
    when wholly below ``lora_minority`` (the prefix holds a clear minority of Delta); *not reproduced*
    when wholly below ``lora_partly`` otherwise; else (or without runs) *inconclusive*."""
    if capture is None:
        return "inconclusive"
    return decide(capture, REGISTRY["C4"].paper - threshold("C4", "lora_tolerance"),
                  partly_at=threshold("C4", "lora_partly"), null=threshold("C4", "lora_minority"))


def c2_basis_verdict(ratio: Interval | None) -> str:
    """One static basis: its capture over the prefix's at the same k. *reproduced* (it misses) when the
    interval lies below ``lora_prefix_fraction``; *contradicted* when wholly above ``lora_null_ratio``
    (the static basis captures more than the prefix); *not reproduced* when wholly above the fraction."""
    if ratio is None:
        return "inconclusive"
    return decide(ratio, threshold("C2", "lora_prefix_fraction"), null=threshold("C2", "lora_null_ratio"),
                  higher_supports=False)


def c2_verdict(ratios: dict[str, Interval | None]) -> tuple[str, str | None]:
    """C2 over *every* static basis: the least supportive basis verdict (ties: the higher mean ratio),
    with that basis's name; *inconclusive* without bases."""
    if not ratios:
        return "inconclusive", None
    name = min(ratios, key=lambda n: (SUPPORT.index(c2_basis_verdict(ratios[n])),
                                      -(ratios[n].mean if ratios[n] else 0.0)))
    return c2_basis_verdict(ratios[name]), name


def c3_verdict(lags: list[float | None], end_ratio: Interval | None, window: int) -> str:
    """C3: when every run's cross-set overlap falls to ``lora_ceiling_fraction`` of its noise ceiling,
    the interval of the lags against the paper's 100 steps (*reproduced* at or below, *not reproduced*
    wholly above); when some run's does not within the window: *contradicted* if the overlap at the
    window's end over the ceiling lies wholly above ``lora_no_drift`` (no drift beyond noise), *not
    reproduced* if no run's falls within a window of at least 100 steps, else *inconclusive*."""
    finite = [lag for lag in lags if lag is not None]
    paper = REGISTRY["C3"].paper
    if lags and len(finite) == len(lags):
        return decide(t_interval(finite, unit="runs"), paper, higher_supports=False)
    if end_ratio is not None and end_ratio.known and end_ratio.low > threshold("C3", "lora_no_drift"):
        return "contradicted"
    return "not reproduced" if lags and not finite and window >= paper else "inconclusive"


def c4_claim(s: Summary) -> Claim:
    """C4 at the longest horizon, with the other horizons, the prefix's own share and the runs left out."""
    t, k = s.horizons[-1], s.horizon_ks[-1]
    m = s.horizon[t]
    note = (f"capture of the LoRA recovery displacement by the first k = {k} of T = {t} Adam updates "
            f"(k = {s.k_fraction:g}·T), over the {sum(s.forgotten)} of {s.n_runs} runs where B undid at least "
            f"{threshold('C4', 'forgotten_undone'):g} of A's loss gain (pairs chosen by the forgetting screen); the "
            f"prefix's own share {fmt(m['own'])}, its capture of the rest θ_T − θ_k {fmt(m['remaining'])}; other "
            f"horizons: " + "; ".join(f"T = {h}: {fmt(s.horizon[h]['prefix'])}" for h in s.horizons[:-1])
            + f"; runs where A was not forgotten (not counted): {fmt(s.c4_not_forgotten)}")
    if s.c4 is None:
        return Claim("C4", None, "inconclusive", note, "fraction of ‖Δ‖²", seeds=s.seeds)
    return Claim.from_interval("C4", s.c4, c4_verdict(s.c4), note, "fraction of ‖Δ‖²", seeds=s.seeds)


def c2_claim(s: Summary) -> Claim:
    """C2: the least supportive static basis's capture over the prefix's, every basis listed."""
    verdict, name = c2_verdict(s.static_ratio)
    note = (f"capture of Δ by each static basis (computed at θ_f before recovery) over the prefix's at k = "
            f"{s.static_k} (1 for the task-A adapter), runs where A was forgotten; the verdict is the weakest "
            f"basis's ({name}); every basis: " + "; ".join(f"{n} {fmt(r, 2)}" for n, r in s.static_ratio.items())
            + "; rule: a basis misses when its ratio's interval lies below "
            f"{threshold('C2', 'lora_prefix_fraction'):g}; SGD arm in the chapter")
    ratio = s.static_ratio.get(name) if name else None
    if ratio is None:
        return Claim("C2", None, verdict, note, "ratio to the prefix's capture", seeds=s.seeds)
    return Claim.from_interval("C2", ratio, verdict, note, "ratio to the prefix's capture", seeds=s.seeds)


def c3_claim(s: Summary) -> Claim:
    """C3: the lag (steps) at which the drift falls to a fraction of the noise ceiling."""
    verdict = c3_verdict(s.halving_lags, s.end_ratio, s.drift_window)
    found = sum(lag is not None for lag in s.halving_lags)
    note = (f"recovery steps until the overlap of top-{s.drift_k} gradient subspaces from two independent batch "
            f"sets falls to {threshold('C3', 'lora_ceiling_fraction'):g} of their same-step overlap (the noise "
            f"ceiling, {fmt(s.ceiling, 2)}); checkpoints every {s.checkpoint_every} steps over {s.drift_window}; "
            f"per run {s.halving_lags} (None: not within the window); overlap at lag {s.drift_window} over the "
            f"ceiling {fmt(s.end_ratio, 2)}")
    if s.lag is None:
        return Claim("C3", None, verdict, note, "steps", seeds=s.seeds)
    lag = dataclasses.replace(s.lag, method=f"{s.lag.method} (the {found} of {len(s.halving_lags)} runs whose "
                                            "overlap falls that low within the window)")
    return Claim.from_interval("C3", lag, verdict, note, "steps", seeds=s.seeds)


def claims(s: Summary) -> list[Claim]:
    """C2, C3, C4 from the chapter's summary, with the verdict rules stated in the chapter."""
    return [c2_claim(s), c3_claim(s), c4_claim(s)]


def rules_text() -> str:
    """The verdict rules of C2, C3 and C4 in one Markdown paragraph, every number read from the registry."""
    c2, c3, c4 = (REGISTRY[c].thresholds for c in ("C2", "C3", "C4"))
    top = REGISTRY["C4"].paper - c4["lora_tolerance"]
    return (
        f"**Rules** (fixed before the cpu run that judges them; 95 % t-intervals over runs). "
        f"*Screen:* a candidate pair passes when, on a screening seed of its own, training on B undoes at least "
        f"{c4['lora_screen_undone']:g} of the drop in task-A test loss that A's training achieved; a measured run "
        f"counts as forgotten on the same criterion ({c4['forgotten_undone']:g}). "
        f"*C4* (forgotten runs only): reproduced when the interval of the prefix capture lies at or above "
        f"{top:.2f} (the paper's {REGISTRY['C4'].paper:g} minus {c4['lora_tolerance']:g}), partly within "
        f"[{c4['lora_partly']:g}, {top:.2f}), contradicted when wholly below {c4['lora_minority']:g}, not reproduced "
        f"when wholly below {c4['lora_partly']:g} otherwise, else inconclusive. "
        f"*C2* (forgotten runs, every static basis): a basis misses when the interval of its capture over the "
        f"prefix's lies below {c2['lora_prefix_fraction']:g}; it contradicts C2 when wholly above "
        f"{c2['lora_null_ratio']:g}; C2 takes the weakest basis. "
        f"*C3* (all runs): the lag at which the cross-set overlap over its noise ceiling falls to "
        f"{c3['lora_ceiling_fraction']:g} or below; reproduced when the interval of the lags lies at or below the "
        f"paper's {REGISTRY['C3'].paper:g} steps; when some run does not fall that low within the window, "
        f"contradicted if the ratio at the window's end lies wholly above {c3['lora_no_drift']:g}, else "
        f"inconclusive.")
