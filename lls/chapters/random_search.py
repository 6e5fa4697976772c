"""Experiments of the chapter `random_search`: parameters and cached experiment functions."""

from lls.presets import Param  # noqa: F401

PARAMS: dict = {}
