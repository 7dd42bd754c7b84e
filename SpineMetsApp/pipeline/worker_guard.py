"""Dask worker preload: a worker process dies with the process that started it.

A ``LocalCluster`` worker is a child of the ``spinemets run`` process. If that process
is killed with SIGKILL it cannot clean up, so every worker asks the kernel to send it
SIGKILL when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``) and, as a fallback on
other systems, a daemon thread exits the worker when its parent process id changes.
Loaded by the pipeline through Dask's ``preload`` option (``dask_setup`` is Dask's hook),
which also sets ITK to one thread (:func:`one_itk_thread`): N single-threaded workers use N
cores (BLAS and OpenMP get one thread from Dask's own worker environment).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Arrange for this process to end when its parent process ends."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent or parent == 1:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="spinemets-parent-watch", daemon=True).start()


def one_itk_thread() -> None:
    """ITK at one thread in this worker: the workers already share the cores, and ITK's sums are
    then bit-identical to the in-process path's (which runs cases with one thread too)."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def dask_setup(worker: Any = None) -> None:
    """Dask preload hook (runs in the worker process at start-up)."""
    die_with_parent()
    one_itk_thread()
