"""Python dependencies inside desktop Slicer: check, then install with consent.

The installer is injected (a callable taking requirement strings), so tests
exercise the decision logic without pip or a GUI; in Slicer the default is
``slicer.packaging.pip_ensure`` (5.12+) or ``slicer.util.pip_install``.
Packages Slicer itself ships (numpy, SimpleITK, vtk) are never reinstalled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

SLICER_OWNED = frozenset({"numpy", "simpleitk", "vtk", "slicer", "slicer-core"})
Installer = Callable[[Sequence[str]], None]


def read_requirements(path: str | os.PathLike[str]) -> list[str]:
    """Requirement lines of a requirements file (comments and options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def _requirement_name(req: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        req = req.split(sep, 1)[0]
    return req.strip().lower().replace("_", "-")


def missing_requirements(requirements: Sequence[str]) -> list[str]:
    """Requirements whose distribution is absent or whose version does not satisfy the spec."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging ships with pip/setuptools; be lenient without it
        Requirement = None  # type: ignore[assignment]
    missing = []
    for req in requirements:
        name = _requirement_name(req)
        if name in SLICER_OWNED:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(req)
            continue
        if Requirement is not None and not Requirement(req).specifier.contains(installed, prereleases=True):
            missing.append(req)
    return missing


def slicer_installer(requester: str) -> Installer:
    """The installer desktop Slicer offers: pip_ensure (with a confirmation dialog) or pip_install."""
    import slicer

    def install(requirements: Sequence[str]) -> None:
        try:
            import slicer.packaging as packaging  # Slicer >= 5.12

            packaging.pip_ensure(list(requirements), requester=requester)
        except ImportError:
            slicer.util.pip_install(list(requirements))

    return install


def ensure_requirements(
    requirements_file: str | os.PathLike[str], installer: Installer | None = None, requester: str = "SpineMets"
) -> list[str]:
    """Install what is missing from ``requirements_file``; return what was requested."""
    missing = missing_requirements(read_requirements(requirements_file))
    if not missing:
        return []
    if installer is None:
        from .runtime import in_slicer_application

        if not in_slicer_application():
            raise ImportError(
                f"missing Python packages {missing}; install them with: pip install " + " ".join(f"'{m}'" for m in missing)
            )
        installer = slicer_installer(requester)
    logger.info("installing %s for %s", missing, requester)
    installer(missing)
    return missing
