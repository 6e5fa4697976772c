"""Presets and the chapter registry: every run's configuration is resolved and validated here.

A *preset* names a scale for the whole book:

* ``smoke``: seconds per notebook, tiny random models; used by the tests and CI.
* ``cpu`` (default): the embedded, offline scale; the whole book runs on 2 CPU cores.
* ``paper``: the paper's hub models and sizes; a GPU is expected and the hub must be reachable
  (or its models already in the local Hugging Face cache).

Each chapter package ``lls.chapters.<name>`` has a ``config`` module with a frozen dataclass
``Config`` (see :mod:`lls.config`) and ``PRESETS``, one instance per preset. :func:`resolve`
takes a preset's instance, applies the user's values and validates the result, raising
:class:`ConfigError` with the valid choices for anything it does not recognise.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from lls.config import ChapterConfig, field_docs, with_values
from lls.errors import ConfigError

PRESETS: dict[str, str] = {
    "smoke": "seconds per notebook on tiny random models (tests and CI)",
    "cpu": "the offline default: SmolLM2-135M and small synthetic models on 2 CPU cores",
    "paper": "the paper's hub models and sizes (network or a filled hub cache; a GPU expected)",
}
DEFAULT_PRESET = "cpu"

CHAPTERS: dict[str, str] = {
    "01_theory": "lls.chapters.theory",
    "02_synthetic": "lls.chapters.synthetic",
    "03_lora_drift": "lls.chapters.lora_drift",
    "04_random_search": "lls.chapters.random_search",
    "05_steering": "lls.chapters.steering",
}

Config = ChapterConfig
"""The type every resolved configuration has (each chapter's ``Config`` derives from it)."""


def chapter_presets(chapter: str) -> dict[str, ChapterConfig]:
    """The preset instances of ``chapter``'s ``Config`` (from ``<package>.config.PRESETS``)."""
    if chapter not in CHAPTERS:
        raise ConfigError(f"Unknown chapter {chapter!r}. The chapters are: {', '.join(CHAPTERS)}.")
    return importlib.import_module(CHAPTERS[chapter] + ".config").PRESETS


def chapter_params(chapter: str) -> dict[str, dict[str, Any]]:
    """Each parameter of ``chapter``: kind, doc, bounds and its value under every preset."""
    instances = chapter_presets(chapter)
    cls = type(instances[DEFAULT_PRESET])
    docs = field_docs(cls)
    out = {}
    for name, f in cls.parameters().items():
        out[name] = {"kind": type(getattr(instances[DEFAULT_PRESET], name)).__name__, "doc": docs.get(name, ""),
                     **{k: f.metadata.get(k) for k in ("low", "high", "choices")},
                     "defaults": {p: getattr(c, name) for p, c in instances.items()}}
    return out


def resolve(chapter: str, preset: str | None = None, **values: Any) -> ChapterConfig:
    """``preset``'s configuration of ``chapter`` with ``values`` applied (``None`` = the preset's value).

    Raises :class:`ConfigError` for an unknown chapter, preset or parameter name (an old spelling
    names the new one), or a value of the wrong type or range, or parameters that break one of
    the chapter's rules; the message says what to pass instead.
    """
    preset = DEFAULT_PRESET if preset is None else preset
    if preset not in PRESETS:
        choices = "; ".join(f"{k} ({v})" for k, v in PRESETS.items())
        raise ConfigError(f"Unknown preset {preset!r}. Choose one of: {choices}.")
    return with_values(chapter_presets(chapter)[preset], values)


def as_dict(cfg: ChapterConfig) -> dict[str, Any]:
    """Every field of ``cfg`` (``preset`` included), for ``metrics.json`` and provenance."""
    return dataclasses.asdict(cfg)
