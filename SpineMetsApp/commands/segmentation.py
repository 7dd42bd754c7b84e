"""``spinemets segment``, ``seg-metrics`` and ``train-seg``: headless segmentation, scoring and U-Net training.

Examples::

    spinemets segment --method region-growing --image T1=t1.nii.gz --image T2=t2.nii.gz \\
        --seed-ras=-12.5,3,40 --roi-ras=-30,-10,20,5,20,60 --out lesions.seg.nrrd
    spinemets segment --method region-growing --image T1=t1.nii.gz --seed-ras=-12.5,3,40 \\
        --seed-ras=-20,3,41 --background-ras=-2,5,40 --roi-ras=-30,-10,20,5,20,60 --out lesions.seg.nrrd
    spinemets segment --method unet --image T1=t1.nrrd --image T2=t2.nrrd --image STIR=stir.nrrd \\
        --model Resources/Models --out lesions.seg.nrrd --force-cpu
    spinemets seg-metrics --reference expert.seg.nrrd --test model.seg.nrrd --out metrics.csv
    spinemets seg-metrics --cohort readers.csv --out reader_metrics.csv

``--image`` takes ``NAME=path`` or a bare path (the sequence is then named by
the file stem). When ``--out`` already exists its segments are kept and the new
one is added (a same-name segment is replaced only with ``--replace``); the file
is rewritten atomically. Both commands print a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import compound_suffix, prepare_output

from . import command_help

REGION_GROWING_METHODS = ("region-growing", "regiongrow")
logger = logging.getLogger(__name__)


def parse_image_argument(text: str) -> tuple[str, Path]:
    """``T1=path`` -> ("T1", path); a bare path is named by its stem (``t1.nii.gz`` -> ``t1``)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name and "\\" not in name:
        return name.strip(), Path(path.strip())
    p = Path(text)
    ext = compound_suffix(p)
    return (p.name[: -len(ext)] if ext else p.name), p


def _images(values: list[str]) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for value in values or []:
        name, path = parse_image_argument(value)
        if not name:
            raise InputError(f"--image {value}", "needs NAME=path or a file path")
        if name in images:
            raise InputError(f"--image {value}", f"sequence '{name}' is given twice")
        images[name] = path
    if not images:
        raise InputError("--image", "give at least one image (NAME=path)")
    return images


def _parameters(values: list[str]) -> dict[str, Any]:
    """``--param name=value`` pairs; values parsed as JSON when possible (numbers, true/false)."""
    params: dict[str, Any] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise InputError(f"--param {value}", "needs NAME=VALUE")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def _cmd_segment(args: argparse.Namespace) -> int:
    from SpineMetsSegmentLib.logic import LesionSegmentationLogic
    from SpineMetsSegmentLib.seeds import parse_float_list, parse_points

    from SpineMetsCore import dataio

    images = _images(args.image)
    out = Path(args.out)
    if compound_suffix(out) != ".seg.nrrd":
        raise InputError(f"--out {out}", "segmentations are written as .seg.nrrd")
    region_growing = args.method in REGION_GROWING_METHODS
    if region_growing:
        if not args.seed_ras:
            raise InputError("--seed-ras", "region growing needs at least one seed point (x,y,z in RAS mm)")
        seeds = [p for s in args.seed_ras for p in parse_points(s, f"--seed-ras {s}")]
        background = [p for s in args.background_ras or [] for p in parse_points(s, f"--background-ras {s}")]
        roi = parse_float_list(args.roi_ras, 6, f"--roi-ras {args.roi_ras}") if args.roi_ras else None
        params = _parameters(args.param)
    else:
        if not args.model:
            raise InputError("--model", "the unet method needs a model package (folder or .zip)")
        if args.seed_ras or args.background_ras or args.roi_ras or args.param:
            raise InputError("--method unet", "takes no --seed-ras, --background-ras, --roi-ras or --param")

    # Adding to an existing file keeps its segments (the documented editing workflow);
    # --overwrite starts a new file instead. Either way, check writability first.
    prepare_output(out, overwrite=True)
    logic = LesionSegmentationLogic()
    appending = out.exists() and not args.overwrite
    if region_growing and appending:
        nodes = logic.loadSequences(images, displayNodes=False)  # headless: nobody looks at them
    elif region_growing:  # a new file: no volume nodes (nor slicer-core); each input read, checked and cut in turn
        readers = {name: functools.partial(dataio.read_image, path, sequence=name) for name, path in images.items()}
    else:
        # The network needs no volume nodes: each input is held once, as a SimpleITK image.
        sitk_images = {name: dataio.read_image(path) for name, path in images.items()}
        logic.checkImages(sitk_images, sources=images)  # every input, before the model's own checks
    existing = dataio.read_segmentation(out) if appending else None
    if existing is not None:
        logger.info("adding to the segments of existing %s (pass --overwrite to start a new file)", out)
    if region_growing and existing is None:  # a new file: written directly, no scene (SpineMetsCore.seg_nrrd)
        results = [
            logic.segmentImagesRegionGrowingToFile(
                readers,
                seeds,
                out,
                roi,
                segmentName=args.segment_name or "Lesion",
                parameters=params,
                referenceSequence=args.reference,
                backgroundPoints=background,
                sources=images,
            )
        ]
        for message in results[0].warnings:
            print(f"warning: {message}", file=sys.stderr)
    elif region_growing:
        results = [
            logic.segmentRegionGrowing(
                nodes,
                seeds,
                roi,
                segmentationNode=existing,
                segmentName=args.segment_name or "Lesion",
                replaceExisting=args.replace,
                parameters=params,
                referenceSequence=args.reference,
                backgroundPoints=background,
            )
        ]
        for message in results[0].warnings:
            print(f"warning: {message}", file=sys.stderr)
    else:
        from SpineMetsCore.progress import console_progress

        update, close = console_progress("unet")
        try:
            if existing is None:  # a new file: written directly, no scene (the same file; SpineMetsCore.seg_nrrd)
                results = logic.segmentImagesWithUNetToFile(
                    sitk_images, args.model, out, forceCpu=args.force_cpu, progress=update, sources=images, checked=True
                )
            else:
                results = logic.segmentImagesWithUNet(
                    sitk_images, args.model, segmentationNode=existing, replaceExisting=args.replace, forceCpu=args.force_cpu,
                    progress=update, sources=images, checked=True,
                )
        finally:
            close()
    if results[0].segmentation_node is not None:
        logic.saveSegmentation(results[0].segmentation_node, out)
    summary = {
        "segments": [r.summary() for r in results],
        "method": args.method,
        "out": str(out),
        "sequences": list(images),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def _prepare_table(path: str | Path, overwrite: bool) -> None:
    """A CSV output and its provenance JSON: writable, not replaced without --overwrite."""
    target = prepare_output(path, overwrite=overwrite)
    prepare_output(target.with_name(target.stem + ".provenance.json"), overwrite=overwrite)


def _cmd_seg_metrics(args: argparse.Namespace) -> int:
    from SpineMetsSegmentLib.logic import LesionSegmentationLogic

    if args.out:
        _prepare_table(args.out, args.overwrite)
    if args.cohort:
        if args.reference or args.test:
            raise InputError("--cohort", "cannot be combined with --reference/--test")
        if args.out or args.summary_out:
            from SpineMetsSegmentLib.reader_study import summary_path

            _prepare_table(args.summary_out or summary_path(args.out), args.overwrite)
    logic = LesionSegmentationLogic()
    if args.cohort:
        result = logic.runReaderStudy(args.cohort, args.out, args.summary_out, createTables=False)
        print(json.dumps({"cohort": str(args.cohort), "rows": int(len(result.per_case)), "summary": result.summary_records()}, indent=2))
        return 0
    if not (args.reference and args.test):
        raise InputError("seg-metrics", "give --reference and --test files (or --cohort readers.csv)")
    metrics = logic.computeFileMetrics(args.reference, args.test, args.reference_segment, args.test_segment)
    values = metrics.as_dict(json_safe=True)
    if args.out:
        import pandas as pd

        from SpineMetsCore.tables import provenance, write_table_csv

        row = {"reference": str(args.reference), "test": str(args.test), **metrics.as_dict()}
        prov = provenance(analysis="SpineMets segmentation metrics", reference=str(args.reference), test=str(args.test),
                          reference_segment=args.reference_segment, test_segment=args.test_segment)
        write_table_csv(pd.DataFrame([row]), args.out, prov)
    print(json.dumps({"reference": str(args.reference), "test": str(args.test), **_json_safe(values)}, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add ``segment``, ``seg-metrics`` and ``train-seg`` to the ``spinemets`` command."""
    p = subparsers.add_parser(
        "segment",
        help=command_help("segment"),
        description="Segment lesions into a Slicer segmentation file; prints a JSON summary (segment names, IDs, volumes in mL).",
    )
    p.add_argument("--method", required=True, choices=(*REGION_GROWING_METHODS, "unet"),
                   help="region-growing (one click + ROI, corrective clicks; 'regiongrow' is the old spelling) or unet")
    p.add_argument("--image", action="append", metavar="NAME=PATH", help="one sequence (repeat); a bare path is named by its file stem")
    p.add_argument("--seed-ras", action="append", metavar="X,Y,Z",
                   help="lesion point in RAS mm: the first is the centre click, more are foreground corrections "
                        "(repeat, or X,Y,Z;X,Y,Z; write --seed-ras=-12.5,3,40 for negative values)")
    p.add_argument("--background-ras", action="append", metavar="X,Y,Z",
                   help="region growing: a point that is not lesion (background correction; repeat or X,Y,Z;X,Y,Z)")
    p.add_argument("--roi-ras", metavar="X0,Y0,Z0,X1,Y1,Z1", help="box (RAS mm) the lesion may not leave")
    p.add_argument("--model", help="U-Net model package (folder or .zip)")
    p.add_argument("--out", required=True, help="output .seg.nrrd (existing segments are kept)")
    p.add_argument("--segment-name", default=None, help="name of the region-growing segment (default Lesion)")
    p.add_argument("--replace", action="store_true", help="replace segments of the same name instead of adding a new name")
    p.add_argument("--force-cpu", action="store_true", help="U-Net: run on the CPU even when CUDA is available")
    p.add_argument("--reference", default=None, help="region growing: sequence whose grid the result uses (default the first)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="region-growing parameter (repeatable), e.g. seed_radius_mm=4")
    p.add_argument("--overwrite", action="store_true",
                   help="write a new file instead of adding to the segments of an existing --out")
    p.set_defaults(func=_cmd_segment)

    p = subparsers.add_parser(
        "seg-metrics",
        help=command_help("seg-metrics"),
        description=(
            "Compare two segmentations on physical geometry (files: .seg.nrrd or labelmaps; default segment: union of all), "
            "or run a reader study with --cohort readers.csv (columns case_id,reader,reference,unassisted,assisted"
            "[,reference_segment][,segment]; paired Wilcoxon and t tests, assisted vs unassisted)."
        ),
    )
    p.add_argument("--reference", help="reference segmentation file")
    p.add_argument("--test", help="test segmentation file")
    p.add_argument("--reference-segment", default=None, help="segment name in the reference (default: union of all)")
    p.add_argument("--test-segment", default=None, help="segment name in the test (default: union of all)")
    p.add_argument("--cohort", default=None, help="reader-study CSV (see description)")
    p.add_argument("--out", default=None, help="CSV of the metrics (per case and condition with --cohort)")
    p.add_argument("--summary-out", default=None, help="with --cohort: CSV of the paired comparison (default <out>_summary.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out/--summary-out tables")
    p.set_defaults(func=_cmd_seg_metrics)
    _register_train_seg(subparsers)


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
    from SpineMetsSegmentLib.unet import TrainingConfig, train_model

    from SpineMetsCore.progress import console_progress

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
    for option in ("balance_slices", "dice_include_background", "dice_batch"):
        if getattr(args, option) is not None:  # None: TrainingConfig's default (one place for it)
            kwargs[option] = getattr(args, option)
    if args.synthetic != "auto":
        kwargs["synthetic_training_data"] = args.synthetic == "yes"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    kind = "file" if Path(args.out).suffix.lower() == ".zip" else "dir"
    prepare_output(args.out, overwrite=args.overwrite, kind=kind)  # before the training, not after
    update, close = console_progress("train-seg", unit="epoch")
    try:
        result = train_model(args.manifest, args.out, TrainingConfig(**kwargs), progress=update)
    finally:
        close()
    print(json.dumps(result.summary(), indent=2))
    return 0


def _register_train_seg(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-seg",
        help=command_help("train-seg"),
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
    p.add_argument("--balance-slices", action=argparse.BooleanOptionalAction, default=None,
                   help="--dim 2: draw slices with and without lesion 2:1 (default on; off: every slice alike)")
    p.add_argument("--dice-include-background", action=argparse.BooleanOptionalAction, default=None,
                   help="count the background channel in the Dice loss (default off: it dominates sparse lesions)")
    p.add_argument("--dice-batch", action=argparse.BooleanOptionalAction, default=None,
                   help="Dice over the whole batch rather than per patch (default on)")
    p.add_argument("--min-component-ml", type=float, default=0.0, help="post-processing: drop components smaller than this (mL)")
    p.add_argument("--name", default=None, help="model name in the model card")
    p.add_argument("--synthetic", choices=("auto", "yes", "no"), default="auto",
                   help="mark the training data synthetic (auto: yes when every row has a phantom_version)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out package")
    p.set_defaults(func=_cmd_train_seg)
