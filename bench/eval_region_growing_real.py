#!/usr/bin/env python3
"""Region growing on real MRI: one-click Dice and a simulated user's corrective clicks.

Each lesion (or vertebral body) is clicked once at its deepest point (maximum of
the distance transform inside the expert mask) with an ROI = mask bounding box +
10 mm. A simulated user then clicks the centre (maximum distance-transform
point) of the largest error region: a foreground click when it is missed
lesion, a background click when it is a false positive. Reports per-case Dice
after 0..3 corrections, NoC@85 and NoC@90 (clicks, the first one included, to
reach Dice 0.85 / 0.90; ``--max-clicks`` when never reached), the one-click volume over the
expert's (above 1: the outline is too large) and seconds per click.

Data: the 15 IBSI soft-tissue-sarcoma T1 cases in ``../shared/realdata`` (next
to the repository; ``--sts-dir`` another folder of the same layout, e.g. more
patients of IBSI's ``ibsi_validation/nifti`` kept as a validation set) and, with ``--vb-dir``, the vertebral-body ``.mat`` files of
JonathanRamos/fastcleverseg (``ImageDatasets/VBs/*/Isotropic/Matlab``; variables
``I`` and ``GT``, 1 mm isotropic; two middle vertebrae per file). Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "SpineMetsSegment"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

STS_DIR = ROOT.parent / "shared" / "realdata" / "ibsi-sts-mr-t1"
MARGIN_MM = 10.0
FLIP = np.array([-1.0, -1.0, 1.0])


def click_and_roi(mask_image, margin_mm: float = MARGIN_MM) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The protocol's first click (deepest point of the mask, RAS) and ROI (bounding box + margin, RAS corners)."""
    import SimpleITK as sitk
    from scipy import ndimage

    mask = sitk.GetArrayViewFromImage(mask_image) > 0
    depth = ndimage.distance_transform_edt(mask, sampling=mask_image.GetSpacing()[::-1])
    k, j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    seed = np.array(mask_image.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))) * FLIP
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    corners = np.array([
        np.array(mask_image.TransformIndexToPhysicalPoint((int(ii), int(jj), int(kk)))) * FLIP
        for kk in (lo[0], hi[0]) for jj in (lo[1], hi[1]) for ii in (lo[2], hi[2])
    ])
    roi = (*(corners.min(axis=0) - margin_mm), *(corners.max(axis=0) + margin_mm))
    return tuple(float(v) for v in seed), tuple(float(v) for v in roi)


def sts_cases(folder: Path) -> Iterator[tuple[str, dict, object]]:
    import SimpleITK as sitk

    for case in sorted(folder.glob("STS_*")):
        image = sitk.ReadImage(str(case / "MR_T1_image.nii.gz"), sitk.sitkFloat32)
        mask = sitk.Cast(sitk.ReadImage(str(case / "MR_T1_mask.nii.gz")) > 0, sitk.sitkUInt8)
        yield case.name, {"T1": image}, mask


def vb_cases(folder: Path, per_file: int = 2) -> Iterator[tuple[str, dict, object]]:
    import SimpleITK as sitk
    from scipy.io import loadmat

    for path in sorted(folder.glob("*.mat")):
        data = loadmat(str(path))
        image_array, labels = data["I"], data["GT"]
        n = min(image_array.shape[2], labels.shape[2])
        image = sitk.GetImageFromArray(np.ascontiguousarray(image_array[:, :, :n].astype(np.float32)))
        values = [int(v) for v in np.unique(labels) if v]
        start = len(values) // 2 - per_file // 2
        for value in values[start : start + per_file]:
            mask = sitk.GetImageFromArray(np.ascontiguousarray((labels[:, :, :n] == value).astype(np.uint8)))
            mask.CopyInformation(image)
            yield f"{path.stem}_VB{value}", {"MR": image}, mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 1.0


def next_click(truth: np.ndarray, pred: np.ndarray, spacing_kji: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """Centre of the largest error region: (k, j, i) and True for a foreground click."""
    from scipy import ndimage

    best = None
    for error, foreground in ((truth & ~pred, True), (pred & ~truth, False)):
        labels, n = ndimage.label(error)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        if best is None or sizes[largest - 1] > best[0]:
            best = (int(sizes[largest - 1]), labels == largest, foreground)
    if best is None:
        return None
    region = np.pad(best[1], 1)
    depth = ndimage.distance_transform_edt(region, sampling=spacing_kji)[1:-1, 1:-1, 1:-1]
    return np.array(np.unravel_index(int(np.argmax(depth)), depth.shape)), best[2]


def simulated_user(session, truth: np.ndarray, pred: np.ndarray, clicks: int) -> Iterator[tuple[np.ndarray, float]]:
    """Up to ``clicks`` corrections, each at the centre of the largest error: each new mask and its seconds.

    ``truth`` and ``pred`` are on the session's crop; the clicks accumulate, so the
    session extends its cached state one click at a time, as in interactive use.
    """
    spacing = np.array(session.crop.GetSpacing()[::-1])
    done: list[tuple[tuple[float, ...], bool]] = []
    for _ in range(clicks):
        click = next_click(truth, pred, spacing)
        if click is None:
            return
        (k, j, i), foreground = click
        ras = tuple(float(v) for v in np.array(session.crop.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))) * FLIP)
        done.append((ras, foreground))
        start = time.perf_counter()
        pred, _, _ = session.segment_clicks(done)
        yield pred, time.perf_counter() - start


def evaluate_case(images: dict, mask, max_clicks: int) -> dict:
    import SimpleITK as sitk
    from SpineMetsSegmentLib.region_growing import RegionGrowingSession

    seed, roi = click_and_roi(mask)
    t0 = time.perf_counter()
    session = RegionGrowingSession(images, seed, roi)
    pred, qc, _ = session.segment()
    first_s = time.perf_counter() - t0
    truth_crop = sitk.Resample(mask, session.crop, sitk.Transform(), sitk.sitkNearestNeighbor)
    truth = sitk.GetArrayFromImage(truth_crop) > 0
    outside = int((sitk.GetArrayViewFromImage(mask) > 0).sum()) - int(truth.sum())  # lesion outside the crop
    dices = [dice(truth, pred) if outside == 0 else 2 * (truth & pred).sum() / (truth.sum() + outside + pred.sum())]
    volume_ratio = float(pred.sum()) / max(float(truth.sum() + outside), 1.0)  # one click's volume / the expert's
    correction_s = []
    for corrected, seconds in simulated_user(session, truth, pred, max_clicks - 1):
        correction_s.append(seconds)
        dices.append(dice(truth, corrected))
    dices += [dices[-1]] * (max_clicks - len(dices))

    def noc(level: float) -> int:
        return next((n + 1 for n, d in enumerate(dices) if d >= level), max_clicks)

    return {
        "dice": [round(d, 4) for d in dices],
        "volume_ratio_1_click": round(volume_ratio, 3),
        "noc85": noc(0.85),
        "noc90": noc(0.90),
        "first_click_s": round(first_s, 3),
        "correction_s": round(float(np.mean(correction_s)), 3) if correction_s else None,
        "qc": qc,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sts-dir", type=Path, default=STS_DIR, help="IBSI STS T1 cases (STS_*/MR_T1_{image,mask}.nii.gz)")
    parser.add_argument("--vb-dir", type=Path, default=None, help="folder of fastcleverseg vertebral-body .mat files")
    parser.add_argument("--max-clicks", type=int, default=10, help="clicks per case, the first included (NoC cap)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N cases of each set (0: all)")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("SpineMetsSegmentLib").setLevel(logging.ERROR)
    sets = []
    if args.sts_dir and args.sts_dir.is_dir():
        sets.append(("sarcoma T1", sts_cases(args.sts_dir)))
    if args.vb_dir:
        sets.append(("vertebral bodies", vb_cases(args.vb_dir)))
    if not sets:
        print(f"no data: {args.sts_dir} missing and no --vb-dir", file=sys.stderr)
        return 2
    summary = {}
    for title, cases in sets:
        rows = {}
        for n, (name, images, mask) in enumerate(cases):
            if args.limit and n >= args.limit:
                break
            rows[name] = evaluate_case(images, mask, args.max_clicks)
            r = rows[name]
            print(f"{title:16s} {name:14s} Dice 1 click {r['dice'][0]:.3f}  +1 {r['dice'][1]:.3f}  +2 {r['dice'][2]:.3f}  "
                  f"+3 {r['dice'][3]:.3f}  vol {r['volume_ratio_1_click']:.2f}  NoC@85 {r['noc85']:2d}  NoC@90 {r['noc90']:2d}  "
                  f"first {r['first_click_s']:.2f} s  correction {r['correction_s']} s", flush=True)
        d = np.array([r["dice"] for r in rows.values()])
        summary[title] = {
            "cases": len(rows),
            "mean_dice_1_click": round(float(d[:, 0].mean()), 4),
            "min_dice_1_click": round(float(d[:, 0].min()), 4),
            "mean_dice_after_3_corrections": round(float(d[:, 3].mean()), 4),
            "median_volume_ratio_1_click": round(float(np.median([r["volume_ratio_1_click"] for r in rows.values()])), 3),
            "mean_noc85": round(float(np.mean([r["noc85"] for r in rows.values()])), 2),
            "mean_noc90": round(float(np.mean([r["noc90"] for r in rows.values()])), 2),
            "mean_first_click_s": round(float(np.mean([r["first_click_s"] for r in rows.values()])), 3),
            "mean_correction_s": round(float(np.mean([r["correction_s"] for r in rows.values() if r["correction_s"]] or [0.0])), 3),
        }
        print(f"{title}: {json.dumps(summary[title])}")
    print(json.dumps({"benchmark": "region_growing_real", "max_clicks": args.max_clicks, "sets": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
