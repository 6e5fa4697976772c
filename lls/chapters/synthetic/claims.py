"""Chapter 2's verdicts: C1, C2, C3, C4 and C10 from the :class:`Summary`, thresholds from the registry."""

from __future__ import annotations

from lls.chapters.synthetic.analysis import Summary
from lls.chapters.synthetic.config import Config
from lls.claims import REGISTRY, Claim, threshold


def c1_verdict(rank_ratio: float) -> str:
    """C1: reproduced when the effective rank at theta_f is at most ``rank_ratio_reproduced`` (a quarter)
    of the unstructured baseline's; partly when at most ``rank_ratio_partly`` (0.6) of it."""
    if rank_ratio <= threshold("C1", "rank_ratio_reproduced"):
        return "reproduced"
    return "partly" if rank_ratio <= threshold("C1", "rank_ratio_partly") else "not reproduced"


def c2_verdict(best_static: float, prefix: float) -> str:
    """C2: reproduced when the best static basis captures less than ``synthetic_static_max`` (half) of Δ
    and less than the trajectory prefix; partly when only less than the prefix."""
    if best_static < prefix:
        return "reproduced" if best_static < threshold("C2", "synthetic_static_max") else "partly"
    return "not reproduced"


def c3_verdict(lags: list[int | None]) -> str:
    """C3: reproduced when on every seed the overlap halves within the paper's 100 steps; partly when it
    does on some seed; not reproduced when on none (``None``: never halved in the run)."""
    within = sum(lag is not None and lag <= REGISTRY["C3"].paper for lag in lags)
    return "reproduced" if within == len(lags) else "partly" if within else "not reproduced"


def c4_verdict(prefix: float) -> str:
    """C4: reproduced when the first ``k_max`` recovery updates capture at least ``synthetic_reproduced``
    (half, "most") of Δ; partly when at least ``synthetic_partly`` (a quarter)."""
    if prefix >= threshold("C4", "synthetic_reproduced"):
        return "reproduced"
    return "partly" if prefix >= threshold("C4", "synthetic_partly") else "not reproduced"


def c10_verdict(noise_gap: float, forget_gap: float) -> str:
    """C10: a gap counts when the sequential model loses more than ``margin`` (2 points) more accuracy
    on task A than the simultaneous one; reproduced when it does under noise and under forgetting,
    partly under one of them."""
    hits = (noise_gap > threshold("C10", "margin")) + (forget_gap > threshold("C10", "margin"))
    return {2: "reproduced", 1: "partly", 0: "not reproduced"}[hits]


def _sd(value: float | None, scale: float = 1.0) -> float | None:
    return None if value is None else scale * value


def claims(s: Summary, cfg: Config) -> list[Claim]:
    """The chapter's claims C1, C2, C3, C4, C10 (rules above)."""
    prefix, prefix_sd = s.prefix
    best, best_sd = s.capture[s.best_static]
    lag, lag_sd = s.lag
    found = sum(lag is not None for lag in s.lags)
    paper_c4 = REGISTRY["C4"].paper
    noise_gap, noise_sd = s.noise_gap
    margin = threshold("C10", "margin")
    return [
        Claim("C1", s.rank_f[0], c1_verdict(s.rank_ratio),
              f"effective rank (90 % energy) of {s.rank_n} per-batch task-A gradients at θ_f; {s.rank_0:.1f} at θ0, "
              f"{s.rank_u:.1f} for unstructured rows of equal norm (synthetic transformer, D = {s.dim:,})",
              "dims", s.rank_f[1], s.seeds),
        Claim("C2", best, c2_verdict(best, prefix),
              f"best static basis at k = {s.k_max} ({s.best_static}) captures this share of Δ, against {prefix:.2f} "
              f"for the trajectory prefix; Krylov basis at θ_f (beyond the paper, also static): {s.krylov:.2f}",
              "fraction of ‖Δ‖²", best_sd, s.seeds),
        Claim("C3", lag, c3_verdict(s.lags),
              f"step lag at which the overlap of top-{cfg.drift_k} task-A gradient subspaces along recovery falls "
              f"to {threshold('C3', 'overlap_halved'):g} or below ({found} of {len(s.lags)} seeds fall that low "
              f"within {s.drift_window} steps)", "steps", lag_sd, s.seeds),
        Claim("C4", prefix, c4_verdict(prefix),
              f"capture of Δ by the first {s.k_max} of {cfg.recover_steps} recovery updates ({s.prefix_small:.2f} by "
              f"the first {s.small}), synthetic transformer (the paper's {100 * paper_c4:g} % is for LoRA; see "
              f"chapter 3)", "fraction of ‖Δ‖²", prefix_sd, s.seeds),
        Claim("C10", 100 * noise_gap, c10_verdict(noise_gap, s.forget_gap),
              f"extra accuracy on {s.task} lost by the sequential model (task by task, {s.task} last) over the "
              f"simultaneous one under weight noise σ = {cfg.noise_sigma:g}; under the forgetting run it loses "
              f"{100 * s.forget_gap:+.1f} points more (a gap counts above {100 * margin:g} points)", "points",
              _sd(noise_sd, 100), s.regime_seeds),
    ]
