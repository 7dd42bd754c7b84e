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
        if "features" in figures:  # paired: raw PyRadiomics right after the command
            figures["features"].update(features_vs_pyradiomics(manifest, env, input_bytes, figures["features"]))
    passed = all(f["ratio_data_peak_vs_input_voxels"] <= GOAL for f in figures.values())
    return {"benchmark": "memory", "volume_size": list(SIZE), "input_voxel_mb": round(input_bytes / 2**20), "goal": GOAL,
            **{f"{name}_{k}": v for name, f in figures.items() for k, v in f.items()},
            "load_average_1min": round(os.getloadavg()[0], 1), "passed": passed}


# ----------------------------------------------------------------------------------
# features: the command against a raw PyRadiomics script, paired in the same run
# ----------------------------------------------------------------------------------
_TOY_EXTRACTION = (
    "import numpy as np, SimpleITK as sitk\n"
    "a = np.random.default_rng(0).normal(100, 10, (8, 24, 24)).astype(np.float32)\n"
    "m = np.zeros(a.shape, np.uint8); m[2:6, 6:18, 6:18] = 1\n"
    "img = sitk.GetImageFromArray(a); img.SetSpacing((1.0, 1.0, 3.5))\n"
    "mask = sitk.GetImageFromArray(m); mask.CopyInformation(img)\n"
)
FEATURES_FLOOR = (  # what `spinemets features` loads (no MRML runtime; pandas for the manifest) + one toy extraction
    "from SpineMetsApp.cli import _route_native_messages; _route_native_messages()\n"
    "import pandas\n"
    "import SpineMetsClassifierLib.features.cohort as cohort\n"
    "from SpineMetsCore.dataio import read_image\n" + _TOY_EXTRACTION
    + "with cohort.quiet_radiomics(): cohort.RadiomicsExtractor(None).extract_sequence('T1', img, mask, True)\n"
)
FLOORS["features"] = FEATURES_FLOOR
# `segment --method unet` writes a new .seg.nrrd without a scene (SpineMetsCore.seg_nrrd): its floor loads no MRML runtime
FLOORS["unet"] = FLOORS["unet"].replace("from SpineMetsCore.runtime import get_runtime; get_runtime(); ", "")
# so does `segment --method regiongrow` (SimpleITK images, grow_region, seg_nrrd); appending to a file still loads MRML
FLOORS["regiongrow"] = FLOORS["regiongrow"].replace("from SpineMetsCore.runtime import get_runtime; get_runtime(); ", "") \
    + ", SpineMetsCore.seg_nrrd"
RAW_PYRADIOMICS = (  # the plain script: the same parameter file, one sequence read at a time
    "import sys, SimpleITK as sitk, logging\n"
    "from radiomics.featureextractor import RadiomicsFeatureExtractor\n"
    "logging.getLogger('radiomics').setLevel(logging.ERROR)\n"
    "extractor = RadiomicsFeatureExtractor(sys.argv[1])\n"
    "mask = sitk.Cast(sitk.ReadImage(sys.argv[2]) == 1, sitk.sitkUInt8)\n"
    "rows = [extractor.execute(sitk.ReadImage(path), mask, label=1) for path in sys.argv[3:]]\n"
)
RAW_FLOOR = (
    "import logging; from radiomics.featureextractor import RadiomicsFeatureExtractor\n"
    "logging.getLogger('radiomics').setLevel(logging.ERROR)\n" + _TOY_EXTRACTION
    + "RadiomicsFeatureExtractor(__import__('sys').argv[1]).execute(img, mask, label=1)\n"
)


def features_vs_pyradiomics(manifest: Path, env: dict[str, str], input_bytes: int, ours: dict) -> dict:
    """Raw PyRadiomics on the same case right after ``ours`` (the command's run): peaks and ratios."""
    import pandas as pd
    from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS, resource

    row = pd.read_csv(manifest, comment="#").iloc[0]
    params = str(resource(DEFAULT_RADIOMICS_PARAMS))
    paths = [str(manifest.parent / row[s]) for s in SEQUENCES]
    raw = _time_v([sys.executable, "-c", RAW_PYRADIOMICS, params, str(manifest.parent / row["mask"]), *paths], env)
    floor = _time_v([sys.executable, "-c", RAW_FLOOR, params], env)
    raw_data_mb = max(0.0, raw["peak_rss_mb"] - floor["peak_rss_mb"])
    ours_data_mb = ours["data_peak_mb"]
    return {
        "raw_pyradiomics_peak_rss_mb": round(raw["peak_rss_mb"]),
        "raw_pyradiomics_import_floor_rss_mb": round(floor["peak_rss_mb"]),
        "raw_pyradiomics_data_peak_mb": round(raw_data_mb),
        "raw_pyradiomics_ratio_data_peak_vs_input_voxels": round(raw_data_mb * 2**20 / input_bytes, 2),
        "ratio_whole_peak_vs_raw_pyradiomics": round(ours["peak_rss_mb"] / raw["peak_rss_mb"], 2),
        "ratio_data_peak_vs_raw_pyradiomics": round(ours_data_mb / raw_data_mb, 2) if raw_data_mb else None,
        "raw_pyradiomics_wall_s": round(raw["wall_s"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: unet, regiongrow, features")
    args = parser.parse_args()
    result = run({w.strip() for w in args.only.split(",") if w.strip()} or None)
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
