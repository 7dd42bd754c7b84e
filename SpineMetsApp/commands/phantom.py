"""``spinemets phantom``: a synthetic multi-sequence spine MRI cohort and its manifest."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from SpineMetsCore.errors import SpineMetsError
from SpineMetsCore.fileio import prepare_output

from . import command_help


def _cmd_phantom(args: argparse.Namespace) -> int:
    from SpineMetsCore.progress import console_progress
    from SpineMetsPhantom import PhantomConfig, write_cohort

    prepare_output(args.out, overwrite=args.overwrite, kind="dir")
    config = PhantomConfig()
    if args.field_strength:
        config = _replace(config, "field_strengths", (args.field_strength,))
    update, close = console_progress("phantom")
    try:
        manifest = write_cohort(args.out, n_cases=args.cases, seed=args.seed, config=config, fmt=args.format, progress=update)
    finally:
        close()
    print(json.dumps({"manifest": str(manifest), "cases": args.cases, "seed": args.seed, "synthetic_data": True}))
    return 0


def _replace(config: Any, field: str, value: object) -> Any:
    if dataclasses.is_dataclass(config) and field in {f.name for f in dataclasses.fields(config)}:
        return dataclasses.replace(config, **{field: value})
    raise SpineMetsError(f"phantom configuration has no setting '{field}'")


def register(subparsers: Any) -> None:
    """Add ``phantom`` to the ``spinemets`` command."""
    p = subparsers.add_parser("phantom", help=command_help("phantom"))
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0); same seed, same bytes")
    p.add_argument("--format", default="nii.gz", choices=("nii.gz", "nrrd"), help="image file format")
    p.add_argument("--field-strength", type=float, choices=(1.5, 3.0), default=None, help="force one field strength")
    p.add_argument("--overwrite", action="store_true", help="write into an existing, non-empty --out folder")
    p.set_defaults(func=_cmd_phantom)
