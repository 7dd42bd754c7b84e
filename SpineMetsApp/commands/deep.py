"""``spinemets train-dl``, ``spinemets predict-dl`` and ``spinemets deep-features``.

::

    spinemets train-dl --manifest M.csv --label site --out dl_model [--arch resnet50] [--dims 2|3]
                       [--sequences T1,T2,STIR] [--epochs 30] [--seed 0] [--device auto|cpu|cuda]
                       [--split-column partition --test-value test] [--pretrained resnet_50.safetensors]
    spinemets predict-dl --model dl_model --manifest M.csv --out predictions.csv [--model-name DL]
    spinemets deep-features --model dl_model --manifest M.csv --out deep.csv

The predictions CSV has the classical ``spinemets predict`` columns (``case_id``,
truth, ``prob_<class>``, ``top1``.., ``predicted``), so ``spinemets stats evaluate``
compares DL and classical models; the features CSV (``case_id``, ``dl_000``, ...)
merges with a radiomics table for ``spinemets train --feature-set radiomics+deep``.
Every CSV gets a ``<stem>.provenance.json``; nothing is replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import prepare_output

from . import command_help


def _check_out(path: str, overwrite: bool, kind: str = "file") -> None:
    """The Core output policy: writable before any work, never replaced without --overwrite."""
    if kind == "package":
        kind = "file" if Path(path).suffix.lower() == ".zip" else "dir"
    prepare_output(path, overwrite=overwrite, kind=kind)


def _sizes(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise InputError("--size", f"expected integers like 64,64 or 32,32,32, got {text!r}") from None


def _warn_synthetic(command: str, synthetic: bool) -> None:
    if synthetic:
        print(f"spinemets {command}: warning: the model was trained on SYNTHETIC data; its outputs are not "
              "clinically valid", file=sys.stderr)


def _cmd_train_dl(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.deep import train_deep_classifier

    from SpineMetsCore.progress import console_progress

    _check_out(args.out, args.overwrite, kind="package")
    settings: dict[str, Any] = {
        "sequences": tuple(s.strip() for s in args.sequences.split(",") if s.strip()),
        "arch": args.arch, "dims": args.dims, "n_slices": args.slices, "size": _sizes(args.size),
        "width": args.width, "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "patience": args.patience, "val_fraction": args.val_fraction,
        "class_weight": None if args.class_weight == "none" else args.class_weight,
        "augment": not args.no_augment, "seed": args.seed, "device": args.device, "pretrained": args.pretrained,
        "lesion_label": args.lesion_label, "split_column": args.split_column,
        "test_values": tuple(v.strip() for v in args.test_value.split(",") if v.strip()),
        "topk": args.topk, "synthetic_training_data": True if args.synthetic_training_data else None,
    }
    update, close = console_progress("train-dl", unit="step")
    try:
        result = train_deep_classifier(args.manifest, args.label, args.out, progress=update,
                                       overwrite=args.overwrite, **settings)
    finally:
        close()
    print(json.dumps(result.summary(), indent=2, default=str))
    return 0


def _cmd_predict_dl(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.deep import load_deep_package, predict_deep, write_table

    from SpineMetsCore.progress import console_progress

    _check_out(args.out, args.overwrite)
    package = load_deep_package(args.model)
    update, close = console_progress("predict-dl")
    try:
        table = predict_deep(package, args.manifest, topk=args.topk, device=args.device, model_name=args.model_name,
                             progress=update)
    finally:
        close()
    write_table(table, args.out)
    _warn_synthetic("predict-dl", package.synthetic_training_data)
    failed = int((table["error"] != "").sum()) if "error" in table.columns else 0
    print(json.dumps({"predictions": str(args.out), "cases": len(table), "failed": failed, "classes": package.classes}))
    return 1 if failed else 0


def _cmd_deep_features(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.deep import deep_features, load_deep_package, write_table

    from SpineMetsCore.progress import console_progress

    _check_out(args.out, args.overwrite)
    package = load_deep_package(args.model)
    update, close = console_progress("deep-features")
    try:
        frame = deep_features(package, args.manifest, device=args.device, progress=update)
    finally:
        close()
    write_table(frame, args.out)
    _warn_synthetic("deep-features", package.synthetic_training_data)
    failed = int((frame["error"] != "").sum()) if "error" in frame.columns else 0
    n = sum(str(c).startswith("dl_") for c in frame.columns)
    print(json.dumps({"features": str(args.out), "cases": len(frame), "failed": failed, "n_features": n}))
    return 1 if failed else 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="cohort manifest CSV (sequences, mask, label columns)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: CUDA when available, else CPU (default auto)")
    p.add_argument("--force-cpu", dest="device", action="store_const", const="cpu",
                   help="run on the CPU even when CUDA is available (same as --device cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def register(subparsers: Any) -> None:
    """Add ``train-dl``, ``predict-dl`` and ``deep-features`` to the ``spinemets`` command."""
    from SpineMetsClassifierLib.deep.network import ARCHITECTURES

    p = subparsers.add_parser(
        "train-dl", help=command_help("train-dl"),
        description="Train a MONAI ResNet on lesion-centred 2-D sagittal slices (per-patient mean of slice "
                    "probabilities) or 3-D crops; early stopping on a stratified validation split; writes a "
                    "checksummed model package.")
    _common(p)
    p.add_argument("--label", required=True, help="label column of the manifest (e.g. site, tumour_class)")
    p.add_argument("--out", required=True, help="package folder (or .zip)")
    p.add_argument("--arch", choices=list(ARCHITECTURES), default="resnet18",
                   help="MONAI ResNet (study A: resnet50; default resnet18 for small cohorts)")
    p.add_argument("--dims", type=int, choices=[2, 3], default=2, help="2: sagittal slices; 3: lesion crop (default 2)")
    p.add_argument("--sequences", default="T1,T2,STIR", help="input channels, comma separated (default T1,T2,STIR)")
    p.add_argument("--slices", type=_positive_int, default=3, help="2-D: slices with most lesion per case (default 3)")
    p.add_argument("--size", default=None, help="input voxels: rows,cols (2-D, default 64,64) or d,h,w (3-D, default 32,32,32)")
    p.add_argument("--width", type=float, default=1.0, help="MONAI widen_factor (1.0: the published network)")
    p.add_argument("--lesion-label", type=int, default=1, help="mask value of the lesion; 0: any non-zero (default 1)")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--patience", type=_positive_int, default=5, help="early stopping patience in epochs (default 5)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation share of the development cases (default 0.2)")
    p.add_argument("--class-weight", choices=["balanced", "none"], default="balanced")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrained", default=None,
                   help="local weights file to start from (.safetensors, or .pt/.pth read tensors-only); "
                        "its SHA-256 goes into the model card")
    p.add_argument("--split-column", default=None, help="manifest column marking held-out test rows (e.g. partition)")
    p.add_argument("--test-value", default="test", help="value(s) of --split-column marking test rows (default test)")
    p.add_argument("--topk", type=_positive_int, default=3)
    p.add_argument("--synthetic-training-data", action="store_true",
                   help="mark the model as trained on synthetic data (detected automatically for phantom manifests)")
    p.set_defaults(func=_cmd_train_dl)

    p = subparsers.add_parser("predict-dl", help=command_help("predict-dl"),
                              description="Writes case_id, the truth (when in the manifest), prob_<class>, "
                                          "top1..topk and predicted, as 'spinemets predict' does.")
    _common(p)
    p.add_argument("--model", required=True, help="deep model package folder or .zip")
    p.add_argument("--out", required=True, help="predictions CSV")
    p.add_argument("--topk", type=_positive_int, default=None, help="default: the model card's")
    p.add_argument("--model-name", default=None, help="add a 'model' column with this name (for stats evaluate)")
    p.set_defaults(func=_cmd_predict_dl)

    p = subparsers.add_parser("deep-features", help=command_help("deep-features"),
                              description="Penultimate-layer embedding per case as dl_000, dl_001, ... columns.")
    _common(p)
    p.add_argument("--model", required=True, help="deep model package folder or .zip")
    p.add_argument("--out", required=True, help="features CSV")
    p.set_defaults(func=_cmd_deep_features)
