#!/usr/bin/env python3
"""Guard the shared ``slicer/`` folder after pip installs (run by ``make venv``).

Two PyPI distributions install into ``site-packages/slicer/``: ``slicer-core``
(3D Slicer's MRML libraries; its ``__init__`` is a meta-package that imports
every module in the folder) and ``slicer`` (interpretml, a shap dependency;
its ``__init__`` only exports ``Slicer``/``Alias``/``Obj``). Whichever pip
installs last owns ``__init__.py``. This script

1. restores slicer-core's ``__init__.py`` if interpretml's won (reinstalling
   slicer-core without dependencies, so nothing else changes);
2. removes interpretml's test helpers ``test_slicer.py`` and
   ``utils_testing.py`` from the folder: slicer-core's meta ``__init__``
   would import them on every ``import slicer``, pulling in pytest, torch and
   pandas (seconds of start-up) or failing where pytest is absent;
3. verifies, in a fresh interpreter, that ``slicer.vtkMRMLScene()`` and
   ``import shap`` both work, and exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

CHECK = (
    "import slicer; s = slicer.vtkMRMLScene(); assert s.GetNumberOfNodes() >= 0; "
    "assert hasattr(slicer, 'util') and hasattr(slicer.util, 'arrayFromVolume'); "
    "import shap; from slicer import Slicer; print('slicer-core', slicer.vtkMRMLScene.__module__, 'shap', shap.__version__)"
)
INTERPRET_TEST_FILES = ("test_slicer.py", "utils_testing.py")


def _record_hash(dist: metadata.Distribution, rel: str) -> str | None:
    for f in dist.files or []:
        if str(f) == rel and f.hash is not None:
            return f.hash.value
    return None


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-only", action="store_true", help="verify without changing anything")
    args = parser.parse_args(argv)

    try:
        core = metadata.distribution("slicer-core")
    except metadata.PackageNotFoundError:
        print("slicer-core is not installed in", sys.prefix, file=sys.stderr)
        return 1
    init_file = Path(core.locate_file("slicer/__init__.py"))
    expected = _record_hash(core, "slicer/__init__.py")
    if expected and (not init_file.exists() or _file_hash(init_file) != expected):
        if args.check_only:
            print(f"{init_file} is not slicer-core's meta-package __init__", file=sys.stderr)
            return 1
        print("restoring slicer-core's slicer/__init__.py (overwritten by another 'slicer' distribution)")
        subprocess.check_call(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
             f"slicer-core=={core.version}"]
        )
    if not args.check_only:
        for name in INTERPRET_TEST_FILES:
            path = init_file.parent / name
            if path.exists():
                path.unlink()
                print(f"removed {path} (interpretml test helper imported by slicer-core's meta __init__)")
        for cache in (init_file.parent / "__pycache__").glob("*"):
            if cache.name.split(".")[0] in {n[:-3] for n in INTERPRET_TEST_FILES}:
                cache.unlink()
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        print("FAILED: slicer-core and shap do not import together", file=sys.stderr)
        return 1
    print(result.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
