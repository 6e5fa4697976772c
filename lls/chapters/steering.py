"""Experiments of the chapter `steering`: parameters and cached experiment functions."""

from lls.presets import Param  # noqa: F401

PARAMS: dict = {}
