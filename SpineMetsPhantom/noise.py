"""Random texture, coil bias field and Rician magnitude noise.

Textures are drawn on a coarse grid that depends only on the field of view and the
correlation length, then interpolated to the voxels. So the same seed gives the same
marrow texture and lesion shape at 96x128x14 and at 512x512x40: a benchmark at high
resolution sees the same case, only sampled more finely.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .geometry import Grid

_PAD = 3


class SmoothField:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``corr_mm``."""

    def __init__(
        self,
        rng: np.random.Generator,
        hi_mm: Sequence[float],
        corr_mm: float,
        lo_mm: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> None:
        """Cover the image-mm box ``lo_mm..hi_mm``; ``corr_mm`` is twice the kernel sigma."""
        self.step = max(corr_mm / 2.5, 0.8)
        self.lo = tuple(float(x) for x in lo_mm)
        n = [int(np.ceil((h - lo) / self.step)) + 2 * _PAD + 1 for lo, h in zip(self.lo, hi_mm, strict=False)]
        white = rng.standard_normal((n[2], n[1], n[0]), dtype=np.float32)
        field = ndimage.gaussian_filter(white, sigma=corr_mm / self.step / 2.0, mode="wrap")
        field -= field.mean()
        field /= max(float(field.std()), 1e-6)
        self.data = field.astype(np.float32)

    def sample(self, grid: Grid, start: Sequence[int] = (0, 0, 0), stop: Sequence[int] | None = None) -> np.ndarray:
        """Field at the voxel centres of ``grid`` (or of the sub-box start..stop), shape (lr, si, ap)."""
        stop = grid.size if stop is None else stop
        out = self.data
        # interpolate axis by axis: ap (array axis 2), si (1), lr (0)
        for array_axis, grid_axis in ((2, 0), (1, 1), (0, 2)):
            mm = grid.centres_mm(grid_axis, start[grid_axis], stop[grid_axis])
            pos = (mm - self.lo[grid_axis]) / self.step + _PAD
            i0 = np.clip(np.floor(pos).astype(np.int64), 0, out.shape[array_axis] - 2)
            t = (pos - i0).astype(np.float32)
            shape = [1, 1, 1]
            shape[array_axis] = len(t)
            t = t.reshape(shape)
            out = np.take(out, i0, axis=array_axis) * (1.0 - t) + np.take(out, i0 + 1, axis=array_axis) * t
        return out.astype(np.float32, copy=False)


def bias_field(rng: np.random.Generator, grid: Grid, amplitude: float, coil_gain: float) -> np.ndarray:
    """Smooth multiplicative receive-coil bias: low-order polynomial in log space.

    ``coil_gain`` adds the spine-array profile (posterior tissue brighter); ``amplitude``
    is the standard deviation of the random polynomial coefficients.
    """
    u, v, w = grid.axes_mm()
    fov = grid.fov_mm
    xu = (2.0 * u / fov[0] - 1.0).astype(np.float32)
    xv = (2.0 * v / fov[1] - 1.0).astype(np.float32)
    xw = (2.0 * w / fov[2] - 1.0).astype(np.float32)
    c = rng.normal(0.0, amplitude, size=7).astype(np.float32)
    log_b = (
        c[0] * xu + c[1] * xv + c[2] * xw + c[3] * xu * xu + c[4] * xv * xv + c[5] * xu * xv + 0.5 * c[6] * xw * xw
        + np.float32(coil_gain) * xu
    )
    return np.exp(log_b).astype(np.float32)


def rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise (Rician at low SNR)."""
    s = np.float32(sigma)
    real = signal + s * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = s * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag).astype(np.float32)
