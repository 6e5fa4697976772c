"""Chapter 5's tables and generated sentences (Markdown), from the :class:`Summary` only."""

from __future__ import annotations

from lls.chapters.steering.analysis import Summary
from lls.chapters.steering.auc import clears_gate
from lls.chapters.steering.claims import c8_claim, c9_claim
from lls.tables import markdown_table


def _ci(claim) -> str:
    """``[low, high]`` of a claim's interval, or "—"."""
    return f"[{claim.ci[0]:+.2f}, {claim.ci[1]:+.2f}]" if claim.ci else "—"


def c8_table(summary: Summary, preset: str) -> str:
    """C8: one row per (model, concept, variant, shift) with its interval, nulls, ceiling, verdict."""
    head = ["model", "concept", "variant", "shift", "cosine", "95 % CI", "random null", "shuffled", "ceiling",
            "of ceiling", "consistency", "verdict"]
    rows = []
    for r in summary.c8:
        c = c8_claim(r, preset)
        rows.append([r.model, r.concept, r.variant, r.shift, f"{r.cosine.mean:+.2f}", _ci(c), f"{r.null_bound:.2f}",
                     f"{r.shuffled:+.2f}", f"{r.ceiling:+.2f}", (f"{r.of_ceiling:+.2f}" if r.ceiling > 0 else "— (ceiling ≤ 0)"), f"{r.consistency:.2f}",
                     c.verdict])
    return markdown_table(head, rows)


def c9_table(summary: Summary, preset: str) -> str:
    """Table 6, our version: one row per (model, concept, variant, target): the step vector's test
    gain with its interval, CAA's, the best null's, anti-steerable fractions, side cost, verdict."""
    head = ["model", "concept", "variant", "target", "block, scale", "unsteered acc.", "step gain (pts)", "95 % CI",
            "CAA gain", "best null", "anti-steerable (step / CAA)", "side cost (Δppl %, step)", "verdict"]
    rows = []
    for r in summary.c9:
        c = c9_claim(r, preset)
        rows.append([r.model, r.concept, r.variant, r.target, f"{r.layer}, {r.scale:g}", f"{100 * r.base_accuracy:.0f} %",
                     f"{r.step.mean:+.1f}", _ci(c), f"{r.gains['CAA']:+.1f}", f"{r.null}: {r.gains[r.null]:+.1f}",
                     f"{r.anti['step (all params)']:.2f} / {r.anti['CAA']:.2f}", f"{r.side['step (all params)']:+.1f}",
                     c.verdict])
    return markdown_table(head, rows)


def tuning_table(summary: Summary) -> str:
    """The format tuning of each model: AUROC (95 % interval) on held-out truth statements before/after."""
    head = ["model", "tuned on", "split", "AUROC before", "AUROC after", "loss first → last (nats)"]
    rows = []
    for m, t in summary.tunings.items():
        for split in ("validation", "test"):
            b, a = t.auroc[f"before {split}"], t.auroc[f"after {split}"]
            rows.append([m, ", ".join(t.topics), f"{split} ({a.n} statements)", f"{b.mean:.2f} [{b.low:.2f}, {b.high:.2f}]",
                         f"{a.mean:.2f} [{a.low:.2f}, {a.high:.2f}]", f"{t.loss[0]:.2f} → {t.loss[1]:.2f}"])
    return markdown_table(head, rows)


def gate_sentence(summary: Summary, gate: float) -> str:
    """One Markdown sentence per tuned model: its validation AUROC interval (the gate) and
    whether it clears ``gate`` (0: the gate is off)."""
    out = []
    for m, t in summary.tunings.items():
        a = t.auroc["after validation"]
        passed = clears_gate(a, gate)
        verdict = ("the gate is off on this preset" if gate == 0.0 else
                   f"{'wholly above' if passed else 'not wholly above'} `tuning_gate` = {gate:g}")
        out.append(f"**Tuning gate** ({m}): AUROC {a.mean:.2f}, 95 % interval [{a.low:.2f}, {a.high:.2f}] on the "
                   f"{a.n} validation statements, {verdict}; the tuned variant "
                   f"{'is used' if passed else 'stops here'}.")
    return " ".join(out)


def verdict_sentence(summary: Summary, preset: str) -> str:
    """One Markdown sentence counting the verdicts of the claim model's C8 and C9 rows."""
    out = []
    for cid, rows, build in (("C8", summary.c8, c8_claim), ("C9", summary.c9, c9_claim)):
        verdicts = [build(r, preset).verdict for r in rows if r.model == summary.claim_model]
        counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
        out.append(f"**{cid}** on {summary.claim_model}: " + (", ".join(f"{n} × {v}" for v, n in counts.items())
                                                              or "no row run"))
    return "; ".join(out) + "."
