"""Chapter 5's claims: one C8 row per (concept, variant, shift) and one C9 row per (concept,
variant, target) of the :attr:`Summary.claim_model`, each decided by
:mod:`lls.chapters.steering.rules` on its interval (rules fixed before the run; thresholds from
:data:`lls.claims.REGISTRY`). Every row names its ``concept``, its ``model_variant`` (``untuned``,
``tuned``) and its ``reading``: the shift for C8 (``mean shift``, the paper's; ``ΔCAA``), the
target for C9 (``question``, the paper's for truth; ``likelihood``). A variant that was not run
(a tuned model still at chance) gives ``not run`` rows saying why.
"""

from __future__ import annotations

import dataclasses

from lls.chapters.steering.analysis import C8Row, C9Row, Summary
from lls.chapters.steering.config import Config
from lls.chapters.steering.rules import c8_verdict, c9_verdict
from lls.chapters.steering.targets import targets_of
from lls.claims import REGISTRY, Claim, threshold


def _tagged(claim: Claim, concept: str, variant: str, reading: str) -> Claim:
    """``claim`` with its ``concept``, ``model_variant`` and ``reading`` set."""
    return dataclasses.replace(claim, concept=concept, model_variant=variant, reading=reading)


def c8_claim(r: C8Row, preset: str) -> Claim:
    """The C8 claim of one :class:`C8Row` (:func:`c8_verdict`)."""
    verdict = c8_verdict(r.cosine, r.null_bound, r.vs_shuffled)
    note = (f"{r.model} ({preset}), {r.concept}, {r.variant} model, block {r.layer}: cosine of the step's {r.shift} "
            f"(all parameters) with CAA; nulls: random directions {threshold('C8', 'null_quantile'):.0%} of |cos| "
            f"{r.null_bound:.2f}, shuffled-label step {r.shuffled:+.2f}; split-half CAA ceiling {r.ceiling:+.2f} "
            f"(cosine = {r.of_ceiling:.2f} of it); LoRA step {r.lora:+.2f}; contrast consistency {r.consistency:.2f}")
    claim = Claim.from_interval("C8", r.cosine, verdict, note, unit="cosine")
    return _tagged(claim, r.concept, r.variant, r.shift)


def c9_claim(r: C9Row, preset: str) -> Claim:
    """The C9 claim of one :class:`C9Row` (:func:`c9_verdict`)."""
    verdict = c9_verdict(r.step, r.vs_null, r.vs_caa)
    note = (f"{r.model} ({preset}), {r.concept}, {r.variant} model, {r.target} target, {r.n_units} test units: "
            f"accuracy gain of the step vector (block {r.layer}, scale {r.scale:g}, both picked on validation) at "
            f"side cost {r.side['step (all params)']:+.1f} % perplexity; CAA {r.gains['CAA']:+.1f} pts; best null "
            f"({r.null}) {r.gains[r.null]:+.1f} pts; anti-steerable fraction step {r.anti['step (all params)']:.2f}, "
            f"CAA {r.anti['CAA']:.2f}. Paper: OLMo BoolQ {REGISTRY['C9'].paper:+g} at -17 (units not stated)")
    claim = Claim.from_interval("C9", r.step, verdict, note, unit="acc. pts")
    return _tagged(claim, r.concept, r.variant, r.target)


def not_run_claims(summary: Summary, model: str) -> list[Claim]:
    """``not run`` C8 and C9 rows of every skipped (concept, variant) of ``model``, saying why."""
    out = []
    for (name, concept, variant), why in summary.skipped.items():
        if name != model:
            continue
        out += [_tagged(Claim("C8", None, "not run", why), concept, variant, shift) for shift in ("mean shift", "ΔCAA")]
        out += [_tagged(Claim("C9", None, "not run", why), concept, variant, t) for t in targets_of(concept, variant)]
    return out


def claims(summary: Summary, cfg: Config) -> list[Claim]:
    """Every C8 and C9 row of the summary's claim model (then the rows not run)."""
    model = summary.claim_model
    return ([c8_claim(r, cfg.preset) for r in summary.c8 if r.model == model]
            + [c9_claim(r, cfg.preset) for r in summary.c9 if r.model == model] + not_run_claims(summary, model))
