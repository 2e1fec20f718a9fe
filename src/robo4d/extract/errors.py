"""The one error type of extract/: bad input or configuration, with a message that says what to do."""

from __future__ import annotations


class ExtractError(ValueError):
    """Input that track extraction cannot use (missing depth, intrinsics, camera; inconsistent shapes...)."""
