"""Experiments of the chapter `synthetic`: parameters and cached experiment functions."""

from lls.presets import Param  # noqa: F401

PARAMS: dict = {}
