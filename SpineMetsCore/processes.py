"""Child processes that never outlive their parent.

A ``spinemets features --workers N`` run killed with SIGKILL cannot clean up: its
worker processes (and multiprocessing's resource tracker, which waits for them)
would keep running, each holding a PyRadiomics/ITK stack in memory. On Linux the
kernel can do it for us: a child that calls ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
is killed when its parent dies. Elsewhere this is a no-op (the pool's own
broken-pipe handling applies).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STARTER_PID_ENV = "SPINEMETS_STARTER_PID"
"""Environment variable naming the process that started a background child (see :func:`die_with_starter`)."""


def die_with_parent(parent_pid: int | None = None) -> bool:
    """Ask the kernel to SIGKILL this process when its parent exits; True when armed.

    ``parent_pid``: the pid the caller expects as parent; if the parent already
    died before the call (a race at start-up), the process exits at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            logger.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
            return False
    except (OSError, AttributeError) as exc:
        logger.debug("prctl unavailable: %s", exc)
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent is already gone
    return True


def starter_environment() -> dict[str, str]:
    """Environment addition for a child that should die with this process (:func:`die_with_starter`)."""
    return {STARTER_PID_ENV: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_starter(environ: Mapping[str, str] | None = None, interval: float = 0.5) -> bool:
    """Die with the process named by ``SPINEMETS_STARTER_PID``, even through a launcher; True when armed.

    Desktop Slicer starts background jobs with ``PythonSlicer``, CTK's launcher,
    which runs the real Python as *its* child: the kernel's parent-death signal
    then fires only when the launcher dies, and the launcher outlives a killed
    Slicer. So when the starter is not the direct parent, this arms
    :func:`die_with_parent` for the launcher and also watches the starter from a
    daemon thread (every ``interval`` seconds), exiting at once when it is gone.
    Without the variable it is :func:`die_with_parent`. Linux only (no-op elsewhere;
    ``os.kill(pid, 0)`` would terminate the process on Windows).
    """
    if not sys.platform.startswith("linux"):
        return False
    value = (os.environ if environ is None else environ).get(STARTER_PID_ENV, "")
    starter = int(value) if value.isdigit() else None
    if starter is None or starter == os.getppid():
        return die_with_parent(starter)
    armed = die_with_parent()  # the launcher in between
    if not _alive(starter):
        os._exit(1)  # the starter died before we got here

    def watch() -> None:
        while _alive(starter):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="spinemets-starter-watch", daemon=True).start()
    return armed
