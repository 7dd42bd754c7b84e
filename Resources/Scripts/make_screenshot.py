#!/usr/bin/env python3
"""Render ``Resources/Screenshots/SpineMets.png``: what SpineMetsSegment produces on the phantom sample.

The Extensions Index shows this image. It is a figure rendered headless (no Slicer
GUI here): the synthetic phantom sample case, its lesion segmented by region growing
and by the shipped demo U-Net through the module Logic, each compared with the
phantom truth (Dice). Labelled as synthetic: it is not a clinical case.

    PYTHONPATH=.:SpineMetsSegment:SpineMetsClassifier python Resources/Scripts/make_screenshot.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Resources" / "Screenshots" / "SpineMets.png"


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk
    from SpineMetsSegmentLib.logic import LesionSegmentationLogic
    from SpineMetsSegmentLib.metrics import compute_metrics
    from SpineMetsSegmentLib.sample_data import SEQUENCES, verify_sample
    from SpineMetsSegmentLib.unet import demo_model_path

    from SpineMetsCore.dataio import read_segmentation, read_volume
    from SpineMetsCore.fileio import atomic_path

    logic = LesionSegmentationLogic()
    paths = verify_sample()
    volumes = {seq: read_volume(paths[seq], name=seq) for seq in SEQUENCES}
    truth = logic.segmentMask(read_segmentation(paths["lesions"]), "index lesion")
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(truth)
    flip = np.array([-1.0, -1.0, 1.0])
    seed = np.asarray(stats.GetCentroid(1)) * flip
    rg = logic.segmentRegionGrowing(volumes, [seed], None, segmentName="region growing")
    unet = logic.segmentWithUNet(volumes, demo_model_path(), forceCpu=True)[0]
    masks = {
        "region growing": logic.segmentMask(rg.segmentation_node, rg.segment_id),
        "U-Net (demo model)": logic.segmentMask(unet.segmentation_node, unet.segment_id),
    }
    dice = {name: compute_metrics(truth, mask).dice for name, mask in masks.items()}

    truth_arr = sitk.GetArrayFromImage(truth)
    k = int(np.argmax(truth_arr.sum(axis=(1, 2))))
    images = {seq: sitk.GetArrayFromImage(sitk.ReadImage(str(paths[seq])))[k].astype(float) for seq in SEQUENCES}
    fig, axes = plt.subplots(1, 4, figsize=(12, 4.6), dpi=100)
    panels = [
        ("T1", None, "T1 (synthetic phantom)"),
        ("STIR", "region growing", f"STIR + region growing\nDice {dice['region growing']:.2f} vs phantom truth"),
        ("T2", "U-Net (demo model)", f"T2 + U-Net (demo model)\nDice {dice['U-Net (demo model)']:.2f} vs phantom truth"),
        ("T1CE", "truth", "T1CE + phantom truth"),
    ]
    colours = {"region growing": "#f5a623", "U-Net (demo model)": "#e63333", "truth": "#33c3ff"}
    for ax, (seq, overlay, title) in zip(axes, panels, strict=True):
        image = images[seq]
        lo, hi = np.percentile(image, (1, 99.5))
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        if overlay is not None:
            mask = truth_arr[k] if overlay == "truth" else sitk.GetArrayFromImage(masks[overlay])[k]
            ax.contour(mask > 0, levels=[0.5], colors=colours[overlay], linewidths=1.4, origin="lower")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle("SpineMets Segment on the SYNTHETIC phantom sample (not a patient; models trained on synthetic data)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(OUT) as tmp:
        fig.savefig(tmp, format="png")
    print(OUT, {k: round(v, 3) for k, v in dice.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
