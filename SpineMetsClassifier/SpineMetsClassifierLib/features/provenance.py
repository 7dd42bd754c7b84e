"""Hashes and geometry records that let any feature row be reproduced.

Image hashes are computed from the voxels and the grid, not from the file bytes,
so an image gives the same hash whether it was read from NIfTI, NRRD or taken
from a Slicer volume node: the hash says "same data", whatever the container.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.volumes import Geometry

GEOMETRY_DECIMALS = 5
"""Rounding of origin/spacing/direction in hashes (MRML's RAS round trip adds ~1e-12 mm)."""


def geometry_record(image: sitk.Image) -> dict[str, list[float] | list[int]]:
    """Size, spacing, origin and direction (LPS), rounded so equal grids compare equal."""
    geometry = Geometry.from_image(image)

    def rounded(values: tuple[float, ...]) -> list[float]:
        return [round(float(v), GEOMETRY_DECIMALS) + 0.0 for v in values]

    return {
        "size": list(geometry.size),
        "spacing": rounded(geometry.spacing),
        "origin": rounded(geometry.origin),
        "direction": rounded(geometry.direction),
    }


def geometry_json(image: sitk.Image) -> str:
    """Compact JSON of :func:`geometry_record` (one table cell)."""
    return json.dumps(geometry_record(image), separators=(",", ":"))


def image_sha256(image: sitk.Image) -> str:
    """SHA-256 of the voxel type, values and grid of an image."""
    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image))
    digest = hashlib.sha256()
    digest.update(geometry_json(image).encode())
    digest.update(str(array.dtype.str).encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()
