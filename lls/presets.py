"""Presets and chapter parameters, defined once and validated before any heavy work.

A *preset* names a scale for the whole book:

* ``smoke``: seconds per notebook, tiny random models; used by the tests and CI.
* ``cpu`` (default): the embedded, offline scale; the whole book runs on 2 CPU cores.
* ``paper``: the paper's hub models and sizes; a GPU is expected and the hub must be reachable
  (or its models already in the local Hugging Face cache).

Each chapter module in :mod:`lls.chapters` declares ``PARAMS``, a mapping from parameter name
to :class:`Param`, whose ``defaults`` give one value per preset. :func:`resolve` merges a preset's
defaults with the user's overrides into a :class:`Config` and raises :class:`ConfigError`, with
the valid choices, for anything it does not recognise.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class Param:
    """One chapter parameter.

    ``kind`` is ``int``, ``float``, ``str`` or ``bool``; ``defaults`` maps every preset name to
    its value; ``low``/``high`` bound numbers (inclusive); ``choices`` restricts strings.
    """

    kind: type
    doc: str
    defaults: Mapping[str, Any]
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to ``kind`` or raise :class:`ConfigError`."""
        value = _coerce(name, self.kind, value)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"Parameter {name!r} is {value!r}, which is not one of {list(self.choices)}. "
                f"Pass one of those ({self.doc})."
            )
        if self.kind in (int, float):
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ConfigError(
                    f"Parameter {name!r} is {value!r}, outside its range [{self.low}, {self.high}] "
                    f"({self.doc}). Pass a value inside the range."
                )
        return value


COMMON: dict[str, Param] = {
    "seed": Param(int, "base random seed", {p: 0 for p in PRESETS}, low=0, high=2**31 - 1),
}


def _coerce(name: str, kind: type, value: Any) -> Any:
    """Convert command-line strings and ints-for-floats; reject everything else of a wrong type."""
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return text in ("true", "1", "yes")
            return kind(value)
        except ValueError:
            raise ConfigError(
                f"Parameter {name!r} must be of type {kind.__name__}, but {value!r} cannot be read "
                f"as one. Pass e.g. -p {name} {_example(kind)}."
            ) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(
            f"Parameter {name!r} must be of type {kind.__name__}, got {type(value).__name__} "
            f"{value!r}. Pass e.g. {name}={_example(kind)}."
        )
    return value


def _example(kind: type) -> str:
    return {int: "3", float: "0.5", bool: "true", str: "name"}[kind]


@dataclass(frozen=True)
class Config:
    """A validated chapter configuration: chapter, preset and every parameter's value.

    Parameters are read as attributes (``cfg.seed``, ``cfg.k_max``) or through ``cfg.params``.
    """

    chapter: str
    preset: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.params[name]
        except KeyError:
            raise AttributeError(name) from None

    def overrides(self) -> dict[str, Any]:
        """The parameters whose values differ from the preset's defaults."""
        spec = chapter_params(self.chapter)
        return {k: v for k, v in self.params.items() if spec[k].defaults[self.preset] != v}

    def tag(self) -> str:
        """A short, stable name for this configuration: ``<preset>`` or ``<preset>-<hash>``."""
        extra = self.overrides()
        if not extra:
            return self.preset
        blob = json.dumps(extra, sort_keys=True, default=str).encode()
        return f"{self.preset}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def __reduce__(self):  # joblib hashes configs by value
        return (Config, (self.chapter, self.preset, dict(self.params)))


def chapter_params(chapter: str) -> dict[str, Param]:
    """All parameters of ``chapter`` (the common ones first)."""
    if chapter not in CHAPTERS:
        raise ConfigError(f"Unknown chapter {chapter!r}. The chapters are: {', '.join(CHAPTERS)}.")
    module = importlib.import_module(CHAPTERS[chapter])
    return {**COMMON, **module.PARAMS}


def resolve(chapter: str, preset: str | None = None, **values: Any) -> Config:
    """Merge ``preset``'s defaults with ``values`` (``None`` means "the preset's default").

    Raises :class:`ConfigError` for an unknown chapter, preset or parameter name, or a value of
    the wrong type or range; the message lists the valid choices.
    """
    preset = DEFAULT_PRESET if preset is None else preset
    if preset not in PRESETS:
        choices = "; ".join(f"{k} ({v})" for k, v in PRESETS.items())
        raise ConfigError(f"Unknown preset {preset!r}. Choose one of: {choices}.")
    spec = chapter_params(chapter)
    unknown = sorted(set(values) - set(spec))
    if unknown:
        listing = ", ".join(f"{k} ({p.kind.__name__}: {p.doc})" for k, p in spec.items())
        raise ConfigError(
            f"Unknown parameter(s) {unknown} for chapter {chapter}. Its parameters are: {listing}."
        )
    params = {}
    for name, param in spec.items():
        value = values.get(name)
        params[name] = param.defaults[preset] if value is None else param.check(name, value)
    return Config(chapter=chapter, preset=preset, params=params)
