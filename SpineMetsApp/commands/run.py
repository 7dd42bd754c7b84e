"""``spinemets run``: one command runs a whole study, from images to a report.

    spinemets run --manifest M.csv --config STUDY --out DIR [--workers N] [--scheduler ADDRESS] [--overwrite]

Prints one JSON summary line (report path, cases computed / reused / failed). Exit status 0
when every case succeeded, 1 when some cases failed (recorded in ``DIR/failures.csv``; the
study ran on the others), 2 for unusable input (nothing computed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import command_help


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _epilog() -> str:
    from ..pipeline.cases import MANIFEST_COLUMN_DOCS
    from ..pipeline.config import describe_schema, shipped_configs

    columns = "\n".join(f"  {name}: {doc}" for name, doc in MANIFEST_COLUMN_DOCS.items())
    return ("shipped configs: " + ", ".join(shipped_configs()) + "\n\nmanifest columns read by the pipeline "
            "(besides case_id, T1/T2/STIR/T1CE, mask, anatomy and the label columns; relative paths are relative "
            "to the manifest's folder):\n" + columns + "\n\nconfig keys (docs/pipeline.md has the same list):\n"
            + "\n".join(describe_schema()))


def register(subparsers: Any) -> None:
    """Add ``run`` to the ``spinemets`` command."""
    p = subparsers.add_parser(
        "run", help=command_help("run"), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Segment every manifest case and extract its features (Dask; finished cases are kept and a "
        "rerun resumes), then train, evaluate, explain and predict the configured models and write "
        "DIR/report.html. Relative manifest paths are relative to the manifest's folder.",
        epilog=_epilog())
    p.add_argument("--manifest", required=True, help="cohort manifest CSV")
    p.add_argument("--config", required=True, help="study config: a YAML file or a shipped config name (e.g. demo)")
    p.add_argument("--out", required=True, help="output folder (new, empty, or the same run to resume)")
    p.add_argument("--workers", type=_workers, default=min(2, os.cpu_count() or 1),
                   help="Dask worker processes of the local cluster (default 2; 0: run the cases in this process)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://host:8786) "
                   "instead of a local cluster; see docs/pipeline.md for SLURM/PBS with dask-jobqueue")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run with another config or manifest in --out")
    p.set_defaults(func=_cmd_run)


def console_progress_closing() -> Any:
    """A progress-with-ETA bar on stderr that closes itself when the last case finished."""
    from SpineMetsCore.progress import console_progress

    update, close = console_progress("cases")

    def progress(done: int, total: int) -> None:
        update(done, total)
        if done >= total:
            close()

    return progress, close


def _cmd_run(args: argparse.Namespace) -> int:
    from ..pipeline import run_pipeline

    progress, close = console_progress_closing()
    try:
        result = run_pipeline(args.manifest, args.config, args.out, workers=args.workers, scheduler=args.scheduler,
                              overwrite=args.overwrite, progress=progress)
    finally:
        close()
    summary = {"report": str(result.report), "out": str(result.out), "cases": result.cases,
               "computed": len(result.computed), "reused": len(result.cached), "failed": result.failed,
               "resumed": result.resumed, "seconds": round(result.seconds, 1)}
    print(json.dumps(summary))
    if result.failed:
        print(f"spinemets run: {len(result.failed)} case(s) failed; see {result.out / 'failures.csv'}", file=sys.stderr)
        return 1
    return 0
