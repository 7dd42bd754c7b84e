#!/usr/bin/env python3
"""U-Net inference: ``segment_images`` vs raw MONAI ``sliding_window_inference``.

Both run in this process on the same 512 x 512 x 40 phantom volume with the
shipped demo model's network and weights. The phantom is generated at the
model's spacing so our path does not resample; what we add on top of MONAI is
then input checks, normalisation, argmax, small-island removal and the
SimpleITK labelmap. Goal: our CPU time <= 1.15 x raw (best of repeats, CPU
seconds of the process, which shared machines disturb less than wall time).

Also reported: CPU seconds per 512 x 512 x 40 case on the usual fine in-plane
grid (0.22 mm, default phantom field of view), where our path first resamples
to the model's spacing, the way a real high-resolution study is segmented.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

GOAL = 1.15
REPEATS = 3
SIZE = (512, 512, 40)

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "SpineMetsSegment")]


def _timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    import numpy as np
    import SimpleITK as sitk
    import torch
    from monai.inferers import sliding_window_inference
    from SpineMetsSegmentLib.unet import demo_model_path, load_model_package, segment_images
    from SpineMetsSegmentLib.unet.preprocessing import prepare_images

    from SpineMetsPhantom import PhantomConfig, generate_case

    torch.set_num_threads(2)
    pkg = load_model_package(demo_model_path())
    spacing = tuple(float(s) for s in pkg.spacing)
    case = generate_case(seed=424242, case_id="bench", config=PhantomConfig(size=SIZE, spacing=spacing))
    images = {s: case.images[s] for s in pkg.input_sequences}

    card = pkg.card
    prepared = prepare_images(images, pkg.input_sequences, pkg.spacing, card["normalisation"], card.get("orientation"))
    assert not prepared.resampled, "bench volume must be on the model's grid"
    net = pkg.build_network("cpu")
    x = torch.from_numpy(np.ascontiguousarray(prepared.array[None]))  # contiguous: MONAI's best case
    roi = list(reversed(pkg.patch_size))  # card lists are (i, j, k); tensors are (k, j, i)
    inference = card.get("inference", {})

    def raw():
        with torch.inference_mode():
            return sliding_window_inference(
                x, roi_size=roi, sw_batch_size=int(inference.get("sw_batch_size", 4)), predictor=net,
                overlap=float(inference.get("overlap", 0.5)), mode="gaussian",
            )

    def ours():
        return segment_images(images, pkg, force_cpu=True)

    raw_runs, our_runs = [], []
    for rep in range(REPEATS):  # interleaved, alternating who goes first, so load changes hit both
        for which in ((raw, ours) if rep % 2 == 0 else (ours, raw)):
            result, cpu, wall = _timed(which)
            (raw_runs if which is raw else our_runs).append((cpu, wall))
            if which is ours:
                labelmap = result
    raw_cpu, raw_wall = min(r[0] for r in raw_runs), min(r[1] for r in raw_runs)
    our_cpu, our_wall = min(r[0] for r in our_runs), min(r[1] for r in our_runs)
    ratio = our_cpu / raw_cpu

    fine = generate_case(seed=424242, case_id="bench_fine", config=PhantomConfig(size=SIZE))
    fine_images = {s: fine.images[s] for s in pkg.input_sequences}
    _, fine_cpu, fine_wall = _timed(lambda: segment_images(fine_images, pkg, force_cpu=True))

    result = {
        "benchmark": "unet_inference",
        "volume_size": list(SIZE),
        "model": str(demo_model_path()),
        "network": card["network"]["class"],
        "ratio_cpu_ours_vs_raw_monai": round(ratio, 3),
        "ratio_wall_ours_vs_raw_monai": round(our_wall / raw_wall, 3),
        "goal": GOAL,
        "ours_cpu_seconds_per_case": round(our_cpu, 2),
        "raw_monai_cpu_seconds_per_case": round(raw_cpu, 2),
        "ours_wall_seconds_per_case": round(our_wall, 2),
        "raw_monai_wall_seconds_per_case": round(raw_wall, 2),
        "model_grid_spacing_mm": list(spacing),
        "fine_grid_case_cpu_seconds": round(fine_cpu, 2),
        "fine_grid_case_wall_seconds": round(fine_wall, 2),
        "fine_grid_spacing_mm": [round(s, 4) for s in fine.images[pkg.input_sequences[0]].GetSpacing()],
        "torch_threads": torch.get_num_threads(),
        "labelmap_voxels_lesion": int((sitk.GetArrayViewFromImage(labelmap) > 0).sum()),
        "passed": ratio <= GOAL,
    }
    print(json.dumps(result))
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
