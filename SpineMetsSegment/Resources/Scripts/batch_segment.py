#!/usr/bin/env python3
"""Batch lesion segmentation of a cohort with the SpineMetsSegment Logic.

Runs the same way in desktop Slicer without a window and in plain Python::

    Slicer --no-main-window --python-script batch_segment.py --manifest cohort/manifest.csv \\
        --seeds seeds.csv --out results
    python batch_segment.py --manifest cohort/manifest.csv --seeds seeds.csv --out results

(plain Python needs ``pip install spinemets`` or PYTHONPATH with the repository and
``SpineMetsSegment``). ``seeds.csv`` has one row per lesion: ``case_id``, ``name``
(segment name), ``seed_ras`` ("x,y,z", several seeds separated by ";") and an
optional ``roi_ras`` ("x0,y0,z0,x1,y1,z1"). With ``--model`` every case is also
segmented by that U-Net package. Each case gets ``<out>/<case_id>.seg.nrrd``;
``<out>/volumes.csv`` (with provenance) lists every segment's volume in mL. The
script only uses the Logic, so it is also a template for your own batch jobs.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path


def read_seeds(path: Path) -> dict[str, list[dict[str, str]]]:
    """Rows of the seeds file grouped by case."""
    from SpineMetsCore.errors import InputError

    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"case_id", "name", "seed_ras"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(str(path), f"is missing column(s) {sorted(missing)}")
        for row in reader:
            rows[row["case_id"].strip()].append(row)
    return rows


def segment_cohort(manifest: Path, seeds_file: Path | None, out: Path, sequences: list[str] | None, model: str | None) -> dict:
    import pandas as pd
    from SpineMetsSegmentLib.logic import LesionSegmentationLogic
    from SpineMetsSegmentLib.seeds import parse_float_list

    from SpineMetsCore.manifest import read_manifest
    from SpineMetsCore.tables import provenance, write_table_csv

    logic = LesionSegmentationLogic()
    seeds = read_seeds(seeds_file) if seeds_file else {}
    records = []
    for row in read_manifest(manifest):
        chosen = sequences or list(row.images)
        nodes = logic.loadSequences({s: row.images[s] for s in chosen if s in row.images})
        segmentation = None
        for lesion in seeds.get(row.case_id, []):
            points = [parse_float_list(p, 3, f"seeds of case {row.case_id}") for p in lesion["seed_ras"].split(";") if p.strip()]
            roi_text = (lesion.get("roi_ras") or "").strip()
            roi = parse_float_list(roi_text, 6, f"ROI of case {row.case_id}") if roi_text else None
            result = logic.segmentRegionGrowing(nodes, points, roi, segmentationNode=segmentation, segmentName=lesion["name"])
            segmentation = result.segmentation_node
            records.append({"case_id": row.case_id, "method": "regiongrow", **result.summary()})
        if model:
            for result in logic.segmentWithUNet(nodes, model, segmentationNode=segmentation):
                segmentation = result.segmentation_node
                records.append({"case_id": row.case_id, "method": "unet", **result.summary()})
        if segmentation is not None:
            logic.saveSegmentation(segmentation, out / f"{row.case_id}.seg.nrrd")
            logic.scene.RemoveNode(segmentation)
        for node in nodes.values():
            logic.scene.RemoveNode(node)
        logging.info("case %s done", row.case_id)
    frame = pd.DataFrame.from_records(records, columns=["case_id", "method", "name", "id", "volume_ml"])
    prov = provenance(script="batch_segment.py", manifest=str(manifest), seeds=str(seeds_file) if seeds_file else None, model=model)
    write_table_csv(frame, out / "volumes.csv", prov)
    return {"cases": int(frame["case_id"].nunique()), "segments": len(frame), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--seeds", type=Path, default=None, help="seeds CSV (case_id, name, seed_ras[, roi_ras])")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--sequences", default=None, help="comma-separated sequences to use (default: all in the manifest)")
    parser.add_argument("--model", default=None, help="U-Net model package to run on every case")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from SpineMetsCore.errors import SpineMetsError

    try:
        sequences = [s.strip() for s in args.sequences.split(",")] if args.sequences else None
        summary = segment_cohort(args.manifest, args.seeds, args.out, sequences, args.model)
    except SpineMetsError as exc:
        print(f"batch_segment: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
