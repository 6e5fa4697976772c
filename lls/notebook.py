"""What every chapter notebook does at its start and its end.

``cfg = start(chapter, preset, **params)`` validates the parameters (before any heavy work),
seeds the random generators and prints the provenance line; ``finish(cfg, claims)`` writes
``metrics.json`` and shows the chapter's claims next to the paper's numbers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np

from lls.claims import Claim
from lls.metrics import save
from lls.presets import Config, resolve
from lls.provenance import provenance_details, provenance_line
from lls.tables import markdown_table


def batch_mode() -> bool:
    """True when the notebook runs unattended (papermill, the book build, the tests)."""
    return os.environ.get("LLS_BATCH") == "1"


def start(chapter: str, preset: str | None = None, **params) -> Config:
    """Validate ``params`` for ``chapter`` (``None`` = preset default), seed, and show the run's
    one-line summary with every parameter value and the provenance in a collapsed table."""
    from IPython.display import Markdown, display

    cfg = resolve(chapter, preset, **params)
    seed_everything(cfg.seed)
    display(Markdown(f"**This run:** {provenance_line(cfg)}\n\n{provenance_details(cfg)}"))
    return cfg


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def claims_table(claims: Sequence[Claim]) -> str:
    """A Markdown table: claim, the paper's number, ours (± spread), verdict, what was measured."""
    rows = []
    for c in claims:
        ours = "—" if c.value is None else f"{c.value:.3g}"
        if c.spread is not None:
            ours += f" ± {c.spread:.2g}"
        paper = "qualitative" if c.paper is None else f"{c.paper:g} {c.paper_unit or ''}"
        rows.append([c.id, paper, f"{ours} {c.unit}", c.verdict, c.note])
    return markdown_table(["claim", "paper", "ours", "verdict", "what we measured"], rows)


def finish(cfg: Config, claims: Sequence[Claim], **extra) -> None:
    """Save the chapter's metrics and display its claims table."""
    from IPython.display import Markdown, display

    path = save(cfg, claims, **extra)
    display(Markdown(claims_table(claims) + f"\n\nMetrics written to `{path.name}` of this run."))
