"""Scalar volume node <-> SimpleITK image / numpy, preserving physical geometry.

MRML stores geometry in RAS with an IJK-to-RAS matrix; ITK stores it in LPS
with origin, spacing and a direction cosine matrix. The conversion is
``RAS = diag(-1, -1, 1) @ LPS``. Arrays are always in numpy's (K, J, I) order
as ``slicer.util.arrayFromVolume`` and ``sitk.GetArrayFromImage`` give them.
Directions may be oblique and left-handed: a node read from a left-handed
NIfTI comes back with K flipped by MRML, so compare physical positions, never
raw arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import GeometryError, InputError
from .runtime import get_scene

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
RAS_LPS_FLIP = np.array([-1.0, -1.0, 1.0])
"""Per-axis sign change between RAS and LPS points (the same both ways); use ras_to_lps/lps_to_ras."""


@dataclass(frozen=True)
class Geometry:
    """Image grid in LPS (ITK convention): size (I, J, K), spacing, origin, 3x3 direction."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def from_image(cls, image: sitk.Image) -> Geometry:
        return cls(
            tuple(int(v) for v in image.GetSize()),
            tuple(float(v) for v in image.GetSpacing()),
            tuple(float(v) for v in image.GetOrigin()),
            tuple(float(v) for v in image.GetDirection()),
        )

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = np.reshape(self.direction, (3, 3)) @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) to RAS millimetres (Slicer's convention)."""
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        return flip @ self.ijk_to_lps()

    def same_grid(self, other: Geometry, tol: float = 1e-4) -> bool:
        """True when both grids put every voxel at the same physical position."""
        return self.size == other.size and np.allclose(self.ijk_to_lps(), other.ijk_to_lps(), atol=tol)


def _ras_matrix_of_node(node: Any) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise InputError(
                f"volume '{node.GetName()}'",
                "is under a non-linear transform; harden the transform before using it",
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        world = np.array([[to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
        ijk_to_ras = world @ ijk_to_ras
    return ijk_to_ras


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray, size: tuple[int, int, int]) -> Geometry:
    """Split an IJK-to-RAS matrix into ITK's origin, spacing and direction (LPS)."""
    lin = LPS_TO_RAS @ ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0):
        raise GeometryError("IJK-to-RAS matrix", "has a zero-length axis")
    direction = lin / spacing
    origin = LPS_TO_RAS @ ijk_to_ras[:3, 3]
    return Geometry(
        tuple(int(s) for s in size),
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in origin),
        tuple(float(d) for d in direction.ravel()),
    )


def node_geometry(node: Any) -> Geometry:
    """Geometry (LPS) of a volume node, including any linear parent transform."""
    image_data = node.GetImageData()
    if image_data is None:
        raise InputError(f"volume '{node.GetName()}'", "has no image data")
    dims = image_data.GetDimensions()
    return geometry_from_ijk_to_ras(_ras_matrix_of_node(node), dims)


def volume_to_array(node: Any, copy: bool = True) -> np.ndarray:
    """Copy of the voxel array in (K, J, I) order (``copy=False``: a view of the node's memory)."""
    import slicer

    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        name = node.GetName() if node is not None else "None"
        raise InputError(f"node '{name}'", "is not a scalar volume node")
    if node.GetImageData() is None:
        raise InputError(f"volume '{node.GetName()}'", "has no image data")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise InputError(f"volume '{node.GetName()}'", "is not a single-component scalar volume")
    view = slicer.util.arrayFromVolume(node)
    return np.array(view, copy=True) if copy else view


def volume_to_sitk(node: Any) -> sitk.Image:
    """SimpleITK image with the node's voxels at the same physical positions (one copy of the voxels)."""
    import slicer

    volume_to_array(node, copy=False)  # checks the node
    geometry = node_geometry(node)
    image = sitk.GetImageFromArray(slicer.util.arrayFromVolume(node))  # GetImageFromArray copies
    apply_geometry(image, geometry)
    return image


def index_proxy(geometry: Geometry) -> sitk.Image:
    """A one-voxel image with ``geometry``'s spacing, origin and direction.

    ITK maps indices and points with the same matrices whatever an image's size,
    so this answers index questions exactly as a full image on ``geometry`` would,
    without allocating its voxels.
    """
    proxy = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    apply_geometry(proxy, geometry)
    return proxy


def index_box(geometry: Geometry, points_lps: Any, pad: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive (i, j, k) index box of ``geometry`` covering LPS points, ``pad`` voxels wider, clipped; None if disjoint.

    Indices come from ITK's own point-to-index mapping, so the box is the one an
    image on this grid would give (e.g. for a RegionOfInterest).
    """
    proxy = index_proxy(geometry)
    points = np.atleast_2d(np.asarray(points_lps, dtype=float))
    idx = np.array([proxy.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in p)) for p in points])
    lo = np.floor(idx.min(axis=0)).astype(int) - pad
    hi = np.ceil(idx.max(axis=0)).astype(int) + pad
    lo, hi = np.maximum(lo, 0), np.minimum(hi, np.asarray(geometry.size) - 1)
    if np.any(hi < lo):
        return None
    return lo, hi


def crop_geometry(geometry: Geometry, lo: Any, hi: Any) -> Geometry:
    """The grid of voxels ``lo..hi`` (inclusive i, j, k): origin placed as SimpleITK's RegionOfInterest places it."""
    origin = index_proxy(geometry).TransformIndexToPhysicalPoint([int(v) for v in lo])
    size = tuple(int(b) - int(a) + 1 for a, b in zip(lo, hi, strict=True))
    return Geometry(size, geometry.spacing, tuple(float(v) for v in origin), geometry.direction)  # type: ignore[arg-type]


def volume_crop_to_sitk(node: Any, lo: Any, hi: Any, geometry: Geometry | None = None) -> sitk.Image:
    """SimpleITK image of the voxels ``lo..hi`` (inclusive i, j, k) of a volume node; only the crop is copied.

    The same voxels at the same positions as ``RegionOfInterest(volume_to_sitk(node), ...)``
    without the full-volume copy: a click's ROI is a few percent of a 512 x 512 x 40 scan.
    ``geometry``: the node's :func:`node_geometry` when the caller has it already.
    """
    view = volume_to_array(node, copy=False)  # checks the node
    geometry = geometry or node_geometry(node)
    lo = [int(v) for v in lo]
    hi = [int(v) for v in hi]
    if any(a < 0 or b >= n or b < a for a, b, n in zip(lo, hi, geometry.size, strict=True)):
        raise InputError(f"volume '{node.GetName()}'", f"has no voxel box {tuple(lo)}..{tuple(hi)} (size {geometry.size})")
    image = sitk.GetImageFromArray(view[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1])  # copies the crop only
    apply_geometry(image, crop_geometry(geometry, lo, hi))
    return image


def apply_geometry(image: sitk.Image, geometry: Geometry) -> None:
    """Set origin, spacing and direction of ``image`` (in place)."""
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)


def _check_3d_scalar(image: sitk.Image, what: str) -> None:
    if image.GetDimension() != 3:
        raise InputError(what, f"is {image.GetDimension()}-D; a 3-D image is required")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(what, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar image is required")


def set_node_geometry(node: Any, geometry: Geometry) -> None:
    """Write an LPS geometry into a volume node's RAS IJK-to-RAS matrix."""
    import vtk

    ras = geometry.ijk_to_ras()
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(ras[r, c]))
    node.SetIJKToRASMatrix(m)


def sitk_to_volume(
    image: sitk.Image,
    name: str = "Volume",
    node: Any | None = None,
    labelmap: bool = False,
    scene: Any | None = None,
    display: bool = True,
) -> Any:
    """Create (or update) a scalar or labelmap volume node from a SimpleITK image (``display``: with display nodes)."""
    import slicer

    _check_3d_scalar(image, f"image for volume '{name}'")
    scene = scene or get_scene()
    if node is None:
        class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(class_name, name)
        if display:
            node.CreateDefaultDisplayNodes()
    array = sitk.GetArrayFromImage(image)
    slicer.util.updateVolumeFromArray(node, array)
    set_node_geometry(node, Geometry.from_image(image))
    return node


def array_to_volume(
    array: np.ndarray,
    geometry: Geometry,
    name: str = "Volume",
    node: Any | None = None,
    labelmap: bool = False,
) -> Any:
    """Volume node from a (K, J, I) array and an LPS geometry."""
    if array.ndim != 3:
        raise InputError(f"array for volume '{name}'", f"is {array.ndim}-D; a 3-D array is required")
    expected = tuple(reversed(geometry.size))
    if array.shape != expected:
        raise GeometryError(f"array for volume '{name}'", f"has shape {array.shape}, geometry expects {expected}")
    image = sitk.GetImageFromArray(array)
    apply_geometry(image, geometry)
    return sitk_to_volume(image, name=name, node=node, labelmap=labelmap)


def ras_to_ijk(node_or_geometry: Any, ras: tuple[float, float, float]) -> np.ndarray:
    """Continuous (i, j, k) index of a RAS point."""
    geometry = node_or_geometry if isinstance(node_or_geometry, Geometry) else node_geometry(node_or_geometry)
    inv = np.linalg.inv(geometry.ijk_to_ras())
    return (inv @ np.array([*ras, 1.0]))[:3]


def ras_to_lps(points: Any) -> np.ndarray:
    """RAS (Slicer's world) -> LPS (ITK's physical space): x and y change sign. Any (..., 3) array."""
    return np.asarray(points, dtype=float)[..., :3] * RAS_LPS_FLIP


def lps_to_ras(points: Any) -> np.ndarray:
    """LPS (ITK's physical space) -> RAS (Slicer's world): x and y change sign. Any (..., 3) array."""
    return np.asarray(points, dtype=float)[..., :3] * RAS_LPS_FLIP


def voxel_volume_ml(image_or_spacing: sitk.Image | Any) -> float:
    """Volume of one voxel in millilitres (spacing in mm), from an image or a spacing triple."""
    spacing = image_or_spacing.GetSpacing() if isinstance(image_or_spacing, sitk.Image) else image_or_spacing
    return float(np.prod(np.asarray(spacing, dtype=float))) / 1000.0


def resample_to(image: sitk.Image, reference: sitk.Image, labelmap: bool = False, name: str = "image") -> sitk.Image:
    """``image`` on ``reference``'s grid: unchanged when already there, else :func:`resample_like`."""
    if Geometry.from_image(image).same_grid(Geometry.from_image(reference)):
        return image
    return resample_like(image, reference, labelmap=labelmap, name=name)


def resample_like(image: sitk.Image, reference: sitk.Image, labelmap: bool = False, name: str = "image") -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid by physical position.

    Raises GeometryError when the two images do not overlap at all, because a
    silent all-zero resample is the classic symptom of a wrong coordinate system.
    """
    if not images_overlap(image, reference):
        raise GeometryError(name, "does not overlap the reference image in physical space")
    interpolator = sitk.sitkNearestNeighbor if labelmap else sitk.sitkLinear
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, image.GetPixelID())


def physical_bounds(image: sitk.Image | Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS bounding box of the voxel centres (of an image or a bare grid)."""
    geometry = image if isinstance(image, Geometry) else Geometry.from_image(image)
    size = geometry.size
    corners = np.array([[i, j, k, 1.0] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    pts = (geometry.ijk_to_lps() @ corners.T).T[:, :3]
    return pts.min(axis=0), pts.max(axis=0)


def images_overlap(a: sitk.Image | Geometry, b: sitk.Image | Geometry) -> bool:
    """True when the physical bounding boxes of two images (or grids) intersect.

    Grids are enough: a volume node's ``node_geometry`` is checked without copying its voxels.
    """
    amin, amax = physical_bounds(a)
    bmin, bmax = physical_bounds(b)
    pad_a = max(a.spacing if isinstance(a, Geometry) else a.GetSpacing()) / 2
    pad_b = max(b.spacing if isinstance(b, Geometry) else b.GetSpacing()) / 2
    return bool(np.all(amin - pad_a <= bmax + pad_b) and np.all(bmin - pad_b <= amax + pad_a))
