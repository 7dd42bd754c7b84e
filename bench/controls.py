"""The machine's own parallelism, measured now: the control every cohort speed-up is read against."""

from __future__ import annotations

import time


def _burn(n: int) -> float:
    """Pure-Python CPU work (no I/O, no shared memory)."""
    total = 0
    for i in range(n):
        total += i * i
    return float(total)


def machine_parallel_speedup(n: int = 8_000_000) -> float:
    """Speedup of two processes over one on identical CPU-bound work, measured now.

    On an idle 2-core machine this is ~2; when other jobs hold a core it drops
    towards 1, and so must any honest parallel speedup measured at the same time.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    _burn(n)
    _burn(n)
    serial = time.perf_counter() - start
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_burn, [1000, 1000]))  # start-up excluded: it is not the machine's parallelism
        start = time.perf_counter()
        list(pool.map(_burn, [n, n]))
        parallel = time.perf_counter() - start
    return serial / parallel
