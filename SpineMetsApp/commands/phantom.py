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
    if args.study:
        return _cmd_study_phantom(args, config)
    cases = 10 if args.cases is None else args.cases
    update, close = console_progress("phantom")
    try:
        manifest = write_cohort(args.out, n_cases=cases, seed=args.seed, config=config, fmt=args.format, progress=update)
    finally:
        close()
    print(json.dumps({"manifest": str(manifest), "cases": cases, "seed": args.seed, "synthetic_data": True}))
    return 0


def _cmd_study_phantom(args: argparse.Namespace, config: Any) -> int:
    """A cohort shaped like one of the four studies (``SpineMetsPhantom.studies``)."""
    from SpineMetsCore.progress import console_progress
    from SpineMetsPhantom.studies import study_spec, write_study_cohort

    spec = study_spec(args.study)
    cases = spec.default_n if args.cases is None else args.cases
    update, close = console_progress(f"phantom study {spec.key}")
    try:
        manifest = write_study_cohort(spec.key, args.out, n_cases=cases, seed=args.seed, fmt=args.format,
                                      config=config, progress=update)
    finally:
        close()
    print(json.dumps({"manifest": str(manifest), "study": spec.key, "cases": cases, "paper_cases": spec.paper_n,
                      "label": spec.label, "seed": args.seed, "synthetic_data": True}))
    return 0


def _replace(config: Any, field: str, value: object) -> Any:
    if dataclasses.is_dataclass(config) and field in {f.name for f in dataclasses.fields(config)}:
        return dataclasses.replace(config, **{field: value})
    raise SpineMetsError(f"phantom configuration has no setting '{field}'")


def register(subparsers: Any) -> None:
    """Add ``phantom`` to the ``spinemets`` command."""
    p = subparsers.add_parser("phantom", help=command_help("phantom"))
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cases", type=int, default=None,
                   help="number of cases (default 10; with --study the study's reduced size: a 98, b 40, c 60, d 60; "
                        "the papers' sizes are a 514, c 510, d 706)")
    p.add_argument("--study", choices=("a", "b", "c", "d"), default=None,
                   help="a cohort shaped like study A (primary site), B (metastasis vs primary bone tumour, contrast), "
                        "C (solitary primary vs metastasis, two centres) or D (sacroiliac joints, axSpA); "
                        "manifest with label, split, centre, seed_ras and roi_min_ras/roi_max_ras columns")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0); same seed, same bytes")
    p.add_argument("--format", default="nii.gz", choices=("nii.gz", "nrrd"), help="image file format")
    p.add_argument("--field-strength", type=float, choices=(1.5, 3.0), default=None, help="force one field strength")
    p.add_argument("--overwrite", action="store_true", help="write into an existing, non-empty --out folder")
    p.set_defaults(func=_cmd_phantom)
