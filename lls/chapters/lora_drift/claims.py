"""Chapter 3's verdicts on C2, C3 and C4, from its :class:`Summary`; thresholds from :mod:`lls.claims`."""

from __future__ import annotations

from lls.chapters.lora_drift.analysis import Summary
from lls.claims import REGISTRY, Claim, threshold


def c4_verdict(s: Summary) -> str:
    """C4's rule: *reproduced* if the mean capture at k_ref is at least the paper's 0.77 minus
    ``lora_tolerance``, *partly* if at least ``lora_partly``, else *not reproduced*; and at most
    *partly* when task A was forgotten in fewer than half of the runs (the protocol's premise,
    A forgotten then recovered, failed in most runs)."""
    c4 = s.prefix_at_k_ref[0]
    if c4 >= REGISTRY["C4"].paper - threshold("C4", "lora_tolerance"):
        verdict = "reproduced"
    elif c4 >= threshold("C4", "lora_partly"):
        verdict = "partly"
    else:
        verdict = "not reproduced"
    if verdict == "reproduced" and sum(s.forgotten) < threshold("C4", "forgotten_majority") * len(s.forgotten):
        verdict = "partly"
    return verdict


def c4_claim(s: Summary) -> Claim:
    """C4: capture of Delta by the first k_ref recovery updates, with the forgetting it rests on."""
    losses = " / ".join(f"{s.task_a_loss[p]:.2f}" for p in ("after A", "after B", "after recovery"))
    return Claim("C4", s.prefix_at_k_ref[0], c4_verdict(s), unit="fraction", spread=s.prefix_at_k_ref[1],
                 seeds=s.seeds,
                 note=f"capture of the LoRA recovery displacement by the first k={s.k_ref} of {s.recover_steps} "
                      f"recovery updates ({s.n_runs} runs); {REGISTRY['C4'].paper * 100:g} % first reached at "
                      f"k = {s.k_reaching_paper}; mean task-A test loss after A / after B / after recovery: "
                      f"{losses}; A forgotten (B undid at least half of A's loss gain) in {sum(s.forgotten)} of "
                      f"{len(s.forgotten)} runs")


def c2_verdict(s: Summary) -> str:
    """C2's rule: *reproduced* if the best of the paper's static bases (:attr:`Summary.paper_static`)
    captures less than ``lora_prefix_fraction`` (one half) of what the prefix of the same size
    captures at static_k, else *not reproduced*."""
    best = max(m for m, _ in s.paper_static.values())
    return "reproduced" if best < s.prefix_at_static_k[0] * threshold("C2", "lora_prefix_fraction") \
        else "not reproduced"


def c2_claim(s: Summary) -> Claim:
    """C2: the best static basis's capture at static_k, against the prefix."""
    name = max(s.paper_static, key=lambda n: s.paper_static[n][0])
    best, best_sd = s.paper_static[name]
    return Claim("C2", best, c2_verdict(s), unit="fraction", spread=best_sd, seeds=s.seeds,
                 note=f"best static basis ({name}; of {', '.join(s.paper_static)}) captures {best:.2f} of the "
                      f"recovery displacement at k={s.static_k}, the prefix {s.prefix_at_static_k[0]:.2f}; "
                      "rule: static misses if below half the prefix")


def c3_verdict(s: Summary) -> str:
    """C3's rule: *reproduced* if in every run the drift overlap falls to ``overlap_halved`` within the
    paper's 100 steps, *partly* if it does so (at any lag) in some run, else *not reproduced*."""
    finite = [lag for lag in s.halving_lags if lag is not None]
    if finite and len(finite) == len(s.halving_lags) and max(finite) <= REGISTRY["C3"].paper:
        return "reproduced"
    return "partly" if finite else "not reproduced"


def c3_claim(s: Summary) -> Claim:
    """C3: the mean lag (steps) at which the drift overlap halves, over the runs where it does."""
    return Claim("C3", s.halving_lag[0], c3_verdict(s), unit="steps", spread=s.halving_lag[1], seeds=s.seeds,
                 note=f"lag at which the overlap of top-{s.drift_k} adapter-gradient subspaces falls to 1/2 "
                      f"(per run: {s.halving_lags}; None = not within {s.recover_steps} steps)")


def claims(s: Summary) -> list[Claim]:
    """C2, C3, C4 from the chapter's summary, with the verdict rules stated in the chapter."""
    return [c2_claim(s), c3_claim(s), c4_claim(s)]
