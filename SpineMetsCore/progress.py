"""Progress reporting for long jobs, usable from the CLI, scripts and the GUI.

Logic functions accept a ``progress(done, total)`` callback instead of drawing
bars themselves, so the Slicer widget can drive a QProgressBar and the command
line a tqdm bar from the same code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]


def console_progress(description: str, unit: str = "case") -> tuple[ProgressCallback, Callable[[], None]]:
    """A tqdm-backed callback on stderr and a function that closes the bar."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=description, file=sys.stderr, unit=unit, leave=True)
        b = bar["bar"]
        b.total = total
        b.n = done
        b.refresh()

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close
