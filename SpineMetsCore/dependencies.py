"""Python dependencies inside desktop 3D Slicer: one plan, one confirmation, then pip.

Both modules call :meth:`DependencyInstaller.ensure` with their own requirements
file (``<Module>/Resources/<Module>Requirements.txt``) before an action imports a
package Slicer does not bundle. The decisions are made by :func:`plan_installation`,
a pure function of the requirement lines and of what is installed, so tests check
them without pip, Slicer or a GUI:

* Slicer's own packages (numpy, scipy, SimpleITK, vtk) are never installed or
  upgraded: every pip call gets a constraints file pinning their installed
  versions, and the installed torch, so a dependency cannot replace them.
* torch is installed only through the PyTorch extension's ``PyTorchUtils`` (it
  picks the CUDA/CPU build for the machine), with a version requirement, first.
* MONAI's version is chosen to match that torch (MONAI 1.6 needs torch >= 2.8;
  1.5 runs on torch >= 2.4.1; older MONAI pins numpy < 2, which would downgrade
  Slicer 5.10's numpy).
* PyRadiomics is not pip-installed: PyPI has no Python 3.12 wheel of it and a
  Slicer user has no compiler. The SlicerRadiomics extension bundles a compiled
  PyRadiomics; when ``radiomics`` cannot be imported the plan says so.
* shap is installed with ``--no-deps`` after its dependencies are listed
  explicitly: its ``slicer`` dependency (interpretml, unrelated to 3D Slicer; it
  lands in ``site-packages/slicer`` and is shadowed by Slicer's own package,
  :mod:`SpineMetsCore.shap_compat` bridges the three names shap uses) is shown
  for what it is, and nothing asks for a needless restart.

The confirmation (one dialog on every Slicer version) lists exactly the steps of
the plan. The confirm function, the pip runner and the torch installer are
injected; :func:`slicer_installer` builds the desktop ones.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .errors import SpineMetsError

logger = logging.getLogger(__name__)

SLICER_PINNED = ("numpy", "scipy", "SimpleITK", "vtk")
"""Distributions desktop Slicer ships: pinned in every pip call, never installed by us."""
TORCH = "torch"
MONAI = "monai"
PYRADIOMICS_NAMES = frozenset({"pyradiomics", "pyradiomics-bhklab"})
MIN_TORCH = "2.4.1"
"""Oldest torch with a MONAI release that accepts numpy 2 (MONAI 1.5)."""
NO_DEPS: Mapping[str, tuple[str, ...]] = {
    "shap": (
        "scikit-learn",
        "pandas",
        "tqdm>=4.27.0",
        "packaging>20.9",
        "numba",
        "llvmlite",
        "cloudpickle",
        "typing-extensions",
        "slicer==0.0.8",
    ),
}
"""Packages installed with ``--no-deps`` and the dependencies installed for them instead."""
NOTES: Mapping[str, str] = {
    "slicer": "interpretml's 'slicer' helper used by shap; unrelated to 3D Slicer, which keeps its own "
    "'slicer' package (no restart needed)",
}
PYRADIOMICS_MESSAGE = (
    "PyRadiomics is not available in this Slicer. Install the 'SlicerRadiomics' extension from the "
    "Extensions Manager (it ships a compiled PyRadiomics) and restart Slicer. PyPI has no PyRadiomics "
    "wheel for Slicer's Python 3.12, and building one needs a C compiler."
)


class DependencyError(SpineMetsError):
    """A needed package cannot be installed here (or the user declined)."""


Confirm = Callable[[str], bool]
PipRunner = Callable[[Sequence[str]], None]
TorchInstaller = Callable[[str], "str | None"]
VersionLookup = Callable[[str], "str | None"]
Importable = Callable[[str], bool]


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """Distribution name of a requirement line (``monai>=1.5,<1.7`` -> ``monai``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise DependencyError(f"'{requirement}' is not a requirement line")
    return match.group(1)


def read_requirements(path: str | os.PathLike[str]) -> list[str]:
    """Requirement lines of a requirements file (comments, blank lines and options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def installed_version(name: str) -> str | None:
    """Installed version of a distribution, or None (vtk: the module's, when Slicer built it)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    if canonical_name(name) == "vtk":
        try:
            import vtk

            return str(vtk.vtkVersion.GetVTKVersion())
        except ImportError:
            return None
    return None


def importable(module: str) -> bool:
    """True when ``import module`` would find it (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in re.split(r"[.+]", version)[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group(0)) if digits else 0)
    return tuple(parts)


def _satisfies(version: str, requirement: str) -> bool:
    """Whether an installed version meets a requirement's specifier (no specifier: always)."""
    from packaging.requirements import Requirement

    spec = Requirement(requirement).specifier
    return spec.contains(version, prereleases=True) or spec.contains(version.split("+", 1)[0], prereleases=True)


def monai_requirement(torch_version: str) -> str:
    """The MONAI release range that runs on an installed torch (and on numpy 2)."""
    version = _version_tuple(torch_version)
    if version >= (2, 8):
        return "monai>=1.6,<1.7"
    if version >= _version_tuple(MIN_TORCH):
        return "monai>=1.5,<1.6"
    raise DependencyError(
        f"torch {torch_version} is too old for a MONAI release that supports numpy 2; update torch to "
        f">={MIN_TORCH} with the PyTorch extension (PyTorch Util module)"
    )


@dataclass(frozen=True)
class InstallStep:
    """One thing the installer does, in order."""

    kind: str
    """``torch`` (PyTorchUtils) or ``pip``."""
    requirements: tuple[str, ...]
    options: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        if self.kind == TORCH:
            return [f"{self.requirements[0]} through the PyTorch extension (it picks the CPU/CUDA build)"]
        suffix = f" ({' '.join(self.options)})" if self.options else ""
        lines = []
        for req in self.requirements:
            note = NOTES.get(canonical_name(requirement_name(req)))
            lines.append(f"{req}{suffix}" + (f": {note}" if note else ""))
        return lines


@dataclass
class InstallPlan:
    """What :meth:`DependencyInstaller.ensure` will do, for the confirmation and for tests."""

    requester: str
    steps: list[InstallStep] = field(default_factory=list)
    constraints: dict[str, str] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)
    monai_after_torch: bool = False
    """True when MONAI's version can only be chosen once torch is installed."""

    @property
    def empty(self) -> bool:
        return not self.steps

    def packages(self) -> list[str]:
        """Every requirement installed, in order."""
        return [req for step in self.steps for req in step.requirements]

    def summary(self) -> str:
        """The confirmation text: exactly what will be installed, in order, and what stays pinned."""
        lines = [f"{self.requester} needs these Python packages, installed in this order:"]
        for step in self.steps:
            lines += [f"  - {line}" for line in step.describe()]
        if self.monai_after_torch:
            lines.append("  (the MONAI version is chosen to match the installed torch)")
        if self.constraints:
            pinned = ", ".join(f"{name} {version}" for name, version in self.constraints.items())
            lines.append(f"Kept as they are (pip constraints): {pinned}.")
        lines.append("This can take a few minutes.")
        return "\n".join(lines)


def plan_installation(
    requirements: Sequence[str],
    requester: str = "SpineMets",
    only: Collection[str] | None = None,
    version_of: VersionLookup = installed_version,
    can_import: Importable = importable,
) -> InstallPlan:
    """Decide what to install for ``requirements`` (optionally only the names in ``only``).

    Order: torch (PyTorchUtils), then one constrained pip call for everything
    else, then each ``--no-deps`` package. Nothing already satisfied is listed.
    """
    wanted = {canonical_name(n) for n in only} if only is not None else None
    plan = InstallPlan(requester)
    pip_reqs: list[str] = []
    no_deps: list[str] = []
    torch_req: str | None = None
    needs_monai = False
    for req in requirements:
        name = canonical_name(requirement_name(req))
        if wanted is not None and name not in wanted:
            continue
        if name in {canonical_name(p) for p in SLICER_PINNED}:
            continue  # Slicer's own: never installed by an extension
        if name in PYRADIOMICS_NAMES:
            if not can_import("radiomics"):
                plan.unavailable.append(PYRADIOMICS_MESSAGE)
            continue
        if name == TORCH:
            have = version_of(TORCH)
            if have is None or not _satisfies(have, req):
                torch_req = req
            continue
        if name == MONAI:
            needs_monai = True
            continue
        if name in NO_DEPS:
            have = version_of(name)
            if have is None or not _satisfies(have, req):
                no_deps.append(req)
                for dep in NO_DEPS[name]:
                    dep_version = version_of(requirement_name(dep))
                    if dep_version is None or not _satisfies(dep_version, dep):
                        _add_once(pip_reqs, dep)
            continue
        have = version_of(requirement_name(req))
        if have is None or not _satisfies(have, req):
            _add_once(pip_reqs, req)
    if torch_req is not None:
        plan.steps.append(InstallStep(TORCH, (torch_req,)))
    torch_version = version_of(TORCH)
    if needs_monai:
        if torch_req is not None or torch_version is None:
            plan.monai_after_torch = True
            pip_reqs.insert(0, MONAI)
        else:
            monai_req = monai_requirement(torch_version)
            have = version_of(MONAI)
            if have is None or not _satisfies(have, monai_req):
                pip_reqs.insert(0, monai_req)
    if pip_reqs:
        plan.steps.append(InstallStep("pip", tuple(pip_reqs)))
    if no_deps:
        plan.steps.append(InstallStep("pip", tuple(no_deps), ("--no-deps",)))
    for name in (*SLICER_PINNED, TORCH):
        version = version_of(name)
        if version is not None:
            plan.constraints[name] = version
    return plan


def _add_once(requirements: list[str], requirement: str) -> None:
    """Append unless the distribution is already listed (the first, module's own, bound wins)."""
    name = canonical_name(requirement_name(requirement))
    if all(canonical_name(requirement_name(r)) != name for r in requirements):
        requirements.append(requirement)


def constraints_text(constraints: Mapping[str, str]) -> str:
    """A pip constraints file pinning each distribution to its installed version."""
    return "".join(f"{name}=={version}\n" for name, version in constraints.items())


class DependencyInstaller:
    """Checks, confirms once, installs (torch first), verifies."""

    def __init__(
        self,
        requester: str,
        confirm: Confirm,
        pip: PipRunner,
        torch_installer: TorchInstaller | None = None,
        version_of: VersionLookup = installed_version,
        can_import: Importable = importable,
    ) -> None:
        self.requester = requester
        self.confirm = confirm
        self.pip = pip
        self.torch_installer = torch_installer
        self.version_of = version_of
        self.can_import = can_import

    def plan(self, requirements_file: str | os.PathLike[str], only: Collection[str] | None = None) -> InstallPlan:
        return plan_installation(read_requirements(requirements_file), self.requester, only, self.version_of, self.can_import)

    def ensure(self, requirements_file: str | os.PathLike[str], only: Collection[str] | None = None) -> bool:
        """True when everything needed is installed (now or before); False when the user declined.

        Raises :class:`DependencyError` when something cannot be installed here
        (PyRadiomics without SlicerRadiomics, torch without the PyTorch extension).
        """
        plan = self.plan(requirements_file, only)
        if plan.unavailable:
            raise DependencyError(" ".join(plan.unavailable))
        if plan.empty:
            return True
        if not self.confirm(plan.summary()):
            logger.info("%s: installation declined", self.requester)
            return False
        for step in plan.steps:
            if step.kind == TORCH:
                if self.torch_installer is None:
                    raise DependencyError(f"{self.requester} needs {step.requirements[0]}: install the PyTorch extension")
                version = self.torch_installer(step.requirements[0])
                if version is None:
                    return False
                plan.constraints[TORCH] = version
                continue
            requirements = list(step.requirements)
            if MONAI in requirements:
                torch_version = self.version_of(TORCH) or plan.constraints.get(TORCH)
                if torch_version is None:
                    raise DependencyError("MONAI needs torch, which is not installed")
                requirements[requirements.index(MONAI)] = monai_requirement(torch_version)
            self._pip(requirements, step.options, plan.constraints)
        still = self.plan(requirements_file, only)
        if not still.empty:
            raise DependencyError(f"{self.requester}: still missing after installation: {', '.join(still.packages())}")
        return True

    def _pip(self, requirements: Sequence[str], options: Sequence[str], constraints: Mapping[str, str]) -> None:
        with tempfile.TemporaryDirectory(prefix="SpineMetsPip-") as tmp:
            path = Path(tmp) / "constraints.txt"
            path.write_text(constraints_text(constraints), encoding="utf-8")
            args = ["-c", str(path), *options, *requirements]
            logger.info("%s: pip install %s", self.requester, " ".join(args))
            self.pip(args)


def pytorch_utils_installer(requirement: str) -> str | None:
    """torch through the PyTorch extension; its version, or None when the user declined."""
    try:
        import PyTorchUtils
    except ImportError as exc:
        raise DependencyError(
            "torch comes from the 'PyTorch' extension: install it from the Extensions Manager and restart Slicer"
        ) from exc
    spec = requirement[len(requirement_name(requirement)):].strip() or None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=spec)
    return None if torch is None else str(torch.__version__)


def slicer_installer(requester: str) -> DependencyInstaller:
    """The installer of desktop Slicer: one OK/Cancel dialog, ``slicer.util.pip_install``, PyTorchUtils."""
    import slicer

    def confirm(text: str) -> bool:
        return bool(slicer.util.confirmOkCancelDisplay(text, windowTitle=f"{requester}: install Python packages"))

    def pip(args: Sequence[str]) -> None:
        slicer.util.pip_install(list(args))

    return DependencyInstaller(requester, confirm, pip, pytorch_utils_installer)


def headless_installer(requester: str) -> DependencyInstaller:
    """Outside Slicer nothing is installed silently: the error gives the pip command."""

    def refuse(text: str) -> bool:
        raise DependencyError(f"{text}\nOutside 3D Slicer install them yourself, e.g. pip install -r requirements.txt")

    def no_pip(args: Sequence[str]) -> None:  # pragma: no cover - refuse() raises first
        raise DependencyError("pip is not run outside Slicer")

    return DependencyInstaller(requester, refuse, no_pip)


def ensure_requirements(
    requirements_file: str | os.PathLike[str],
    requester: str = "SpineMets",
    only: Collection[str] | None = None,
    installer: DependencyInstaller | None = None,
) -> bool:
    """Make the packages of ``requirements_file`` (or the named ones) importable; see the module doc."""
    if installer is None:
        from .runtime import in_slicer_application

        installer = slicer_installer(requester) if in_slicer_application() else headless_installer(requester)
    return installer.ensure(requirements_file, only)
