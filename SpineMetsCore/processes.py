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

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


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
