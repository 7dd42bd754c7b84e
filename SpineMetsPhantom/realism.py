"""What makes real spine MRI hard to segment, added to the phantom (version 2).

Phantom version 1 was too easy: a plain ConfidenceConnected or Slicer's Grow-from-seeds
scored Dice ~0.9 from one click on it, 0.3-0.5 on real MRI. It had a weak bias field
(a few per cent over the whole field of view), a box-shaped voxel response, nearly
uniform lesions (texture CV 4-10 %) and lesions whose surroundings never looked like
them on the sequence that showed them best. With :attr:`.config.PhantomConfig.realism`
(the default) each case adds, from its own random stream (so deterministic from the seed):

* **Spine-coil bias field.** The receive array lies behind the patient: sensitivity falls
  with depth, ``exp(-depth / COIL_DEPTH_MM)`` (the anterior vertebral body ~25-30 %
  darker than the posterior wall at 1.5 T), times a smooth random field (correlation
  80 mm, log-amplitude 0.03, 0.04 at 3 T, x centre ``bias_scale``) shared by all
  sequences and a weaker one per sequence (transmit-field differences). Uncorrected
  clinical images look like this; a fixed intensity window does not fit the whole ROI.
* **Slice profile and point-spread function.** A real slice profile has tails into its
  neighbours (Gaussian, sigma 0.5 slice thickness) and k-space filtering blurs in plane
  (sigma 0.7 mm), on top of the box partial volume of :mod:`.geometry`: edges spread
  over 2-3 voxels, small lobules lose contrast.
* **Slice-to-slice gain.** Interleaved 2-D multislice: each slice of each sequence is
  scaled by ``1 + N(0, 0.025)``.
* **Heterogeneous lesions.** Extra cellularity texture (correlation 2.5 mm, CV 9 %
  homogeneous / 20 % heterogeneous lesions); heterogeneous lesions get necrotic/cystic
  (lytic: T2/STIR bright, T1 darker, non-enhancing) or sclerotic (dark) parts covering
  another ~20 % of the lesion, central-leaning; lytic and mixed deposits enhance at their
  rim (T1CE +30 % within ~2 mm of the margin, less in the core).
* **Mottled marrow.** Focal red-marrow islands (~10 % of the marrow, up to 60 % less fat:
  T1-darker, STIR-brighter) as in adults' normal marrow: small look-alikes of deposits.
* **Peritumoral oedema.** Most lytic/mixed deposits (80 %; sclerotic 30 %) are ringed by
  marrow oedema 3-8 mm wide (irregular, confined to the lesion's own vertebral body and
  never labelled lesion): water replaces fat, so it is T1-dark, STIR/T2-bright and
  enhancing, i.e. it resembles the lesion on the sequences where the lesion is most
  conspicuous, as in real metastases. Paraspinal and epidural extensions already put
  lesions against muscle (similar on T1) and CSF (similar on T2/STIR).

The lesion mask is unchanged by all of this (the truth is the shape); only what the
images show of it changes. ``realism=False`` reproduces version 1 bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import Grid
from .noise import SmoothField

COIL_DEPTH_MM: dict[float, float] = {1.5: 150.0, 3.0: 130.0}
"""e-folding depth (mm from the posterior edge of the field of view) of the spine-array sensitivity."""
BIAS_FIELD_CORR_MM = 80.0
BIAS_FIELD_LOG_SD: dict[float, float] = {1.5: 0.03, 3.0: 0.04}
SEQUENCE_BIAS_LOG_SD = 0.03
PSF_SIGMA_MM = 0.7
"""In-plane point-spread function (Gaussian sigma, mm)."""
SLICE_PROFILE_SIGMA = 0.5
"""Through-slice profile tail (Gaussian sigma, in slice thicknesses)."""
SLICE_GAIN_SD = 0.025

LESION_TEXTURE_CORR_MM = 2.5
LESION_EXTRA_CV: dict[str, float] = {"homogeneous": 0.09, "heterogeneous": 0.20}
EXTRA_FOCI_SHARE = 0.20
NECROSIS_FACTORS: dict[str, dict[str, float]] = {
    # signal of realistic necrotic/cystic or sclerotic parts relative to the lesion matrix
    "necrotic": {"T1": 0.75, "T2": 1.6, "STIR": 1.5, "T1CE": 0.3},
    "sclerotic": {"T1": 0.45, "T2": 0.45, "STIR": 0.5, "T1CE": 0.5},
}
RIM_ENHANCEMENT = 0.30
RIM_MM = 2.0

MARROW_ISLAND_CORR_MM = 5.0
MARROW_ISLAND_SHARE = 0.10
MARROW_ISLAND_FAT_LOSS = 0.6
"""Red-marrow islands: ~10 % of the marrow loses up to 60 % of its fat (T1-darker,
STIR-brighter), the mottled normal marrow that mimics small deposits."""

P_OEDEMA: dict[str, float] = {"lytic": 0.8, "mixed": 0.8, "sclerotic": 0.3}
OEDEMA_WIDTH_MM: tuple[float, float] = (3.0, 8.0)
OEDEMA_STRENGTH: tuple[float, float] = (0.5, 0.9)
OEDEMA_SIGNAL: dict[str, float] = {"T1": 0.28, "T2": 0.80, "STIR": 0.95, "T1CE": 0.60}
"""Relative signal of fully oedematous marrow (water instead of fat); the halo mixes
the local marrow towards it by ``strength x halo``."""


def marrow_islands(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Fat-fraction multiplier (0.4..1) with focal red-marrow islands, on the whole grid."""
    field = SmoothField(rng, grid.fov_mm, MARROW_ISLAND_CORR_MM).sample(grid)
    threshold = float(np.quantile(field, 1.0 - MARROW_ISLAND_SHARE))
    island = np.clip((field - threshold) / 0.5 + 0.5, 0.0, 1.0)
    return (1.0 - np.float32(MARROW_ISLAND_FAT_LOSS) * island).astype(np.float32)


def coil_bias(rng: np.random.Generator, grid: Grid, field_strength: float, bias_scale: float) -> np.ndarray:
    """Shared multiplicative bias: spine-array depth fall-off times a smooth random field."""
    u, _, _ = grid.axes_mm()
    depth = np.float32(grid.fov_mm[0]) - u
    log_b = -depth / np.float32(COIL_DEPTH_MM[field_strength])
    field = SmoothField(rng, grid.fov_mm, BIAS_FIELD_CORR_MM).sample(grid)
    log_b = log_b + np.float32(BIAS_FIELD_LOG_SD[field_strength] * bias_scale) * field
    log_b -= np.float32(np.median(log_b))
    return np.exp(log_b).astype(np.float32)


def sequence_bias(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """A weaker per-sequence bias (transmit-field differences between sequences)."""
    field = SmoothField(rng, grid.fov_mm, BIAS_FIELD_CORR_MM).sample(grid)
    return np.exp(np.float32(SEQUENCE_BIAS_LOG_SD) * field).astype(np.float32)


def slice_gains(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Per-slice gain (shape (n_slices, 1, 1), broadcasting over a (lr, si, ap) array)."""
    gains = 1.0 + SLICE_GAIN_SD * rng.standard_normal(grid.shape[0])
    return gains.astype(np.float32)[:, None, None]


def psf_sigma(grid: Grid) -> tuple[float, float, float]:
    """Gaussian sigma (voxels, array axes lr, si, ap) of the slice profile and in-plane PSF."""
    _, si, ap = grid.array_spacing
    return (SLICE_PROFILE_SIGMA, PSF_SIGMA_MM / si, PSF_SIGMA_MM / ap)


def point_spread(img: np.ndarray, grid: Grid) -> np.ndarray:
    """Blur by the in-plane PSF and the slice profile's tails."""
    return ndimage.gaussian_filter(img, sigma=psf_sigma(grid), mode="nearest").astype(np.float32)


def roughen_lesion(
    rng: np.random.Generator,
    grid: Grid,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    field_box: tuple[list[float], list[float]],
    homogeneity: str,
    focus_type: str,
    pattern: str,
    base: np.ndarray,
    focus: np.ndarray,
    mask: np.ndarray,
    distance: np.ndarray,
    sequences: tuple[str, ...],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Realistic texture of one lesion on its crop (multiplies the painted signal), and its foci.

    ``base`` and ``focus`` are version 1's texture and foci, ``distance`` the signed
    distance (mm, negative inside) to the lesion's surface. The fields cover the plan's
    millimetre box ``field_box``, so the texture does not depend on the grid. The foci
    returned (0..1) include the extra necrotic/sclerotic parts: the lesion's natural seed
    must avoid them as it avoids version 1's.
    """
    lo_mm, hi_mm = field_box
    cells = SmoothField(rng, hi_mm, LESION_TEXTURE_CORR_MM, lo_mm=lo_mm).sample(grid, start, stop)
    parts = SmoothField(rng, hi_mm, 5.0, lo_mm=lo_mm).sample(grid, start, stop)
    shape = mask.shape
    depth = np.broadcast_to(-distance, shape)
    base = np.broadcast_to(base, shape) * (1.0 + np.float32(LESION_EXTRA_CV[homogeneity]) * np.broadcast_to(cells, shape))
    focus = np.broadcast_to(focus, shape)
    if homogeneity == "heterogeneous" and mask.any():
        central = np.clip(depth / max(float(depth[mask].max()), 1e-3), 0.0, 1.0)
        score = np.broadcast_to(parts, shape) + (1.5 * central if focus_type == "necrotic" else 0.0)
        free = mask & (focus < 0.5)
        if free.any():
            share = min(EXTRA_FOCI_SHARE * float(mask.sum()) / float(free.sum()), 0.9)
            threshold = float(np.quantile(score[free], 1.0 - share))
            extra = np.clip((score - threshold) / 0.3 + 0.5, 0.0, 1.0).astype(np.float32)
            focus = np.maximum(focus, extra)
    rim = np.exp(-np.clip(depth, 0.0, None) / np.float32(RIM_MM)).astype(np.float32)
    factors = NECROSIS_FACTORS[focus_type]
    texture: dict[str, np.ndarray] = {}
    for seq in sequences:
        t = base * (1.0 + focus * np.float32(factors[seq] - 1.0))
        if seq == "T1CE" and pattern != "sclerotic":
            t = t * (1.0 + np.float32(RIM_ENHANCEMENT) * (rim - 0.5))
        texture[seq] = np.maximum(t, 0.05).astype(np.float32)
    return texture, np.asarray(focus, dtype=np.float32)


def oedema_halo(
    rng: np.random.Generator, grid: Grid, inside: np.ndarray, box: tuple[slice, slice, slice], pattern: str
) -> tuple[np.ndarray, float] | None:
    """Peritumoral oedema around one lesion on ``box`` (``inside``: its mask there), or None.

    Returns the halo (0..1, zero inside the lesion) and its strength. The draws are made
    whether or not the lesion has oedema, so one lesion's luck never shifts the next.
    """
    has_oedema = bool(rng.random() < P_OEDEMA[pattern])
    width = float(rng.uniform(*OEDEMA_WIDTH_MM))
    strength = float(rng.uniform(*OEDEMA_STRENGTH))
    ragged = SmoothField(rng, grid.fov_mm, 6.0)
    if not has_oedema or not inside.any():
        return None
    start = (box[2].start, box[1].start, box[0].start)
    stop = (box[2].stop, box[1].stop, box[0].stop)
    reach = np.float32(width) * (1.0 + np.float32(0.4) * ragged.sample(grid, start, stop))
    outside = ndimage.distance_transform_edt(~inside, sampling=grid.array_spacing).astype(np.float32)
    halo = np.clip(1.0 - outside / np.maximum(reach, np.float32(0.5)), 0.0, 1.0)
    halo[inside] = 0.0
    return halo.astype(np.float32), strength
