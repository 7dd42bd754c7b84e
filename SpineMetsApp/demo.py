"""``make demo`` / ``spinemets demo``: the end-to-end job on a synthetic phantom.

Generates a small phantom cohort, loads a case with lesions into MRML through the
storage nodes, turns its lesion labelmap into named segments, builds closed
surfaces, writes ``<case>.seg.nrrd``, then segments the case automatically
(region growing from one seed + ROI, and the shipped U-Net demo model) into
``<case>_auto.seg.nrrd`` with Dice against the phantom truth, and writes a JSON
summary that states the data is synthetic.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.fileio import write_text_atomic
from SpineMetsCore.manifest import read_manifest
from SpineMetsCore.volumes import Geometry, lps_to_ras, voxel_volume_ml

logger = logging.getLogger(__name__)


def run_demo(out_dir: str | os.PathLike[str], cases: int = 3, seed: int = 0) -> dict[str, Any]:
    """Run the demo pipeline and return (and write) its summary."""
    from SpineMetsSegmentLib import LesionSegmentationLogic

    from SpineMetsCore import dataio, segmentations, volumes
    from SpineMetsPhantom import write_cohort

    out = Path(out_dir)
    manifest_path = write_cohort(out / "cohort", n_cases=cases, seed=seed)
    rows = read_manifest(manifest_path, required_sequences=("T1", "T2", "STIR", "T1CE"), require_mask=True)
    # Show a case with lesions when the cohort has one (the phantom draws 0..3 per case).
    row = next((r for r in rows if sitk.GetArrayFromImage(sitk.ReadImage(str(r.mask))).any()), rows[0])
    logic = LesionSegmentationLogic()
    case = logic.loadCase(row)
    reference = case.volumes["T1"]

    seg_path = out / f"{row.case_id}.seg.nrrd"
    summary: dict[str, Any] = {
        "synthetic_data": True,
        "note": "Synthetic phantom data; not clinical data.",
        "manifest": str(manifest_path),
        "case_id": row.case_id,
        "sequences": {},
        "segments": {},
    }
    ref_geometry = volumes.node_geometry(reference)
    for name, node in case.volumes.items():
        geometry = volumes.node_geometry(node)
        itk_geometry = Geometry.from_image(sitk.ReadImage(str(row.images[name])))
        summary["sequences"][name] = {
            "path": str(row.images[name]),
            "size": list(geometry.size),
            "spacing_mm": list(geometry.spacing),
            "mrml_matches_simpleitk": geometry.same_grid(itk_geometry),
            "same_grid_as_T1": geometry.same_grid(ref_geometry),
        }
    if case.segmentation is not None:
        segmentations.create_closed_surfaces(case.segmentation)
        logic.saveSegmentation(case.segmentation, seg_path)
        summary["segmentation"] = str(seg_path)
        volumes_ml = logic.segmentVolumesMl(case.segmentation, reference)
        mask = sitk.ReadImage(str(row.mask))
        voxel_ml = voxel_volume_ml(mask)
        truth = {int(v): float((sitk.GetArrayViewFromImage(mask) == v).sum()) * voxel_ml
                 for v in np.unique(sitk.GetArrayViewFromImage(mask)) if v}
        for label, sid in case.segment_ids.items():
            name = segmentations.segment_names(case.segmentation)[sid]
            summary["segments"][name] = {"volume_ml": round(volumes_ml[name], 4), "truth_volume_ml": round(truth[label], 4)}
        # Re-read what was written, with MRML and with SimpleITK, and compare geometry.
        reread = dataio.read_segmentation(seg_path)
        summary["segmentation_reread_segments"] = sorted(segmentations.segment_names(reread).values())
        summary["automatic"] = _automatic_segmentation(logic, case, mask, out / f"{row.case_id}_auto.seg.nrrd")
    write_text_atomic(out / "demo_summary.json", json.dumps(summary, indent=2))
    logger.info("demo written to %s", out)
    return summary


def _automatic_segmentation(logic: Any, case: Any, truth: sitk.Image, out_path: Path) -> dict[str, Any]:
    """Segment the largest lesion by region growing (seed + ROI 10 mm around it) and the
    whole case with the shipped U-Net demo model; report Dice against the phantom truth."""
    from SpineMetsSegmentLib.metrics import compute_metrics
    from SpineMetsSegmentLib.unet import demo_model_path

    from SpineMetsCore import segmentations

    reference = case.volumes["T1"]
    truth_array = sitk.GetArrayViewFromImage(truth)
    labels, counts = np.unique(truth_array[truth_array > 0], return_counts=True)
    label = int(labels[np.argmax(counts)])
    lesion = sitk.Cast(truth == label, sitk.sitkUInt8)
    # Seed: the lesion voxel deepest inside it (as a reader would click), in RAS.
    depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(lesion, insideIsPositive=True, useImageSpacing=True))
    k, j, i = np.unravel_index(int(np.argmax(np.where(sitk.GetArrayViewFromImage(lesion) > 0, depth, -np.inf))), depth.shape)
    lps = np.array(truth.TransformIndexToPhysicalPoint((int(i), int(j), int(k))))
    seed_ras = tuple(float(v) for v in lps_to_ras(lps))
    idx = np.argwhere(sitk.GetArrayViewFromImage(lesion) > 0)
    corners = np.array([truth.TransformIndexToPhysicalPoint((int(c[2]), int(c[1]), int(c[0]))) for c in idx])
    lo, hi = corners.min(axis=0) - 10.0, corners.max(axis=0) + 10.0
    ras_lo, ras_hi = lps_to_ras(lo), lps_to_ras(hi)
    roi = tuple(float(v) for v in (*np.minimum(ras_lo, ras_hi), *np.maximum(ras_lo, ras_hi)))

    grown = logic.segmentRegionGrowing(case.volumes, [seed_ras], roi, segmentName="Region growing")
    node = grown.segmentation_node
    unet = logic.segmentWithUNet(case.volumes, demo_model_path(), segmentationNode=node)
    grown_mask = segmentations.segment_to_mask(node, grown.segment_id, reference)
    unet_mask = segmentations.segment_to_mask(node, unet[0].segment_id, reference)
    logic.saveSegmentation(node, out_path)
    return {
        "segmentation": str(out_path),
        "region_growing": {
            "lesion_label": label,
            "seed_ras": [round(v, 2) for v in seed_ras],
            "roi_ras": [round(v, 2) for v in roi],
            "volume_ml": round(grown.volume_ml, 4),
            "dice_vs_truth": round(compute_metrics(lesion, grown_mask).dice, 4),
        },
        "unet": {
            "model": str(demo_model_path()),
            "note": "demo model trained on synthetic phantom data; not clinically valid",
            "volume_ml": round(unet[0].volume_ml, 4),
            "dice_vs_truth": round(compute_metrics(sitk.Cast(truth > 0, sitk.sitkUInt8), unet_mask).dice, 4),
        },
    }


STUDY_DEMO_CASES = 24
"""Cases of the study demo: enough for 3-fold nested CV of every class, small enough for ~2 minutes."""
DEMO_SITES = {"lung": 1.0, "breast": 1.0, "kidney": 1.0}
"""Primary sites of the demo's metastases (three, so each has enough cases for cross-validation)."""


def run_study_demo(out_dir: str | os.PathLike[str], cases: int = STUDY_DEMO_CASES, seed: int = 0, workers: int = 2,
                   overwrite: bool = False, progress: Any = None) -> Any:
    """``make demo``: a phantom cohort with Slicer markups seeds, then ``spinemets run --config demo``.

    The cohort goes to ``<out>/cohort`` (reused when it is already there with the same size and seed), the study
    to ``<out>/study``; returns the pipeline's :class:`~SpineMetsApp.pipeline.runner.RunResult`.
    """
    from SpineMetsCore.errors import InputError

    from .pipeline import run_pipeline
    from .pipeline.democohort import write_demo_cohort

    out = Path(out_dir)
    cohort = out / "cohort"
    manifest = cohort / "manifest.csv"
    marker = cohort / "demo_cohort.json"
    phantom = {"primary_bone_fraction": 0.4, "site_prevalence": DEMO_SITES}
    wanted = {"cases": int(cases), "seed": int(seed), **phantom}
    if manifest.is_file() and marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        logger.info("reusing the demo cohort in %s", cohort)
    else:
        if cohort.exists() and any(cohort.iterdir()) and not overwrite:
            raise InputError(str(cohort), "holds another cohort; use --overwrite or another --out")
        logger.info("writing a %d-case phantom cohort to %s", cases, cohort)
        manifest = write_demo_cohort(cohort, cases=cases, seed=seed, **phantom)
        write_text_atomic(marker, json.dumps(wanted))
    return run_pipeline(manifest, "demo", out / "study", workers=workers, overwrite=overwrite, progress=progress)
