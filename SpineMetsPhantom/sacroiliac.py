"""Sacroiliac-joint phantom: oblique-coronal T1 / STIR of the sacrum, both ilia and joints.

Study D (fat metaplasia on sacroiliac-joint MRI and axial spondyloarthritis, Insights
Imaging 2024, doi 10.1186/s13244-024-01659-y) needs a field of view the spine phantom
does not have. This module draws one: a sacrum that tapers from the alae downwards,
pierced by four pairs of sacral foramina, two ilia lateral to it, and between them
the two cartilage-lined joint spaces (about 2.5 mm wide, slightly C-shaped, shifting
across slices as the auricular surface is oblique), each bone with a 1 mm cortex,
in muscle with subcutaneous fat at the lateral edges. Simple but plausible geometry,
not an anatomical atlas.

Hidden label and what it drives (the only rules that look at the label):

=====================  ================================  ================================
item                   axSpA (``axspa = yes``)           non-axSpA (``axspa = no``)
=====================  ================================  ================================
severity               Beta(2, 2); 15 % near zero         --
fat-metaplasia areas   1 + Binomial(5, severity)         0 (55 %), 1 (30 %), 2 (15 %)
area depth into bone   3-9 mm (scaled by severity)       2-4.5 mm
area length / height   6-18 mm / 4-10 mm                 4-9 mm / 3-6 mm
bone-marrow oedema     45 % (STIR-bright, not masked)    15 %
age, sex               32 +- 9 y, 65 % male              40 +- 12 y, 45 % male
=====================  ================================  ================================

Fat metaplasia is subchondral marrow turned to fat: half-ellipsoids sitting on the
joint surface (sacral side 60 %, iliac side 40 %), with a fat fraction of ~0.95
against the ~0.6 of normal adult marrow, so T1-bright and STIR-dark; its mask is the
``mask`` of the cohort (label 1). Signals reuse the spine phantom's tissue table
(:func:`.anatomy.tissue_signal`) and centre settings, so centre C2 is darker, noisier
and suppresses fat less well (a domain shift for the external test).

Image axes (LPS): axis 0 runs right -> left, axis 1 superior -> inferior, axis 2
anterior -> posterior (slices stacked front to back), a proper rotation. Everything
is deterministic from the case seed. Data from it is synthetic and never clinical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from SpineMetsCore.errors import InputError

from .anatomy import tissue_signal
from .config import CENTRES
from .geometry import Grid, soft_fractions
from .noise import SmoothField, bias_field, rician

SI_VERSION = "si-1"
"""Bumped whenever the same seed would give different sacroiliac data."""
SI_SEQUENCES: tuple[str, ...] = ("T1", "STIR")
SI_DIRECTION: tuple[float, ...] = (
    1.0, 0.0, 0.0,
    0.0, 0.0, 1.0,
    0.0, -1.0, 0.0,
)
"""Row-major direction: columns are the image axes in LPS (R->L, S->I, A->P)."""
SI_DEFAULT_SIZE: tuple[int, int, int] = (128, 96, 12)
SI_FOV_MM: tuple[float, float, float] = (200.0, 150.0, 48.0)
SI_MIN_SIZE = 8

SI_BACKGROUND, SI_SACRUM, SI_ILIUM, SI_JOINT, SI_CORTEX, SI_FORAMEN, SI_MUSCLE, SI_FAT = range(8)
SI_ANATOMY_LABELS: dict[int, str] = {
    SI_BACKGROUND: "background",
    SI_SACRUM: "sacrum_marrow",
    SI_ILIUM: "ilium_marrow",
    SI_JOINT: "joint_space",
    SI_CORTEX: "cortex",
    SI_FORAMEN: "sacral_foramen",
    SI_MUSCLE: "muscle",
    SI_FAT: "fat",
}
FAT_METAPLASIA = 1
"""Label of fat metaplasia in the lesion mask."""

MARROW_FAT_FRACTION = (0.4, 0.6)
METAPLASIA_FAT_FRACTION = 0.95
OEDEMA_FAT_FRACTION = 0.15
OEDEMA_WATER_BOOST = {"T1": 0.85, "STIR": 3.2}
"""Oedema relative to the marrow signal it replaces (T1 darker, STIR brighter)."""
SNR = {"T1": 30.0, "STIR": 22.0}
SNR_3T_FACTOR = 1.6
JOINT_SPAN_MM = (35.0, 125.0)
"""Superior and inferior ends of the cartilaginous joint (image mm from the top)."""
CORTEX_MM = 1.0
JOINT_WIDTH_MM = (2.0, 3.0)

P_MALE = {"yes": 0.65, "no": 0.45}
AGE_MEAN_SD = {"yes": (32.0, 9.0), "no": (40.0, 12.0)}
P_OEDEMA = {"yes": 0.45, "no": 0.15}
NON_AXSPA_COUNT_PROBS = (0.55, 0.30, 0.15)


@dataclass(frozen=True)
class SIConfig:
    """Grid and scanner switches of the sacroiliac phantom (defaults: ~0.3 s per case)."""

    size: tuple[int, int, int] = SI_DEFAULT_SIZE
    noise: bool = True
    bias_field: bool = True

    def __post_init__(self) -> None:
        if len(self.size) != 3 or any(int(n) != n or n < SI_MIN_SIZE for n in self.size):
            raise InputError("SIConfig.size", f"needs three integers >= {SI_MIN_SIZE}, got {self.size!r}")

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(round(f / n, 6) for f, n in zip(SI_FOV_MM, self.size, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class AreaPlan:
    """One subchondral area (fat metaplasia or oedema): a half-ellipsoid on a joint surface."""

    side: int
    """+1: patient left joint (image u above the midline), -1: right joint."""
    bone: str
    """``sacrum`` or ``ilium``: which side of the joint the area sits on."""
    v_mm: float
    w_mm: float
    depth_mm: float
    half_length_mm: float
    half_height_mm: float


@dataclass
class SIPlan:
    seed: int
    axspa: str
    age: int
    sex: str
    centre: str
    field_strength: float
    severity: float
    midline_mm: float
    sacral_half_width_mm: float
    taper: float
    joint_width_mm: float
    obliquity_mm: float
    marrow_fat_fraction: float
    metaplasia: list[AreaPlan] = field(default_factory=list)
    oedema: list[AreaPlan] = field(default_factory=list)
    scanner_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gains: dict[str, float] = field(default_factory=dict)


@dataclass
class SICase:
    case_id: str
    seed: int
    images: dict[str, sitk.Image]
    lesion_mask: sitk.Image
    anatomy: sitk.Image
    record: dict[str, object]
    seed_lps: tuple[float, float, float] | None
    """Deepest voxel of the largest fat-metaplasia area (None without fat metaplasia)."""
    roi_lps: tuple[tuple[float, float, float], tuple[float, float, float]]
    """Min/max LPS corners of a box around both joints (always defined)."""


def _max(*arrays: np.ndarray | float) -> np.ndarray:
    """Elementwise maximum of broadcastable arrays (intersection of signed distances)."""
    out = np.asarray(arrays[0])
    for a in arrays[1:]:
        out = np.maximum(out, a)
    return out


def _streams(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(4)]


def plan_si_case(seed: int, axspa: str, centre: str, field_strength: float | None = None) -> SIPlan:
    """Every random choice of one sacroiliac case (numbers only)."""
    if axspa not in ("yes", "no"):
        raise InputError("axspa", f"must be 'yes' or 'no', got {axspa!r}")
    if centre not in CENTRES:
        raise InputError("centre", f"unknown centre {centre!r}; known: {tuple(CENTRES)}")
    rng = _streams(seed)[0]
    mean, sd = AGE_MEAN_SD[axspa]
    age = int(np.clip(round(rng.normal(mean, sd)), 18, 80))
    sex = "M" if rng.random() < P_MALE[axspa] else "F"
    if field_strength is None:
        field_strength = 3.0 if rng.random() < CENTRES[centre].p_3t else 1.5
    else:
        rng.random()
    if axspa == "yes":
        severity = 0.03 if rng.random() < 0.15 else float(rng.beta(2.0, 2.0))
        n_fm = 1 + int(rng.binomial(5, severity))
        if severity < 0.05:
            n_fm = int(rng.integers(0, 2))
    else:
        severity = 0.0
        n_fm = int(rng.choice(3, p=NON_AXSPA_COUNT_PROBS))
    plan = SIPlan(
        seed=seed, axspa=axspa, age=age, sex=sex, centre=centre, field_strength=float(field_strength),
        severity=round(severity, 4), midline_mm=float(SI_FOV_MM[0] / 2 + rng.normal(0.0, 4.0)),
        sacral_half_width_mm=float(rng.uniform(48.0, 56.0)), taper=float(rng.uniform(0.22, 0.30)),
        joint_width_mm=float(rng.uniform(*JOINT_WIDTH_MM)), obliquity_mm=float(rng.uniform(-6.0, 6.0)),
        marrow_fat_fraction=float(rng.uniform(*MARROW_FAT_FRACTION) + 0.002 * (age - 35)),
    )
    for _ in range(n_fm):
        plan.metaplasia.append(_area(rng, axspa == "yes", severity))
    p_oedema = P_OEDEMA[axspa]
    if rng.random() < p_oedema:
        plan.oedema.append(_area(rng, True, max(severity, 0.4)))
    plan.scanner_centre = (float(rng.normal(0.0, 3.0)), float(rng.normal(0.0, 5.0)), float(rng.normal(0.0, 5.0)))
    plan.gains = {seq: CENTRES[centre].gain * float(rng.uniform(0.85, 1.15)) for seq in SI_SEQUENCES}
    return plan


def _area(rng: np.random.Generator, disease: bool, severity: float) -> AreaPlan:
    side = 1 if rng.random() < 0.5 else -1
    bone = "sacrum" if rng.random() < 0.6 else "ilium"
    lo, hi = JOINT_SPAN_MM
    v = float(rng.uniform(lo + 8.0, hi - 8.0))
    w = float(rng.uniform(0.25, 0.75) * SI_FOV_MM[2])
    if disease:
        scale = 0.6 + 0.6 * severity
        depth = float(rng.uniform(3.0, 9.0)) * scale
        length = float(rng.uniform(6.0, 18.0)) * scale
        height = float(rng.uniform(4.0, 10.0)) * scale
    else:
        depth = float(rng.uniform(2.0, 4.5))
        length = float(rng.uniform(4.0, 9.0))
        height = float(rng.uniform(3.0, 6.0))
    return AreaPlan(side, bone, v, w, max(depth, 1.8), max(length, 3.5), max(height, 3.0))


def si_grid(config: SIConfig, centre_lps: tuple[float, float, float]) -> Grid:
    """Grid of the oblique-coronal field of view centred at ``centre_lps``."""
    size, spacing = config.size, config.spacing
    half = np.array([(n - 1) * s / 2.0 for n, s in zip(size, spacing, strict=True)])
    origin = np.asarray(centre_lps, dtype=float) - np.asarray(SI_DIRECTION, dtype=float).reshape(3, 3) @ half
    return Grid(tuple(size), tuple(spacing), tuple(float(round(o, 6)) for o in origin), SI_DIRECTION)  # type: ignore[arg-type]


def _sacral_half_width(plan: SIPlan, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Distance (mm) from the midline to the sacral joint surface at height ``v`` and depth ``w``."""
    lo, hi = JOINT_SPAN_MM
    t = np.clip((v - lo) / (hi - lo), -0.3, 1.3)
    curve = 3.0 * np.sin(np.pi * np.clip(t, 0.0, 1.0))
    oblique = plan.obliquity_mm * (w / SI_FOV_MM[2] - 0.5)
    return plan.sacral_half_width_mm - plan.taper * (v - lo) + curve + oblique


def _areas_distance(plan: SIPlan, areas: list[AreaPlan], ax: np.ndarray, v: np.ndarray, w: np.ndarray,
                    hw: np.ndarray, jw: float, texture: np.ndarray) -> np.ndarray:
    """Signed distance (mm, negative inside) to the union of half-ellipsoidal areas."""
    out = np.full(np.broadcast_shapes(ax.shape, v.shape, w.shape), np.float32(1e3), dtype=np.float32)
    side_sign = np.sign(ax)
    r = np.abs(ax)
    for area in areas:
        same_side = side_sign == area.side
        s = hw - r if area.bone == "sacrum" else r - hw - jw
        s = np.where(same_side, s - CORTEX_MM, -50.0)
        q = np.sqrt(((v - area.v_mm) / area.half_length_mm) ** 2 + ((w - area.w_mm) / area.half_height_mm) ** 2
                    + (np.maximum(s, 0.0) / area.depth_mm) ** 2)
        d = (q - 1.0) * min(area.depth_mm, area.half_length_mm, area.half_height_mm)
        d = np.maximum(d, -s)  # never in front of the subchondral plate
        out = np.minimum(out, d.astype(np.float32))
    return out + np.float32(0.8) * texture


def generate_si_case(seed: int, case_id: str, axspa: str, centre: str, config: SIConfig | None = None,
                     field_strength: float | None = None) -> SICase:
    """One sacroiliac case; the same arguments always give bit-identical images."""
    config = config or SIConfig()
    plan = plan_si_case(seed, axspa, centre, field_strength)
    _, rng_anatomy, rng_lesion, rng_noise = _streams(seed)
    grid = si_grid(config, plan.scanner_centre)
    u, v, w = grid.axes_mm()
    spacing = grid.array_spacing
    ax = u - np.float32(plan.midline_mm)
    hw = _sacral_half_width(plan, v, w).astype(np.float32)
    jw = plan.joint_width_mm
    r = np.abs(ax)
    lo, hi = JOINT_SPAN_MM

    # bones as signed distances (negative inside); the ilium ends laterally and vertically
    top, bottom = 18.0, 145.0
    sacrum_d = _max(r - hw, top - v, v - bottom).astype(np.float32)
    ilium_w = 46.0 - 0.12 * (v - lo)
    ilium_d = _max(hw + jw - r, r - hw - jw - ilium_w, 4.0 - v, v - (hi + 6.0)).astype(np.float32)
    joint_d = _max(np.abs(r - hw - jw / 2) - jw / 2, lo - v, v - hi).astype(np.float32)
    foramina = np.full_like(sacrum_d, 1e3)
    for k, vf in enumerate((42.0, 64.0, 86.0, 106.0)):
        radius = 4.5 - 0.6 * k
        lateral = 0.42 * _sacral_half_width(plan, np.float32(vf), w)
        for sign in (-1.0, 1.0):
            dist = np.sqrt((ax - sign * lateral) ** 2 + (v - vf) ** 2) - radius
            foramina = np.minimum(foramina, dist.astype(np.float32))
    subcut_d = (np.float32(SI_FOV_MM[0] / 2 - 12.0) - r).astype(np.float32)

    (f_sacrum, f_sacrum_marrow), _ = soft_fractions(sacrum_d, spacing, offsets=(0.0, CORTEX_MM))
    (f_ilium, f_ilium_marrow), _ = soft_fractions(ilium_d, spacing, offsets=(0.0, CORTEX_MM))
    (f_joint,), _ = soft_fractions(joint_d, spacing)
    (f_foramen,), _ = soft_fractions(foramina, spacing)
    (f_fat,), _ = soft_fractions(subcut_d, spacing)
    full = grid.shape
    f_sacrum, f_sacrum_marrow, f_ilium, f_ilium_marrow, f_joint, f_foramen, f_fat = (
        np.broadcast_to(f, full).astype(np.float32)
        for f in (f_sacrum, f_sacrum_marrow, f_ilium, f_ilium_marrow, f_joint, f_foramen, f_fat))
    f_sacrum_marrow = f_sacrum_marrow * (1.0 - f_foramen)
    f_marrow = np.clip(f_sacrum_marrow + f_ilium_marrow, 0.0, 1.0)

    texture_marrow = SmoothField(rng_anatomy, grid.fov_mm, 6.0).sample(grid)
    texture_soft = SmoothField(rng_anatomy, grid.fov_mm, 12.0).sample(grid)
    texture_fm = SmoothField(rng_lesion, grid.fov_mm, 5.0).sample(grid)
    texture_oe = SmoothField(rng_lesion, grid.fov_mm, 8.0).sample(grid)
    fm_d = _areas_distance(plan, plan.metaplasia, ax, v, w, hw, jw, texture_fm)
    oe_d = _areas_distance(plan, plan.oedema, ax, v, w, hw, jw, texture_oe)
    (f_fm,), _ = soft_fractions(fm_d, spacing)
    (f_oe,), _ = soft_fractions(oe_d, spacing)
    f_fm = f_fm * f_marrow
    f_oe = f_oe * f_marrow * (1.0 - f_fm)

    centre = CENTRES[plan.centre]
    fs = plan.field_strength
    bias = bias_field(rng_noise, grid, 0.04 * centre.bias_scale, 0.0) if config.bias_field else None
    images: dict[str, sitk.Image] = {}
    for seq in SI_SEQUENCES:
        def t(name: str, seq: str = seq) -> np.float32:
            return np.float32(tissue_signal(name, seq, fs, centre))

        def marrow(ff: float, seq: str = seq) -> np.float32:
            return np.float32(ff * t("fat", seq) + (1.0 - ff) * t("red_marrow", seq))

        img = t("muscle") * (1.0 + np.float32(0.04) * texture_soft) * np.ones_like(f_fat)
        img = img + f_fat * (t("fat") - img)
        bone = np.clip(f_sacrum + f_ilium, 0.0, 1.0)
        img = img + bone * (t("cortex") - img)
        normal = marrow(min(plan.marrow_fat_fraction, 0.85)) * (1.0 + np.float32(0.06) * texture_marrow)
        img = img + f_marrow * (normal - img)
        oedema = marrow(OEDEMA_FAT_FRACTION) * np.float32(OEDEMA_WATER_BOOST[seq])
        img = img + f_oe * (oedema - img)
        img = img + f_fm * (marrow(METAPLASIA_FAT_FRACTION) * (1.0 + np.float32(0.03) * texture_marrow) - img)
        img = img + (f_foramen * f_sacrum) * (t("soft") - img)
        cartilage = np.float32(0.30 if seq == "T1" else 0.55)
        img = img + f_joint * (cartilage - img)
        sigma = 1.0 / (SNR[seq] * (SNR_3T_FACTOR if fs >= 3.0 else 1.0) * centre.snr_factor)
        if bias is not None:
            img = img * bias
        gain = np.float32(plan.gains[seq])
        img = img * gain
        if config.noise:
            img = rician(rng_noise, img, sigma * float(gain))
        images[seq] = grid.image(img.astype(np.float32))

    labels = np.full(grid.shape, SI_MUSCLE, np.uint8)
    labels[f_fat >= 0.5] = SI_FAT
    labels[(f_sacrum >= 0.5) | (f_ilium >= 0.5)] = SI_CORTEX
    labels[f_ilium_marrow >= 0.5] = SI_ILIUM
    labels[f_sacrum_marrow >= 0.5] = SI_SACRUM
    labels[(f_foramen >= 0.5) & (f_sacrum >= 0.5)] = SI_FORAMEN
    labels[f_joint >= 0.5] = SI_JOINT
    fm_mask = ((f_fm >= 0.5) & (f_marrow >= 0.5)).astype(np.uint8)
    voxel_ml = grid.voxel_volume_ml
    n_voxels = int(fm_mask.sum())
    components, n_comp = ndimage.label(fm_mask)
    seed_lps = None
    if n_comp:
        sizes = ndimage.sum(fm_mask, components, index=range(1, n_comp + 1))
        largest = components == (int(np.argmax(sizes)) + 1)
        depth = ndimage.distance_transform_edt(np.pad(largest, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
        k, j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
        seed_lps = grid.index_to_lps((i, j, k))
    joints = np.argwhere(labels == SI_JOINT)
    if len(joints) == 0:
        raise RuntimeError(f"sacroiliac case {case_id} has no joint space on its grid")
    pad = np.ceil(15.0 / np.asarray(spacing)).astype(int)
    lo_idx = np.maximum(joints.min(0) - pad, 0)[::-1]
    hi_idx = np.minimum(joints.max(0) + pad, np.asarray(grid.shape) - 1)[::-1]
    roi = grid.box_to_lps(lo_idx, hi_idx)
    record: dict[str, object] = {
        "seed": plan.seed, "axspa": plan.axspa, "centre": plan.centre, "field_strength": plan.field_strength,
        "age": plan.age, "sex": plan.sex, "fm_volume_ml": round(n_voxels * voxel_ml, 6),
        "fm_areas": len(plan.metaplasia), "fm_components": int(n_comp),
        "bone_marrow_oedema": "yes" if plan.oedema else "no", "severity": plan.severity,
        "marrow_fat_fraction": round(plan.marrow_fat_fraction, 4), "phantom_version": SI_VERSION,
    }
    return SICase(case_id=case_id, seed=plan.seed, images=images, lesion_mask=grid.image(fm_mask),
                  anatomy=grid.image(labels), record=record, seed_lps=seed_lps,
                  roi_lps=(tuple(roi[0]), tuple(roi[1])))  # type: ignore[arg-type]


def subchondral_fat_signal(case: SICase, band_mm: float = 8.0) -> float:
    """Mean T1 of the marrow within ``band_mm`` of a joint over mean T1 of all marrow.

    A reader-free summary of how much subchondral marrow turned to fat; tests use it to
    show that the hidden label is visible in the image.
    """
    labels = sitk.GetArrayViewFromImage(case.anatomy)
    t1 = sitk.GetArrayViewFromImage(case.images["T1"])
    spacing = case.anatomy.GetSpacing()[::-1]
    near = ndimage.distance_transform_edt(labels != SI_JOINT, sampling=spacing) <= band_mm
    marrow = (labels == SI_SACRUM) | (labels == SI_ILIUM)
    if not (marrow & near).any():
        return math.nan
    return float(t1[marrow & near].mean() / t1[marrow].mean())
