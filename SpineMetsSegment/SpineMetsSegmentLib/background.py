"""Running ``spinemets segment --method unet`` as a child process (the widget's background job).

U-Net inference can take minutes on a CPU, so desktop Slicer runs it in a
separate Python process and keeps the GUI responsive, with progress, Cancel
and Force-CPU. Everything that does not need Qt lives here, so it is tested
headless: the command line, the child's environment (so it imports the same
SpineMets code), launching (output captured like
``slicer.util.launchConsoleProcess``, but in its own process group) and
cancelling the whole process tree (``PythonSlicer`` is a launcher: killing it
alone would leave the real Python running), and progress parsing of the
child's tqdm output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_PERCENT = re.compile(r"(\d{1,3})%\|")


def python_executable() -> str:
    """The Python that runs Slicer's scripts (``PythonSlicer`` in Slicer, else this interpreter)."""
    found = shutil.which("PythonSlicer")
    return found or sys.executable


def unet_command(
    images: Mapping[str, str | os.PathLike[str]],
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    force_cpu: bool = False,
    python: str | None = None,
) -> list[str]:
    """Argument list of the child process (the public ``spinemets segment`` contract)."""
    args = [python or python_executable(), "-m", "SpineMetsApp.cli", "segment", "--method", "unet"]
    for name, path in images.items():
        args += ["--image", f"{name}={Path(path)}"]
    args += ["--model", str(Path(model)), "--out", str(Path(out))]
    if force_cpu:
        args.append("--force-cpu")
    return args


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment additions so the child imports the same SpineMetsCore / SpineMetsSegmentLib."""
    import SpineMetsCore
    import SpineMetsSegmentLib

    roots = [Path(SpineMetsCore.__file__).resolve().parents[1], Path(SpineMetsSegmentLib.__file__).resolve().parents[1]]
    base = os.environ if base is None else base
    existing = [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = list(dict.fromkeys([str(r) for r in roots] + existing))
    return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def parse_progress(line: str) -> int | None:
    """Percentage from a tqdm progress line (``unet:  40%|####  | 2/5``), else None."""
    match = _PERCENT.search(line)
    if not match:
        return None
    return max(0, min(100, int(match.group(1))))


def launch(args: list[str], env_updates: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start the child with stdout+stderr captured as text lines, in its own process group."""
    env = {**os.environ, **(env_updates or {})}
    kwargs: dict = {}
    if os.name == "nt":
        info = subprocess.STARTUPINFO()
        info.dwFlags |= subprocess.STARTF_USESHOWWINDOW  # no console window
        kwargs.update(startupinfo=info, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    else:
        kwargs.update(start_new_session=True)
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, **kwargs
    )


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
