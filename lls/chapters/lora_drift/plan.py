"""Chapter 3's plan: which screens and runs the chapter does, in which order; not cached itself.

The cached experiments are in :mod:`lls.chapters.lora_drift.protocol`; this module applies the
forgetting screen's rule (``lora_screen_undone`` of C4 in :mod:`lls.claims`) to their records, so
the registry is not part of any cache key.
"""

from __future__ import annotations

import dataclasses

from lls import models
from lls.chapters.lora_drift import protocol
from lls.chapters.lora_drift.config import CANDIDATE_PAIRS, Config
from lls.chapters.lora_drift.protocol import RunResult, RunSpec, ScreenSpec
from lls.claims import threshold


def _shared(cfg: Config, cls) -> dict:
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls) if hasattr(cfg, f.name)}
    return {**out, "device": cfg.torch_device()}


def screen_specs(cfg: Config) -> list[ScreenSpec]:
    """The screen of each model's first ``screen_max`` candidate pairs, in order."""
    shared = _shared(cfg, ScreenSpec)
    return [ScreenSpec(**{**shared, "model": m, "pair": p}) for m in models.names_from(cfg.models)
            for p in CANDIDATE_PAIRS[:cfg.screen_max]]


def screen_results(cfg: Config) -> list[dict]:
    """The screen's record (:func:`screen`) of every candidate it tries: per model, candidates in order
    until ``pairs`` have passed or ``screen_max`` have been tried."""
    out, passed = [], dict.fromkeys(models.names_from(cfg.models), 0)
    for spec in screen_specs(cfg):
        if passed[spec.model] < cfg.pairs:
            out.append(screened(spec))
            passed[spec.model] += out[-1]["passed"]
    return out


def screened(spec: ScreenSpec) -> dict:
    """The screen's record of one candidate with ``passed``: B undid at least ``lora_screen_undone`` of A's gain."""
    record = protocol.screen(spec)
    return {**record, "passed": bool(record["undone"] >= threshold("C4", "lora_screen_undone"))}


def chosen_pairs(cfg: Config) -> list[tuple[str, tuple[str, str]]]:
    """(model, pair) measured: per model, the first ``pairs`` candidates that pass the screen (may be fewer)."""
    return [(c["model"], c["pair"]) for c in screen_results(cfg) if c["passed"]]


def run_specs(cfg: Config) -> list[RunSpec]:
    """Every run of the chapter: models outermost, then the screened pairs, then seeds ``seed, seed+1, ...``."""
    shared = {**_shared(cfg, RunSpec), "horizons": tuple(cfg.horizon_list()),
              "horizon_ks": tuple(cfg.k_at(t) for t in cfg.horizon_list())}
    return [RunSpec(**{**shared, "model": m, "pair": p, "seed": cfg.seed + s, "with_curvature": s < cfg.curvature_seeds,
                       "with_sgd": s < cfg.sgd_seeds})
            for m, p in chosen_pairs(cfg) for s in range(cfg.n_seeds)]


def run_all(cfg: Config) -> list[RunResult]:
    """Every run of :func:`run_specs`, each cached on its own (changing ``n_seeds`` or ``pairs`` reuses runs done)."""
    from tqdm.auto import tqdm

    return [protocol.run(spec) for spec in tqdm(run_specs(cfg), desc="runs")]
