"""Grid resampling and robust intensity normalisation shared by the networks.

The U-Net (Segment Lib) and the deep classifiers (Classifier Lib) must feed
their networks exactly the same kind of input, and neither Lib may import the
other, so the generic steps live here: resample an image onto a target grid
(with a Gaussian anti-alias pre-filter along axes that get coarser) and
normalise one channel as a model card's ``normalisation`` entry says.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .volumes import Geometry

NORMALISATIONS: dict[str, str] = {
    "zscore": "per channel (x - mean) / std over the whole working grid, clipped to +-clip",
    "zscore_nonzero": "as zscore but statistics over voxels > 0; voxels <= 0 stay 0",
    "percentile": "per channel (x - p_lower) / (p_upper - p_lower), clipped to [0, 1]",
}
"""Normalisation methods a card may name, with what each does."""


def best_axis_permutation(direction_in: np.ndarray, direction_target: np.ndarray) -> np.ndarray:
    """Signed permutation P so that ``direction_in @ P`` is closest to ``direction_target``.

    Reordering and flipping axes this way never rotates an image, so it adds no
    oblique interpolation; it only brings every input to one axis order.
    """
    m = direction_in.T @ direction_target  # m[b, a]: input axis b along target axis a
    best, best_score = None, -np.inf
    for perm in itertools.permutations(range(3)):
        score = sum(abs(m[perm[a], a]) for a in range(3))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    p = np.zeros((3, 3))
    for a, b in enumerate(best):
        p[b, a] = 1.0 if m[b, a] >= 0 else -1.0
    return p


def antialias_sigma(image: sitk.Image, geometry: Geometry) -> list[float]:
    """Physical sigma per *input* axis: half the target spacing where it grows by > 25 %."""
    d_in = np.reshape(image.GetDirection(), (3, 3))
    d_w = np.reshape(geometry.direction, (3, 3))
    # target spacing seen along each input axis (axes are aligned up to a permutation)
    overlap = np.abs(d_in.T @ d_w)
    target = overlap @ np.asarray(geometry.spacing)
    return [0.5 * t if t > 1.25 * s else 0.0 for t, s in zip(target, image.GetSpacing(), strict=False)]


def resample_to_geometry(
    image: sitk.Image,
    geometry: Geometry,
    interpolator: int = sitk.sitkLinear,
    pixel: int = sitk.sitkFloat32,
    antialias: bool = True,
    default: float = 0.0,
) -> sitk.Image:
    """``image`` on ``geometry`` by physical position (outside the input: ``default``).

    With ``antialias`` a Gaussian pre-filter is applied along axes that get
    coarser, so downsampling does not alias noise into the network's input.
    """
    if antialias:
        sigma = antialias_sigma(image, geometry)
        if any(s > 0 for s in sigma):
            image = sitk.SmoothingRecursiveGaussian(image, [max(s, 1e-3) for s in sigma])
    return sitk.Resample(
        image, geometry.size, sitk.Transform(), interpolator, geometry.origin, geometry.spacing, geometry.direction,
        default, pixel,
    )


def normalise(array: np.ndarray, spec: Mapping[str, Any], out: np.ndarray | None = None) -> np.ndarray:
    """Normalise one channel as the card's ``normalisation`` says, into ``out`` (float32).

    Statistics use numpy's pairwise summation (float64 for integer inputs);
    the result is written in place into ``out`` (allocated when None) to spare
    copies of large volumes.
    """
    method = spec.get("method")
    if out is None:
        out = np.empty(array.shape, dtype=np.float32)
    if method in ("zscore", "zscore_nonzero"):
        region = array[array > 0] if method == "zscore_nonzero" else array
        if region.size == 0:
            out[...] = 0.0
            return out
        mean, std = float(region.mean()), float(region.std())
        np.subtract(array, mean, out=out, casting="unsafe")
        out *= np.float32(1.0 / (std if std > 1e-8 else 1.0))
        clip = spec.get("clip")
        if clip:
            np.clip(out, -float(clip), float(clip), out=out)
        if method == "zscore_nonzero":
            out[array <= 0] = 0.0
        return out
    if method == "percentile":
        lo, hi = np.percentile(array, [float(spec.get("lower", 0.5)), float(spec.get("upper", 99.5))])
        np.subtract(array, lo, out=out, casting="unsafe")
        out *= np.float32(1.0 / (hi - lo if hi - lo > 1e-8 else 1.0))
        np.clip(out, 0.0, 1.0, out=out)
        return out
    raise InputError("normalisation", f"unknown method {method!r}; known: {sorted(NORMALISATIONS)}")
