"""A phantom cohort ready for ``spinemets run``: images, reference masks and Slicer markups seeds.

For each case the index lesion's deepest voxel becomes a seed (as a reader would click it)
and a box 10 mm around the lesion becomes the ROI; both are written as Slicer markups
files (``<case>_seeds.mrk.json``, ``<case>_roi.mrk.json``, LPS like Slicer saves them) and
named in the manifest's ``seeds_file`` / ``roi_file`` columns. The phantom is synthetic
data for demos and tests only.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from SpineMetsCore.fileio import atomic_path, write_text_atomic

SCHEMA_URL = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


def _phantom() -> Any:
    import SpineMetsPhantom

    return SpineMetsPhantom


def markups_points_json(points_lps: list[list[float]], name: str = "Seeds") -> str:
    """A Slicer point-list markups file (``.mrk.json``) with positions in LPS."""
    doc = {"@schema": SCHEMA_URL, "markups": [{
        "type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "name": name,
        "controlPoints": [{"id": str(i + 1), "label": f"{name}-{i + 1}", "position": [round(v, 4) for v in p],
                           "positionStatus": "defined"} for i, p in enumerate(points_lps)]}]}
    return json.dumps(doc, indent=2)


def markups_roi_json(centre_lps: list[float], size_mm: list[float], name: str = "ROI") -> str:
    """A Slicer ROI markups file (axis-aligned box; centre in LPS)."""
    doc = {"@schema": SCHEMA_URL, "markups": [{
        "type": "ROI", "coordinateSystem": "LPS", "coordinateUnits": "mm", "name": name, "roiType": "Box",
        "center": [round(v, 4) for v in centre_lps], "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
        "size": [round(v, 4) for v in size_mm],
        "controlPoints": [{"id": "1", "label": name, "position": [round(v, 4) for v in centre_lps],
                           "positionStatus": "defined"}]}]}
    return json.dumps(doc, indent=2)


def lesion_seed_and_box(mask_path: str | os.PathLike[str], label: int = 1, margin_mm: float = 10.0
                        ) -> tuple[list[float], list[float], list[float]] | None:
    """Seed (deepest voxel of the lesion, LPS) and a box around it (centre LPS, size mm); None without lesion."""
    import SimpleITK as sitk

    mask = sitk.ReadImage(str(mask_path))
    lesion = sitk.Cast(mask == label, sitk.sitkUInt8)
    array = sitk.GetArrayViewFromImage(lesion)
    if not array.any():
        return None
    depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(lesion, insideIsPositive=True, useImageSpacing=True))
    k, j, i = np.unravel_index(int(np.argmax(np.where(array > 0, depth, -np.inf))), depth.shape)
    seed = list(mask.TransformIndexToPhysicalPoint((int(i), int(j), int(k))))
    idx = np.argwhere(array > 0)
    corners = np.array([mask.TransformIndexToPhysicalPoint((int(c[2]), int(c[1]), int(c[0]))) for c in idx])
    lo, hi = corners.min(axis=0) - margin_mm, corners.max(axis=0) + margin_mm
    return seed, list((lo + hi) / 2), list(hi - lo)


def write_demo_cohort(out_dir: str | os.PathLike[str], cases: int = 24, seed: int = 0, **phantom_config: Any) -> Path:
    """Phantom cohort plus per-case seeds/ROI markups; returns the manifest path."""
    phantom = _phantom()
    config = phantom.PhantomConfig(**phantom_config) if phantom_config else None
    manifest = Path(phantom.write_cohort(out_dir, n_cases=cases, seed=seed, config=config))
    base = manifest.parent
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        found = lesion_seed_and_box(base / row["mask"])
        if found is None:
            row["seeds_file"] = row["roi_file"] = ""
            continue
        seed_lps, centre, size = found
        seeds_name, roi_name = f"{row['case_id']}_seeds.mrk.json", f"{row['case_id']}_roi.mrk.json"
        write_text_atomic(base / seeds_name, markups_points_json([seed_lps]))
        write_text_atomic(base / roi_name, markups_roi_json(centre, size))
        row["seeds_file"], row["roi_file"] = seeds_name, roi_name
    with atomic_path(manifest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*columns, "seeds_file", "roi_file"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return manifest
