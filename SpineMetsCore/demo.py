"""``make demo`` / ``spinemets demo``: the end-to-end job on a synthetic phantom.

Generates a small phantom cohort, loads the first case into MRML through the
storage nodes, turns its lesion labelmap into named segments, builds closed
surfaces, writes ``<case>.seg.nrrd`` and a JSON summary that states the data
is synthetic. Later stages (segmentation, features, classifiers) hook in here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .fileio import write_text_atomic
from .manifest import read_manifest
from .volumes import Geometry

logger = logging.getLogger(__name__)


def run_demo(out_dir: str | os.PathLike[str], cases: int = 3, seed: int = 0) -> dict[str, Any]:
    """Run the demo pipeline and return (and write) its summary."""
    from SpineMetsSegmentLib import SpineMetsSegmentLogic

    from . import dataio, segmentations, volumes
    from .phantom import write_cohort

    out = Path(out_dir)
    manifest_path = write_cohort(out / "cohort", n_cases=cases, seed=seed)
    rows = read_manifest(manifest_path, required_sequences=("T1", "T2", "STIR", "T1CE"), require_mask=True)
    # Show a case with lesions when the cohort has one (the phantom draws 0..3 per case).
    row = next((r for r in rows if sitk.GetArrayViewFromImage(sitk.ReadImage(str(r.mask))).any()), rows[0])
    logic = SpineMetsSegmentLogic()
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
        voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
        truth = {int(v): float((sitk.GetArrayViewFromImage(mask) == v).sum()) * voxel_ml
                 for v in np.unique(sitk.GetArrayViewFromImage(mask)) if v}
        for label, sid in case.segment_ids.items():
            name = segmentations.segment_names(case.segmentation)[sid]
            summary["segments"][name] = {"volume_ml": round(volumes_ml[name], 4), "truth_volume_ml": round(truth[label], 4)}
        # Re-read what was written, with MRML and with SimpleITK, and compare geometry.
        reread = dataio.read_segmentation(seg_path)
        summary["segmentation_reread_segments"] = sorted(segmentations.segment_names(reread).values())
    write_text_atomic(out / "demo_summary.json", json.dumps(summary, indent=2))
    logger.info("demo written to %s", out)
    return summary
