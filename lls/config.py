"""Typed chapter configurations: a frozen dataclass per chapter, presets as its instances.

A chapter declares its parameters the way cleanrl's ``ppo.py`` declares its arguments, one
typed field with a docstring line under it, plus the bounds a value must respect::

    @dataclass(frozen=True)
    class Config(ChapterConfig):
        chapter: ClassVar[str] = "02_synthetic"

        lr: float = param(5e-3, low=1e-6, high=1.0)
        \"\"\"peak Adam learning rate of multitask training\"\"\"

    PRESETS = presets(Config, smoke={"lr": 1e-2}, cpu={}, paper={"lr": 5e-3})

:func:`field_docs` reads those docstrings back from the class source, so the command line
(``python -m lls params``) and the error messages quote them. :meth:`ChapterConfig.validate`
checks every value's type, range and choices and then the chapter's own cross-field rules
(:meth:`ChapterConfig.rules`), raising :class:`lls.errors.ConfigError` before any work starts.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from lls.errors import ConfigError

KINDS = {"int": int, "float": float, "str": str, "bool": bool}


def param(default: Any, *, low: float | None = None, high: float | None = None,
          choices: Iterable[str] | None = None) -> Any:
    """A config field with bounds: numbers within ``[low, high]`` (inclusive), strings in ``choices``."""
    return field(default=default, metadata={"low": low, "high": high,
                                            "choices": None if choices is None else tuple(choices)})


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring line under each field of dataclass ``cls`` and its bases (cleanrl style)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _kind(f: dataclasses.Field) -> type:
    return KINDS[f.type] if isinstance(f.type, str) else f.type


def _example(kind: type) -> str:
    return {int: "3", float: "0.5", bool: "true", str: "name"}[kind]


def coerce(name: str, kind: type, value: Any) -> Any:
    """``value`` as a ``kind`` (command-line strings are parsed; an int is a valid float)."""
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
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(
            f"Parameter {name!r} must be of type {kind.__name__}, got {type(value).__name__} "
            f"{value!r}. Pass e.g. {name}={_example(kind)}."
        )
    return value


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class ChapterConfig:
    """Fields every chapter has. Subclasses add theirs and set :attr:`chapter`."""

    chapter: ClassVar[str] = ""
    renamed: ClassVar[Mapping[str, str]] = {}
    """Old parameter spellings of this chapter -> the current name (the error names the new one)."""
    cpu_only: ClassVar[str] = ""
    """Why this chapter runs on the CPU whatever ``device`` says (empty: it honours ``device``)."""

    preset: str = param("cpu", choices=("smoke", "cpu", "paper"))
    """scale of the run: smoke (tests), cpu (the offline default) or paper (hub models, a GPU)"""
    seed: int = param(0, low=0, high=2**31 - 1)
    """base random seed; every other generator of the run is derived from it (lls.seeds)"""
    device: str = "auto"
    """where models and tensors live: auto (CUDA when available, else CPU), cpu, cuda or cuda:N"""

    @classmethod
    def parameters(cls) -> dict[str, dataclasses.Field]:
        """The fields a user may set (``preset`` excluded), in declaration order."""
        return {f.name: f for f in fields(cls) if f.name != "preset"}

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter's value (``preset`` excluded), by name."""
        return {name: getattr(self, name) for name in self.parameters()}

    def check_value(self, name: str) -> None:
        """Raise :class:`ConfigError` if field ``name`` has the wrong type, range or choice."""
        f = {f.name: f for f in fields(self)}[name]
        value, doc = getattr(self, name), field_docs(type(self)).get(name, "")
        kind = _kind(f)
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise ConfigError(f"Parameter {name!r} must be of type {kind.__name__}, got {value!r} ({doc}).")
        low, high, choices = (f.metadata.get(k) for k in ("low", "high", "choices"))
        if choices is not None and value not in choices:
            raise ConfigError(f"Parameter {name!r} is {value!r}, which is not one of {list(choices)}. "
                              f"Pass one of those ({doc}).")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"Parameter {name!r} is {value!r}, outside its range [{low}, {high}] ({doc}). "
                              f"Pass a value inside the range.")

    def rules(self) -> list[tuple[bool, str]]:
        """The chapter's cross-field rules as ``(holds, message)``; override in a chapter."""
        return []

    def validate(self) -> ChapterConfig:
        """Check every field, the device and :meth:`rules`; return ``self`` or raise :class:`ConfigError`."""
        for name in (f.name for f in fields(self)):
            self.check_value(name)
        self.torch_device()
        for holds, message in self.rules():
            if not holds:
                raise ConfigError(f"Chapter {self.chapter}: {message}. Change the parameters so that it holds "
                                  f"(`python -m lls params {self.chapter[:2]}` lists them).")
        return self

    def torch_device(self) -> str:
        """The device this run uses: ``auto`` resolved; a CUDA device that is absent is an error."""
        import torch

        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"Parameter 'device' is {self.device!r}; use auto, cpu, cuda or cuda:N.")
        if self.cpu_only:
            if self.device not in ("auto", "cpu"):
                raise ConfigError(f"Chapter {self.chapter} runs on the CPU only ({self.cpu_only}); pass -p device cpu "
                                  f"or auto.")
            return "cpu"
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda"):
            index = int(self.device.partition(":")[2] or 0)
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise ConfigError(
                    f"Parameter 'device' is {self.device!r}, but this machine has "
                    f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no'} CUDA device(s). "
                    f"Pass -p device cpu (or auto, which picks CUDA only when there is one).")
        return self.device

    def overrides(self) -> dict[str, Any]:
        """The parameters whose values differ from this preset's defaults."""
        base = preset_instance(type(self), self.preset)
        return {k: v for k, v in self.params.items() if getattr(base, k) != v}

    def tag(self) -> str:
        """A short, stable name for this configuration: ``<preset>`` or ``<preset>-<hash>``."""
        extra = self.overrides()
        if not extra:
            return self.preset
        blob = json.dumps(extra, sort_keys=True, default=str).encode()
        return f"{self.preset}-{hashlib.sha256(blob).hexdigest()[:8]}"


def presets(cls: type[ChapterConfig], **changes: Mapping[str, Any]) -> dict[str, ChapterConfig]:
    """One validated instance of ``cls`` per preset, each the class defaults with ``changes[preset]``."""
    return {name: replace(cls(), preset=name, **values).validate() for name, values in changes.items()}


def preset_instance(cls: type[ChapterConfig], preset: str) -> ChapterConfig:
    """The instance of ``cls`` for ``preset``, from its module's ``PRESETS``."""
    return inspect.getmodule(cls).PRESETS[preset]


def with_values(base: ChapterConfig, values: Mapping[str, Any]) -> ChapterConfig:
    """``base`` with ``values`` (``None`` = keep the preset's value), coerced and validated.

    Unknown names raise :class:`ConfigError` listing the parameters; an old spelling names the
    new one.
    """
    cls = type(base)
    spec = cls.parameters()
    unknown = sorted(set(values) - set(spec))
    if unknown:
        moved = [f"{old!r} is now called {cls.renamed[old]!r}" for old in unknown if old in cls.renamed]
        if moved:
            raise ConfigError(f"Chapter {cls.chapter}: parameter {'; '.join(moved)}. Pass the new name "
                              f"(e.g. -p {cls.renamed[unknown[0]]} VALUE).")
        docs = field_docs(cls)
        listing = ", ".join(f"{k} ({_kind(f).__name__}: {docs.get(k, '')})" for k, f in spec.items())
        raise ConfigError(f"Unknown parameter(s) {unknown} for chapter {cls.chapter}. Its parameters are: {listing}.")
    coerced = {k: coerce(k, _kind(spec[k]), v) for k, v in values.items() if v is not None}
    return replace(base, **coerced).validate()
