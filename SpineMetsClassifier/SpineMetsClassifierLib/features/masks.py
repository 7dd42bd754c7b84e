"""Binary masks for feature extraction: label selection, peritumoural shells, components.

All masks are SimpleITK ``UInt8`` images with values 0/1 on the grid of the image
they describe; distances are physical (millimetres), so a 5 mm shell is 5 mm on a
1.15 x 1.15 x 3.5 mm sagittal grid too.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.volumes import Geometry, resample_to

Components = tuple[np.ndarray, int]
"""(K, J, I) int32 component labels and their count, as :func:`components` returns them."""

ALL_LABELS = 0
"""``label`` value meaning "every non-zero label" (the union of all lesions)."""


def select_label(labelmap: sitk.Image, label: int = 1, what: str = "mask") -> sitk.Image:
    """Binary UInt8 mask of ``label`` (``ALL_LABELS``: any non-zero voxel); empty is an error."""
    if labelmap.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(what, "is a multi-component image; a labelmap is required")
    array = sitk.GetArrayViewFromImage(labelmap)
    binary = array != 0 if label == ALL_LABELS else array == label
    if not binary.any():
        present = sorted(int(v) for v in np.unique(array) if v != 0)
        wanted = "any label" if label == ALL_LABELS else f"label {label}"
        raise InputError(what, f"has no voxel with {wanted} (labels present: {present})")
    mask = sitk.GetImageFromArray(binary.astype(np.uint8))
    mask.CopyInformation(labelmap)
    return mask


def on_grid(mask: sitk.Image, reference: sitk.Image, what: str = "mask") -> sitk.Image:
    """``mask`` on ``reference``'s grid (nearest neighbour; unchanged when already there)."""
    return resample_to(mask, reference, labelmap=True, name=what)


def peritumoural_shell(mask: sitk.Image, distance_mm: float) -> sitk.Image:
    """Voxels within ``distance_mm`` (physical) of the lesion, minus the lesion itself.

    Distances are between voxel centres (Maurer distance map with image spacing), so a
    shell thinner than the slice spacing contains in-plane neighbours only.
    """
    if not distance_mm > 0:
        raise InputError("shell distance", f"must be positive, got {distance_mm}")
    distance = sitk.SignedMaurerDistanceMap(
        sitk.Cast(mask, sitk.sitkUInt8), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    d = sitk.GetArrayViewFromImage(distance)
    inside = sitk.GetArrayViewFromImage(mask) != 0
    shell = (~inside) & (d <= distance_mm + 1e-4)
    out = sitk.GetImageFromArray(shell.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def bounding_slices(array: np.ndarray) -> tuple[slice, ...] | None:
    """Tightest (K, J, I) slices holding every non-zero voxel (None when empty)."""
    slices = []
    for axis in range(array.ndim):
        present = np.flatnonzero(array.any(axis=tuple(a for a in range(array.ndim) if a != axis)))
        if len(present) == 0:
            return None
        slices.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(slices)


def components(mask: sitk.Image | np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components (6-neighbourhood, the phantom's and ITK's default).

    Returns a (K, J, I) int32 array (0 background, 1..n components) and n. Labelling
    runs on the mask's bounding box only: masks are small, images are not.
    """
    array = sitk.GetArrayViewFromImage(mask) if isinstance(mask, sitk.Image) else mask
    labelled = np.zeros(array.shape, np.int32)
    box = bounding_slices(array)
    if box is None:
        return labelled, 0
    crop = sitk.GetImageFromArray((array[box] != 0).astype(np.uint8))
    cc = sitk.ConnectedComponent(crop, False)
    labelled[box] = sitk.GetArrayViewFromImage(cc)
    return labelled, int(labelled[box].max())




def physical_points(mask: sitk.Image) -> np.ndarray:
    """LPS coordinates (N x 3, mm) of the mask's voxel centres."""
    kji = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)
    if len(kji) == 0:
        return np.zeros((0, 3))
    geometry = Geometry.from_image(mask)
    ijk1 = np.c_[kji[:, ::-1].astype(float), np.ones(len(kji))]
    return (geometry.ijk_to_lps() @ ijk1.T).T[:, :3]
