#!/usr/bin/env python3
"""GPU section: U-Net segmentation and a ResNet50 classifier forward pass per case, on CUDA.

Skipped (``{"skipped": ...}``, exit 0) when no CUDA device is present. On a GPU:

* U-Net: ``segment_images`` on one 512 x 512 x 40 four-sequence phantom
  (warm: the cached package network) vs raw MONAI ``sliding_window_inference``
  on the already prepared tensor on the same device; ratio goal <= 1.15 is for
  the network part only, the per-case seconds include preprocessing.
* ResNet50: MONAI ``resnet50`` (3-D, 4 input channels, 2 classes) forward on a
  4 x 32 x 96 x 96 lesion crop per case (batch 1), warm, in seconds per case.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "SpineMetsSegment"), str(ROOT / "SpineMetsClassifier")]
REPEATS = 5
SIZE = (512, 512, 40)


def _best(fn, sync, repeats: int = REPEATS) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu", "skipped": "no CUDA GPU on this machine; run bench/bench_gpu.py where one is"}))
        return 0
    import numpy as np
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import resnet50
    from SpineMetsSegmentLib.unet import demo_model_path, load_model_package, segment_images
    from SpineMetsSegmentLib.unet.preprocessing import prepare_images

    from SpineMetsPhantom import PhantomConfig, generate_case

    device = torch.device("cuda")
    sync = torch.cuda.synchronize
    pkg = load_model_package(demo_model_path())
    case = generate_case(seed=424242, case_id="gpu", config=PhantomConfig(size=SIZE))
    images = {s: case.images[s] for s in pkg.input_sequences}
    card = pkg.card
    prepared = prepare_images(images, pkg.input_sequences, pkg.spacing, card["normalisation"], card.get("orientation"))
    x = torch.from_numpy(np.ascontiguousarray(prepared.array[None])).to(device)
    net = pkg.network(device)
    inference = card.get("inference", {})

    def raw():
        with torch.inference_mode():
            sliding_window_inference(x, roi_size=list(reversed(pkg.patch_size)), sw_batch_size=int(inference.get("sw_batch_size", 4)),
                                     predictor=net, overlap=float(inference.get("overlap", 0.5)), mode="gaussian")

    unet_case = _best(lambda: segment_images(images, pkg), sync)
    unet_raw = _best(raw, sync)

    classifier = resnet50(spatial_dims=3, n_input_channels=4, num_classes=2).to(device).eval()
    crop = torch.randn(1, 4, 32, 96, 96, device=device)

    def classify():
        with torch.inference_mode():
            classifier(crop)

    resnet_case = _best(classify, sync)
    print(json.dumps({
        "benchmark": "gpu",
        "device": torch.cuda.get_device_name(0),
        "unet_seconds_per_case": round(unet_case, 4),
        "unet_raw_monai_network_seconds": round(unet_raw, 4),
        "unet_case_vs_raw_network": round(unet_case / unet_raw, 2),
        "resnet50_seconds_per_case": round(resnet_case, 4),
        "volume_size": list(SIZE),
        "resnet50_crop": [4, 32, 96, 96],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
