#!/usr/bin/env python3
"""One-click lesion segmentation on phantom lesions: does the phantom tell methods apart?

On real MRI a plain region grower and Slicer's Grow-from-seeds reach Dice 0.3-0.5
from one click; a phantom on which they reach 0.95 cannot rank methods. This
evaluation clicks once at an interior point of each lesion (``LesionInfo.seed_lps``:
the deepest voxel outside internal foci) with an ROI = lesion box + 10 mm, and scores:

* ``ours``: :func:`SpineMetsSegmentLib.region_growing.grow_region` on all four
  sequences, defaults (what the Logic's ``segmentRegionGrowing`` runs);
* ``growcut``: Slicer's Grow-from-seeds filter (``vtkImageGrowCutSegment``, slicer-core)
  on the ROI crop of the lesion's most separable sequence (``best_sequence``), seeded
  as the effect is used: a 3 mm foreground stroke at the click, the ROI border as background;
* ``confidence``: SimpleITK ``ConfidenceConnected`` from the click on the same crop
  (multiplier 2.5, 4 iterations, 1-voxel initial neighbourhood: the library's usual settings);
* ``band2mm``: a reference, not a method: Grow-from-seeds on the same crop given the truth
  more than 2 mm inside (foreground) and outside (background) the lesion's surface. It
  measures how well the image pins the boundary, i.e. that a good method can still reach
  Dice ~0.9 on the harder phantom;
* ``ours+N``: ours after ``--corrections`` N (default 3) clicks of the simulated user of
  ``eval_region_growing_real.py`` (the centre of the largest error region): what the
  interactive tool reaches, i.e. that the phantom is hard but not unsolvable.

Grow-from-seeds note: the filter never visits an image's outermost voxel layer, so
background seeds painted exactly on the crop's border are ignored and everything but the
border turns foreground (Dice ~0.1 here). The crop is padded by one replicated voxel so
the ROI border really acts as background.

Cases are ``generate_case(case_seed(seed, n))`` of the default phantom (or, with
``--legacy``, the phantom without the realism switches, for a before/after). Prints a
per-lesion table, a summary table and one JSON line.

    python bench/eval_region_growing_phantom.py [--cases 12] [--seed 0] [--legacy]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "SpineMetsSegment"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

MARGIN_MM = 10.0
STROKE_MM = 3.0
BAND_MM = 2.0
THREADS = 2
FLIP = np.array([-1.0, -1.0, 1.0])
BASE_METHODS = ("ours", "growcut", "confidence", "band2mm")

from eval_region_growing_real import dice, simulated_user  # noqa: E402  (the bench folder is the script's own)


def roi_crop(image, roi_ras):
    """The image's crop inside the RAS ROI and its start index (i, j, k)."""
    import SimpleITK as sitk
    from SpineMetsSegmentLib.seeds import RoiBox

    lo, hi = RoiBox.from_corners(roi_ras).index_bounds(image)
    crop = sitk.RegionOfInterest(image, [int(v) for v in hi - lo + 1], [int(v) for v in lo])
    return crop, lo


def stroke_seeds(crop, seed_lps) -> np.ndarray:
    """Seeds as the effect is used with one click: a ``STROKE_MM`` ball of lesion (1) at the click."""
    seeds = np.zeros(crop.GetSize()[::-1], dtype=np.int16)
    k, j, i = np.array(crop.TransformPhysicalPointToIndex(tuple(seed_lps)))[::-1]
    spacing = np.array(crop.GetSpacing()[::-1])
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in seeds.shape], indexing="ij"), axis=-1)
    seeds[np.sum(((grid - (k, j, i)) * spacing) ** 2, axis=-1) <= STROKE_MM**2] = 1
    return seeds


def growcut(crop, seed_lps) -> np.ndarray:
    """Slicer's Grow-from-seeds on the crop: 3 mm stroke at the click, ROI border as background."""
    return grow_from_seeds(crop, stroke_seeds(crop, seed_lps))


def band_reference(crop, truth: np.ndarray, band_mm: float = BAND_MM) -> np.ndarray:
    """Grow-from-seeds given the truth more than ``band_mm`` inside / outside its surface."""
    from scipy import ndimage

    spacing = np.array(crop.GetSpacing()[::-1])
    seeds = np.zeros(truth.shape, dtype=np.int16)
    depth = ndimage.distance_transform_edt(truth, sampling=spacing)
    seeds[depth > band_mm] = 1
    if not seeds.any():
        seeds[depth == depth.max()] = 1
    seeds[ndimage.distance_transform_edt(~truth, sampling=spacing) > band_mm] = 2
    return grow_from_seeds(crop, seeds)


def grow_from_seeds(crop, seeds: np.ndarray) -> np.ndarray:
    """vtkImageGrowCutSegment on the crop with ``seeds`` (1 lesion, 2 background) plus the ROI border as background."""
    return grow_from_seeds_timed(crop, seeds)[0]


def grow_from_seeds_timed(crop, seeds: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`grow_from_seeds` and the wall seconds of the filter's own work (its Update, not the conversions)."""
    import SimpleITK as sitk
    import slicer
    import vtk
    from vtk.util import numpy_support

    array = sitk.GetArrayFromImage(crop).astype(np.float32)
    seeds = seeds.copy()
    seeds[0], seeds[-1], seeds[:, 0], seeds[:, -1], seeds[:, :, 0], seeds[:, :, -1] = 2, 2, 2, 2, 2, 2
    # the filter never visits an image's outermost voxel layer, so seeds there would be
    # ignored (everything but the border turns foreground): pad by one replicated voxel
    array = np.pad(array, 1, mode="edge")
    seeds = np.pad(seeds, 1)

    def to_vtk(values: np.ndarray, vtk_type: int):
        data = vtk.vtkImageData()
        data.SetDimensions(values.shape[2], values.shape[1], values.shape[0])
        data.SetSpacing(*crop.GetSpacing())
        data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(values.ravel(), deep=True, array_type=vtk_type))
        return data

    intensity, seed_volume = to_vtk(array, vtk.VTK_FLOAT), to_vtk(seeds, vtk.VTK_SHORT)
    start = time.perf_counter()
    filt = slicer.vtkImageGrowCutSegment()
    filt.SetIntensityVolume(intensity)
    filt.SetSeedLabelVolume(seed_volume)
    filt.Update()
    elapsed = time.perf_counter() - start
    labels = numpy_support.vtk_to_numpy(filt.GetOutput().GetPointData().GetScalars()).reshape(array.shape)
    return labels[1:-1, 1:-1, 1:-1] == 1, elapsed


def confidence(crop, seed_lps) -> np.ndarray:
    import SimpleITK as sitk

    index = crop.TransformPhysicalPointToIndex(tuple(seed_lps))
    out = sitk.ConfidenceConnected(crop, seedList=[index], numberOfIterations=4, multiplier=2.5,
                                   initialNeighborhoodRadius=1, replaceValue=1)
    return sitk.GetArrayFromImage(out) > 0


def corrected(case, seed_ras, roi, full_truth: np.ndarray, corrections: int) -> float:
    """Dice after ``corrections`` simulated corrective clicks (session reused, as in the tool)."""
    import SimpleITK as sitk
    from SpineMetsSegmentLib.region_growing import RegionGrowingSession

    session = RegionGrowingSession(case.images, seed_ras, roi)
    pred, _, _ = session.segment()
    truth_image = sitk.GetImageFromArray(full_truth.astype(np.uint8))
    truth_image.CopyInformation(case.lesion_mask)
    truth = sitk.GetArrayFromImage(sitk.Resample(truth_image, session.crop, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0
    outside = int(full_truth.sum()) - int(truth.sum())
    for corrected, _ in simulated_user(session, truth, pred, corrections):
        pred = corrected
    return 2.0 * float((pred & truth).sum()) / max(int(pred.sum()) + int(truth.sum()) + outside, 1)


def evaluate_lesion(case, lesion, corrections: int = 0) -> dict:
    import SimpleITK as sitk
    from SpineMetsSegmentLib.region_growing import grow_region

    seed_lps = np.asarray(lesion.seed_lps)
    roi = (*(np.asarray(lesion.bbox_min_lps) - MARGIN_MM) * FLIP, *(np.asarray(lesion.bbox_max_lps) + MARGIN_MM) * FLIP)
    full_truth = sitk.GetArrayFromImage(case.lesion_mask) == lesion.label
    row: dict = {"case": case.case_id, "lesion": lesion.label, "pattern": lesion.pattern,
                 "homogeneity": lesion.homogeneity, "extension": lesion.extension, "sequence": lesion.best_sequence}
    t0 = time.perf_counter()
    result = grow_region(case.images, [tuple(seed_lps * FLIP)], roi)
    row["ours_s"] = time.perf_counter() - t0
    pred = sitk.GetArrayFromImage(sitk.Resample(result.mask, case.lesion_mask, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0
    row["ours"] = dice(full_truth, pred)
    if corrections:
        t0 = time.perf_counter()
        row[f"ours+{corrections}"] = corrected(case, tuple(seed_lps * FLIP), roi, full_truth, corrections)
        row[f"ours+{corrections}_s"] = time.perf_counter() - t0

    crop, lo = roi_crop(case.images[lesion.best_sequence], roi)
    truth = sitk.GetArrayFromImage(sitk.Resample(case.lesion_mask, crop, sitk.Transform(), sitk.sitkNearestNeighbor)) == lesion.label
    outside = int(full_truth.sum()) - int(truth.sum())  # lesion beyond the ROI counts as missed
    methods = (("growcut", lambda: growcut(crop, seed_lps)), ("confidence", lambda: confidence(crop, seed_lps)),
               ("band2mm", lambda: band_reference(crop, truth)))
    for name, method in methods:
        t0 = time.perf_counter()
        mask = method()
        row[f"{name}_s"] = time.perf_counter() - t0
        row[name] = 2.0 * float((mask & truth).sum()) / max(int(mask.sum()) + int(truth.sum()) + outside, 1)
    return row


def summarise(rows: list[dict], methods: tuple[str, ...]) -> dict:
    out = {}
    for m in methods:
        values = np.array([r[m] for r in rows])
        out[m] = {"mean_dice": round(float(values.mean()), 4), "min_dice": round(float(values.min()), 4),
                  "median_dice": round(float(np.median(values)), 4), "share_ge_0.9": round(float((values >= 0.9).mean()), 3),
                  "mean_s": round(float(np.mean([r[f"{m}_s"] for r in rows])), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12, help="phantom cases (each has 1-3 lesions)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (case n uses case_seed(seed, n))")
    parser.add_argument("--legacy", action="store_true", help="phantom without the realism switches (before/after)")
    parser.add_argument("--corrections", type=int, default=3, help="simulated corrective clicks for the ours+N column (0: none)")
    parser.add_argument("--size", type=int, nargs=3, default=None, metavar=("NI", "NJ", "NK"), help="grid size (default: the phantom's)")
    args = parser.parse_args(argv)
    import SimpleITK as sitk

    from SpineMetsPhantom import PHANTOM_VERSION, PhantomConfig, case_seed, generate_case

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("SpineMetsSegmentLib").setLevel(logging.ERROR)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(THREADS)
    options: dict = {"size": tuple(args.size)} if args.size else {}
    if args.legacy:
        options["realism"] = False
    config = PhantomConfig(**options)
    methods = (*BASE_METHODS, f"ours+{args.corrections}") if args.corrections else BASE_METHODS
    rows = []
    print(f"{'case':9s} {'les':>3s} {'pattern':9s} {'homog.':13s} {'extension':10s} {'seq':5s} "
          + " ".join(f"{m:>10s}" for m in methods))
    for n in range(args.cases):
        case = generate_case(case_seed(args.seed, n), f"case{n:04d}", config=config)
        for lesion in case.lesions:
            row = evaluate_lesion(case, lesion, args.corrections)
            rows.append(row)
            print(f"{row['case']:9s} {row['lesion']:3d} {row['pattern']:9s} {row['homogeneity']:13s} {row['extension']:10s} "
                  f"{row['sequence']:5s} " + " ".join(f"{row[m]:10.3f}" for m in methods), flush=True)
    if not rows:
        print("no lesions in the chosen cases", file=sys.stderr)
        return 2
    summary = summarise(rows, methods)
    print(f"\n{'method':12s} {'mean':>7s} {'median':>7s} {'min':>7s} {'>=0.90':>7s} {'s/lesion':>9s}   ({len(rows)} lesions)")
    for m in methods:
        s = summary[m]
        print(f"{m:12s} {s['mean_dice']:7.3f} {s['median_dice']:7.3f} {s['min_dice']:7.3f} {s['share_ge_0.9']:7.2f} {s['mean_s']:9.3f}")
    print(json.dumps({"benchmark": "region_growing_phantom", "phantom_version": "1" if args.legacy else PHANTOM_VERSION, "legacy": args.legacy,
                      "cases": args.cases, "seed": args.seed, "corrections": args.corrections, "lesions": len(rows), "margin_mm": MARGIN_MM,
                      "methods": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
