"""Chapter 5's verdicts on C8 and C9, judged on the :attr:`Summary.claim_model`.

The rules were fixed before any run; their thresholds come from :data:`lls.claims.REGISTRY`.
"""

from __future__ import annotations

from lls.chapters.steering.analysis import ModelSummary, Summary
from lls.chapters.steering.config import Config
from lls.claims import REGISTRY, Claim, threshold


def c8_bar() -> float:
    """The cosine C8 needs for *reproduced*: the paper's minus ``threshold("C8", "tolerance")``."""
    return REGISTRY["C8"].paper - threshold("C8", "tolerance")


def c8_verdict(s: ModelSummary) -> str:
    """C8: *reproduced* when the mean cosine at the steering block is above both nulls (random
    directions' 95 % quantile, and the shuffled-label step's largest |cosine|) and at least the
    paper's cosine minus ``threshold("C8", "tolerance")`` (:func:`c8_bar`); *partly* when above both nulls only;
    *not reproduced* otherwise."""
    above_nulls = s.cos_step > s.null_q95 and s.cos_step > s.cos_shuffled_max
    if above_nulls and s.cos_step >= c8_bar():
        return "reproduced"
    return "partly" if above_nulls else "not reproduced"


def c9_verdict(s: ModelSummary) -> str:
    """C9: *reproduced* when the gradient-step vector's best accuracy gain is positive, beats the
    random control's and reaches at least ``threshold("C9", "caa_fraction")`` of CAA's, and CAA
    itself beats the random control; *partly* when the step beats the random control only; *not
    reproduced* otherwise."""
    step, caa, rnd = (s.row(v)["target_gain"] for v in ("step (all params)", "CAA", "random"))
    beats_random = step > rnd
    if beats_random and step > 0 and caa > rnd and step >= threshold("C9", "caa_fraction") * caa:
        return "reproduced"
    return "partly" if beats_random else "not reproduced"


def c8_claim(s: ModelSummary, preset: str) -> Claim:
    """Claim C8 of one model (:func:`c8_verdict`), with what was measured in its note."""
    note = (f"{s.model} ({preset}), block {s.layer}: cosine of the mean last-token activation shift "
            f"of one gradient step (all parameters) with CAA, over {len(s.seeds)} data splits; nulls: "
            f"random 95 % {s.null_q95:.2f}, shuffled labels max |cos| {s.cos_shuffled_max:.2f}; LoRA step "
            f"{s.cos_lora:+.2f}, two-answer (labels-only) step {s.cos_contrast:+.2f}")
    return Claim("C8", s.cos_step, c8_verdict(s), note, unit="cosine", spread=s.cos_step_sd, seeds=s.seeds)


def c9_claim(s: ModelSummary, preset: str) -> Claim:
    """Claim C9 of one model (:func:`c9_verdict`), with what was measured in its note."""
    step, caa, rnd = (s.row(v) for v in ("step (all params)", "CAA", "random"))
    note = (f"{s.model} ({preset}), block {s.layer}, {s.n_eval} held-out statements: best accuracy "
            f"gain of the step vector at side cost {step['side_cost']:+.1f} % perplexity; CAA "
            f"{caa['target_gain']:+.1f} pts at {caa['side_cost']:+.1f} %, random {rnd['target_gain']:+.1f} pts; "
            f"lean profile correlation with CAA {s.similarity['step (all params)']:.2f}. "
            f"Paper: OLMo BoolQ {REGISTRY['C9'].paper:+g} at -17 (units not stated)")
    return Claim("C9", step["target_gain"], c9_verdict(s), note, unit="acc. pts")


def claims(summary: Summary, cfg: Config) -> list[Claim]:
    """C8 and C9, judged on the summary's claim model."""
    return [c8_claim(summary.judged, cfg.preset), c9_claim(summary.judged, cfg.preset)]
