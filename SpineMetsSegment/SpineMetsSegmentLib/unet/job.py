"""A U-Net segmentation in a background process: start, poll, cancel, result.

Qt-free, so the same object runs in desktop Slicer (the widget's QTimer only calls
:meth:`UNetJob.poll`), in scripts and in headless tests. The process launcher is
injected: by default it starts ``PythonSlicer -m SpineMetsSegmentLib.unet.worker``
(this interpreter outside Slicer) in its own process group, with stdout read by a
thread into a queue so :meth:`poll` never blocks the GUI. The worker reports
progress as JSON lines (:mod:`.worker`); anything else it prints is kept as log.

Typical use::

    job = UNetJob({"T1": "t1.nrrd", "T2": "t2.nrrd"}, "Model/", workdir)
    job.start()
    while job.poll().running:   # or a QTimer calling poll()
        time.sleep(0.2)
    labelmap_path = job.result().labelmap
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from SpineMetsCore.errors import SpineMetsError

logger = logging.getLogger(__name__)

WORKER_MODULE = "SpineMetsSegmentLib.unet.worker"
LABELMAP_NAME = "labelmap.nii.gz"
MAX_LOG_LINES = 400


class JobError(SpineMetsError):
    """The background segmentation failed, was cancelled, or has no result yet."""


class Process(Protocol):
    """What a launcher returns: a ``subprocess.Popen``-like object with text stdout."""

    stdout: Any

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


Launcher = Callable[[list[str], Mapping[str, str]], Process]
Terminator = Callable[[Process], Any]


def default_launcher(args: list[str], env_updates: Mapping[str, str]) -> Process:
    """Start the worker in its own process group (so cancel stops the whole tree)."""
    from ..background import launch

    return launch(args, env_updates)


def default_terminator(process: Process) -> Any:
    from ..background import terminate

    return terminate(process)  # type: ignore[arg-type]


def label_color(label: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """A model-card label's colour as three floats in 0..1 (cards may use 0..255)."""
    color = label.get("color")
    if color is None:
        return None
    values = [float(c) for c in color][:3]
    if any(v > 1.0 for v in values):
        values = [v / 255.0 for v in values]
    return (values[0], values[1], values[2])


@dataclass
class JobStatus:
    """A snapshot for the GUI: state, progress fraction and a one-line message."""

    state: str
    """``idle``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
    fraction: float = 0.0
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")


@dataclass
class JobResult:
    """What the worker produced: the labelmap file and the model card's labels."""

    labelmap: Path
    labels: list[dict[str, Any]]
    model: str = ""
    synthetic_training_data: bool = True
    seconds: float = 0.0


@dataclass
class UNetJob:
    """One background U-Net run; see the module docstring."""

    images: Mapping[str, str | os.PathLike[str]]
    model: str | os.PathLike[str]
    workdir: str | os.PathLike[str] | None = None
    force_cpu: bool = False
    python: str | None = None
    launcher: Launcher = default_launcher
    terminator: Terminator = default_terminator
    remove_workdir: bool = False
    """Remove ``workdir`` in :meth:`cleanup` (always done for a folder the job made itself)."""
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._process: Process | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._status = JobStatus("idle")
        self._result: JobResult | None = None
        self._error = ""
        self._owns_workdir = self.workdir is None or self.remove_workdir
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------
    def command(self) -> list[str]:
        """The worker's argument list (the public worker contract)."""
        from ..background import python_executable

        args = [self.python or python_executable(), "-m", WORKER_MODULE]
        for name, path in self.images.items():
            args += ["--image", f"{name}={Path(path)}"]
        args += ["--model", str(Path(self.model)), "--out", str(self.output_path)]
        if self.force_cpu:
            args.append("--force-cpu")
        return args

    @property
    def output_path(self) -> Path:
        if self.workdir is None:
            raise JobError("the job has no work folder yet; call start()")
        return Path(self.workdir) / LABELMAP_NAME

    def start(self) -> JobStatus:
        """Launch the worker; returns immediately."""
        from ..background import child_environment

        if self._process is not None:
            raise JobError("this job was already started; make a new UNetJob")
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="SpineMetsUNet-")
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        args = self.command()
        logger.info("U-Net job: %s", " ".join(args))
        self._process = self.launcher(args, child_environment())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._status = JobStatus("running", 0.0, "starting the U-Net process")
        return self._status

    def _read(self) -> None:
        assert self._process is not None
        try:
            for line in self._process.stdout:
                self._lines.put(line.rstrip("\n"))
        finally:
            self._lines.put(None)

    def poll(self) -> JobStatus:
        """Consume what the worker printed so far; never blocks. Returns the current status."""
        if self._status.state != "running":
            return self._status
        ended = False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                ended = True
                break
            self._handle(line)
        if ended:
            self._finish()
        return self._status

    def _handle(self, line: str) -> None:
        self.log.append(line)
        del self.log[:-MAX_LOG_LINES]
        try:
            event = json.loads(line)
        except ValueError:
            return  # plain output (warnings of a library): kept in the log only
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "start":
            self._status = JobStatus("running", 0.0, f"U-Net '{event.get('model', '')}' on {event.get('device', '?')}")
        elif kind == "progress":
            fraction = float(event.get("fraction", 0.0))
            self._status = JobStatus("running", max(0.0, min(1.0, fraction)), f"{event.get('done')}/{event.get('total')} windows")
        elif kind == "done":
            self._result = JobResult(
                Path(event["labelmap"]),
                list(event.get("labels", [])),
                str(event.get("model", "")),
                bool(event.get("synthetic_training_data", True)),
                float(event.get("seconds", 0.0)),
            )
        elif kind == "error":
            self._error = str(event.get("message", "")) or str(event.get("error", "error"))

    def _finish(self) -> None:
        assert self._process is not None
        code = self._process.wait()
        if self._status.state == "cancelled":
            return
        if code == 0 and self._result is not None and self._result.labelmap.is_file():
            self._status = JobStatus("succeeded", 1.0, f"done in {self._result.seconds:.1f} s")
            return
        detail = self._error or "\n".join(self.log[-5:]) or "no output"
        self._status = JobStatus("failed", self._status.fraction, f"the U-Net process failed (exit code {code}): {detail}")

    def cancel(self) -> JobStatus:
        """Stop the worker and everything it started; the job ends as ``cancelled``."""
        if self._process is not None and self._status.state == "running":
            self.terminator(self._process)
            self._status = JobStatus("cancelled", self._status.fraction, "cancelled")
        return self._status

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> JobStatus:
        """Poll until the job ends (scripts and tests); cancels and raises on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll().running:
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise JobError(f"the U-Net process did not finish within {timeout} s (cancelled)")
            time.sleep(interval)
        return self._status

    def result(self) -> JobResult:
        """The worker's result; JobError when the job has not succeeded."""
        if self._status.state != "succeeded" or self._result is None:
            raise JobError(f"no U-Net result: the job is {self._status.state}" + (f" ({self._status.message})" if self._status.message else ""))
        return self._result

    def cleanup(self) -> None:
        """Remove the work folder when the job created it (after the result was imported)."""
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
