"""Lesion shapes: lobulated, textured deposits confined to bone unless they break out.

A lesion is a smooth union of a main ellipsoid (radii 4.5 mm or more, at most 42 %
of the body) and 1-3 lobules inside one vertebral body, optionally joined by capsules
to the pedicle and lamina through the pedicle base and articular pillar
(posterior-element involvement), to the ventral canal (broad-based epidural
extension) or to the prevertebral/paravertebral soft tissue (paraspinal extension).
The shape is intersected with the region it may occupy (the body, the reached
compartments within its own level, the bone destroyed along the route to the
pedicle), so deposits respect the canal and spare the disc, as metastases do. Margins are perturbed by a smooth random field (gently
for well-defined, strongly and with a 1.5 mm infiltrative blur for ill-defined
margins). The ground-truth mask is the set of voxels whose centre lies inside the
shape (partial-volume fraction >= 0.5), restricted to its largest face-connected
component so one interior seed reaches all of it.

Inside, the signal has a smooth texture (coefficient of variation 4 % homogeneous,
10 % heterogeneous) and, when heterogeneous, foci covering ~15 % of the lesion:
necrotic foci in lytic lesions (T2/STIR brighter, non-enhancing, central) or
sclerotic foci in mixed/sclerotic lesions (dark on every sequence).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .anatomy import SpinePlan, Vertebra, body_sdf, posterior_sdf, vertebra_frame
from .geometry import Grid, box_sdf, capsule_sdf, ellipsoid_sdf, smooth_min, soft_fractions, superellipse_sdf
from .noise import SmoothField
from .signal_rules import FOCUS_FACTORS, SEQUENCES

ILL_DEFINED_BLUR_MM = 1.5
MARGIN_AMPLITUDE_MM = {"well-defined": 0.5, "ill-defined": 1.8}
TEXTURE_CV = {"homogeneous": 0.04, "heterogeneous": 0.10}
FOCI_SHARE = 0.15
MIN_RADIUS_MM = 4.5


@dataclass
class LesionPlan:
    """Everything random about one lesion except its voxel texture (drawn at render time)."""

    label: int
    vertebra: int
    """Index into ``SpinePlan.vertebrae``."""
    pattern: str
    classes: dict[str, str]
    ratios: dict[str, float]
    margin: str
    homogeneity: str
    extension: str
    posterior: bool
    diameter_mm: float
    offset: tuple[float, float, float]
    """Centre offset in the body, as fractions (-1..1) of the free room along (a, s, r)."""
    elongation: tuple[float, float, float]
    lobules: list[tuple[tuple[float, float, float], float, float]] = field(default_factory=list)
    """(unit direction, size relative to main radii, distance relative to main radii)."""
    side: int = 1
    """Side (+1 right, -1 left) of posterior-element or paraspinal extension."""
    lamina: bool = False
    paraspinal_angle: float = 0.0

    @property
    def focus_type(self) -> str:
        return "necrotic" if self.pattern == "lytic" else "sclerotic"


def plan_lesion_shape(rng: np.random.Generator, plan: LesionPlan) -> None:
    """Draw the geometric parameters of a lesion in place (cheap, no arrays)."""
    plan.offset = tuple(float(x) for x in rng.uniform(-0.8, 0.8, size=3))  # type: ignore[assignment]
    plan.elongation = tuple(float(x) for x in rng.uniform(0.8, 1.2, size=3))  # type: ignore[assignment]
    n_lobules = int(rng.integers(1, 3)) if plan.margin == "well-defined" else int(rng.integers(2, 4))
    plan.lobules = []
    for _ in range(n_lobules):
        d = rng.normal(size=3)
        d /= max(float(np.linalg.norm(d)), 1e-6)
        plan.lobules.append((tuple(float(x) for x in d), float(rng.uniform(0.45, 0.65)), float(rng.uniform(0.55, 0.85))))  # type: ignore[arg-type]
    plan.side = 1 if rng.random() < 0.5 else -1
    plan.lamina = bool(rng.random() < 0.5)
    plan.paraspinal_angle = float(rng.uniform(-1.0, 1.0))


@dataclass
class RenderedLesion:
    """A lesion on a crop of the grid: fraction, mask and per-sequence texture."""

    plan: LesionPlan
    start: tuple[int, int, int]
    """Crop start (i, j, k) image index; arrays below are (lr, si, ap) crops."""
    fraction: np.ndarray
    mask: np.ndarray
    texture: dict[str, np.ndarray]
    focus: np.ndarray
    base: np.ndarray | None = None
    """Texture before foci (what :func:`.realism.roughen_lesion` builds on)."""
    distance: np.ndarray | None = None
    """Signed distance (mm, negative inside) to the lesion's surface on the crop."""
    field_box: tuple[list[float], list[float]] | None = None
    """Image-mm box (lo, hi) the lesion's random fields cover (grid-independent)."""
    stop: tuple[int, int, int] | None = None

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        i, j, k = self.start
        nz, ny, nx = self.fraction.shape
        return (slice(k, k + nz), slice(j, j + ny), slice(i, i + nx))


def _main_geometry(plan: LesionPlan, vert: Vertebra) -> tuple[np.ndarray, np.ndarray]:
    """Local centre (a, s, r) and radii of the main ellipsoid, kept inside the body."""
    radius = plan.diameter_mm / 2
    loss = vert.height_loss
    h_eff = vert.height * (1.0 - loss)
    limits = np.array([0.42 * vert.depth, 0.42 * h_eff, 0.42 * vert.width])
    radii = np.clip(radius * np.asarray(plan.elongation), MIN_RADIUS_MM, np.maximum(limits, MIN_RADIUS_MM))
    s_mid = loss * vert.height / 2
    room = np.maximum(np.array([vert.depth / 2, h_eff / 2, vert.width / 2]) - radii, 0.0) * 0.6
    centre = np.array([0.0, s_mid, 0.0]) + np.asarray(plan.offset) * room
    return centre, radii


Capsule = tuple[np.ndarray, np.ndarray, float]


def _extension_targets(plan: LesionPlan, vert: Vertebra, centre: np.ndarray, radii: np.ndarray) -> tuple[list[Capsule], list[Capsule]]:
    """Capsules (start, end, radius) in the local frame that carry the lesion out of the body.

    Returns (bone route, soft-tissue extensions). The bone route to the pedicle (and on
    to the lamina) runs through the pedicle base and the articular pillar, never across
    the canal; the bone it passes through is destroyed, so it is also allowed space.
    """
    bone: list[Capsule] = []
    soft: list[Capsule] = []
    canal_front = vert.depth / 2 + 2.0
    if plan.posterior:
        side = plan.side if abs(plan.offset[2]) < 0.2 else (1 if plan.offset[2] > 0 else -1)
        rp = vert.canal_lr / 2 + vert.ped_w / 2
        radius = min(vert.ped_w, vert.ped_h) / 2 + 1.0
        base = np.array([0.6 * vert.depth / 2, -0.15 * vert.height, side * min(rp, 0.75 * vert.width / 2)])
        pedicle = np.array([canal_front + 0.4 * vert.canal_ap, -0.15 * vert.height, side * rp])
        bone += [(centre, base, radius), (base, pedicle, radius)]
        if plan.lamina:
            pillar = np.array([canal_front + vert.canal_ap - 2.0, 0.1 * vert.height, side * rp])
            lamina = np.array([canal_front + vert.canal_ap + vert.lamina_t / 2, 0.1 * vert.height, side * vert.canal_lr / 4])
            bone += [(pedicle, pillar, radius), (pillar, lamina, vert.lamina_t / 2 + 1.0)]
    if plan.extension in ("epidural", "both"):
        # broad-based: the posterior wall gives way along most of the lesion
        target = np.array([canal_front + 3.0, centre[1], 0.7 * centre[2]])
        soft.append((centre, target, max(5.0, 0.6 * min(radii[1], radii[2]))))
    if plan.extension in ("paraspinal", "both"):
        phi = plan.paraspinal_angle
        target = np.array([-(vert.depth / 2 + 7.0) * math.cos(phi), centre[1], (vert.width / 2 + 7.0) * math.sin(phi)])
        soft.append((centre, target, 6.0))
    return bone, soft


def _capsules_sdf(caps: list[Capsule], a: np.ndarray, s: np.ndarray, r: np.ndarray, d: np.ndarray | None = None) -> np.ndarray | None:
    """Smooth union of capsules (with ``d`` if given)."""
    for p0, p1, rad in caps:
        c = capsule_sdf(a - p0[0], s - p0[1], r - p0[2], p1 - p0, rad)
        d = c if d is None else smooth_min(d, c, 2.0)
    return d


def _allowed_sdf(plan: LesionPlan, vert: Vertebra, a: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Where this lesion may be: its body, plus the compartments it extends into."""
    d_body, _ = body_sdf(vert, a, s, r)
    d = d_body
    half_h = vert.height / 2
    s_mid = vert.height_loss * vert.height / 2
    level_band = np.abs(s) - np.float32(half_h + max(vert.disc_below, 3.0) / 2 - 0.5)
    if plan.posterior:
        d = np.minimum(d, posterior_sdf(vert, a, s, r))
    if plan.extension in ("epidural", "both"):
        lo, hi = vert.depth / 2 - 2.0, vert.depth / 2 + 2.0 + 0.5 * vert.canal_ap
        epi = np.maximum(box_sdf((a - (lo + hi) / 2, (hi - lo) / 2), (r, vert.canal_lr / 2)), level_band)
        d = np.minimum(d, epi)
    if plan.extension in ("paraspinal", "both"):
        cross = superellipse_sdf(a, r, vert.depth / 2, vert.width / 2, p=2.4)
        para = np.maximum(np.maximum(-cross, cross - 12.0), np.abs(s - s_mid) - np.float32(half_h * (1 - vert.height_loss / 2)))
        para = np.maximum(para, a - np.float32(vert.depth / 2 - 4.0))
        d = np.minimum(d, para)
    return d


def _crop_box(
    grid: Grid, vert: Vertebra, points_local: np.ndarray, pad_mm: float
) -> tuple[tuple[int, int, int], tuple[int, int, int], list[float], list[float]]:
    """Voxel crop around the lesion and the image-mm box its random fields cover.

    The mm box depends on the plan only (whole millimetres, full left-right extent), so
    the fields, and the lesion, are the same at any resolution.
    """
    c, sn = math.cos(vert.tilt), math.sin(vert.tilt)
    a, s = points_local[:, 0], points_local[:, 1]
    u = vert.centre_u + a * c + s * sn
    v = vert.centre_v - a * sn + s * c
    fov = grid.fov_mm
    lo_mm = [max(math.floor(u.min() - pad_mm), 0.0), max(math.floor(v.min() - pad_mm), 0.0), 0.0]
    hi_mm = [min(math.ceil(u.max() + pad_mm), fov[0]), min(math.ceil(v.max() + pad_mm), fov[1]), fov[2]]
    start = (max(0, int(math.ceil(lo_mm[0] / grid.spacing[0] - 0.5))), max(0, int(math.ceil(lo_mm[1] / grid.spacing[1] - 0.5))), 0)
    stop = (min(grid.size[0], int(math.floor(hi_mm[0] / grid.spacing[0] - 0.5)) + 1),
            min(grid.size[1], int(math.floor(hi_mm[1] / grid.spacing[1] - 0.5)) + 1), grid.size[2])
    return start, stop, lo_mm, hi_mm


def render_lesion(grid: Grid, spine: SpinePlan, plan: LesionPlan, rng: np.random.Generator) -> RenderedLesion:
    """Fraction, mask and texture of one lesion on a crop around it."""
    vert = spine.vertebrae[plan.vertebra]
    centre, radii = _main_geometry(plan, vert)
    bone_route, soft_ext = _extension_targets(plan, vert, centre, radii)
    caps = bone_route + soft_ext
    lobules = [(centre + dist * np.asarray(d) * radii, size * radii) for d, size, dist in plan.lobules]

    # crop: every part of the shape plus margin noise, blur and a few voxels
    corners = [centre + np.array(sign) * radii for sign in itertools.product((-1.0, 1.0), repeat=3)]
    for c_l, r_l in lobules:
        corners += [c_l + r_l, c_l - r_l]
    for p0, p1, rad in caps:
        corners += [p0 + rad, p0 - rad, p1 + rad, p1 - rad]
    pad = 3.0 * MARGIN_AMPLITUDE_MM[plan.margin] + ILL_DEFINED_BLUR_MM + 3.0 * max(grid.spacing[:2]) + 3.0
    start, stop, lo_mm, hi_mm = _crop_box(grid, vert, np.array(corners), pad)
    u, v, w = grid.axes_mm(start, stop)
    a, s = vertebra_frame(vert, u, v)
    r_local = (w - np.float32(spine.w0)).astype(np.float32)

    d = ellipsoid_sdf(a - centre[0], s - centre[1], r_local - centre[2], *radii)
    for c_l, r_l in lobules:
        d = smooth_min(d, ellipsoid_sdf(a - c_l[0], s - c_l[1], r_local - c_l[2], *r_l), 2.0)
    d = _capsules_sdf(caps, a, s, r_local, d)

    margin_field = SmoothField(rng, hi_mm, corr_mm=5.0, lo_mm=lo_mm).sample(grid, start, stop)
    amplitude = min(MARGIN_AMPLITUDE_MM[plan.margin], 0.25 * float(radii.min()))
    d = d + np.float32(amplitude) * margin_field
    allowed = _allowed_sdf(plan, vert, a, s, r_local)
    if bone_route:  # destroyed bone along the route, but not the canal it skirts
        canal = superellipse_sdf(a - (vert.depth / 2 + 2.0 + vert.canal_ap / 2), r_local, vert.canal_ap / 2, vert.canal_lr / 2)
        allowed = np.minimum(allowed, np.maximum(_capsules_sdf(bone_route, a, s, r_local), -canal))
    d = np.maximum(d, allowed)
    blur = ILL_DEFINED_BLUR_MM if plan.margin == "ill-defined" else 0.0
    (frac,), distance = soft_fractions(np.broadcast_to(d, margin_field.shape).astype(np.float32), grid.array_spacing, blur=blur)

    mask = frac >= 0.5
    labelled, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(mask, labelled, index=np.arange(1, n + 1))
        mask = labelled == (int(np.argmax(sizes)) + 1)
    keep = ndimage.binary_dilation(mask, iterations=2)
    frac = np.where(keep, frac, np.float32(0.0)).astype(np.float32)

    # texture and foci
    texture_field = SmoothField(rng, hi_mm, corr_mm=3.0, lo_mm=lo_mm).sample(grid, start, stop)
    foci_field = SmoothField(rng, hi_mm, corr_mm=4.0, lo_mm=lo_mm).sample(grid, start, stop)
    focus = np.zeros_like(frac)
    if plan.homogeneity == "heterogeneous" and mask.any():
        q = np.sqrt(((a - centre[0]) / radii[0]) ** 2 + ((s - centre[1]) / radii[1]) ** 2 + ((r_local - centre[2]) / radii[2]) ** 2)
        score = foci_field + (1.2 * np.clip(1.0 - q, 0.0, 1.0) if plan.focus_type == "necrotic" else 0.0)
        score = np.broadcast_to(score, frac.shape)
        threshold = float(np.quantile(score[mask], 1.0 - FOCI_SHARE))
        focus = np.clip((score - threshold) / 0.3 + 0.5, 0.0, 1.0).astype(np.float32)
    cv = np.float32(TEXTURE_CV[plan.homogeneity])
    base = 1.0 + cv * texture_field
    factors = FOCUS_FACTORS[plan.focus_type]
    texture = {seq: np.maximum(base * (1.0 + focus * np.float32(factors[seq] - 1.0)), 0.05).astype(np.float32) for seq in SEQUENCES}
    return RenderedLesion(plan=plan, start=start, fraction=frac, mask=mask, texture=texture, focus=focus, base=base,
                          distance=distance, field_box=(lo_mm, hi_mm), stop=stop)
