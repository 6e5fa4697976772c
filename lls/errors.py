"""Errors that a user of the book can act on.

Every error raised on purpose by ``lls`` derives from :class:`LLSError`; its message is one
paragraph that says what went wrong and what to do about it. They are raised before any heavy
work starts, so nothing already computed is lost.
"""


class LLSError(Exception):
    """Base class of the errors ``lls`` raises on purpose (bad input, missing files)."""


class ConfigError(LLSError, ValueError):
    """An unknown preset, an unknown parameter name, or a value of the wrong type or range."""


class MissingModelError(LLSError, OSError):
    """Weights or data that are not on this machine and cannot be fetched (offline)."""
