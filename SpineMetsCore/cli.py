"""The ``spinemets`` command: headless access to every SpineMets job.

Subcommands are contributed by the Libs (``register(subparsers)``), so the
command grows with the modules without a second copy of their arguments.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from .errors import SpineMetsError

logger = logging.getLogger("spinemets")

# Flags whose values are coordinate lists: "-12.5,3,40" must not be mistaken for an option.
COORDINATE_FLAGS: tuple[str, ...] = ("--seed-ras", "--roi-ras")

# Modules contributing subcommands through ``register(subparsers)``.
PLUGIN_MODULES: tuple[str, ...] = (
    "SpineMetsSegmentLib.cli",
    "SpineMetsSegmentLib.unet_cli",
    "SpineMetsClassifierLib.cli",
    "SpineMetsClassifierLib.stats_cli",
    "SpineMetsClassifierLib.model_cli",
)


def join_coordinate_values(argv: Sequence[str], flags: Sequence[str] = COORDINATE_FLAGS) -> list[str]:
    """Rewrite ``--flag -1,2,3`` as ``--flag=-1,2,3`` so negative coordinates parse."""
    out: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        token = argv[i]
        if token in flags and i + 1 < len(argv):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _cmd_phantom(args: argparse.Namespace) -> int:
    from .phantom import PhantomConfig, write_cohort
    from .progress import console_progress

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


def _replace(config: object, field: str, value: object) -> object:
    import dataclasses

    if dataclasses.is_dataclass(config) and field in {f.name for f in dataclasses.fields(config)}:
        return dataclasses.replace(config, **{field: value})
    raise SpineMetsError(f"phantom configuration has no setting '{field}'")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.out, cases=args.cases, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinemets",
        description="SpineMets: spinal MRI lesion segmentation, features and classifiers (headless).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("phantom", help="write a synthetic multi-sequence spine MRI cohort + manifest.csv")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0); same seed, same bytes")
    p.add_argument("--format", default="nii.gz", choices=("nii.gz", "nrrd"), help="image file format")
    p.add_argument("--field-strength", type=float, choices=(1.5, 3.0), default=None, help="force one field strength")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("demo", help="run the end-to-end demo on a synthetic phantom")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--cases", type=int, default=3, help="phantom cases to generate (default 3)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.set_defaults(func=_cmd_demo)

    for module_name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # the module does not contribute commands (yet)
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = join_coordinate_values(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except SpineMetsError as exc:
        print(f"spinemets {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
