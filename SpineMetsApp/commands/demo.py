"""``spinemets demo`` (``make demo``): a phantom cohort through the whole study pipeline.

By default writes a phantom cohort with Slicer markups seeds to ``<out>/cohort`` and runs
``spinemets run --config demo`` into ``<out>/study``, then prints where the report is.
``--single-case`` runs the earlier one-case demo (MRML round trip, region growing and the
U-Net on one case; see :mod:`SpineMetsApp.demo`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import command_help


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.single_case:
        from ..demo import run_demo

        summary = run_demo(args.out, cases=args.cases or 3, seed=args.seed)
        print(json.dumps(summary, indent=2))
        return 0
    from ..demo import STUDY_DEMO_CASES, run_study_demo
    from .run import console_progress_closing

    progress, close = console_progress_closing()
    try:
        result = run_study_demo(args.out, cases=args.cases or STUDY_DEMO_CASES, seed=args.seed, workers=args.workers,
                                overwrite=args.overwrite, progress=progress)
    finally:
        close()
    print(json.dumps({"report": str(result.report), "cases": result.cases, "failed": result.failed,
                      "seconds": round(result.seconds, 1)}))
    print(f"Demo report (synthetic data, not clinical): {result.report.resolve()}")
    return 1 if result.failed else 0


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``spinemets`` command."""
    p = subparsers.add_parser("demo", help=command_help("demo"))
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--cases", type=int, default=None, help="phantom cases to generate (default 24; 3 with --single-case)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2; 0: in this process)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    p.add_argument("--single-case", action="store_true", help="the one-case demo (MRML, region growing, U-Net)")
    p.set_defaults(func=_cmd_demo)
