#!/usr/bin/env python3
"""``spinemets segment --method unet`` vs a plain script doing the same work, paired in one run.

Case: one 512 x 512 x 40 four-sequence phantom (NRRD files, 0.22 x 0.29 x
1.2 mm, so the model's 1.15 x 1.15 x 3.5 mm working grid is 96 x 128 x 14).

Control (``python bench_unet.py --control ...``, also a separate process): the
plain script a user would write: SimpleITK read -> linear resample onto the
model's grid -> z-score -> MONAI ``sliding_window_inference`` (same network,
weights, patch, overlap, Gaussian blending) -> argmax -> nearest-neighbour
back onto the input grid -> write a compressed NRRD labelmap (the same kind
of file: a ``.seg.nrrd`` is a gzip NRRD labelmap with segment header fields).
No anti-aliasing, no checks.

Ours: the whole CLI process (checked inputs and model package, anti-aliased
working grid, interpolated probabilities, small-island removal, a new
``.seg.nrrd`` written directly by :mod:`SpineMetsCore.seg_nrrd`, so neither
slicer-core nor MRML nodes are needed).

Both run as fresh processes, alternating which goes first, each under
``/usr/bin/time -v`` (wall, user+sys CPU, peak RSS). Goal: median CPU time
(user + sys, which a shared machine disturbs far less than wall time) <= 1.15 x
the control's; the wall ratio is reported too. Peak RSS is reported for both,
and against the input voxel bytes.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

GOAL = 1.15
REPEATS = 3
SIZE = (512, 512, 40)
SEQUENCES = ("T1", "T2", "STIR", "T1CE")

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT), str(ROOT / "SpineMetsSegment"), str(ROOT / "SpineMetsClassifier")]


def control(case_dir: Path, model_dir: Path, out: Path) -> None:
    """The plain script: read -> resample -> normalise -> MONAI sliding window -> write."""
    import numpy as np
    import SimpleITK as sitk
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import UNet
    from safetensors.torch import load_file

    card = json.loads((model_dir / "model.json").read_text())
    net = UNet(**card["network"]["args"])
    net.load_state_dict(load_file(str(model_dir / card["payload"]["file"])))
    net.eval()
    images = [sitk.ReadImage(str(case_dir / f"case_{s}.nrrd"), sitk.sitkFloat32) for s in card["input_sequences"]]
    ref = images[0]
    spacing = card["spacing"]
    size = [round(n * s / t) for n, s, t in zip(ref.GetSize(), ref.GetSpacing(), spacing, strict=True)]
    origin = ref.TransformContinuousIndexToPhysicalPoint([(t / s - 1) / 2 for s, t in zip(ref.GetSpacing(), spacing, strict=True)])
    channels = []
    for img in images:
        arr = sitk.GetArrayFromImage(sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, origin, spacing, ref.GetDirection()))
        channels.append(np.clip((arr - arr.mean()) / arr.std(), -5, 5))
    x = torch.from_numpy(np.stack(channels)[None].astype(np.float32))
    inference = card.get("inference", {})
    with torch.inference_mode():
        logits = sliding_window_inference(
            x, roi_size=list(reversed(card["patch_size"])), sw_batch_size=inference.get("sw_batch_size", 4), predictor=net,
            overlap=inference.get("overlap", 0.5), mode="gaussian",
        )
    labels = sitk.GetImageFromArray(logits[0].argmax(0).numpy().astype(np.uint8))
    labels.SetOrigin(origin)
    labels.SetSpacing(spacing)
    labels.SetDirection(ref.GetDirection())
    sitk.WriteImage(sitk.Resample(labels, ref, sitk.Transform(), sitk.sitkNearestNeighbor), str(out), True)


def _time_v(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    err = proc.stderr

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", err).group(1).strip()

    parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {
        "wall_s": wall,
        "cpu_s": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "peak_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
    }


def _make_case(case_dir: Path) -> int:
    from SpineMetsPhantom import PhantomConfig, generate_case
    from SpineMetsPhantom.cohort import write_case

    case = generate_case(seed=424242, case_id="case", config=PhantomConfig(size=SIZE))
    write_case(case, case_dir, fmt="nrrd")
    return sum(case.images[s].GetNumberOfPixels() * case.images[s].GetSizeOfPixelComponent() for s in SEQUENCES)


def run(repeats: int = REPEATS) -> dict:
    """Paired runs; returns the result dict (``passed`` says whether the goal is met)."""
    sys.path[:0] = PATHS
    from SpineMetsSegmentLib.unet import demo_model_path

    model = demo_model_path()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PATHS + [os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory(prefix="bench_unet_") as tmp:
        tmp = Path(tmp)
        input_bytes = _make_case(tmp)
        images = [f"--image={s}={tmp / f'case_{s}.nrrd'}" for s in SEQUENCES]
        ours_cmd = [sys.executable, "-m", "SpineMetsApp.cli", "segment", "--method", "unet", *images, "--model", str(model),
                    "--out", str(tmp / "ours.seg.nrrd"), "--force-cpu", "--replace"]
        control_cmd = [sys.executable, str(Path(__file__).resolve()), "--control", str(tmp), str(model), str(tmp / "control.nrrd")]
        ours, plain = [], []
        for rep in range(repeats):  # alternate who goes first, so load changes hit both
            (tmp / "ours.seg.nrrd").unlink(missing_ok=True)
            for which in (("control", "ours") if rep % 2 == 0 else ("ours", "control")):
                if which == "ours":
                    ours.append(_time_v(ours_cmd, env))
                else:
                    plain.append(_time_v(control_cmd, env))
    med = {k: (statistics.median(r[k] for r in ours), statistics.median(r[k] for r in plain)) for k in ours[0]}
    ratio = med["cpu_s"][0] / med["cpu_s"][1]
    return {
        "benchmark": "unet_segment_cli",
        "volume_size": list(SIZE),
        "sequences": list(SEQUENCES),
        "ratio_cpu_cli_vs_plain_script": round(ratio, 3),
        "ratio_wall_cli_vs_plain_script": round(med["wall_s"][0] / med["wall_s"][1], 3),
        "goal": GOAL,
        "cli_wall_s_median": round(med["wall_s"][0], 2),
        "plain_wall_s_median": round(med["wall_s"][1], 2),
        "cli_cpu_s_median": round(med["cpu_s"][0], 2),
        "plain_cpu_s_median": round(med["cpu_s"][1], 2),
        "cli_peak_rss_mb": round(med["peak_rss_mb"][0]),
        "plain_peak_rss_mb": round(med["peak_rss_mb"][1]),
        "input_voxel_mb": round(input_bytes / 2**20),
        "repeats": repeats,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "passed": ratio <= GOAL,
    }


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--control":
        control(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return 0
    result = run()
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
