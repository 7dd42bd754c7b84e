"""Messages from the C++ libraries (VTK/MRML, ITK, MetaIO) as Python data, not raw stderr.

VTK and MRML report read failures through ``vtkOutputWindow`` (printed by VTK's
logger as coloured ``ERR|`` lines) and ITK's MetaIO writes straight to the C++
``std::cerr``. A reader that only looks at a return code then shows the user a
screen of raw log lines next to a vague error. :func:`captured_native_messages`
collects both during one call so the caller can raise one clear error that
quotes the library's reason; :func:`route_vtk_messages_to_logging` (headless
only) sends every other VTK message through Python :mod:`logging`, cleaned.
"""

from __future__ import annotations

import contextlib
import locale
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_POINTER = re.compile(r"\s*\(0x[0-9a-fA-F]+\)")
_GENERIC = ("vtkCompositeDataPipeline", "vtkStreamingDemandDrivenPipeline", "vtkExecutive")
_LOCATION = re.compile(r"^(ERROR|Warning|WARNING|Generic Warning): In .*?, line \d+\s*$")


def clean_message(text: str) -> str:
    """One readable line from a VTK/ITK message: no colour codes, source locations or pointers."""
    text = _ANSI.sub("", text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _LOCATION.match(line.strip())]
    text = " ".join(lines)
    text = _POINTER.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class NativeMessages:
    """What the C++ libraries said during one captured call."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stderr: str = ""

    def reason(self) -> str:
        """The most specific reason given (the first error, else stderr text), cleaned; '' if none."""
        text = clean_message(self.stderr)
        if text:
            return text[:400]
        specific = [e for e in self.errors if not e.startswith(_GENERIC)]
        return (specific or self.errors or [""])[0][:400]

    def log_warnings(self, what: str) -> None:
        for message in self.warnings:
            logger.warning("%s: %s", what, message)
        if self.stderr.strip() and not self.errors:
            logger.warning("%s: %s", what, clean_message(self.stderr)[:400])


_active: list[NativeMessages] = []
_routing_installed = False


def _in_desktop_slicer() -> bool:
    slicer = sys.modules.get("slicer")
    return slicer is not None and getattr(slicer, "app", None) is not None


def _observe_output_window() -> list[tuple[object, int]]:
    """Observers on VTK's output window that feed the active collector (or logging)."""
    from vtkmodules.util.misc import calldata_type
    from vtkmodules.vtkCommonCore import VTK_STRING, vtkCommand, vtkOutputWindow

    window = vtkOutputWindow.GetInstance()

    @calldata_type(VTK_STRING)
    def on_error(_caller: object, _event: str, text: str) -> None:
        message = clean_message(text or "")
        if _active:
            _active[-1].errors.append(message)
        elif _routing_installed:
            logger.error("%s", message)

    @calldata_type(VTK_STRING)
    def on_warning(_caller: object, _event: str, text: str) -> None:
        message = clean_message(text or "")
        if _active:
            _active[-1].warnings.append(message)
        elif _routing_installed:
            logger.warning("%s", message)

    return [
        (window, window.AddObserver(vtkCommand.ErrorEvent, on_error)),
        (window, window.AddObserver(vtkCommand.WarningEvent, on_warning)),
    ]


def route_vtk_messages_to_logging() -> None:
    """Headless: VTK/MRML messages go to Python logging (cleaned), never as raw ``ERR|`` lines.

    Inside desktop Slicer nothing changes: Slicer's error log already shows them.
    """
    global _routing_installed
    if _routing_installed or _in_desktop_slicer():
        return
    from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow

    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
    vtkOutputWindow.GetInstance().SetDisplayModeToNever()
    _observe_output_window()
    _routing_installed = True


@contextlib.contextmanager
def preserved_locale() -> Iterator[None]:
    """Put the process's C locale back after a library call that changes it.

    GDCM's DICOM writer (through SimpleITK) leaves the whole process in the "C"
    locale. Python then takes ASCII as the locale encoding, so every later
    ``subprocess`` text pipe and ``open()`` without an encoding in the process
    (ours, a library's, Slicer's) fails on the first non-ASCII character.
    """
    saved = locale.setlocale(locale.LC_ALL, None)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL, None) != saved:
            try:
                locale.setlocale(locale.LC_ALL, saved)
            except locale.Error as exc:  # pragma: no cover - a locale removed meanwhile
                logger.debug("could not restore the locale %r: %s", saved, exc)


@contextlib.contextmanager
def _stderr_fd_captured() -> Iterator[tempfile._TemporaryFileWrapper]:
    """Redirect file descriptor 2 (C/C++ stderr) into a temporary file for the block."""
    try:
        os.fstat(2)
    except OSError:
        yield None  # type: ignore[misc]  # no stderr to capture
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    sink = tempfile.TemporaryFile()
    saved = os.dup(2)
    os.dup2(sink.fileno(), 2)
    try:
        yield sink
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def captured_native_messages() -> Iterator[NativeMessages]:
    """Collect VTK/MRML errors and warnings and C++ stderr output during the block.

    Headless, the messages are not printed (the caller turns them into an error or a
    log record); inside desktop Slicer they also reach Slicer's error log as usual.
    """
    from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow

    messages = NativeMessages()
    observers = [] if _routing_installed else _observe_output_window()
    quiet = not _in_desktop_slicer() and not _routing_installed
    window = vtkOutputWindow.GetInstance()
    mode = window.GetDisplayMode()
    if quiet:
        vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
        window.SetDisplayModeToNever()
    _active.append(messages)
    try:
        with _stderr_fd_captured() as sink:
            try:
                yield messages
            finally:
                if sink is not None:
                    sink.seek(0)
                    messages.stderr = sink.read().decode("utf-8", errors="replace")
                    sink.close()
    finally:
        _active.remove(messages)
        for caller, tag in observers:
            caller.RemoveObserver(tag)
        if quiet:
            vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_INFO)
            window.SetDisplayMode(mode)
