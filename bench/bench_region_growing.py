#!/usr/bin/env python3
"""Region growing: SpineMetsSegment Logic on MRML nodes vs the raw SimpleITK pipeline.

Both sides segment the same lesions of one 512x512x40 phantom case with the same
seeds, ROIs and parameters. The raw side is :func:`grow_region` on SimpleITK
images (the algorithm's SimpleITK/numpy calls, no MRML); the Logic side starts
from volume nodes and ends with a named segment in a segmentation node, so the
ratio is the wrapper's overhead (node -> image conversion, segment import,
volume). Goal: ratio <= 1.15. Reports CPU seconds per case (all its lesions)
and the Dice of each lesion. Prints one JSON object; exits 1 if the goal is missed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "SpineMetsSegment"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

GOAL = 1.15
SIZE = (512, 512, 40)
REPEATS = 2


def main() -> int:
    import SimpleITK as sitk
    from SpineMetsSegmentLib.logic import LesionSegmentationLogic
    from SpineMetsSegmentLib.metrics import compute_metrics
    from SpineMetsSegmentLib.region_growing import grow_region

    from SpineMetsCore import volumes
    from SpineMetsPhantom import PhantomConfig, generate_case

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # CPU seconds comparable on a shared machine
    case = generate_case(4, case_id="bench", config=PhantomConfig(size=SIZE))
    logic = LesionSegmentationLogic()
    nodes = {name: volumes.sitk_to_volume(image, name=name) for name, image in case.images.items()}
    labels = sitk.GetArrayFromImage(case.lesion_mask)
    flip = np.array([-1.0, -1.0, 1.0])
    trials = []
    for lesion in case.lesions:
        seed = tuple(np.asarray(lesion.seed_lps) * flip)
        roi = (*(np.asarray(lesion.bbox_min_lps) - 10.0) * flip, *(np.asarray(lesion.bbox_max_lps) + 10.0) * flip)
        trials.append((lesion, seed, roi))

    raw_cpu = {les.label: [] for les, _, _ in trials}
    logic_cpu = {les.label: [] for les, _, _ in trials}
    dice = {}
    for _ in range(REPEATS):
        for lesion, seed, roi in trials:
            t = time.process_time()
            raw = grow_region(case.images, [seed], roi)
            raw_cpu[lesion.label].append(time.process_time() - t)
            t = time.process_time()
            result = logic.segmentRegionGrowing(nodes, [seed], roi, segmentName=f"Lesion {lesion.label}")
            logic_cpu[lesion.label].append(time.process_time() - t)
            logic.scene.RemoveNode(result.segmentation_node)
            truth = sitk.GetImageFromArray((labels == lesion.label).astype(np.uint8))
            truth.CopyInformation(case.lesion_mask)
            dice[lesion.label] = round(compute_metrics(truth, raw.mask).dice, 4)
    raw_case = sum(min(v) for v in raw_cpu.values())
    logic_case = sum(min(v) for v in logic_cpu.values())
    ratio = logic_case / raw_case
    result = {
        "benchmark": "region_growing",
        "size": list(SIZE),
        "spacing_mm": [round(s, 4) for s in case.images["T1"].GetSpacing()],
        "lesions": len(trials),
        "raw_cpu_s_per_case": round(raw_case, 3),
        "logic_cpu_s_per_case": round(logic_case, 3),
        "cpu_s_per_lesion": round(logic_case / len(trials), 3),
        "ratio": round(ratio, 4),
        "goal": GOAL,
        "passed": ratio <= GOAL,
        "dice": dice,
        "threads": 1,
    }
    print(json.dumps(result))
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
