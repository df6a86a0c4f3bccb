"""The one base of every error the core raises on purpose.

The CLI and the pages catch :class:`BalDistillError` and show its message without a traceback; a
message says what is wrong and how to fix it. Subclasses that replaced a former ``ValueError`` still
derive from it, so callers that catch ``ValueError`` keep working.
"""

from __future__ import annotations


class BalDistillError(Exception):
    """A problem the user can fix: the message names it and the fix."""


class ConfigError(BalDistillError, ValueError):
    """A run, dataset or teacher setting that cannot work (budget above the pool, stage out of range)."""


class DataError(BalDistillError, ValueError):
    """A dataset file or import that cannot be used as it is."""
