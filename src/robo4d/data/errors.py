"""The one error type of the dataset store: bad or unfinished data on disk, or bad input to a writer."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset (or data handed to a writer) is malformed; the message names the file, the field and the
    expected value, so the fix is obvious without a debugger."""
