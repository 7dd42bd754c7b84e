"""Run a SpineMets study inside 3D Slicer without a window (headless Slicer).

    Slicer --no-main-window --python-script SpineMetsApp/examples/run_in_slicer.py \
        --manifest cohort/manifest.csv --config demo --out study_out [--overwrite]

Calls the same Python API as ``spinemets run`` (:func:`SpineMetsApp.pipeline.run_pipeline`)
with ``workers=0``: the cases run in Slicer's own process, one after another (Slicer's
executable cannot host Dask worker processes). Slicer exits with status 0 when every
case succeeded, 1 when some failed (see ``study_out/failures.csv``), 2 for unusable input.
Requirements: the SpineMets extension installed (or this repository on ``sys.path``, as
below) and the pipeline's packages in Slicer's Python, e.g. in Slicer's Python console
``slicer.util.pip_install("dask distributed scikit-learn shap skops pyradiomics-bhklab")``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _add_repository_to_path() -> None:
    """Make this checkout importable when the extension is not installed."""
    root = Path(__file__).resolve().parents[2]
    for folder in (root, root / "SpineMetsSegment", root / "SpineMetsClassifier"):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_in_slicer.py", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--config", required=True, help="YAML file or shipped config name (demo, study-a, ...)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _add_repository_to_path()
    from SpineMetsApp.pipeline import run_pipeline
    from SpineMetsCore.errors import SpineMetsError

    try:
        result = run_pipeline(args.manifest, args.config, args.out, workers=0, overwrite=args.overwrite)
    except SpineMetsError as exc:
        print(f"run_in_slicer: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {result.report}")
    if result.failed:
        print(f"{len(result.failed)} case(s) failed: {sorted(result.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])  # Slicer passes the arguments after the script path in sys.argv
    slicer = sys.modules.get("slicer")
    if slicer is not None and hasattr(slicer, "app") and hasattr(slicer, "util"):
        slicer.util.exit(status)  # leave Slicer with the script's status
    else:
        sys.exit(status)
