"""Image grid of the phantom and the small signed-distance toolkit the shapes use.

Geometry convention (ITK/LPS physical space, as SimpleITK and Slicer's IO expect):

* image axis 0 runs anterior -> posterior  (direction column ( 0, 1, 0) in LPS),
* image axis 1 runs superior -> inferior   (direction column ( 0, 0,-1)),
* image axis 2 runs left -> right          (direction column (-1, 0, 0)),

which is the usual sagittal DICOM acquisition (row = A->P, column = S->I, slices
stacked along the normal row x column = patient right). The direction matrix is a
proper rotation (determinant +1). Slices are thick along left-right (default 3.5 mm);
in-plane spacing defaults to 1.15 mm. numpy arrays from SimpleITK are indexed
``[lr, si, ap]``; anatomy is modelled in "image millimetres" ``u`` (A->P), ``v``
(S->I), ``w`` (L->R) measured from the outer corner of the field of view (voxel ``i``
has its centre at ``(i + 0.5) * spacing``), then mapped to LPS. So the same case
sampled on a finer grid with the same field of view sits at the same place.

Partial volume: every structure is a signed distance field (negative inside). A
voxel's tissue fraction is the first-order box-filter estimate
``clip(0.5 - d / sum_i |dd/dx_i| * spacing_i, 0, 1)`` which accounts for the
anisotropic voxel (a boundary crossing a 3.5 mm slice obliquely is blurred over the
slice, one crossing in-plane over ~1 mm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.volumes import voxel_volume_ml

SAGITTAL_DIRECTION: tuple[float, ...] = (
    0.0, 0.0, -1.0,
    1.0, 0.0, 0.0,
    0.0, -1.0, 0.0,
)
"""Row-major 3x3 direction (SimpleITK order): columns are the image axes in LPS."""
AXIS_NAMES: tuple[str, str, str] = ("anterior->posterior", "superior->inferior", "left->right")


@dataclass(frozen=True)
class Grid:
    """Voxel grid shared by every image of a case."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = SAGITTAL_DIRECTION

    @classmethod
    def centred(cls, size: Sequence[int], spacing: Sequence[float], centre_lps: Sequence[float]) -> Grid:
        """Grid whose field-of-view centre sits at ``centre_lps`` (scanner coordinates)."""
        size_t = tuple(int(n) for n in size)
        spacing_t = tuple(float(s) for s in spacing)
        half = np.array([(n - 1) * s / 2.0 for n, s in zip(size_t, spacing_t, strict=False)])
        origin = np.asarray(centre_lps, dtype=float) - _matrix(SAGITTAL_DIRECTION) @ half
        return cls(size_t, spacing_t, tuple(float(round(o, 6)) for o in origin))  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        """numpy array shape ``(lr, si, ap)``."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def array_spacing(self) -> tuple[float, float, float]:
        """Spacing in numpy axis order ``(lr, si, ap)``."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        return tuple(n * s for n, s in zip(self.size, self.spacing, strict=False))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        return voxel_volume_ml(self.spacing)

    def axes_mm(self, start: Sequence[int] = (0, 0, 0), stop: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable image-mm voxel centres ``u (1,1,nx)``, ``v (1,ny,1)``, ``w (nz,1,1)``.

        ``start``/``stop`` are image indices ``(i, j, k)`` of a sub-box (stop exclusive).
        """
        stop = self.size if stop is None else stop
        u, v, w = (self.centres_mm(axis, start[axis], stop[axis]).astype(np.float32) for axis in range(3))
        return u[None, None, :], v[None, :, None], w[:, None, None]

    def centres_mm(self, axis: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Image-mm positions of the voxel centres ``start..stop`` along one image axis."""
        stop = self.size[axis] if stop is None else stop
        return (np.arange(start, stop, dtype=np.float64) + 0.5) * self.spacing[axis]

    def mm_to_lps(self, uvw: Sequence[float]) -> tuple[float, float, float]:
        return self.index_to_lps(np.asarray(uvw, dtype=float) / np.asarray(self.spacing) - 0.5)

    def index_to_lps(self, ijk: Sequence[float]) -> tuple[float, float, float]:
        offset = np.asarray(ijk, dtype=float) * np.asarray(self.spacing)
        p = np.asarray(self.origin) + _matrix(self.direction) @ offset
        return tuple(float(x) for x in p)  # type: ignore[return-value]

    def box_to_lps(self, ijk_min: Sequence[int], ijk_max: Sequence[int]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """LPS min/max corners of the voxels ``ijk_min..ijk_max`` (inclusive), voxel edges included."""
        lo = np.asarray(ijk_min, dtype=float) - 0.5
        hi = np.asarray(ijk_max, dtype=float) + 0.5
        corners = np.array([self.index_to_lps((a, b, c)) for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        return tuple(float(x) for x in corners.min(0)), tuple(float(x) for x in corners.max(0))

    def image(self, array: np.ndarray) -> sitk.Image:
        """SimpleITK image of a ``(lr, si, ap)`` array on this grid."""
        if array.shape != self.shape:
            raise ValueError(f"array shape {array.shape} does not match grid shape {self.shape}")
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img


def _matrix(direction: Sequence[float]) -> np.ndarray:
    return np.asarray(direction, dtype=float).reshape(3, 3)


# --------------------------------------------------------------------------------------
# Signed distance helpers (all broadcast; negative inside)
# --------------------------------------------------------------------------------------
def superellipse_sdf(x: np.ndarray, y: np.ndarray, rx: float | np.ndarray, ry: float | np.ndarray, p: float = 2.0) -> np.ndarray:
    """Approximate distance to a superellipse ``|x/rx|^p + |y/ry|^p = 1`` (mm near the edge).

    Radii may be arrays (e.g. one per image row) that broadcast against ``x`` and ``y``.
    """
    q = (np.abs(x / rx) ** p + np.abs(y / ry) ** p) ** (1.0 / p)
    return ((q - 1.0) * np.minimum(rx, ry)).astype(np.float32)


def ellipsoid_sdf(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, rx: float, ry: float, rz: float) -> np.ndarray:
    """First-order distance to an ellipsoid surface: ``(q - 1) q / |grad q^2/2|``."""
    qx, qy, qz = dx / rx, dy / ry, dz / rz
    q = np.sqrt(qx * qx + qy * qy + qz * qz)
    g = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2 + (qz / rz) ** 2)
    return (q - 1.0) * q / np.maximum(g, 1e-6)


def capsule_sdf(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, seg: Sequence[float], radius: float) -> np.ndarray:
    """Exact distance to a capsule from the origin to ``seg`` (same frame as dx, dy, dz)."""
    sx, sy, sz = (float(c) for c in seg)
    length2 = max(sx * sx + sy * sy + sz * sz, 1e-9)
    t = np.clip((dx * sx + dy * sy + dz * sz) / length2, 0.0, 1.0)
    ex, ey, ez = dx - t * sx, dy - t * sy, dz - t * sz
    return np.sqrt(ex * ex + ey * ey + ez * ez) - np.float32(radius)


def box_sdf(*pairs: tuple[np.ndarray, float]) -> np.ndarray:
    """Chebyshev-style distance to an axis-aligned box given ``(offset, half_width)`` pairs."""
    out = None
    for off, half in pairs:
        d = np.abs(off) - np.float32(half)
        out = d if out is None else np.maximum(out, d)
    assert out is not None
    return out


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth union (radius ``k`` mm): blends lobules without a crease."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def soft_fractions(
    d: np.ndarray,
    array_spacing: Sequence[float],
    offsets: Sequence[float] = (0.0,),
    blur: float = 0.0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Partial-volume fractions of the regions ``d < -offset`` and the distance in mm.

    ``blur`` (mm) widens the transition beyond the voxel size (infiltrative margins).
    ``d`` may have length-1 axes (a shape constant along them); the results keep its
    shape and broadcast. Returns one float32 fraction array per offset and ``d``
    normalised by its gradient.
    """
    d = np.asarray(d, dtype=np.float32)
    gsq = np.zeros_like(d)
    width = np.zeros_like(d)
    for axis, step in enumerate(array_spacing):
        if d.shape[axis] > 1:
            g = np.gradient(d, float(step), axis=axis)
            width += np.abs(g) * np.float32(step)
            g *= g
            gsq += g
    gnorm = np.sqrt(gsq, out=gsq)
    gnorm += np.float32(1e-6)
    dist = d / gnorm
    denom = np.divide(width, gnorm, out=width)
    denom += np.float32(blur + 1e-3)
    fractions = []
    for o in offsets:
        f = dist + np.float32(o)
        f /= denom
        np.subtract(np.float32(0.5), f, out=f)
        fractions.append(np.clip(f, 0.0, 1.0, out=f))
    return fractions, dist
