"""The book's scorecard, generated from the ``metrics.json`` files of a preset's runs.

For each claim C1–C11: the paper's number, ours (mean ± spread over seeds where there are seeds),
the preset, the verdict, and the chapter that measured it. A claim no chapter measured is listed
as "not run". Nothing here is typed by hand: rerun the chapters and the page changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from lls.claims import REGISTRY, VERDICTS
from lls.metrics import results_root
from lls.presets import CHAPTERS


def load_claims(preset: str, root: Path | None = None) -> list[dict]:
    """Claims of the default-parameter run (``results/<chapter>/<preset>/metrics.json``) of each chapter."""
    root = results_root() if root is None else root
    found = []
    for chapter in CHAPTERS:
        path = root / chapter / preset / "metrics.json"
        if path.exists():
            payload = json.loads(path.read_text())
            found += [{**claim, "chapter": chapter} for claim in payload["claims"]]
    return found


def _number(value, unit: str) -> str:
    return "—" if value is None else f"{value:.3g} {unit}".strip()


def _interval(claim: dict) -> str:
    """``[low, high]`` and how it was computed, or what the spread is when there is no interval."""
    if claim.get("ci"):
        low, high = claim["ci"]
        return f"[{low:.3g}, {high:.3g}] ({claim.get('interval_method', '')})"
    if claim.get("spread") is not None:
        return f"± {claim['spread']:.2g} ({claim.get('interval_method') or 'SD across seeds'})"
    return claim.get("interval_method") or "—"


def _label(claim: dict) -> str:
    """The claim id, with what distinguishes several rows of one claim (concept, model variant, reading)."""
    qualifiers = [claim[key] for key in ("concept", "model_variant", "reading") if claim.get(key)]
    return f"{claim['id']} ({', '.join(qualifiers)})" if qualifiers else claim["id"]


def verdict_counts(claims: list[dict]) -> dict[str, int]:
    """How many scorecard rows carry each verdict of :data:`VERDICTS` (claims not run included)."""
    ran = {c["id"] for c in claims}
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS}
    counts["not run"] += sum(cid not in ran for cid in REGISTRY)
    return counts


def scorecard_markdown(preset: str, root: Path | None = None) -> str:
    """A Markdown table with one row per measured claim (several chapters may measure one claim)."""
    claims = load_claims(preset, root)
    rows = ["| claim | statement | kind | paper | ours | n | interval | verdict | chapter | what we measured |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for cid, spec in REGISTRY.items():
        mine = [c for c in claims if c["id"] == cid]
        if not mine:
            rows.append(f"| {cid} | {spec.statement} | {spec.kind} | | — | | | not run | — | no chapter measures it "
                        f"on {preset} |")
        for c in mine:
            paper = "qualitative" if c["paper"] is None else _number(c["paper"], c.get("paper_unit") or "")
            rows.append(f"| {_label(c)} | {spec.statement} | {c.get('kind') or spec.kind} | {paper} | {_number(c['value'], c.get('unit', ''))} "
                        f"| {c.get('n') or '—'} | {_interval(c)} | **{c['verdict']}** | "
                        f"[{c['chapter']}](../notebooks/{c['chapter']}.ipynb) | {c['note']} |")
    counts = ", ".join(f"{v}: {k}" for v, k in verdict_counts(claims).items() if k)
    return f"Verdicts on {preset}: {counts}.\n\n" + "\n".join(rows)


VERDICT_COLORS = {"reproduced": "#009E73", "verified (math)": "#0072B2", "partly": "#E69F00",
                  "inconclusive": "#999999", "not reproduced": "#D55E00", "contradicted": "#A51C30",
                  "not run": "#DDDDDD"}


def scorecard_figure(claims: list[dict]):
    """A dot plot with one row per measured claim: ours with its interval (coloured by verdict)
    and the paper's number (a black diamond) where it has one, each row on its own scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = [c for c in claims if c["value"] is not None]
    fig = make_subplots(rows=max(len(rows), 1), cols=1, vertical_spacing=0.5 / max(len(rows), 1))
    for i, c in enumerate(rows, start=1):
        low, high = c["ci"] if c.get("ci") else (c["value"], c["value"])
        label = f"{c['id']} · {c['chapter'][3:]}"
        fig.add_trace(go.Scatter(x=[c["value"]], y=[label], mode="markers", name=c["verdict"],
                                 legendgroup=c["verdict"], showlegend=False,
                                 marker={"size": 11, "color": VERDICT_COLORS[c["verdict"]]},
                                 error_x={"type": "data", "symmetric": False, "array": [high - c["value"]],
                                          "arrayminus": [c["value"] - low], "thickness": 2},
                                 hovertemplate=f"{label}: %{{x:.3g}} {c.get('unit', '')} ({c['verdict']})<extra></extra>"),
                      row=i, col=1)
        if c["paper"] is not None:
            fig.add_trace(go.Scatter(x=[c["paper"]], y=[label], mode="markers", name="paper", showlegend=False,
                                     marker={"symbol": "diamond", "size": 10, "color": "black"},
                                     hovertemplate=f"paper: %{{x:.3g}} {c.get('paper_unit') or ''}<extra></extra>"),
                          row=i, col=1)
    for verdict in dict.fromkeys(c["verdict"] for c in rows):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=verdict,
                                 marker={"size": 11, "color": VERDICT_COLORS[verdict]}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="paper",
                             marker={"symbol": "diamond", "size": 10, "color": "black"}))
    fig.update_xaxes(showgrid=True, tickfont={"size": 10}, nticks=6)
    fig.update_layout(title="Ours against the paper, per claim (bar: the interval the verdict used)",
                      height=90 + 55 * max(len(rows), 1), margin={"l": 150})
    return fig


def scorecard_page(preset: str, root: Path | None = None) -> str:
    """The whole ``scorecard.md`` page of the book."""
    return (
        "# Scorecard\n\n"
        f"Generated by `python -m lls scorecard --preset {preset}` from the `metrics.json` file that each "
        "chapter wrote when the book was built; never edited by hand. *Ours* is the mean over the *n* "
        "independent units the row names (seeds or runs); the verdict is decided on the *interval*, never on "
        "the mean alone, against the rule in the claims registry (`lls/claims.py`); where a row shows a spread "
        "that is not an SD across independent seeds, it says what it is. *kind* tells a check of a "
        "mathematical identity (`math`) from a measurement on trained models (`empirical`). The paper's "
        "numbers come from its abstract and reviews (see the introduction); our protocol is reconstructed, so "
        "a difference can come from the protocol as much as from the claim. Rules changed after results had "
        "been seen are listed on [their own page](rules_changed.md).\n\n"
        + _figure_html(preset, root) + "\n\n" + scorecard_markdown(preset, root) + "\n"
    )


def _figure_html(preset: str, root: Path | None) -> str:
    """The dot plot as an HTML block (plotly.js comes with the book) with its caption."""
    import lls.plots  # noqa: F401  (registers the house template)

    fig = scorecard_figure(load_claims(preset, root))
    plot = fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})
    return (f'<figure class="lls-figure">{plot}<figcaption>Each row is one claim as one chapter measured it, on '
            f"its own scale and unit (see the table). Dot: our value; bar: the interval the verdict was decided "
            f"on (none where the row has a single run); diamond: the paper's number.</figcaption></figure>")


def rules_changed_page() -> str:
    """The book page listing every rule changed after results had been seen, from the registry."""
    rows = ["| claim | commit | what changed | why, and what had been seen |", "|---|---|---|---|"]
    for spec in REGISTRY.values():
        rows += [f"| {spec.id} | `{c.commit}` | {c.what} | {c.why} |" for c in spec.changes]
    fixed = ["| claim | rule first fixed in |", "|---|---|"]
    fixed += [f"| {s.id} | {', '.join(f'`{c}`' for c in s.fixed_in) or '—'} |" for s in REGISTRY.values()]
    return (
        "# Rules changed after the data\n\n"
        "A verdict rule should be fixed before the run that judges it. Changing one after seeing results is "
        "allowed, but it must be said. This page is generated from the claims registry (`lls/claims.py`): "
        "every change below was made after some results had been seen, with the commit that made it, so "
        "a reader can weigh those verdicts accordingly.\n\n" + "\n".join(rows)
        + "\n\nWhere each claim's rule was first fixed:\n\n" + "\n".join(fixed) + "\n"
    )
