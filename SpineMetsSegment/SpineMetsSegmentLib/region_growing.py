"""Seeded lesion segmentation from one click and an ROI box, refined by corrective clicks.

Real lesions are heterogeneous, touch tissue of the same signal (a sarcoma is
iso-intense to muscle on T1, a vertebral body to its pedicles) and have borders
that are only partly visible. Growing voxels by intensity (ConfidenceConnected,
GrowCut, fast marching) leaks wherever the border is invisible. Here the lesion
is a *star-shaped surface* around the first seed, found ray by ray and smoothed
across rays, so a border seen on most rays closes the gaps on the others:

1. **Working region.** The ROI (an oriented box) is cropped from the reference
   sequence; other sequences are resampled onto that crop only. Each sequence
   is scaled by its robust range in the ROI and smoothed (edge-preserving).
2. **Rays.** From the first seed, rays in ``polar_rays x azimuth_rays``
   directions (physical space) are sampled every ``ray_step_mm`` up to the ROI
   border.
3. **Appearance.** A lesion model (robust median/spread of the voxels within
   ``seed_radius_mm`` of the seed) competes with background classes (k-means of
   the ROI border shell) for every sample: ``p`` = lesion probability.
4. **Cost of a border at radius r on a ray** = ``region_weight`` x (background-like
   samples inside + lesion-like samples outside, as a fraction of the expected
   radius) - ``edge_weight`` x (signal step across r, capped) + ``shape_weight``
   x (deviation of r from the expected radius, relative). The expected radius
   comes from the ROI: a lesion fills its box up to ``roi_margin_mm`` on each
   side, i.e. the ellipsoid inscribed in the shrunk box (a GrabCut-like box
   prior). Where the signal does not separate the lesion from its surroundings,
   every edge crossed before r costs ``inner_edge_weight``: the first border
   from the inside beats the next fascia.
   There (separability under ``separability_floor``) the first click weighs the
   same evidence with weights learned from expert sarcoma outlines instead
   (``learned_border_weight``, ``BORDER_MODEL_PATH``).
5. **Surface.** Costs are averaged over neighbouring rays (``smoothing_deg``),
   each ray takes its cheapest radius, and the radius map is smoothed with a
   few median/mean passes (robust to single bad rays).
6. **Corrective clicks.** A foreground click outside the surface moves the rays
   through it as far past it as it lay from the old border (a user clicks about
   half-way across an error); a background click inside moves them as far before
   it. Each click also adds its neighbourhood as a lesion or background class; a
   foreground click only adds voxels, a background click only removes them. Only steps 3-5 are redone on the cached ray samples, so a correction
   costs a fraction of the first click.
7. **Quality.** ``RegionGrowingResult.qc`` reports the share of rays that ran
   into the ROI border (a leak or an ROI drawn too tight) and the share decided
   by the shape prior alone (no visible border); ``warnings`` says so in words.

The core works on SimpleITK images in LPS and knows nothing about MRML; the
Logic converts nodes, keeps the :class:`RegionGrowingSession` per image/ROI and
writes the segment. See docs/region_growing.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.cluster.vq import kmeans2

from SpineMetsCore.errors import GeometryError, InputError
from SpineMetsCore.volumes import Geometry, images_overlap

from .seeds import RAS_TO_LPS, RoiBox, as_ras_points, as_roi, ras_to_index

logger = logging.getLogger(__name__)

BORDER_MODEL_PATH = Path(__file__).resolve().parents[1] / "Resources" / "Models" / "region_growing_border.json"
"""Learned weights of the first click's border cost (:meth:`RegionGrowingSession._border_features`); card inside."""


@lru_cache(maxsize=4)
def load_border_model(path: str = str(BORDER_MODEL_PATH)) -> np.ndarray | None:
    """The learned border-cost weights (one per border feature), read once; None (hand-weighted cost) if unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            weights = np.asarray(json.load(handle)["weights"], dtype=np.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("region growing: no learned border cost (%s): the hand-weighted cost decides", exc)
        return None
    if weights.ndim != 1 or weights.size != len(BORDER_FEATURES) or not np.all(np.isfinite(weights)):
        logger.warning("region growing: %s does not hold %d finite weights: the hand-weighted cost decides", path,
                       len(BORDER_FEATURES))
        return None
    return weights


BORDER_FEATURES = ("inside_background", "outside_lesion", "edge", "probability_drop", "prior_deviation2",
                   "prior_relative", "edges_crossed", "near_roi", "kappa_inside_background", "kappa_outside_lesion",
                   "kappa_edge", "kappa_probability_drop", "kappa_prior_deviation2", "visible_inside_background",
                   "visible_outside_lesion", "visible_edge", "visible_probability_drop", "visible_prior_deviation2")
"""Names of :meth:`RegionGrowingSession._border_features`, in order (the JSON's ``features`` must match)."""


@dataclass(frozen=True)
class RegionGrowingParameters:
    """Settings of the click segmentation; the defaults suit 0.5-4 mm MRI and ROIs drawn ~1 cm around the lesion."""

    smoothing_mm: float = 0.5
    """Gaussian smoothing (sigma) of every sequence before sampling (0: none): noise and texture, not borders."""
    seed_radius_mm: float = 4.0
    """Radius around a click whose voxels give that click's signal statistics."""
    min_spread: float = 0.04
    """Floor of a sequence's signal spread, in units of its ROI 5-95 % range."""
    background_border_mm: float = 2.0
    """Thickness of the ROI border shell that models the background."""
    background_clusters: int = 6
    """Tissue classes found (k-means) among the border voxels."""
    max_distance: float = 10.0
    """Cap on a sequence's robust z-distance, so one outlying sequence cannot veto a voxel."""
    beyond_lesion_trust: float = 1.0
    """Signal beyond the lesion's, on the side away from a background class (a necrosis brighter than the tumour
    on T2/STIR, a sclerosis darker on T1), is evidence against the lesion only by ``1 -`` this (1: none, 0: as much
    as signal on the background's side)."""
    roi_margin_mm: float = 10.0
    """Expected gap between the lesion and each face of the ROI (how ROIs are drawn)."""
    shape_weight: float = 1.0
    """Weight of the expected-radius (box) prior; 0 turns it off."""
    shape_tolerance: float = 0.35
    """Relative radius deviation that costs as much as one unit of shape prior."""
    region_weight: float = 2.0
    """Weight of the appearance term: background-like signal inside the border."""
    outside_weight: float = 0.3
    """Weight of lesion-like signal outside the border, relative to ``region_weight`` (low: neighbours often share it)."""
    core_fraction: float = 0.5
    """Lesion statistics come from the rays' inner part, up to this fraction of the expected radius (0: seed ball only)."""
    edge_weight: float = 2.0
    """Weight of the signal step across the border."""
    edge_width_mm: float = 2.0
    """Width of the windows either side of a candidate border whose signals are compared."""
    edge_cap: float = 3.0
    """Step (robust z units) at which a border counts as fully visible."""
    smoothing_deg: float = 4.0
    """Angular radius over which neighbouring rays share their border costs."""
    surface_smoothing: int = 1
    """Median + mean passes over the radius map (0: none)."""
    ray_step_mm: float = 0.5
    """Sampling step along each ray."""
    polar_rays: int = 24
    """Ray directions between the poles (the slice axis)."""
    azimuth_rays: int = 48
    """Ray directions around the slice axis."""
    click_radius_mm: float = 2.0
    """A corrective click moves the border at least this far past the clicked point."""
    click_overshoot: float = 1.0
    """A corrective click moves the border past it by this multiple of its distance from the old border (at
    least ``click_radius_mm``): users click about half-way across an error region."""
    click_influence_deg: float = 30.0
    """Angular radius (Gaussian sigma) over which a corrective click moves the surface."""
    click_trust: float = 0.95
    """How firmly the surface near a click follows the click (1: only the click, 0: image and prior as before)."""
    click_spill_fraction: float = 0.25
    """A click whose voxel refinement changes more than this share of the mask outside its own sector (where
    its influence is under one half) keeps its change to its sector: its signal class had made a surrounding
    tissue lesion-like (a small lesion's click neighbourhood reaching into marrow). 0: always local."""
    separability_floor: float = 0.3
    """Signal separability (lesion probability just inside minus just outside the surface) below which the
    signal is not trusted beyond the surface: the box prior keeps its full weight and voxels are not refined."""
    refine_weight: float = 1.0
    """Weight of the voxel-level signal refinement (0: the star-shaped surface as is)."""
    refine_band_mm: float = 12.0
    """Voxels this far inside/outside the surface may change in the refinement."""
    refine_shell_mm: float = 3.0
    """Shell either side of the surface whose signals measure how well the signal separates the lesion."""
    refine_distance_mm: float = 3.0
    """Distance from the surface that costs one unit of signal log-odds in the refinement."""
    refine_growth_separability: float = 0.5
    """Separability above which lesion tissue connected to the surface is added."""
    inner_edge_weight: float = 0.5
    """Where the signal does not separate the lesion (separability under ``separability_floor``), cost per
    significant edge crossed between the seed and a candidate border: prefer the first border from the inside."""
    inner_edge_threshold: float = 0.34
    """Edge strength (0..1) below which a step along a ray is texture, not a border, for ``inner_edge_weight``."""
    learned_border_weight: float = 1.0
    """Share of the first click's border cost taken from the learned model (``BORDER_MODEL_PATH``, fitted to expert
    sarcoma outlines) instead of the hand-weighted terms; 0: hand-weighted only. Corrections keep the hand cost."""
    working_spacing_mm: float = 0.6
    """Voxels finer than this are averaged in integer blocks before growing; the mask comes back on the full grid."""
    max_radius_mm: float = 100.0
    """Voxels farther than this from the first seed are background (a size limit)."""
    default_roi_margin_mm: float = 30.0
    """Without an ROI: half-size margin of the box placed around the seeds (shape prior off)."""
    leak_warning_fraction: float = 0.15
    """Share of rays ending at the ROI border above which the result is flagged."""
    sequence_weights: Mapping[str, float] = field(default_factory=dict)
    """Optional per-sequence weights (default 1); 0 ignores a sequence."""

    def __post_init__(self) -> None:
        checks = {
            "smoothing_mm": self.smoothing_mm >= 0,
            "seed_radius_mm": self.seed_radius_mm >= 0,
            "min_spread": self.min_spread > 0,
            "background_border_mm": self.background_border_mm > 0,
            "background_clusters": self.background_clusters >= 1,
            "max_distance": self.max_distance > 0,
            "beyond_lesion_trust": 0 <= self.beyond_lesion_trust <= 1,
            "roi_margin_mm": self.roi_margin_mm >= 0,
            "separability_floor": 0 <= self.separability_floor < 1,
            "inner_edge_weight": self.inner_edge_weight >= 0,
            "inner_edge_threshold": 0 <= self.inner_edge_threshold < 1,
            "shape_weight": self.shape_weight >= 0,
            "shape_tolerance": self.shape_tolerance > 0,
            "region_weight": self.region_weight >= 0,
            "outside_weight": self.outside_weight >= 0,
            "core_fraction": 0 <= self.core_fraction < 1,
            "edge_weight": self.edge_weight >= 0,
            "edge_width_mm": self.edge_width_mm > 0,
            "edge_cap": self.edge_cap > 0,
            "smoothing_deg": self.smoothing_deg >= 0,
            "surface_smoothing": self.surface_smoothing >= 0,
            "ray_step_mm": self.ray_step_mm > 0,
            "polar_rays": self.polar_rays >= 4,
            "azimuth_rays": self.azimuth_rays >= 8,
            "click_radius_mm": self.click_radius_mm >= 0,
            "click_overshoot": self.click_overshoot >= 0,
            "click_influence_deg": self.click_influence_deg > 0,
            "click_trust": 0 <= self.click_trust < 1,
            "click_spill_fraction": self.click_spill_fraction >= 0,
            "default_roi_margin_mm": self.default_roi_margin_mm > 0,
            "max_radius_mm": self.max_radius_mm > 0,
            "working_spacing_mm": self.working_spacing_mm > 0,
            "learned_border_weight": 0 <= self.learned_border_weight <= 1,
            "leak_warning_fraction": 0 < self.leak_warning_fraction <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InputError("region growing parameters", f"invalid value for {bad}: {[getattr(self, b) for b in bad]}")
        if any(w < 0 for w in self.sequence_weights.values()):
            raise InputError("region growing parameters", "sequence_weights must be >= 0")

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["sequence_weights"] = dict(self.sequence_weights)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RegionGrowingParameters:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError("region growing parameters", f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def coerce(cls, value: RegionGrowingParameters | Mapping[str, Any] | None) -> RegionGrowingParameters:
        """Parameters as callers give them: an instance, a mapping of settings (checked) or None (the defaults)."""
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        return value or cls()


@dataclass
class RegionGrowingResult:
    """Lesion mask on a crop of the reference grid, plus what it was grown from and how sure it is."""

    mask: sitk.Image
    """UInt8 mask (1 = lesion) on the working crop of the reference sequence's grid."""
    reference_sequence: str
    seed_indices: list[tuple[int, int, int]]
    """Foreground click voxels (i, j, k) on the full reference grid; the first is the centre."""
    lesion_median: dict[str, float]
    """Lesion median per sequence at the first seed (normalised units)."""
    volume_ml: float
    background_indices: list[tuple[int, int, int]] = field(default_factory=list)
    """Background click voxels (i, j, k) on the full reference grid."""
    qc: dict[str, float] = field(default_factory=dict)
    """``roi_border_fraction``: rays ending at the ROI border; ``prior_only_fraction``: rays without a visible border."""
    warnings: list[str] = field(default_factory=list)


def align_sequences(images: Mapping[str, sitk.Image], reference: str | None = None) -> tuple[str, dict[str, sitk.Image]]:
    """Check sequences and name the reference; grids are matched later, on the crop only."""
    if not images:
        raise InputError("sequences", "no image given")
    ref_name = reference or next(iter(images))
    if ref_name not in images:
        raise InputError("reference sequence", f"'{ref_name}' is not among the given sequences {list(images)}")
    ref = images[ref_name]
    out: dict[str, sitk.Image] = {}
    for name, image in images.items():
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"sequence '{name}'", "must be a 3-D scalar image")
        if name != ref_name and not images_overlap(image, ref):
            raise GeometryError(f"sequence '{name}'", f"does not overlap the reference sequence '{ref_name}' in physical space")
        out[name] = image
    return ref_name, out


def _onto_crop(image: sitk.Image, full_ref: sitk.Image, crop: sitk.Image, work: sitk.Image, lo: np.ndarray,
               shrink: list[int]) -> sitk.Image:
    """``image`` on the working grid as float32, touching only the ROI's voxels (block means when shrunk)."""
    if Geometry.from_image(image).same_grid(Geometry.from_image(full_ref)):
        part = sitk.Cast(sitk.RegionOfInterest(image, list(crop.GetSize()), [int(v) for v in lo]), sitk.sitkFloat32)
        return sitk.BinShrink(part, shrink) if max(shrink) > 1 else part
    return sitk.Resample(image, work, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _robust_stats(samples: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and 1.4826 x MAD (floored)."""
    med = np.median(samples, axis=0)
    mad = 1.4826 * np.median(np.abs(samples - med), axis=0)
    return med, np.maximum(mad, floor)


def _normalised_smoothed(image: sitk.Image, roi: np.ndarray, params: RegionGrowingParameters) -> np.ndarray:
    """Scale by the ROI's robust range (so sequences are comparable), then Gaussian smoothing; float32."""
    array = sitk.GetArrayViewFromImage(image)
    p5, p50, p95 = np.percentile(array[roi], (5, 50, 95))
    scale = float(p95 - p5) or 1.0
    norm = sitk.ShiftScale(image, -float(p50), 1.0 / scale)
    if params.smoothing_mm > 0:
        norm = sitk.SmoothingRecursiveGaussian(norm, params.smoothing_mm)
    return sitk.GetArrayFromImage(norm)


def _background_model(feats: np.ndarray, spread_floor: np.ndarray, params: RegionGrowingParameters) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-means classes of the border voxels: (median, spread) each."""
    rng = np.random.default_rng(0)
    if len(feats) > 20000:
        feats = feats[rng.choice(len(feats), 20000, replace=False)]
    k = int(min(params.background_clusters, max(1, len(feats) // 20)))
    if k == 1:
        return [_robust_stats(feats, spread_floor)]
    _, labels = kmeans2(feats.astype(np.float64), k, minit="++", seed=rng)
    model = [_robust_stats(feats[labels == c], spread_floor) for c in range(k) if np.count_nonzero(labels == c) >= 10]
    return model or [_robust_stats(feats, spread_floor)]


def _lesion_probability(
    feats: np.ndarray, lesion: list, background: list, weights: np.ndarray, cap: float, cache: dict | None = None,
    beyond_trust: float = 0.0,
) -> np.ndarray:
    """P(lesion) per sample: the best lesion class against the nearest background class.

    Each pair is compared with a spread pooled from both, so the decision lies
    half-way between their signals (partial volume); background classes that look
    like the lesion class (same tissue at the border) are no evidence and skipped.
    ``cache`` (one dict per ``feats`` array, kept by the caller): per lesion class, its
    log-odds against the background classes seen so far, so a click that adds one
    class costs one class pair, not all of them (min/max are exact: same result).
    ``beyond_trust``: how little signal beyond the lesion's, away from a background class, counts against the
    lesion (a heterogeneous lesion's necrotic or sclerotic parts are more extreme than its matrix, not background).
    """
    wsum = float(weights.sum())
    best = np.full(len(feats), -np.inf, dtype=np.float32)
    bg_keys = [_class_key(c) for c in background]
    for fg_med, fg_spread in lesion:
        fg_key = _class_key((fg_med, fg_spread))
        seen, llr = cache.get(fg_key, (frozenset(), None)) if cache is not None else (frozenset(), None)
        if not seen <= set(bg_keys):
            seen, llr = frozenset(), None  # a class was taken away (an undone click): start again
        if llr is None:
            llr = np.full(len(feats), np.inf, dtype=np.float32)
        diff_fg = None
        for key, (bg_med, bg_spread) in zip(bg_keys, background, strict=True):
            if key in seen or np.all((np.abs(bg_med - fg_med) / fg_spread)[weights > 0] < 1.5):
                continue
            if diff_fg is None:
                diff_fg = [feats[:, c] - fg_med[c] for c in range(len(weights))]
            pooled = np.sqrt((bg_spread**2 + fg_spread**2) / 2.0)
            # column by column (the same operations as on the whole array, several times faster)
            total = None
            for c, weight in enumerate(weights):
                z_fg = diff_fg[c] / pooled[c]
                if beyond_trust > 0:
                    z_fg[z_fg * (fg_med[c] - bg_med[c]) > 0] *= np.float32(1.0 - beyond_trust)
                np.minimum(np.square(z_fg, out=z_fg), cap * cap, out=z_fg)
                z_bg = (feats[:, c] - bg_med[c]) / pooled[c]
                np.minimum(np.square(z_bg, out=z_bg), cap * cap, out=z_bg)
                z_bg -= z_fg
                z_bg *= weight
                total = z_bg if total is None else np.add(total, z_bg, out=total)
            total *= 0.5
            total /= wsum
            total *= len(weights)
            llr = np.minimum(llr, total.astype(np.float32))
        if cache is not None:
            cache[fg_key] = (frozenset(bg_keys), llr)
        best = np.maximum(best, np.where(np.isinf(llr), 0.0, llr))
    return (1.0 / (1.0 + np.exp(-np.clip(best, -30, 30)))).astype(np.float32)


def _class_key(stats: tuple[np.ndarray, np.ndarray]) -> tuple[bytes, bytes]:
    """A class's (median, spread) as a hashable key for :func:`_lesion_probability`'s cache."""
    med, spread = stats
    return np.asarray(med).tobytes(), np.asarray(spread).tobytes()


def _ball(shape: tuple[int, ...], centre_kji: np.ndarray, radius_mm: float, spacing_kji: np.ndarray) -> np.ndarray:
    """Boolean ball (at least the centre voxel) on a (K, J, I) grid."""
    lo = np.maximum(np.floor(centre_kji - radius_mm / spacing_kji).astype(int), 0)
    hi = np.minimum(np.ceil(centre_kji + radius_mm / spacing_kji).astype(int) + 1, shape)
    out = np.zeros(shape, dtype=bool)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre_kji, spacing_kji, strict=True))
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = d2 <= radius_mm**2 + 1e-9
    centre = tuple(np.clip(np.round(centre_kji).astype(int), 0, np.array(shape) - 1))
    out[centre] = True
    return out


@dataclass
class _State:
    """The surface after the first seed and some clicks (one entry of the session's trail)."""

    click: tuple[tuple[float, ...], bool] | None
    lesion: list
    background: list
    radius: np.ndarray
    prior_only: np.ndarray
    constraints: list
    mask: np.ndarray | None = None
    """The voxel mask after this click (the surface's refinement for the first seed, then each click's local edit)."""


class RegionGrowingSession:
    """What one image set + ROI + first seed costs to prepare, kept for the next clicks.

    Build it once (crop, normalised channels, background classes, ray samples),
    then call :meth:`segment` with the growing list of foreground and background
    clicks; only the per-ray costs and the surface are recomputed.
    """

    def __init__(
        self,
        images: Mapping[str, sitk.Image],
        centre_ras: Sequence[float],
        roi: Any = None,
        parameters: RegionGrowingParameters | None = None,
        reference: str | None = None,
    ) -> None:
        self.params = params = parameters or RegionGrowingParameters()
        self.reference, aligned = align_sequences(images, reference)
        ref = aligned[self.reference]
        self.full_reference = ref
        centre = as_ras_points(centre_ras, "seeds")[0]
        self.centre_ras = centre
        self.centre_index = ras_to_index(ref, centre, "seed 1")
        self.roi_given = roi is not None
        box = as_roi(roi) if roi is not None else RoiBox.around([centre], params.default_roi_margin_mm)
        self.box = box
        if not box.contains(centre):
            raise InputError("seed 1", f"RAS {tuple(round(v, 2) for v in centre)} lies outside the {box.name}")
        bounds = box.index_bounds(ref, pad=1)
        if bounds is None:
            raise InputError(box.name, "does not overlap the reference image")
        self.lo, hi = bounds
        self.output_grid = sitk.RegionOfInterest(ref, [int(v) for v in hi - self.lo + 1], [int(v) for v in self.lo])
        # voxels much finer than the algorithm's millimetre scales are averaged in blocks (speed, not accuracy)
        self.shrink = [max(1, int(params.working_spacing_mm // s)) for s in ref.GetSpacing()]
        crop = sitk.BinShrink(self.output_grid, self.shrink) if max(self.shrink) > 1 else self.output_grid
        self.crop = crop
        self.depth = box.depth_like(crop)
        self.roi = self.depth >= -1e-4
        # where the ROI is clipped by the image, the image's edge is the ROI's border
        for axis, (n, step) in enumerate(zip(self.roi.shape, crop.GetSpacing()[::-1], strict=True)):
            index = np.arange(n, dtype=np.float32)
            edge = (np.minimum(index, n - 1 - index) + 0.5) * np.float32(step)
            shape = [1, 1, 1]
            shape[axis] = n
            self.depth = np.minimum(self.depth, edge.reshape(shape))
        if not self.roi.any():
            raise InputError(box.name, "is empty: it contains no voxel of the reference image")
        self.names = list(aligned)
        self.weights = np.array([float(params.sequence_weights.get(n, 1.0)) for n in self.names])
        if not np.any(self.weights > 0):
            raise InputError("region growing parameters", "sequence_weights exclude every sequence")
        self.channels = np.stack(
            [_normalised_smoothed(_onto_crop(aligned[n], ref, self.output_grid, crop, self.lo, self.shrink), self.roi, params)
             for n in self.names]
        )
        self.spacing_kji = np.array(crop.GetSpacing()[::-1], dtype=float)
        self.floor = np.full(len(self.names), params.min_spread)
        self._frame()
        self._check_click(self.centre_kji, "seed 1")
        self.background = self._border_classes()
        self.lesion0 = self._click_stats(self.centre_kji)
        self._sample_rays()
        self._trail: list[_State] = []

    # -- geometry -------------------------------------------------------
    def _frame(self) -> None:
        """Crop index frame: physical mm along the (i, j, k) axes, origin at the seed."""
        crop = self.crop
        self.direction = np.reshape(crop.GetDirection(), (3, 3))  # columns: LPS axes of i, j, k
        centre_lps = np.asarray(self.centre_ras, dtype=float) * RAS_TO_LPS
        cont = np.array(crop.TransformPhysicalPointToContinuousIndex(tuple(centre_lps)))
        self.centre_kji = cont[::-1]
        p = self.params
        theta = (np.arange(p.polar_rays) + 0.5) * np.pi / p.polar_rays
        phi = np.arange(p.azimuth_rays) * 2.0 * np.pi / p.azimuth_rays
        th, ph = np.meshgrid(theta, phi, indexing="ij")
        # unit vectors in the crop frame, components along (i, j, k); the poles lie on the slice axis k
        self.dirs_ijk = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=-1)

    def _to_frame(self, ras: Sequence[float]) -> np.ndarray:
        """RAS point -> mm along (i, j, k) from the seed."""
        lps = np.asarray(ras, dtype=float) * RAS_TO_LPS
        centre_lps = np.asarray(self.centre_ras, dtype=float) * RAS_TO_LPS
        return self.direction.T @ (lps - centre_lps)

    def _check_click(self, kji: np.ndarray, what: str) -> None:
        index = np.round(kji).astype(int)
        if np.any(index < 0) or np.any(index >= self.roi.shape) or not self.roi[tuple(index)]:
            raise InputError(what, f"lies outside the {self.box.name}")

    def _expected_radius(self) -> np.ndarray:
        """Radius along every ray of the ellipsoid inscribed in the ROI shrunk by ``roi_margin_mm``."""
        p = self.params
        half = np.asarray(self.box.half_size, dtype=float)
        inner = np.maximum(half - p.roi_margin_mm, 0.35 * half)
        axes_lps = self.box.axes_matrix * RAS_TO_LPS[:, None]  # box axes (columns) in LPS
        to_box = (self.direction.T @ axes_lps).T  # frame vector -> box coordinates
        centre_box = to_box @ self._to_frame(self.box.centre) * -1.0  # seed in box coordinates
        a = centre_box / inner
        e = (self.dirs_ijk @ to_box.T) / inner
        ee = np.sum(e * e, axis=-1)
        ae = e @ a
        disc = ae * ae - ee * (float(a @ a) - 1.0)
        r = (-ae + np.sqrt(np.maximum(disc, 0.0))) / ee
        return np.maximum(r, 2.0 * float(self.spacing_kji.min()))

    def _sample_rays(self) -> None:
        p = self.params
        sp = self.spacing_kji
        corners = np.array([[a, b, c] for a in (0, self.roi.shape[0] - 1) for b in (0, self.roi.shape[1] - 1)
                            for c in (0, self.roi.shape[2] - 1)], dtype=float)
        r_max = float(np.max(np.linalg.norm((corners - self.centre_kji) * sp, axis=1))) + p.ray_step_mm
        self.radii = np.arange(1, int(np.ceil(r_max / p.ray_step_mm)) + 1) * p.ray_step_mm
        d_kji = self.dirs_ijk[..., ::-1] / sp  # index steps per mm
        coords = self.centre_kji[:, None, None, None] + np.moveaxis(d_kji, -1, 0)[..., None] * self.radii
        flat = coords.reshape(3, -1)
        inside = ndimage.map_coordinates(self.roi.astype(np.uint8), flat, order=0, mode="constant", cval=0)
        inside = inside.reshape(coords.shape[1:]).astype(bool)
        # a ray ends at its first sample outside the ROI
        self.ray_end = np.where(inside.all(axis=-1), inside.shape[-1], np.argmin(inside, axis=-1))
        self.samples = np.stack(
            [ndimage.map_coordinates(ch, flat, order=1, mode="nearest").reshape(coords.shape[1:]) for ch in self.channels],
            axis=-1,
        ).astype(np.float32)  # (polar, azimuth, radius, channel)
        self.expected = self._expected_radius() if (self.roi_given and p.shape_weight > 0) else None
        self.shape_scale = 1.0
        self.inward_scale = 0.0
        if self.expected is not None and p.core_fraction > 0:
            # a heterogeneous lesion is better described by its whole expected core than by the seed's neighbourhood
            core = self.radii[None, None, :] <= p.core_fraction * self.expected[..., None]
            core &= np.arange(len(self.radii)) < self.ray_end[..., None]
            if core.sum() > 50:
                self.lesion0 = _robust_stats(self.samples[core], self.floor)
        self._edge = self._edge_strength()

    def _border_classes(self) -> list:
        shell = max(self.params.background_border_mm, float(self.spacing_kji.max()))  # at least one voxel layer
        border = self.roi & (self.depth <= shell)
        feats = self.channels[:, border].T
        return _background_model(feats, self.floor, self.params)

    def _click_stats(self, kji: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ball = _ball(self.roi.shape, kji, self.params.seed_radius_mm, self.spacing_kji) & self.roi
        return _robust_stats(self.channels[:, ball].T, self.floor)

    def _edge_strength(self) -> np.ndarray:
        """Signal step across each candidate border (mean of the windows inside vs outside), capped, in 0..1."""
        p = self.params
        w = max(1, int(round(p.edge_width_mm / p.ray_step_mm)))
        s = self.samples
        csum = np.concatenate([np.zeros(s.shape[:2] + (1, s.shape[3]), np.float32), np.cumsum(s, axis=2)], axis=2)
        n = s.shape[2]
        m = np.arange(n)
        a0, b1 = np.maximum(m - w, 0), np.minimum(m + w, n)
        inner = (csum[:, :, m] - csum[:, :, a0]) / np.maximum(m - a0, 1)[:, None]
        outer = (csum[:, :, b1] - csum[:, :, m]) / np.maximum(b1 - m, 1)[:, None]
        spread = self.lesion0[1]
        z2 = (((outer - inner) / spread) ** 2 * self.weights).sum(axis=-1) / self.weights.sum()
        return np.minimum(np.sqrt(z2) / p.edge_cap, 1.0).astype(np.float32)

    # -- clicks -----------------------------------------------------------
    def _click_geometry(self, ras: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]]:
        """Angle (rad) of every ray to the click, the rays it lies on (cone), its radius and nearest ray."""
        v = self._to_frame(ras)
        rho = float(np.linalg.norm(v))
        if rho < 1e-6:
            angle = np.zeros(self.dirs_ijk.shape[:2])
            return angle, np.zeros(angle.shape, dtype=bool), 0.0, (0, 0)
        angle = np.arccos(np.clip(self.dirs_ijk @ (v / rho), -1.0, 1.0))
        # rays within the angle that a ball of click_radius_mm (or one ray spacing) subtends
        half_angle = max(np.arctan2(self.params.click_radius_mm, rho), np.pi / self.params.polar_rays)
        nearest = np.unravel_index(int(np.argmin(angle)), angle.shape)
        return angle, angle <= half_angle, rho, (int(nearest[0]), int(nearest[1]))

    def segment(
        self, foreground_ras: Sequence[Sequence[float]] = (), background_ras: Sequence[Sequence[float]] = ()
    ) -> tuple[np.ndarray, dict[str, float], list[str]]:
        """Boolean mask on the crop from the first seed, then foreground clicks, then background clicks."""
        clicks = [(tuple(float(v) for v in c), True) for c in foreground_ras]
        clicks += [(tuple(float(v) for v in c), False) for c in background_ras]
        return self.segment_clicks(clicks)

    def segment_clicks(self, clicks: Sequence[tuple[Sequence[float], bool]]) -> tuple[np.ndarray, dict[str, float], list[str]]:
        """Mask after the first seed and the corrective ``(ras, is_foreground)`` clicks, applied in order.

        Every click's state is cached: a list that extends the previous call's
        list costs one correction step per new click.
        """
        keys = [(tuple(float(v) for v in ras), bool(fg)) for ras, fg in clicks]
        if not self._trail:
            self._trail.append(self._initial_state())
        done = 0
        while done < min(len(keys), len(self._trail) - 1) and self._trail[done + 1].click == keys[done]:
            done += 1
        del self._trail[done + 1 :]
        n_fg = sum(1 for _, fg in keys[:done] if fg)
        n_bg = done - n_fg
        for key in keys[done:]:
            if key[1]:
                n_fg += 1
                what = f"seed {n_fg + 1}"
            else:
                n_bg += 1
                what = f"background point {n_bg}"
            self._trail.append(self._apply_click(self._trail[-1], key, what))
        state = self._trail[-1]
        mask = state.mask & self.roi
        qc, warnings = self._quality(state.radius, state.prior_only)
        return mask, qc, warnings

    def _first_surface(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """The first click's lesion probability, prior tolerance, plain surface (radius, prior-only rays) and separability.

        The surface is the hand-weighted cost's at full prior weight; the separability measured on it
        decides how far the signal is trusted (and what the learned border cost's training sees).
        """
        self.shape_scale, self.inward_scale = 1.0, 0.0
        prob = self._probability([self.lesion0], self.background)
        tolerance = np.full(self.dirs_ijk.shape[:2], self.params.shape_tolerance)
        radius, prior_only = self._optimise(self._ray_cost(prob, self.expected, tolerance))
        kappa = self._ray_separability(prob, radius)
        if np.count_nonzero(self.weights) > 1:
            # several sequences: a border tissue that differs from the lesion in any of them is real evidence,
            # so how well the signal separates does not depend on where the first surface happened to fall
            kappa = max(kappa, self._signal_separability(prob, radius))
        return prob, tolerance, radius, prior_only, kappa

    def _initial_state(self) -> _State:
        # Where the signal alone separates the lesion from what surrounds it, the box prior steps back.
        prob, tolerance, radius, prior_only, kappa = self._first_surface()
        floor = self.params.separability_floor
        self.shape_scale = float(np.clip(1.0 - 0.9 * (kappa - floor) / (1.0 - floor), 0.1, 1.0))
        # Where it does not, the first border from the inside is preferred over the next fascia or fat plane.
        if floor > 0 and self.params.inner_edge_weight > 0:
            self.inward_scale = float(np.clip(1.0 - kappa / floor, 0.0, 1.0))
        # The learned cost weighs the same evidence, fitted to where experts put the border of lesions whose signal
        # does not separate them (sarcomas amid muscle): fully below the floor, fading out at twice the floor.
        # Fitted on single-sequence images only: with several sequences the lesion probability has other statistics
        # (two phantom deposits lost 0.26-0.28 Dice under it), so there the hand-weighted cost decides.
        b = self.params.learned_border_weight * float(np.clip(2.0 - kappa / max(floor, 1e-6), 0.0, 1.0))
        if np.count_nonzero(self.weights) > 1:
            b = 0.0
        model = load_border_model() if (b > 0 and self.expected is not None) else None
        if model is not None:
            learned = self._border_features(prob, self.expected, kappa, model)
            hand = self._ray_cost(prob, self.expected, tolerance) if b < 1 else 0.0
            valid = np.arange(prob.shape[-1]) < self.ray_end[..., None]
            radius, prior_only = self._optimise(np.where(valid, b * learned + (1 - b) * hand, np.inf).astype(np.float32))
        elif self.shape_scale < 0.9 or self.inward_scale > 0:
            radius, prior_only = self._optimise(self._ray_cost(prob, self.expected, tolerance))
        state = _State(None, [self.lesion0], list(self.background), radius, prior_only, [])
        state.mask = self._refine(state, self._rasterise(radius)) & self.roi
        return state

    def _signal_separability(self, prob: np.ndarray, radius: np.ndarray) -> float:
        """Lesion probability of the lesion's core minus that of the ROI border, whatever the surface (0: the signal cannot tell).

        Weighted by the lesion probability inside the first surface: a core that describes only
        a focus of the lesion (the click in a necrosis) separates well from the border but not
        from the rest of the lesion, and must not be trusted to outline it.
        """
        if self.expected is None:
            return 0.0
        n = np.arange(len(self.radii))
        valid = n < self.ray_end[..., None]
        inside = valid & (self.radii[None, None, :] <= radius[..., None])
        if not inside.any():
            return 0.0
        core = valid & (self.radii[None, None, :] <= self.params.core_fraction * self.expected[..., None])
        shell = int(round(self.params.refine_shell_mm / self.params.ray_step_mm))
        rim = valid & (n >= (self.ray_end[..., None] - shell))
        if not core.any() or not rim.any():
            return 0.0
        return float(np.clip(prob[core].mean() - prob[rim].mean(), 0.0, 1.0) * prob[inside].mean())

    def _ray_separability(self, prob: np.ndarray, radius: np.ndarray) -> float:
        """Mean lesion probability just inside the surface minus just outside it (0: the signal cannot tell)."""
        shell = self.params.refine_shell_mm
        r = self.radii[None, None, :]
        valid = np.arange(len(self.radii)) < self.ray_end[..., None]
        inner = valid & (r > radius[..., None] - shell) & (r <= radius[..., None])
        outer = valid & (r > radius[..., None]) & (r <= radius[..., None] + shell)
        if not inner.any() or not outer.any():
            return 0.0
        return float(np.clip(prob[inner].mean() - prob[outer].mean(), 0.0, 1.0))

    def _apply_click(self, state: _State, key: tuple[tuple[float, ...], bool], what: str) -> _State:
        """One corrective click: the surface moves past (foreground) or before (background) it, locally.

        A user clicks inside the error, about half-way across it: the rays through the click
        move ``click_overshoot`` times its distance from the old border past it, neighbouring
        rays follow (Gaussian over ``click_influence_deg``), re-optimised with the click's signal
        as a new class; far from the click nothing moves.
        """
        p = self.params
        ras, foreground = key
        kji = self._kji(ras)
        self._check_click(kji, what)
        lesion, background = list(state.lesion), list(state.background)
        (lesion if foreground else background).append(self._click_stats(kji))
        angle, cone, rho, nearest = self._click_geometry(ras)
        current = float(state.radius[nearest])
        past = max(p.click_radius_mm, p.click_overshoot * abs(rho - current))
        target = max(current, rho + past) if foreground else min(current, max(rho - past, self.radii[0]))
        weight = np.exp(-0.5 * (angle / np.radians(p.click_influence_deg)) ** 2)
        prior = state.radius * (1.0 + (target / max(current, 1e-6) - 1.0) * weight)
        tolerance = p.shape_tolerance * (1.0 - p.click_trust * weight)
        constraints = [*state.constraints, (cone, rho, foreground)]
        cost = self._ray_cost(self._probability(lesion, background), prior, tolerance)
        candidate, prior_only = self._optimise(cost, constraints)
        radius = (1.0 - weight) * state.radius + weight * candidate
        radius = self._constrain(np.minimum(radius, p.max_radius_mm), constraints)
        new = _State(key, lesion, background, radius, np.where(weight > 0.5, prior_only, state.prior_only), constraints)
        mask = self._refine(new, self._rasterise(radius))
        far = self._voxel_field(weight) <= 0.5
        spill = np.count_nonzero((mask != state.mask) & far)
        if spill > p.click_spill_fraction * max(int(np.count_nonzero(state.mask)), 1):
            mask = np.where(far, state.mask, mask)  # far from the click nothing moves, at the voxel level too
        for click_ras, click_fg in [s.click for s in self._trail[1:] if s.click is not None] + [key]:
            # a click is the user's word: its neighbourhood follows it, whatever the refinement says
            ball = _ball(self.roi.shape, self._kji(click_ras), p.click_radius_mm, self.spacing_kji)
            mask = mask | ball if click_fg else mask & ~ball
        # a foreground click only adds to the lesion, a background click only takes away from it
        new.mask = (mask | state.mask if foreground else mask & state.mask) & self.roi
        return new

    def _probability(self, lesion: list, background: list) -> np.ndarray:
        feats = self.samples.reshape(-1, self.samples.shape[-1])
        prob = _lesion_probability(feats, lesion, background, self.weights, self.params.max_distance, self._pair_cache("rays"),
                                   self.params.beyond_lesion_trust)
        return prob.reshape(self.samples.shape[:3])

    def _pair_cache(self, name: str) -> dict:
        """The session's :func:`_lesion_probability` cache for one set of samples (created on first use)."""
        caches = self.__dict__.setdefault("_pair_caches", {})
        return caches.setdefault(name, {})

    def _voxel_probability(self, lesion: list, background: list) -> np.ndarray:
        """Lesion probability of every voxel of the crop (cached per class pair, so clicks reuse it)."""
        feats = self.channels.reshape(len(self.channels), -1).T
        prob = _lesion_probability(feats, lesion, background, self.weights, self.params.max_distance, self._pair_cache("voxels"),
                                   self.params.beyond_lesion_trust)
        return prob.reshape(self.roi.shape)

    def _kji(self, ras: Sequence[float]) -> np.ndarray:
        lps = np.asarray(ras, dtype=float) * RAS_TO_LPS
        return np.array(self.crop.TransformPhysicalPointToContinuousIndex(tuple(lps)))[::-1]

    def _ray_cost(self, prob: np.ndarray, expected: np.ndarray | None, tolerance: np.ndarray) -> np.ndarray:
        """Cost of a border after sample m (m = 0..n-1) on each ray; +inf beyond the ROI."""
        p = self.params
        n = prob.shape[-1]
        valid = np.arange(n) < self.ray_end[..., None]
        prob = np.where(valid, prob, 0.0)
        scale = expected if expected is not None else np.full(prob.shape[:2], float(self.radii[n // 2]))
        step = (p.ray_step_mm / scale)[..., None]
        inside_bad = np.cumsum(1.0 - prob, axis=-1) * step  # samples 0..m inside
        outside_bad = (prob.sum(axis=-1, keepdims=True) - np.cumsum(prob, axis=-1)) * step
        # lesion-like signal outside counts fully only as far as the signal separates the lesion
        trust = (1.0 - self.shape_scale) / 0.9
        cost = p.region_weight * (inside_bad + (p.outside_weight + (1.0 - p.outside_weight) * trust) * outside_bad)
        edge_at = np.concatenate([self._edge[..., 1:], np.zeros_like(self._edge[..., :1])], axis=-1)  # step after m
        cost -= p.edge_weight * edge_at
        if expected is not None:
            dev = (self.radii[None, None, :] - expected[..., None]) / (tolerance * expected)[..., None]
            cost += p.shape_weight * self.shape_scale * np.minimum(dev * dev, 9.0)
        if self.inward_scale > 0:
            cost += self.inward_scale * p.inner_edge_weight * self._edges_crossed()
        return np.where(valid, cost, np.inf).astype(np.float32)

    def _border_features(self, prob: np.ndarray, expected: np.ndarray, kappa: float,
                         weights: np.ndarray | None = None) -> np.ndarray:
        """Per ray and candidate border (sample m), the terms a learned border cost weighs: (polar, azimuth, n, F).

        With ``weights`` (one per :data:`BORDER_FEATURES`): their weighted sum, the learned cost (polar, azimuth, n).

        Dimensionless, so they mean the same on any grid and sequence: the appearance
        terms of :meth:`_ray_cost` per expected radius, the signal step and the lesion
        probability step across the border (signed: lesion inside, not outside), the
        deviation from the box prior, the edges crossed before, the closeness of the ROI
        border, and the first terms again times the case's separability ``kappa`` and times
        how visible its border is near the expected radius (so the model learns when to trust
        the signal over the prior).
        """
        p = self.params
        n = prob.shape[-1]
        valid = np.arange(n) < self.ray_end[..., None]
        prob = np.where(valid, prob, 0.0).astype(np.float32)
        step = (p.ray_step_mm / expected)[..., None].astype(np.float32)
        inside_bad = np.cumsum(1.0 - prob, axis=-1) * step
        outside_bad = (prob.sum(axis=-1, keepdims=True) - np.cumsum(prob, axis=-1)) * step
        edge_at = np.concatenate([self._edge[..., 1:], np.zeros_like(self._edge[..., :1])], axis=-1)
        w = max(1, int(round(p.edge_width_mm / p.ray_step_mm)))
        csum = np.concatenate([np.zeros(prob.shape[:2] + (1,), np.float32), np.cumsum(prob, axis=-1)], axis=-1)
        m = np.arange(n)
        a0, b1 = np.maximum(m + 1 - w, 0), np.minimum(m + 1 + w, n)
        p_in = (csum[..., m + 1] - csum[..., a0]) / np.maximum(m + 1 - a0, 1)
        p_out = (csum[..., b1] - csum[..., m + 1]) / np.maximum(b1 - m - 1, 1)
        drop = p_in - p_out  # lesion probability falls across a true border
        rel = self.radii[None, None, :] / expected[..., None] - 1.0
        dev = rel / p.shape_tolerance
        to_roi = (self.ray_end[..., None] - 1 - m) * p.ray_step_mm
        near_roi = np.exp(-np.maximum(to_roi, 0.0) / p.edge_width_mm)
        crossed = self._edges_crossed()
        feats = [inside_bad, outside_bad, edge_at, drop, np.minimum(dev * dev, 9.0), np.clip(rel, -1.0, 1.0),
                 np.minimum(crossed, 5.0), near_roi]
        # how visible the border is around the expected radius, over the whole case: where edges are clear (a
        # vertebral body's cortex) the signal is trusted more, where they are not (a sarcoma amid muscle) the prior
        visible = float(np.where(valid & (np.abs(rel) < 0.5), edge_at, 0.0).max(axis=-1).mean())
        if weights is not None:  # the cost directly: the products with kappa and visibility fold into the weights
            w = np.asarray(weights, dtype=np.float64)
            folded = w[:8].copy()
            folded[:5] += kappa * w[8:13] + visible * w[13:18]
            cost = np.zeros(prob.shape, dtype=np.float32)
            for weight, term in zip(folded, feats, strict=True):  # element-wise: bit-identical on any memory layout
                cost += np.float32(weight) * term
            return cost
        base = np.stack([np.broadcast_to(f, prob.shape) for f in feats], axis=-1).astype(np.float32)
        return np.concatenate([base, kappa * base[..., :5], visible * base[..., :5]], axis=-1)

    def _edges_crossed(self) -> np.ndarray:
        """Per candidate border: significant edges crossed on the way out from the seed (a full step counts 1).

        Where the lesion is iso-intense to its surroundings the cheapest border is often the
        next fascia or fat plane outside it; charging for every edge passed prefers the first.
        """
        p = self.params
        t = p.inner_edge_threshold
        e = np.clip((self._edge - t) / (1.0 - t), 0.0, 1.0)
        w = max(1, int(round(p.edge_width_mm / p.ray_step_mm)))  # a step's edge profile covers about w samples
        crossed = np.cumsum(e, axis=-1) / w
        # edges before the candidate border's own window
        return np.concatenate([np.zeros_like(crossed[..., :w]), crossed[..., :-w]], axis=-1)

    def _optimise(self, cost: np.ndarray, constraints: Sequence[tuple] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Radius per ray: neighbouring rays share costs, each takes its cheapest border, then a light smoothing."""
        p = self.params
        finite = np.isfinite(cost)
        c = np.where(finite, cost, np.max(cost[finite]) + 1.0 if finite.any() else 1.0)
        if p.smoothing_deg > 0:
            c = ndimage.gaussian_filter1d(c, p.smoothing_deg / (180.0 / p.polar_rays), axis=0, mode="nearest")
            c = ndimage.gaussian_filter1d(c, p.smoothing_deg / (360.0 / p.azimuth_rays), axis=1, mode="wrap")
        c = np.where(finite, c, np.inf)
        radii = self.radii
        for cone, rho, foreground in constraints:
            bad = radii < rho + p.click_radius_mm if foreground else radii >= max(rho - p.click_radius_mm, radii[0])
            c = np.where(cone[..., None] & bad[None, None, :], c + 1e3, c)
        index = np.argmin(c, axis=-1)
        r = np.minimum(radii[index], p.max_radius_mm)
        for _ in range(p.surface_smoothing):
            padded = np.pad(np.pad(r, ((0, 0), (1, 1)), mode="wrap"), ((1, 1), (0, 0)), mode="edge")
            r = ndimage.median_filter(padded, size=3)[1:-1, 1:-1]
            r = ndimage.uniform_filter1d(ndimage.uniform_filter1d(r, 3, axis=0, mode="nearest"), 3, axis=1, mode="wrap")
        edge_at_border = np.take_along_axis(self._edge, np.clip(index + 1, 0, self._edge.shape[-1] - 1)[..., None], -1)[..., 0]
        return self._constrain(r, constraints), edge_at_border < 0.34

    def _constrain(self, r: np.ndarray, constraints: Sequence[tuple]) -> np.ndarray:
        """Clicks are hard: rays through a foreground click reach past it, through a background click stop before it."""
        c = self.params.click_radius_mm
        for cone, rho, foreground in constraints:
            r = np.where(cone, np.maximum(r, rho + c), r) if foreground else np.where(cone, np.minimum(r, max(rho - c, self.radii[0])), r)
        return r

    def _rasterise(self, r: np.ndarray) -> np.ndarray:
        """Voxels whose distance from the seed is within the surface radius in their direction."""
        return self._voxel_frame()[0] - self._voxel_field(r)

    def _voxel_field(self, values: np.ndarray) -> np.ndarray:
        """A per-ray map (polar x azimuth) read at every voxel's direction from the seed."""
        wrapped = np.concatenate([values, values[:, :1]], axis=1)
        return ndimage.map_coordinates(wrapped, self._voxel_frame()[1], order=1, mode="nearest").reshape(self.roi.shape)

    def _voxel_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Every voxel's distance from the seed and its (polar, azimuth) ray coordinates: fixed per session, built once."""
        p = self.params
        shape = self.roi.shape
        if "_raster_frame" not in self.__dict__:
            sp = self.spacing_kji
            k, j, i = ((np.arange(n, dtype=np.float32) - c) * s for n, c, s in zip(shape, self.centre_kji, sp, strict=True))
            vi, vj, vk = i[None, None, :], j[None, :, None], k[:, None, None]
            rho = np.sqrt(vi * vi + vj * vj + vk * vk)
            theta = np.arccos(np.clip(vk / np.maximum(rho, 1e-6), -1.0, 1.0))
            phi = np.mod(np.arctan2(vj, vi), 2.0 * np.pi)
            ti = theta / (np.pi / p.polar_rays) - 0.5
            pj = phi / (2.0 * np.pi / p.azimuth_rays)
            self._raster_frame = rho, np.asarray([np.broadcast_to(ti, shape).ravel(), np.broadcast_to(pj, shape).ravel()])
        return self._raster_frame

    def _refine(self, state: _State, outside_mm: np.ndarray) -> np.ndarray:
        """Voxel-level refinement, trusting the signal as far as it tells the lesion from its surroundings.

        ``outside_mm``: radial distance of every voxel outside the star surface (< 0 inside).
        The separability is the lesion probability just inside the surface minus just
        outside it: near 0 where the lesion touches tissue of the same signal (the surface
        then stays as it is), near 1 where the signal alone outlines the lesion (voxels
        follow it near the surface, and lesion tissue connected to it is added).
        """
        p = self.params
        star = (outside_mm <= 0) & self.roi
        outside_mm = np.maximum(outside_mm, self._seed_distance() - p.max_radius_mm)
        if p.refine_weight <= 0:
            return star
        band = self.roi & (np.abs(outside_mm) <= p.refine_band_mm)
        prob = np.zeros(self.roi.shape, dtype=np.float32)
        prob[band] = self._voxel_probability(state.lesion, state.background)[band]
        near_in = band & (outside_mm > -p.refine_shell_mm) & (outside_mm <= 0)
        near_out = band & (outside_mm > 0) & (outside_mm < p.refine_shell_mm)
        if not near_in.any() or not near_out.any():
            return star
        kappa = float(np.clip(prob[near_in].mean() - prob[near_out].mean(), 0.0, 1.0))
        self.last_separability = kappa
        if kappa < p.separability_floor:
            return star
        logit = np.log(np.clip(prob, 1e-3, 1 - 1e-3) / np.clip(1 - prob, 1e-3, 1.0))
        score = p.refine_weight * kappa * np.clip(logit, -4.0, 4.0) - outside_mm / p.refine_distance_mm
        score = ndimage.gaussian_filter(np.where(band, score, np.where(star, 10.0, -10.0)).astype(np.float32),
                                        p.smoothing_mm / self.spacing_kji) if p.smoothing_mm > 0 else score
        mask = (score > 0) & self.roi
        if kappa >= p.refine_growth_separability:
            # lesion tissue connected to the surface (an extension into a pedicle, a lobe) is added
            mask = ndimage.binary_propagation(mask, mask=mask | (band & (prob > 0.9)))
        seed = tuple(np.clip(np.round(self.centre_kji).astype(int), 0, np.array(self.roi.shape) - 1))
        labels, _ = ndimage.label(mask)
        if labels[seed] > 0:
            mask = labels == labels[seed]
        return ndimage.binary_fill_holes(mask) & self.roi

    def to_output_grid(self, mask: np.ndarray) -> np.ndarray:
        """A working-grid mask on the reference crop (identity unless voxels were averaged in blocks)."""
        if max(self.shrink) == 1:
            return mask
        out = np.zeros(self.output_grid.GetSize()[::-1], dtype=bool)
        if not mask.any():
            return out
        # only the mask's bounding box + one block is resampled: farther fine voxels interpolate zeros only
        shrink = np.array(self.shrink[::-1])
        lo_c, hi_c = np.zeros(3, dtype=int), np.zeros(3, dtype=int)
        for axis in range(3):
            hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
            lo_c[axis], hi_c[axis] = max(hit[0] - 1, 0), min(hit[-1] + 1, mask.shape[axis] - 1)
        lo_f = np.where(lo_c > 0, lo_c * shrink, 0)
        hi_f = np.where(hi_c < np.array(mask.shape) - 1, (hi_c + 1) * shrink - 1, np.array(out.shape) - 1)
        image = sitk.GetImageFromArray(mask.astype(np.float32))
        image.CopyInformation(self.crop)
        coarse = sitk.RegionOfInterest(image, [int(v) for v in (hi_c - lo_c + 1)[::-1]], [int(v) for v in lo_c[::-1]])
        grid = sitk.RegionOfInterest(self.output_grid, [int(v) for v in (hi_f - lo_f + 1)[::-1]], [int(v) for v in lo_f[::-1]])
        fine = sitk.Resample(coarse, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        out[lo_f[0] : hi_f[0] + 1, lo_f[1] : hi_f[1] + 1, lo_f[2] : hi_f[2] + 1] = sitk.GetArrayViewFromImage(fine) >= 0.5
        return out

    def _seed_distance(self) -> np.ndarray:
        """Every voxel's distance (mm) from the first seed: the session's cached frame (read-only for callers)."""
        return self._voxel_frame()[0]

    def _quality(self, r: np.ndarray, prior_only: np.ndarray) -> tuple[dict[str, float], list[str]]:
        p = self.params
        ray_len = self.ray_end * p.ray_step_mm
        at_border = r >= ray_len - 1.5 * p.ray_step_mm
        weight = np.sin((np.arange(p.polar_rays) + 0.5) * np.pi / p.polar_rays)[:, None] * np.ones_like(r)
        frac_border = float((at_border * weight).sum() / weight.sum())
        frac_prior = float((prior_only * weight).sum() / weight.sum())
        qc = {"roi_border_fraction": round(frac_border, 4), "prior_only_fraction": round(frac_prior, 4)}
        warnings = []
        if frac_border > p.leak_warning_fraction:
            warnings.append(
                f"the lesion reaches the ROI border on {100 * frac_border:.0f}% of its surface: it may leak into "
                "neighbouring tissue, or the ROI is too tight; check it, enlarge the ROI or add background clicks"
            )
        if frac_prior > 0.5:
            warnings.append(
                f"no clear border on {100 * frac_prior:.0f}% of the surface: the outline there follows the ROI "
                "shape; check it and correct with clicks"
            )
        return qc, warnings


def grow_region(
    images: Mapping[str, sitk.Image],
    seeds_ras: Any,
    roi: Any = None,
    parameters: RegionGrowingParameters | None = None,
    reference: str | None = None,
    background_ras: Any = None,
    session: RegionGrowingSession | None = None,
) -> RegionGrowingResult:
    """Segment one lesion from RAS seed point(s) (first = centre, others = corrections) over one or more sequences.

    ``images`` maps sequence name -> SimpleITK image (LPS, any grid; resampled
    onto ``reference``, default the first, inside the ROI only). ``roi`` is None,
    six RAS corner values, a :class:`RoiBox` or a markups ROI node.
    ``background_ras``: points that are not lesion. ``session``: a
    :class:`RegionGrowingSession` of the same images/ROI/first seed to reuse.
    Raises InputError / GeometryError naming the bad input; never returns an empty mask.
    """
    seeds = as_ras_points(seeds_ras)
    backgrounds = as_ras_points(background_ras, "background points", allow_empty=True)
    if session is None:
        session = RegionGrowingSession(images, seeds[0], roi, parameters, reference)
    ref = session.full_reference
    seed_indices = [ras_to_index(ref, p, f"seed {n + 1}") for n, p in enumerate(seeds)]
    bg_indices = [ras_to_index(ref, p, f"background point {n + 1}") for n, p in enumerate(backgrounds)]
    for n, point in enumerate(seeds):
        if not session.box.contains(point):
            raise InputError(f"seed {n + 1}", f"RAS {tuple(round(v, 2) for v in point)} lies outside the {session.box.name}")
    mask, qc, warnings = session.segment(seeds[1:], backgrounds)
    mask = session.to_output_grid(mask)
    for message in warnings:
        logger.warning("region growing: %s", message)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(session.output_grid)
    voxel_ml = float(np.prod(session.output_grid.GetSpacing())) / 1000.0
    return RegionGrowingResult(
        mask=image,
        reference_sequence=session.reference,
        seed_indices=seed_indices,
        lesion_median=dict(zip(session.names, (float(v) for v in session.lesion0[0]), strict=True)),
        volume_ml=float(mask.sum()) * voxel_ml,
        background_indices=bg_indices,
        qc=qc,
        warnings=warnings,
    )
