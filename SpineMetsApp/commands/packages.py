"""``spinemets upgrade-model``: re-save a model package in the current format.

::

    spinemets upgrade-model old_model/ new_model.zip [--overwrite]

Packages written before format_version 2 checksummed only their weights; the
upgraded package has ``checksums.json`` over every member and the card. The payload
bytes are copied unchanged (see docs/model-packages.md).
"""

from __future__ import annotations

import argparse
import json

from . import command_help


def _cmd_upgrade(args: argparse.Namespace) -> int:
    from SpineMetsCore.packages import open_package, upgrade_package

    out = upgrade_package(args.old, args.new, overwrite=args.overwrite)
    package = open_package(out)
    print(json.dumps({"model": str(out), "kind": package.kind, "format_version": package.card["format_version"],
                      "payload_sha256": package.card["payload"]["sha256"], "package_digest": package.digest,
                      "synthetic_training_data": package.synthetic_training_data}, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upgrade-model", help=command_help("upgrade-model"),
                              description=__doc__.splitlines()[0])
    p.add_argument("old", help="model package folder or .zip (any SpineMets format)")
    p.add_argument("new", help="output folder, or a path ending in .zip")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package at NEW")
    p.set_defaults(func=_cmd_upgrade)
