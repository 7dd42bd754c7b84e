"""``spinemets features``: a cohort manifest to one feature table (headless).

    spinemets features --manifest M.csv --params P.yaml --out features.csv [--workers N]
        [--sequences T1,T2] [--label 1] [--shell-mm 5] [--reference auto]
        [--edf EDF.csv] [--edf-schema S.json] [--cache DIR | --no-cache] [--no-radiomics]

Prints one JSON summary line; exit status 0 when every case succeeded, 1 when
some cases failed (their messages are in the table's ``error`` column and in the
summary), 2 for unusable input (nothing written).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from SpineMetsCore.errors import InputError

from . import command_help


def _sequences(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one sequence, e.g. T1,T2")
    return names


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``features`` subcommand to the ``spinemets`` command."""
    from SpineMetsClassifierLib.features.quantitative import REFERENCES

    p = subparsers.add_parser(
        "features",
        help=command_help("features"),
        description="Radiomics per sequence (PyRadiomics), quantitative EDF counterparts and segmentation "
        "features for every manifest case; one CSV + provenance JSON. Interrupted runs resume from the cache.",
    )
    p.add_argument("--manifest", required=True, help="cohort manifest CSV (case_id, T1/T2/STIR/T1CE, mask, anatomy, ...); "
                   "relative paths are relative to the manifest's folder")
    p.add_argument("--params", default=None,
                   help="PyRadiomics parameter file (YAML, PyRadiomics schema); default: shipped Resources/Radiomics/mri_default.yaml")
    p.add_argument("--out", required=True, help="output CSV (a <stem>.provenance.json is written beside it)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--sequences", type=_sequences, default=None, help="comma-separated sequences, e.g. T1,T2 (default: all of each case)")
    p.add_argument("--label", type=int, default=1, help="lesion label for radiomics and signal ratios (0 = all lesions together; default 1)")
    p.add_argument("--shell-mm", type=_non_negative, default=0.0, help="also extract a peritumoural shell of this thickness (mm)")
    p.add_argument("--reference", choices=REFERENCES, default=None,
                   help="signal-ratio reference (default: normal_marrow with an anatomy map, else auto)")
    p.add_argument("--edf", default=None, help="EDF CSV (case_id + EDF items) validated and merged by case_id")
    p.add_argument("--edf-schema", default=None, help="EDF schema, JSON or YAML (default: the shipped SpineMetsCore/Resources/edf_schema.json)")
    p.add_argument("--cache", default=None, help="per-case cache folder (default: <out stem>.cache beside the output)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the per-case cache")
    p.add_argument("--no-radiomics", action="store_true", help="only quantitative EDF and segmentation features")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_cmd_features)


def _cmd_features(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.features.case import CaseSettings
    from SpineMetsClassifierLib.features.cohort import extract_cohort, write_feature_table

    from SpineMetsCore.progress import console_progress

    if args.workers < 1:
        raise InputError("--workers", f"must be at least 1, got {args.workers}")
    if args.label < 0:
        raise InputError("--label", f"must be >= 0, got {args.label}")
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise InputError("--out", f"must name a .csv file, got {out}")
    settings = CaseSettings(
        params_path=args.params,
        sequences=args.sequences,
        label=args.label,
        shell_mm=args.shell_mm,
        radiomics=not args.no_radiomics,
        reference=args.reference,
    )
    cache = None if args.no_cache else Path(args.cache) if args.cache else out.with_name(out.stem + ".cache")
    update, close = (None, lambda: None) if args.no_progress else console_progress("features")
    try:
        result = extract_cohort(
            args.manifest, settings, workers=args.workers, cache_dir=cache,
            edf_csv=args.edf, edf_schema=args.edf_schema, progress=update,
        )
    finally:
        close()
    write_feature_table(result, out)
    summary = {
        "out": str(out),
        "provenance": str(out.with_name(out.stem + ".provenance.json")),
        "cases": len(result.frame),
        "columns": int(result.frame.shape[1]),
        "computed": len(result.computed),
        "cached": len(result.cached),
        "failed": result.failed,
    }
    print(json.dumps(summary))
    return 1 if result.failed else 0
