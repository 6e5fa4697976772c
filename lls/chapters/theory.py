"""Experiments of the chapter `theory`: parameters and cached experiment functions."""

from lls.presets import Param  # noqa: F401

PARAMS: dict = {}
