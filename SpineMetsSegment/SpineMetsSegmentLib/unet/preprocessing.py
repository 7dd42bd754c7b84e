"""Bring a case's sequences onto the model's working grid and intensity scale.

Training and inference call the same functions, so a model sees at inference
exactly the preprocessing it was trained with. Every spatial list in a model
card (spacing, patch size) is along image axes (i, j, k) as ITK orders them;
arrays and tensors are channel-first in SimpleITK/numpy memory order
``(C, K, J, I)`` (card ``"tensor_axes": "kji"``), so no volume is ever
transposed and the fastest-varying axis is the long in-plane one, which also
makes MONAI's 3-D convolutions faster than with the thin slice axis last.

The working grid keeps the first input's axes (reordered and flipped to the
model's training orientation when the card gives one, never rotated, so no
oblique interpolation is added), covers the same physical box, and has the
model's spacing. When that grid equals the input grid nothing is resampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.imaging import NORMALISATIONS as NORMALISATIONS  # re-exported: cards name these
from SpineMetsCore.imaging import best_axis_permutation, normalise, resample_to_geometry
from SpineMetsCore.volumes import Geometry, apply_geometry, images_overlap

TENSOR_AXES = "kji"
"""Order of the spatial axes of every array and network tensor (SimpleITK/numpy order)."""

@dataclass
class PreparedCase:
    """Channel-first float32 array on the working grid, and the grids involved."""

    array: np.ndarray
    """(C, K, J, I) float32, normalised."""
    working: Geometry
    reference: sitk.Image
    """The first input image; outputs go back onto its grid."""
    resampled: bool
    """False when the working grid equals the reference grid."""


def check_sequences(images: Mapping[str, Any], sequences: Sequence[str], what: str = "model") -> None:
    """Refuse missing or extra sequences, naming them and what the model expects."""
    missing = [s for s in sequences if s not in images]
    extra = [s for s in images if s not in sequences]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing sequence(s) {missing}")
        if extra:
            parts.append(f"unexpected sequence(s) {extra}")
        raise InputError("input sequences", f"{'; '.join(parts)}: {what} expects exactly {list(sequences)}")


def working_geometry(
    reference: sitk.Image,
    spacing: Sequence[float | None],
    orientation: Sequence[float] | None = None,
) -> Geometry:
    """The model's grid over ``reference``'s physical box (see module docstring)."""
    d_in = np.reshape(reference.GetDirection(), (3, 3))
    s_in = np.asarray(reference.GetSpacing(), dtype=float)
    n_in = np.asarray(reference.GetSize(), dtype=float)
    p = np.eye(3) if orientation is None else best_axis_permutation(d_in, np.reshape(orientation, (3, 3)))
    d_w = d_in @ p
    axis_of = np.abs(p).argmax(axis=0)  # input axis feeding each working axis
    s_w = np.array([s_in[axis_of[a]] if spacing[a] is None else float(spacing[a]) for a in range(3)])
    corners = np.array([[c0, c1, c2] for c0 in (-0.5, n_in[0] - 0.5) for c1 in (-0.5, n_in[1] - 0.5) for c2 in (-0.5, n_in[2] - 0.5)])
    physical = np.asarray(reference.GetOrigin()) + (d_in @ (corners * s_in).T).T
    coords = physical @ d_w  # positions along the working axes
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    size = np.maximum(1, np.round((hi - lo) / s_w - 1e-6)).astype(int)
    centre = (lo + hi) / 2.0
    origin = d_w @ (centre - (size - 1) / 2.0 * s_w)
    geometry = Geometry(
        tuple(int(v) for v in size),
        tuple(float(v) for v in s_w),
        tuple(float(v) for v in origin),
        tuple(float(v) for v in d_w.ravel()),
    )
    ref_geometry = Geometry.from_image(reference)
    return ref_geometry if ref_geometry.same_grid(geometry, tol=1e-3) else geometry


def prepare_images(
    images: Mapping[str, sitk.Image],
    sequences: Sequence[str],
    spacing: Sequence[float | None],
    normalisation: Mapping[str, Any],
    orientation: Sequence[float] | None = None,
) -> PreparedCase:
    """Resample every sequence onto the working grid of the first one and normalise it."""
    check_sequences(images, sequences)
    for seq in sequences:
        img = images[seq]
        if not isinstance(img, sitk.Image):
            raise InputError(f"sequence '{seq}'", f"must be a SimpleITK image, got {type(img).__name__}")
        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"sequence '{seq}'", f"must be a 3-D scalar image, got {img.GetDimension()}-D with {img.GetNumberOfComponentsPerPixel()} component(s)")
    reference = images[sequences[0]]
    geometry = working_geometry(reference, spacing, orientation)
    resampled = not Geometry.from_image(reference).same_grid(geometry, tol=1e-3)
    buffer = np.empty((len(sequences), *reversed(geometry.size)), dtype=np.float32)
    for c, seq in enumerate(sequences):
        img = images[seq]
        if not Geometry.from_image(img).same_grid(geometry, tol=1e-3):
            if seq != sequences[0] and not images_overlap(img, reference):
                raise InputError(f"sequence '{seq}'", f"does not overlap sequence '{sequences[0]}' in physical space")
            img = resample_to_geometry(sitk.Cast(img, sitk.sitkFloat32), geometry)
        normalise(sitk.GetArrayViewFromImage(img), normalisation, out=buffer[c])
    return PreparedCase(buffer, geometry, reference, resampled)


def prepare_label(mask: sitk.Image, geometry: Geometry, what: str = "mask") -> np.ndarray:
    """(K, J, I) label array of ``mask`` on the working grid (nearest neighbour, dtype kept)."""
    if mask.GetDimension() != 3:
        raise InputError(what, f"must be a 3-D labelmap, got {mask.GetDimension()}-D")
    if not Geometry.from_image(mask).same_grid(geometry, tol=1e-3):
        mask = sitk.Resample(
            mask, geometry.size, sitk.Transform(), sitk.sitkNearestNeighbor, geometry.origin, geometry.spacing,
            geometry.direction, 0, mask.GetPixelID(),
        )
    return sitk.GetArrayFromImage(mask)


def geometry_image(array_kji: np.ndarray, geometry: Geometry) -> sitk.Image:
    """SimpleITK image of a (K, J, I) array on ``geometry``."""
    image = sitk.GetImageFromArray(array_kji)
    apply_geometry(image, geometry)
    return image
