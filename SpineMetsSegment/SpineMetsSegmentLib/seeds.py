"""Seeds and regions of interest: RAS points, markups nodes and boxes -> voxel indices.

Users give positions in Slicer's RAS world coordinates (typed, from a markups
fiducial node, or the corners of an ROI); SimpleITK images live in LPS. Every
conversion here goes through physical positions, so oblique and left-handed
volumes and volumes under a linear transform are handled the same way.
A markups ROI may be rotated: it is kept as an oriented box (centre, axes,
half-sizes) and rasterised per voxel, never approximated by its bounding box.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.volumes import RAS_LPS_FLIP, ras_to_lps

RAS_TO_LPS = RAS_LPS_FLIP  # kept for callers; the flip itself lives in SpineMetsCore.volumes

Point = tuple[float, float, float]


def parse_float_list(text: str, count: int, what: str) -> tuple[float, ...]:
    """``"-12.5,3,40"`` -> floats; the error names the argument and shows the value."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    if len(parts) != count:
        raise InputError(what, f"needs {count} comma-separated numbers, got {text!r}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError as exc:
        raise InputError(what, f"needs {count} comma-separated numbers, got {text!r}") from exc
    if not all(np.isfinite(values)):
        raise InputError(what, f"has a non-finite value in {text!r}")
    return values




def seeds_from_markups(node: Any) -> list[Point]:
    """World RAS positions of the control points of a markups (fiducial) node."""
    if node is None or not node.IsA("vtkMRMLMarkupsNode"):
        raise InputError("seeds", "need a markups fiducial node or a list of RAS points")
    points = []
    for i in range(node.GetNumberOfControlPoints()):
        out = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(i, out)
        points.append((float(out[0]), float(out[1]), float(out[2])))
    if not points:
        raise InputError(f"markups node '{node.GetName()}'", "has no control points to use as seeds")
    return points


def as_ras_points(seeds: Any, what: str = "seeds") -> list[Point]:
    """Seeds given as a markups node, one RAS point or a list of RAS points."""
    if seeds is None:
        raise InputError(what, "no seed point given")
    if hasattr(seeds, "IsA"):
        return seeds_from_markups(seeds)
    array = np.asarray(seeds, dtype=float)
    if array.ndim == 1:
        array = array[np.newaxis]
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise InputError(what, f"need RAS points (x, y, z), got {seeds!r}")
    if not np.all(np.isfinite(array)):
        raise InputError(what, f"contain non-finite coordinates: {seeds!r}")
    return [tuple(float(v) for v in p) for p in array]  # type: ignore[misc]


@dataclass(frozen=True)
class RoiBox:
    """An oriented box in RAS: centre, unit axes (columns of a 3x3), half-sizes (mm)."""

    centre: tuple[float, float, float]
    axes: tuple[float, ...]  # 3x3 row-major, columns are the box axes in RAS
    half_size: tuple[float, float, float]
    name: str = "ROI"

    @classmethod
    def from_corners(cls, corners: Sequence[float], name: str = "ROI box") -> RoiBox:
        """Axis-aligned box from ``x0,y0,z0,x1,y1,z1`` (RAS; corner order free)."""
        values = np.asarray(corners, dtype=float)
        if values.shape != (6,) or not np.all(np.isfinite(values)):
            raise InputError(name, f"needs six numbers x0,y0,z0,x1,y1,z1, got {corners!r}")
        lo, hi = np.minimum(values[:3], values[3:]), np.maximum(values[:3], values[3:])
        if np.any(hi - lo <= 0):
            raise InputError(name, f"is empty (zero size along an axis): {tuple(values)}")
        return cls(tuple((lo + hi) / 2), tuple(np.eye(3).ravel()), tuple((hi - lo) / 2), name)

    @classmethod
    def from_markups_roi(cls, node: Any) -> RoiBox:
        """Oriented box of a markups ROI node in world coordinates (linear transforms applied)."""
        name = f"ROI node '{node.GetName()}'"
        if not node.IsA("vtkMRMLMarkupsROINode"):
            raise InputError(name, "is not a markups ROI node")
        size = np.array(node.GetSize(), dtype=float)
        if np.any(size <= 0) or not np.all(np.isfinite(size)):
            raise InputError(name, f"is empty (size {tuple(size)} mm)")
        object_to_world = node.GetObjectToWorldMatrix()
        m = np.array([[object_to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
        linear = m[:3, :3]
        scale = np.linalg.norm(linear, axis=0)
        if np.any(scale <= 0):
            raise InputError(name, "has a degenerate orientation")
        centre = m[:3, 3]
        return cls(tuple(centre), tuple((linear / scale).ravel()), tuple(size * scale / 2), name)

    @classmethod
    def around(cls, points_ras: Iterable[Sequence[float]], margin_mm: float, name: str = "default ROI") -> RoiBox:
        """Axis-aligned box around points with a margin on each side."""
        pts = np.asarray(list(points_ras), dtype=float)
        lo, hi = pts.min(axis=0) - margin_mm, pts.max(axis=0) + margin_mm
        return cls.from_corners((*lo, *hi), name)

    @property
    def axes_matrix(self) -> np.ndarray:
        return np.reshape(self.axes, (3, 3))

    def contains(self, ras: Sequence[float], tol: float = 1e-6) -> bool:
        local = self.axes_matrix.T @ (np.asarray(ras, dtype=float) - np.asarray(self.centre))
        return bool(np.all(np.abs(local) <= np.asarray(self.half_size) + tol))

    def corners_ras(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
        return np.asarray(self.centre) + (signs * np.asarray(self.half_size)) @ self.axes_matrix.T

    def index_bounds(self, image: sitk.Image, pad: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
        """Inclusive index box (i, j, k) of the image covering the ROI (clipped); None if disjoint."""
        idx = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(ras_to_lps(c))) for c in self.corners_ras()])
        lo = np.floor(idx.min(axis=0)).astype(int) - pad
        hi = np.ceil(idx.max(axis=0)).astype(int) + pad
        size = np.array(image.GetSize())
        lo, hi = np.maximum(lo, 0), np.minimum(hi, size - 1)
        if np.any(hi < lo):
            return None
        return lo, hi

    def mask_like(self, image: sitk.Image) -> np.ndarray:
        """Boolean (K, J, I) array: voxel centres of ``image`` inside the box."""
        size = image.GetSize()
        direction = np.reshape(image.GetDirection(), (3, 3))
        # Box coordinates are affine in (i, j, k): sum three broadcast 1-D terms.
        steps = (direction * np.asarray(image.GetSpacing())).T * RAS_TO_LPS @ self.axes_matrix  # row n: step of index n
        origin = (np.asarray(image.GetOrigin()) * RAS_TO_LPS - np.asarray(self.centre)) @ self.axes_matrix
        local = (
            origin
            + np.arange(size[2])[:, None, None, None] * steps[2]
            + np.arange(size[1])[None, :, None, None] * steps[1]
            + np.arange(size[0])[None, None, :, None] * steps[0]
        )
        return np.all(np.abs(local) <= np.asarray(self.half_size) + 1e-6, axis=-1)


def as_roi(roi: Any) -> RoiBox | None:
    """ROI given as None, a RoiBox, a markups ROI node or six RAS corner values."""
    if roi is None or isinstance(roi, RoiBox):
        return roi
    if hasattr(roi, "IsA"):
        return RoiBox.from_markups_roi(roi)
    return RoiBox.from_corners(roi)


def ras_to_index(image: sitk.Image, ras: Sequence[float], what: str) -> tuple[int, int, int]:
    """Nearest voxel index of a RAS point; InputError naming ``what`` when outside the image."""
    cont = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(ras_to_lps(ras))))
    index = np.round(cont).astype(int)
    size = np.array(image.GetSize())
    if np.any(index < 0) or np.any(index >= size):
        raise InputError(what, f"RAS {tuple(round(float(v), 2) for v in ras[:3])} lies outside the image")
    return tuple(int(v) for v in index)  # type: ignore[return-value]
