"""Import ``shap`` next to 3D Slicer's own ``slicer`` package.

shap imports ``Slicer``, ``Alias`` and ``Obj`` from an unrelated PyPI package
that is also called ``slicer`` (interpretml/slicer). Two situations exist:

* venv with slicer-core: slicer-core's ``slicer/__init__`` is a meta-package
  that imports every module in its folder and re-exports their public names, so
  interpretml's ``slicer/slicer.py`` (installed into the same folder) already
  provides ``slicer.Slicer`` and a plain ``import shap`` works. The install
  guard (``Resources/Scripts/ensure_slicer_namespace.py``) makes sure the
  meta-package's ``__init__`` is the one on disk.
* desktop Slicer: ``slicer`` is Slicer's own package (``bin/Python/slicer``),
  which shadows interpretml's copy in site-packages, so ``import shap`` fails.
  :func:`import_shap` then loads interpretml's module under a private name and
  adds just those three names to Slicer's namespace, which is exactly what the
  slicer-core meta-package does.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

logger = logging.getLogger(__name__)

_PRIVATE_NAME = "_spinemets_interpret_slicer"
SHAP_NAMES = ("Slicer", "Alias", "Obj")


def _find_interpret_slicer_dir() -> Path | None:
    """Locate interpretml's ``slicer`` source folder on ``sys.path``."""
    for entry in sys.path:
        candidate = Path(entry or ".") / "slicer"
        if (candidate / "slicer_internal.py").is_file() and (candidate / "slicer.py").is_file():
            return candidate
    return None


def load_interpret_slicer() -> ModuleType:
    """Load interpretml's ``slicer`` package under a private name (no side effects on ``slicer``)."""
    if _PRIVATE_NAME in sys.modules:
        return sys.modules[_PRIVATE_NAME]
    folder = _find_interpret_slicer_dir()
    if folder is None:
        raise ImportError(
            "shap needs the PyPI package 'slicer' (interpretml); install it with "
            "'pip install slicer==0.0.8' (it does not replace 3D Slicer's own package)"
        )
    spec = importlib.util.spec_from_file_location(
        _PRIVATE_NAME, folder / "slicer.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load interpretml slicer from {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_NAME] = module
    spec.loader.exec_module(module)
    return module


def ensure_shap_names() -> None:
    """Make ``from slicer import Slicer, Alias, Obj`` work without touching other names."""
    import slicer

    if all(hasattr(slicer, name) for name in SHAP_NAMES):
        return
    module = load_interpret_slicer()
    for name in SHAP_NAMES:
        if not hasattr(slicer, name):
            setattr(slicer, name, getattr(module, name))
    logger.info("added interpretml slicer names %s to the 'slicer' namespace for shap", SHAP_NAMES)


def import_shap() -> ModuleType:
    """Import shap whether ``slicer`` is slicer-core's meta-package or desktop Slicer's package."""
    try:
        return importlib.import_module("shap")
    except ImportError as exc:
        if "slicer" not in str(exc):
            raise
        sys.modules.pop("shap", None)
        for key in [k for k in sys.modules if k.startswith("shap.")]:
            sys.modules.pop(key)
    ensure_shap_names()
    return importlib.import_module("shap")
