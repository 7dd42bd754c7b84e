#!/usr/bin/env python3
"""Regenerate the shipped demo U-Net (``SpineMetsSegment/Resources/Models``).

1. writes a training cohort and a separate held-out cohort of 20 cases with the
   SpineMets phantom (different cohort seeds; the script checks that no case
   seed appears in both),
2. trains with :func:`SpineMetsSegmentLib.unet.train_model` (internal
   validation split for best-checkpoint selection),
3. segments every held-out case through the public inference path
   (:func:`segment_images`, on each case's own grid) and computes the lesion
   Dice against the phantom's ground truth,
4. records that Dice in the model card's ``validation_metrics.held_out`` and
   writes the package atomically in the SpineMets package format (card,
   ``weights.safetensors`` and ``checksums.json`` over both; docs/model-packages.md).

The figures in the card are therefore measured by this script, never typed by
hand. The model is trained on synthetic data only (its card says so) and must
never be presented as clinically valid.

Run (about 20 minutes on 2 CPU cores)::

    nice -n 10 python SpineMetsSegment/Resources/Scripts/train_demo_unet.py
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve()
DEFAULT_OUT = HERE.parents[1] / "Models"
TRAIN_SEED = 1001
HELD_OUT_SEED = 2002
HELD_OUT_CASES = 20

logger = logging.getLogger("train_demo_unet")


def lesion_dice(prediction: sitk.Image, truth: sitk.Image) -> float:
    """Dice of the lesion class (any non-zero label) on the truth's grid."""
    p = sitk.GetArrayViewFromImage(prediction) > 0
    t = sitk.GetArrayViewFromImage(truth) > 0
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(p, t).sum()) / denom


def evaluate_held_out(model_dir: Path, manifest: Path, disjoint: bool) -> dict[str, object]:
    """Segment every held-out case with the package and compare with the phantom masks."""
    from SpineMetsSegmentLib.unet import load_model_package, segment_images

    from SpineMetsCore import dataio
    from SpineMetsCore.manifest import read_manifest
    from SpineMetsPhantom import PHANTOM_VERSION

    pkg = load_model_package(model_dir)
    rows = read_manifest(manifest, required_sequences=tuple(pkg.input_sequences), require_mask=True)
    per_case: dict[str, float] = {}
    overlap = total = 0
    started = time.perf_counter()
    for row in rows:
        images = {seq: dataio.read_image(row.images[seq]) for seq in pkg.input_sequences}
        prediction = segment_images(images, pkg, force_cpu=True)
        truth = dataio.read_image(row.mask)
        per_case[row.case_id] = round(lesion_dice(prediction, truth), 4)
        p, t = sitk.GetArrayViewFromImage(prediction) > 0, sitk.GetArrayViewFromImage(truth) > 0
        overlap += int(np.logical_and(p, t).sum())
        total += int(p.sum()) + int(t.sum())
    values = np.array(list(per_case.values()))
    return {
        "dice_lesion_mean": round(float(values.mean()), 4),
        "dice_lesion_median": round(float(np.median(values)), 4),
        "dice_lesion_min": round(float(values.min()), 4),
        "dice_lesion_pooled": round(2.0 * overlap / max(total, 1), 4),
        "n_cases": len(rows),
        "per_case_dice": per_case,
        "cohort": f"SpineMets phantom, write_cohort(n_cases={len(rows)}, seed={HELD_OUT_SEED}), default PhantomConfig; "
        "case ids restart at case0000 but the case seeds differ from the training cohort's (checked)",
        "phantom_version": PHANTOM_VERSION,
        "not_used_in_training": True,
        "case_seeds_disjoint_from_training": disjoint,
        "grid": "each case's own grid, through segment_images",
        "seconds_per_case_cpu": round((time.perf_counter() - started) / max(len(rows), 1), 3),
    }


def case_seeds(manifest: Path) -> set[str]:
    import csv

    with manifest.open(newline="", encoding="utf-8") as fh:
        return {row["seed"] for row in csv.DictReader(fh)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"model package folder (default {DEFAULT_OUT})")
    parser.add_argument("--train-cases", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dim", type=int, choices=(2, 3), default=3)
    parser.add_argument("--sequences", default="T1,T2,STIR,T1CE")
    parser.add_argument("--channels", default="16,32,64,128")
    parser.add_argument("--patch", default=None, help="i,j,k (default 64,64,16 for 3-D, 96,128,1 for 2-D)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared, oversubscribed machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-interval", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="keep the generated cohorts here (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    import torch
    from SpineMetsSegmentLib.unet import TrainingConfig, load_model_package, train_model, write_model_package

    from SpineMetsCore.progress import console_progress
    from SpineMetsPhantom import write_cohort

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spinemets_demo_unet_") as tmp_name:
        work = Path(args.workdir) if args.workdir else Path(tmp_name)
        train_manifest = write_cohort(work / "train", args.train_cases, seed=TRAIN_SEED)
        held_manifest = write_cohort(work / "held_out", HELD_OUT_CASES, seed=HELD_OUT_SEED)
        shared = case_seeds(train_manifest) & case_seeds(held_manifest)
        if shared:
            raise SystemExit(f"held-out cohort shares case seeds with the training cohort: {sorted(shared)}")

        patch = tuple(int(v) for v in args.patch.split(",")) if args.patch else ((64, 64, 16) if args.dim == 3 else (96, 128, 1))
        config = TrainingConfig(
            sequences=tuple(args.sequences.split(",")),
            dim=args.dim,
            patch_size=patch,
            epochs=args.epochs,
            batch_size=args.batch_size or (4 if args.dim == 3 else 16),
            samples_per_case=2,
            learning_rate=args.lr,
            channels=tuple(int(c) for c in args.channels.split(",")),
            seed=args.seed,
            val_fraction=0.1,
            val_interval=args.val_interval,
            min_component_ml=0.05,
            force_cpu=True,
            name="SpineMets phantom lesion U-Net (demo)",
            version="1.0.0",
            task="spinal bone lesion segmentation on sagittal MRI (demo; synthetic training data)",
            synthetic_training_data=True,
            data_description=(
                f"{args.train_cases} synthetic cases from the SpineMets phantom "
                f"(write_cohort(seed={TRAIN_SEED}), default PhantomConfig: both centres, 1.5/3 T, noise and bias field); "
                "no patient data"
            ),
        )
        update, close = console_progress("train demo U-Net (epochs)")
        try:
            result = train_model(train_manifest, work / "model", config, progress=update)
        finally:
            close()
        train_seconds = time.perf_counter() - started
        held_out = evaluate_held_out(work / "model", held_manifest, disjoint=not shared)
        pkg = load_model_package(work / "model")
        card = dict(pkg.card)
        card["validation_metrics"] = {**card["validation_metrics"], "held_out": held_out}
        card["training_data"] = {**card["training_data"], "regenerate": "python SpineMetsSegment/Resources/Scripts/train_demo_unet.py"}
        card["disclaimer"] = "Trained on synthetic phantom images only. Not a medical device; not clinically valid."
        card["intended_use"] = ("Demonstration only: trained on synthetic phantom images. Not a medical device; "
                                "not clinically valid; never use on patients.")
        card["training"] = {**card["training"], "wall_seconds_including_data": round(train_seconds, 1)}
        write_model_package(args.out, card, pkg.state_dict)
    final = load_model_package(args.out)
    summary = {
        "model": str(args.out),
        "held_out_dice_mean": held_out["dice_lesion_mean"],
        "held_out_dice_min": held_out["dice_lesion_min"],
        "internal_validation_dice": result.best_val_dice,
        "best_epoch": result.best_epoch,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "weights_bytes": final.card["payload"]["bytes"],
        "synthetic_training_data": final.synthetic_training_data,
    }
    print(json.dumps(summary, indent=2))
    return 0 if held_out["dice_lesion_mean"] >= 0.85 else 1


if __name__ == "__main__":
    sys.exit(main())
