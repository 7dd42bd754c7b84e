"""Starting and stopping a background Python process the way desktop Slicer should.

U-Net inference can take minutes on a CPU, so Slicer runs it in a separate
process (:mod:`SpineMetsSegmentLib.unet.job`) and keeps the GUI responsive.
What does not need Qt lives here, so it is tested headless: which interpreter
runs the child (``PythonSlicer`` inside Slicer), the child's environment (so it
imports the same SpineMets code), launching with stdout captured as text lines,
in its own process group, and cancelling the whole process tree
(``PythonSlicer`` is a launcher: killing it alone would leave the real Python
running).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def python_executable() -> str:
    """The interpreter for background jobs: ``PythonSlicer`` next to Slicer's Python, else this one."""
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    return shutil.which("PythonSlicer") or sys.executable


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment additions so the child imports the same SpineMetsCore / SpineMetsSegmentLib.

    It also names this process as the child's starter, so the child dies with it
    (:func:`SpineMetsCore.processes.die_with_starter`), through PythonSlicer's launcher too.
    """
    import SpineMetsCore
    import SpineMetsSegmentLib
    from SpineMetsCore.processes import starter_environment

    roots = [Path(SpineMetsCore.__file__).resolve().parents[1], Path(SpineMetsSegmentLib.__file__).resolve().parents[1]]
    base = os.environ if base is None else base
    existing = [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = list(dict.fromkeys([str(r) for r in roots] + existing))
    # the child writes UTF-8 whatever its locale, as launch() reads it
    return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8",
            **starter_environment()}


def launch(args: list[str], env_updates: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start the child with stdout as text lines (stderr to this process's), in its own process group.

    stderr is not captured: a pipe nobody reads could fill and stall the child;
    the worker reports everything the parent needs on stdout. The pipe is read as
    UTF-8, not in the locale's encoding, which may be ASCII (a ``LANG=C`` cluster,
    or a process whose locale a library reset).
    """
    env = {**os.environ, **(env_updates or {})}
    kwargs: dict = {}
    if os.name == "nt":
        info = subprocess.STARTUPINFO()
        info.dwFlags |= subprocess.STARTF_USESHOWWINDOW  # no console window
        kwargs.update(startupinfo=info, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    else:
        kwargs.update(start_new_session=True)
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                            bufsize=1, **kwargs)


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Stop the child and everything it started; return its exit code."""
    if proc.poll() is None:
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False)
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return proc.wait(timeout=timeout)
