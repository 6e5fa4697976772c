"""Where runs are written, and ``metrics.json``: what each chapter measured for the claims C1–C11.

A chapter builds :class:`lls.claims.Claim` objects and calls :func:`save`; the scorecard page of
the book is generated from these files only (:mod:`lls.scorecard`), never typed by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from lls.claims import Claim
from lls.presets import Config
from lls.provenance import provenance


def results_root() -> Path:
    """Where runs are written: ``$LLS_RESULTS_DIR`` or ``results/`` at the repository root."""
    default = Path(__file__).resolve().parent.parent / "results"
    return Path(os.environ.get("LLS_RESULTS_DIR", default))


def run_dir(cfg: Config) -> Path:
    """``results/<chapter>/<preset>[-<hash of overrides>]/`` for this configuration."""
    return results_root() / cfg.chapter / cfg.tag()


def save(cfg: Config, claims: Sequence[Claim], **extra: object) -> Path:
    """Write ``metrics.json`` (claims, provenance, any ``extra`` numbers) atomically; return its path."""
    path = run_dir(cfg) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "chapter": cfg.chapter,
        "preset": cfg.preset,
        "params": dict(cfg.params),
        "provenance": provenance(cfg),
        "claims": [{**asdict(c), "preset": cfg.preset} for c in claims],
        "extra": extra,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, path)
    return path
