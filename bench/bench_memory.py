#!/usr/bin/env python3
"""Peak memory of ``segment`` (region growing, U-Net) and ``features`` on a 512 x 512 x 40 four-sequence case.

Each command runs as a fresh process under ``/usr/bin/time -v`` (peak RSS).
Reported against the input voxel bytes (four float32 volumes, 160 MiB) two
ways: the whole peak, and the peak above the same process's import floor
(``python -c "import <what the command imports>"``, measured alongside), which
is what the data costs. Goal: data peak <= 2.5 x the input voxels. The
libraries alone (torch + MONAI + Slicer's MRML + SimpleITK) take 0.5-0.8 GB
before any voxel is read, so the whole-process ratio is reported, not judged.

    python bench/bench_memory.py [--only unet,regiongrow,features]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from bench_unet import PATHS, SEQUENCES, SIZE, _time_v  # noqa: E402  (shared /usr/bin/time -v runner)

GOAL = 2.5
FLOORS = {
    "unet": "from SpineMetsCore.runtime import get_runtime; get_runtime(); import SpineMetsSegmentLib.logic; "
            "from SpineMetsSegmentLib.unet import demo_model_path, load_model_package; load_model_package(demo_model_path()); "
            "import monai.inferers",
    "regiongrow": "from SpineMetsCore.runtime import get_runtime; get_runtime(); import SpineMetsSegmentLib.logic, "
                  "SpineMetsSegmentLib.region_growing",
    "features": "from SpineMetsCore.runtime import get_runtime; get_runtime(); import SpineMetsClassifierLib.features.cohort, radiomics",
}


def run(only: set[str] | None = None) -> dict:
    sys.path[:0] = PATHS
    from SpineMetsSegmentLib.unet import demo_model_path

    from SpineMetsPhantom import PhantomConfig
    from SpineMetsPhantom.cohort import write_cohort

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PATHS + [os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "SpineMetsApp.cli"]
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        manifest = write_cohort(tmp / "cohort", n_cases=1, seed=4, config=PhantomConfig(size=SIZE), fmt="nrrd")
        import pandas as pd

        row = pd.read_csv(manifest, comment="#").iloc[0]
        root = manifest.parent
        images = [f"--image={s}={root / row[s]}" for s in SEQUENCES]
        input_bytes = 4 * SIZE[0] * SIZE[1] * SIZE[2] * len(SEQUENCES)
        from SpineMetsCore.dataio import read_image

        mask = read_image(root / row["mask"])
        import numpy as np
        import SimpleITK as sitk

        ijk = np.argwhere(sitk.GetArrayViewFromImage(mask) == 1)
        seed_lps = mask.TransformIndexToPhysicalPoint([int(v) for v in ijk[len(ijk) // 2][::-1]])
        seed = f"--seed-ras={-seed_lps[0]},{-seed_lps[1]},{seed_lps[2]}"
        commands = {
            "unet": [*cli, "segment", "--method", "unet", *images, "--model", str(demo_model_path()), "--out", str(tmp / "u.seg.nrrd"), "--force-cpu"],
            "regiongrow": [*cli, "segment", "--method", "regiongrow", *images, seed, "--out", str(tmp / "r.seg.nrrd")],
            "features": [*cli, "features", "--manifest", str(manifest), "--out", str(tmp / "f.csv"), "--no-cache", "--no-progress"],
        }
        for name, cmd in commands.items():
            if only and name not in only:
                continue
            run_ = _time_v(cmd, env)
            floor = _time_v([sys.executable, "-c", FLOORS[name]], env)
            data_mb = max(0.0, run_["peak_rss_mb"] - floor["peak_rss_mb"])
            figures[name] = {
                "peak_rss_mb": round(run_["peak_rss_mb"]),
                "import_floor_rss_mb": round(floor["peak_rss_mb"]),
                "data_peak_mb": round(data_mb),
                "ratio_data_peak_vs_input_voxels": round(data_mb * 2**20 / input_bytes, 2),
                "ratio_whole_peak_vs_input_voxels": round(run_["peak_rss_mb"] * 2**20 / input_bytes, 2),
                "wall_s": round(run_["wall_s"], 1),
            }
    passed = all(f["ratio_data_peak_vs_input_voxels"] <= GOAL for f in figures.values())
    return {"benchmark": "memory", "volume_size": list(SIZE), "input_voxel_mb": round(input_bytes / 2**20), "goal": GOAL,
            **{f"{name}_{k}": v for name, f in figures.items() for k, v in f.items()},
            "load_average_1min": round(os.getloadavg()[0], 1), "passed": passed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: unet, regiongrow, features")
    args = parser.parse_args()
    result = run({w.strip() for w in args.only.split(",") if w.strip()} or None)
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
