"""Progress reporting for long jobs, usable from the CLI, scripts and the GUI.

Logic functions accept a ``progress(done, total)`` callback instead of drawing
bars themselves, so the Slicer widget can drive a QProgressBar and the command
line a tqdm bar from the same code. A bar only makes sense on a terminal: in a
batch job's log file, a pipe or a Dask worker's log every redraw would be kept
(carriage returns and all), so there the callback writes a plain line now and then.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[int, int], None]

LINE_STEP = 0.1
"""Non-terminal streams: a line each time another tenth of the work is done..."""
LINE_INTERVAL_S = 60.0
"""...or when this long has passed since the last line (slow steps still show a heartbeat)."""


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def line_progress(
    description: str,
    unit: str = "case",
    stream: TextIO | None = None,
    step: float = LINE_STEP,
    interval: float = LINE_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[ProgressCallback, Callable[[], None]]:
    """Sparse line-based progress (no ``\\r``): at most ``1/step`` + 1 lines plus one per ``interval``.

    Each line reads ``features: 30/100 case (30%), 1m05s elapsed, ETA 2m32s``.
    """
    out = sys.stderr if stream is None else stream
    started = clock()
    state = {"bucket": -1, "last": started, "done": None, "total": None}

    def write(done: int, total: int, now: float) -> None:
        elapsed = now - started
        fraction = done / total if total > 0 else 1.0
        text = f"{description}: {done}/{total} {unit} ({fraction:.0%}), {_duration(elapsed)} elapsed"
        if 0 < done < total:
            text += f", ETA {_duration(elapsed * (total - done) / done)}"
        out.write(text + "\n")
        out.flush()
        state["last"], state["done"], state["total"] = now, done, total

    def update(done: int, total: int) -> None:
        now = clock()
        fraction = done / total if total > 0 else 1.0
        bucket = math.floor(fraction / step + 1e-9)
        if bucket > state["bucket"] or (now - state["last"] >= interval and (done, total) != (state["done"], state["total"])):
            state["bucket"] = max(bucket, state["bucket"])
            write(done, total, now)

    def close() -> None:
        pass  # every line is complete as written

    return update, close


def console_progress(
    description: str, unit: str = "case", stream: TextIO | None = None
) -> tuple[ProgressCallback, Callable[[], None]]:
    """A progress callback on stderr (or ``stream``) and a function that ends it.

    A tqdm bar on a terminal; elsewhere :func:`line_progress` (sparse plain lines).
    """
    out = sys.stderr if stream is None else stream
    if not _is_terminal(out):
        return line_progress(description, unit, out)

    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=description, file=out, unit=unit, leave=True)
        b = bar["bar"]
        b.total = total
        b.n = done
        b.refresh()

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close
