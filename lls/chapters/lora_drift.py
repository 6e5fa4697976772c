"""Experiments of the chapter `lora_drift`: parameters and cached experiment functions."""

from lls.presets import Param  # noqa: F401

PARAMS: dict = {}
