#!/usr/bin/env python3
"""Regenerate the phantom sample data shipped in ``SpineMetsSegment/Resources/SampleData``.

One case of the SpineMets synthetic phantom (seed 7): the four sequences as
int16 NRRD (MRI-like integer intensities, about 4x smaller than float), the lesion
and anatomy labels as ``.seg.nrrd`` with named, coloured segments, a thumbnail
and ``SpineMetsPhantom.json`` with each file's SHA-256. Synthetic: not a patient.

    PYTHONPATH=.:SpineMetsSegment:SpineMetsClassifier python SpineMetsSegment/Resources/Scripts/make_phantom_sample.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
SEED = 7


def main(argv: list[str] | None = None) -> int:
    from SpineMetsSegmentLib.sample_data import SAMPLE_DIR, SAMPLE_NAME, SEQUENCES, write_index

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SAMPLE_DIR), help="folder (default: the shipped one)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    from SpineMetsCore import dataio, segmentations
    from SpineMetsCore.fileio import atomic_path
    from SpineMetsPhantom import ANATOMY_LABELS, PHANTOM_VERSION, generate_case

    case = generate_case(SEED, case_id=SAMPLE_NAME)
    roles: dict[str, str] = {}
    for seq in SEQUENCES:
        image = sitk.Cast(sitk.Round(sitk.Clamp(case.images[seq], sitk.sitkFloat32, -32768, 32767)), sitk.sitkInt16)
        name = f"{SAMPLE_NAME}_{seq}.nrrd"
        with atomic_path(out / name) as tmp:
            sitk.WriteImage(image, str(tmp), True)
        roles[seq] = name
    lesion_names = {lesion.label: ("index lesion" if lesion.label == 1 else f"lesion {lesion.label}") for lesion in case.lesions}
    specs = [segmentations.SegmentSpec(v, n, (0.9, 0.2, 0.2) if v == 1 else (0.95, 0.6, 0.1)) for v, n in lesion_names.items()]
    node, _ = segmentations.labelmap_to_segmentation(case.lesion_mask, specs, name=f"{SAMPLE_NAME}_lesions")
    dataio.write_segmentation(node, out / f"{SAMPLE_NAME}_lesions.seg.nrrd")
    roles["lesions"] = f"{SAMPLE_NAME}_lesions.seg.nrrd"
    anatomy = {v: n for v, n in ANATOMY_LABELS.items() if v}
    node, _ = segmentations.labelmap_to_segmentation(case.anatomy, anatomy, name=f"{SAMPLE_NAME}_anatomy")
    dataio.write_segmentation(node, out / f"{SAMPLE_NAME}_anatomy.seg.nrrd")
    roles["anatomy"] = f"{SAMPLE_NAME}_anatomy.seg.nrrd"

    t1 = sitk.GetArrayFromImage(case.images["T1"])
    mask = sitk.GetArrayFromImage(case.lesion_mask)
    k = int(np.argmax((mask > 0).sum(axis=(1, 2))))
    fig, ax = plt.subplots(figsize=(1.28, 1.28), dpi=100)
    ax.imshow(t1[k], cmap="gray", origin="lower")
    ax.contour(mask[k] > 0, levels=[0.5], colors="red", linewidths=0.8, origin="lower")
    ax.set_axis_off()
    fig.subplots_adjust(0, 0, 1, 1)
    with atomic_path(out / f"{SAMPLE_NAME}.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    write_index(out, roles, {
        "name": SAMPLE_NAME,
        "description": "One synthetic spine MRI case of the SpineMets phantom (not a patient): T1, T2, STIR, T1CE, "
                       "lesion and anatomy segmentations.",
        "synthetic": True,
        "phantom_seed": SEED,
        "phantom_version": PHANTOM_VERSION,
        "lesion_site": case.record.get("site"),
        "tumour_class": case.record.get("tumour_class"),
        "regenerate": "python SpineMetsSegment/Resources/Scripts/make_phantom_sample.py",
    })
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
