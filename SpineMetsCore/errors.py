"""Errors raised at the data layer.

Every error names the offending input (file path, node name or argument) so a
researcher running a 500-case batch knows which case to fix.
"""

from __future__ import annotations


class SpineMetsError(Exception):
    """Base class for errors that carry a user-facing message."""


class InputError(SpineMetsError, ValueError):
    """An input (file, node, argument) is missing, unreadable or inconsistent."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"{what}: {problem}")


class GeometryError(InputError):
    """Two inputs that must share a grid or overlap do not."""


class UnsupportedFormatError(InputError):
    """A file extension that no reader or writer handles."""


class CorruptFileError(InputError):
    """A file that exists but is truncated, damaged or not what its extension says."""


class ImageQualityError(InputError):
    """An image or mask that reads fine but cannot give a meaningful result (NaN, blank, empty mask)."""


class OutputError(SpineMetsError):
    """An output that cannot or must not be written (exists without --overwrite, not writable)."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"{what}: {problem}")
