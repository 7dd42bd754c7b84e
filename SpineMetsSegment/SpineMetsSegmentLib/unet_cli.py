"""``spinemets train-seg``: train a U-Net from a manifest and write a model package.

Example::

    spinemets train-seg --manifest cohort/manifest.csv --sequences T1,T2,STIR \\
        --out models/lesion_unet --epochs 50 --patch 64,64,16 --dim 3 --seed 0

Prints a JSON summary (validation Dice, best epoch, weights checksum, ...).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from SpineMetsCore.errors import InputError


def _int_list(text: str, what: str, n: int | None = None) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise InputError(what, f"expects comma-separated integers, got {text!r}") from exc
    if n is not None and len(values) != n:
        raise InputError(what, f"expects {n} comma-separated integers, got {text!r}")
    return values


def _spacing(text: str) -> tuple[float | None, ...]:
    """``1.15,1.15,3.5``; ``keep`` (or empty) for an axis keeps the input's spacing."""
    parts = text.split(",")
    if len(parts) != 3:
        raise InputError("--spacing", f"expects 3 comma-separated values (i, j, k), got {text!r}")
    out: list[float | None] = []
    for p in parts:
        p = p.strip().lower()
        if p in ("", "keep", "none"):
            out.append(None)
            continue
        try:
            value = float(p)
        except ValueError as exc:
            raise InputError("--spacing", f"value {p!r} is not a number or 'keep'") from exc
        if not value > 0:
            raise InputError("--spacing", f"values must be positive, got {value}")
        out.append(value)
    return tuple(out)


def _cmd_train_seg(args: argparse.Namespace) -> int:
    from SpineMetsCore.progress import console_progress

    from .unet import TrainingConfig, train_model

    sequences = tuple(s.strip() for s in args.sequences.split(",") if s.strip())
    if not sequences:
        raise InputError("--sequences", "needs at least one sequence name")
    kwargs: dict[str, Any] = {
        "sequences": sequences,
        "dim": args.dim,
        "epochs": args.epochs,
        "seed": args.seed,
        "val_fraction": args.val_fraction,
        "force_cpu": args.force_cpu,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "val_interval": args.val_interval,
        "min_component_ml": args.min_component_ml,
        "normalisation": {"method": args.normalisation, **({"clip": 5.0} if args.normalisation.startswith("zscore") else {})},
    }
    if args.patch:
        kwargs["patch_size"] = _int_list(args.patch, "--patch")
    if args.spacing:
        kwargs["spacing"] = _spacing(args.spacing)
    if args.channels:
        kwargs["channels"] = _int_list(args.channels, "--channels")
    if args.name:
        kwargs["name"] = args.name
    if args.synthetic != "auto":
        kwargs["synthetic_training_data"] = args.synthetic == "yes"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    update, close = console_progress("train-seg", unit="epoch")
    try:
        result = train_model(args.manifest, args.out, TrainingConfig(**kwargs), progress=update)
    finally:
        close()
    print(json.dumps(result.summary(), indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add ``train-seg`` to the ``spinemets`` command."""
    p = subparsers.add_parser(
        "train-seg",
        help="train a U-Net lesion segmentation model from a manifest CSV; writes a model package",
        description="Train a MONAI U-Net (3-D, or 2-D slice-wise) on the manifest's images and masks "
        "and write a model package (model.json + weights.safetensors with SHA-256).",
    )
    p.add_argument("--manifest", required=True, help="manifest CSV (case_id, one column per sequence, mask)")
    p.add_argument("--sequences", required=True, help="input sequences in order, e.g. T1,T2,STIR")
    p.add_argument("--out", required=True, help="model package folder (or .zip) to write")
    p.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    p.add_argument("--patch", default=None, help="patch size i,j,k in voxels (default 64,64,16; 96,96,1 for --dim 2)")
    p.add_argument("--spacing", default=None, help="working spacing i,j,k in mm, 'keep' per axis (default: median of the training cases)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=3, help="3: volumetric U-Net; 2: slice-wise U-Net (thick-slice stacks)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, initialisation and augmentation (default 0)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of cases held out for validation (default 0.2)")
    p.add_argument("--force-cpu", action="store_true", help="train on the CPU even when CUDA is available")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (AdamW, cosine decay)")
    p.add_argument("--channels", default=None, help="U-Net channels per level (default 8,16,32,64)")
    p.add_argument("--val-interval", type=int, default=1, help="validate every N epochs (default 1)")
    p.add_argument("--normalisation", default="zscore", choices=("zscore", "zscore_nonzero", "percentile"))
    p.add_argument("--min-component-ml", type=float, default=0.0, help="post-processing: drop components smaller than this (mL)")
    p.add_argument("--name", default=None, help="model name in the model card")
    p.add_argument("--synthetic", choices=("auto", "yes", "no"), default="auto",
                   help="mark the training data synthetic (auto: yes when every row has a phantom_version)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_cmd_train_seg)
