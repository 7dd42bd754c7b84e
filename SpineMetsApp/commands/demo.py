"""``spinemets demo``: the end-to-end demo on a synthetic phantom (see :mod:`SpineMetsApp.demo`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import command_help


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    summary = run_demo(args.out, cases=args.cases, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``spinemets`` command."""
    p = subparsers.add_parser("demo", help=command_help("demo"))
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--cases", type=int, default=3, help="phantom cases to generate (default 3)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.set_defaults(func=_cmd_demo)
