"""One phantom case: four co-registered sequences, lesion mask, anatomy map, truth.

Image formation, per sequence: normal anatomy (partial volume included) -> lesions
painted with intensities solved so that the noise-free mean over each ground-truth
mask is the planned multiple of the normal-marrow mean -> [realism: peritumoral
oedema, slice-profile and in-plane blur] -> smooth receive-coil bias (stronger at 3 T
and at centre C2; [realism: spine-array depth fall-off, a smooth random field and a
per-sequence field, slice-to-slice gain]) -> scanner gain -> Rician magnitude noise
(SNR higher at 3 T, lower at centre C2). The [realism] steps, rougher lesion texture
and mottled marrow are :mod:`.realism` (``PhantomConfig.realism``, on by default since
version 2; with it the lesion scale is solved on the blurred image, so the planned
ratios still hold).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .anatomy import NORMAL_MARROW, NORMAL_MARROW_MARGIN_MM, AnatomyModel, render_anatomy
from .config import CENTRES, PhantomConfig
from .geometry import Grid
from .lesions import RenderedLesion, render_lesion
from .noise import bias_field, rician
from .plan import CasePlan, plan_case, plan_record, streams
from .realism import (
    OEDEMA_SIGNAL,
    OEDEMA_WIDTH_MM,
    coil_bias,
    marrow_islands,
    oedema_halo,
    point_spread,
    psf_sigma,
    roughen_lesion,
    sequence_bias,
    slice_gains,
)
from .signal_rules import SEQUENCES

logger = logging.getLogger(__name__)

SNR_1P5T: dict[str, float] = {"T1": 35.0, "T2": 30.0, "STIR": 25.0, "T1CE": 28.0}
"""Signal-to-noise ratio of relative signal 1.0 at 1.5 T, centre C1."""
SNR_3T_FACTOR = 1.6
BIAS_AMPLITUDE = {1.5: 0.03, 3.0: 0.05}
SEPARABILITY_MARGIN_MM = 10.0
MIN_CNR = 4.0
COIL_GAIN = {1.5: 0.06, 3.0: 0.10}


@dataclass
class LesionInfo:
    """Ground truth of one lesion (mask label ``label``); positions in LPS millimetres."""

    label: int
    level: str
    centre_lps: tuple[float, float, float]
    """Centroid of the mask."""
    bbox_min_lps: tuple[float, ...]
    bbox_max_lps: tuple[float, ...]
    """Corners of the box enclosing the mask voxels (voxel edges included)."""
    bbox_index_min: tuple[int, int, int]
    bbox_index_max: tuple[int, int, int]
    """Inclusive image-index box (i: A->P, j: S->I, k: L->R)."""
    seed_lps: tuple[float, float, float]
    seed_index: tuple[int, int, int]
    """Deepest voxel of the mask outside internal foci: a natural region-growing seed."""
    volume_ml: float
    n_voxels: int
    signal: dict[str, str]
    """Signal class per sequence vs normal marrow (hypo/iso/hyper)."""
    target_ratio: dict[str, float]
    """Planned noise-free lesion/normal-marrow mean ratio per sequence."""
    pattern: str
    margin: str
    homogeneity: str
    extension: str
    posterior_elements: bool
    fracture: bool
    separability: dict[str, float]
    """Per sequence, Dice of a plain threshold region grower on the noise-free image
    (seed inside, box 10 mm larger than the lesion): 1.0 = cleanly separable."""
    cnr: dict[str, float]
    """Lesion-vs-marrow contrast-to-noise ratio per sequence."""
    best_sequence: str
    """Most separable sequence among those with CNR >= 4 (the one to segment on)."""
    diameter_mm: float
    """Planned diameter of the main lobe (before cropping by the cortex)."""


@dataclass
class PhantomCase:
    case_id: str
    seed: int
    images: dict[str, sitk.Image]
    lesion_mask: sitk.Image
    anatomy: sitk.Image
    lesions: list[LesionInfo]
    record: dict[str, object]
    vertebrae: list[dict[str, object]] = field(default_factory=list)
    """Name, body-centre LPS, eligibility and fracture of every modelled vertebra."""
    config: PhantomConfig = field(default_factory=PhantomConfig)


def generate_case(
    seed: int,
    case_id: str = "case000",
    config: PhantomConfig | None = None,
    site: str | None = None,
    n_lesions: int | None = None,
) -> PhantomCase:
    """Generate one case; the same arguments always give bit-identical images.

    ``site`` forces the hidden label (a metastatic site or ``"primary_bone"``);
    ``n_lesions`` (0..3) overrides the site's lesion count.
    """
    config = config or PhantomConfig()
    plan = plan_case(seed, case_id, config, site, n_lesions)
    _, rng_anatomy, rng_lesions, rng_noise, rng_real = streams(plan.seed)
    grid = Grid.centred(config.size, config.voxel_spacing, plan.scanner_centre)
    anatomy = render_anatomy(grid, plan.spine, rng_anatomy)
    rendered = [render_lesion(grid, plan.spine, lesion, rng_lesions) for lesion in plan.lesions]
    if config.realism:
        anatomy.fat_modulation = marrow_islands(rng_real, grid)
        for les in rendered:
            # the extra foci replace version 1's: the natural seed (deepest voxel outside foci) avoids them too
            les.texture, les.focus = roughen_lesion(
                rng_real, grid, les.start, les.stop, les.field_box, les.plan.homogeneity, les.plan.focus_type,  # type: ignore[arg-type]
                les.plan.pattern, les.base, les.focus, les.mask, les.distance, SEQUENCES,  # type: ignore[arg-type]
            )

    lesion_labels, lesion_frac = _lesion_label_map(grid, rendered)
    oedema = _oedema(rng_real, grid, anatomy, rendered, lesion_labels, lesion_frac) if config.realism else []
    labels = anatomy.labels.copy()
    normal = _normal_marrow(grid, anatomy, plan, rendered, lesion_frac)
    for box, weight in oedema:  # oedematous marrow is not normal marrow
        normal[box] &= weight < 0.02
    labels[normal] = NORMAL_MARROW

    centre = CENTRES[plan.centre]
    fs = plan.field_strength
    bias = bias_field(rng_noise, grid, BIAS_AMPLITUDE[fs] * centre.bias_scale, COIL_GAIN[fs]) if config.bias_field else None
    if config.realism:  # drawn whether or not applied: the switches never shift later draws
        coil = coil_bias(rng_real, grid, fs, centre.bias_scale)
        bias = None if bias is None else bias * coil
    images: dict[str, sitk.Image] = {}
    cnr: dict[int, dict[str, float]] = {les.plan.label: {} for les in rendered}
    separability: dict[int, dict[str, float]] = {les.plan.label: {} for les in rendered}
    seeds = {les.plan.label: _seed_voxel(grid, les, lesion_labels) for les in rendered}
    boxes = {les.plan.label: _separability_box(grid, lesion_labels, les.plan.label) for les in rendered}
    for seq in SEQUENCES:
        img = anatomy.paint(seq, fs, centre)
        reference = float(img[normal].mean()) if normal.any() else float(img[anatomy.fractions["marrow"] >= 0.999].mean())
        sigma = 1.0 / (SNR_1P5T[seq] * (SNR_3T_FACTOR if fs >= 3.0 else 1.0) * centre.snr_factor * config.snr_scale)
        for box, weight in oedema:
            img[box] += weight * (np.float32(OEDEMA_SIGNAL[seq]) - img[box])
        for les in rendered:
            _paint_lesion(img, les, lesion_labels, seq, reference, grid if config.realism else None)
        if config.realism:
            img = point_spread(img, grid)
        for les in rendered:
            cnr[les.plan.label][seq] = abs(les.plan.ratios[seq] - 1.0) * reference / sigma
            box, truth = boxes[les.plan.label]
            separability[les.plan.label][seq] = _separability(img, box, truth, seeds[les.plan.label], reference, sigma)
        if bias is not None:
            img = img * bias
        if config.realism:
            img = img * slice_gains(rng_real, grid)
            seq_bias = sequence_bias(rng_real, grid)
            if config.bias_field:
                img = img * seq_bias
        gain = np.float32(plan.gains[seq])
        img = img * gain
        if config.noise:
            img = rician(rng_noise, img, sigma * float(gain))
        images[seq] = grid.image(img.astype(np.float32))

    lesions = [
        _lesion_info(grid, plan, les, lesion_labels, seeds[les.plan.label], cnr[les.plan.label], separability[les.plan.label])
        for les in rendered
    ]
    record = plan_record(plan)
    vertebrae = [
        {"name": v.name, "centre_lps": grid.mm_to_lps((v.centre_u, v.centre_v, plan.spine.w0)), "visible": v.visible,
         "eligible": v.eligible, "height_loss": v.height_loss, "fracture_type": v.fracture_type}
        for v in plan.spine.vertebrae
    ]
    logger.debug("generated %s (seed %d, site %s, %d lesions)", case_id, plan.seed, plan.site, len(lesions))
    return PhantomCase(
        case_id=case_id, seed=plan.seed, images=images, lesion_mask=grid.image(lesion_labels),
        anatomy=grid.image(labels), lesions=lesions, record=record, vertebrae=vertebrae, config=config,
    )


def _lesion_label_map(grid: Grid, rendered: list[RenderedLesion]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 labels (where lesions touch, the larger fraction wins) and the summed fraction."""
    labels = np.zeros(grid.shape, np.uint8)
    best = np.zeros(grid.shape, np.float32)
    total = np.zeros(grid.shape, np.float32)
    for les in rendered:
        sl = les.slices
        win = les.mask & (les.fraction > best[sl])
        labels[sl][win] = les.plan.label
        best[sl] = np.where(win, les.fraction, best[sl])
        total[sl] += les.fraction
    return labels, total


def _oedema(
    rng: np.random.Generator,
    grid: Grid,
    anatomy: AnatomyModel,
    rendered: list[RenderedLesion],
    lesion_labels: np.ndarray,
    lesion_frac: np.ndarray,
) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """Per lesion with oedema: its box and the oedema weight there (halo x strength),
    confined to the marrow of the lesion's own vertebral body and to non-lesion tissue."""
    out = []
    pad = np.ceil(1.5 * OEDEMA_WIDTH_MM[1] / np.asarray(grid.array_spacing)).astype(int) + 1
    for les in rendered:
        box = tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(les.slices, pad, grid.shape, strict=False))
        inside = lesion_labels[box] == les.plan.label
        halo = oedema_halo(rng, grid, inside, box, les.plan.pattern)  # type: ignore[arg-type]
        if halo is None:
            continue
        weight = halo[0] * np.float32(halo[1]) * anatomy.fractions["marrow"][box]
        weight *= anatomy.vertebra_id[box] == les.plan.vertebra
        weight *= np.clip(1.0 - lesion_frac[box], 0.0, 1.0)
        out.append((box, weight.astype(np.float32)))
    return out


def _normal_marrow(grid: Grid, anatomy: AnatomyModel, plan: CasePlan, rendered: list[RenderedLesion], lesion_frac: np.ndarray) -> np.ndarray:
    """Whole-voxel marrow of unfractured bodies, at least 3 mm from any lesion."""
    normal = anatomy.fractions["marrow"] >= 0.999
    fractured = [k for k, v in enumerate(plan.spine.vertebrae) if v.height_loss > 0]
    for k in fractured:
        normal &= anatomy.vertebra_id != k
    pad = np.ceil(NORMAL_MARROW_MARGIN_MM / np.asarray(grid.array_spacing)).astype(int) + 1
    for les in rendered:  # distances only near each lesion: its fraction is zero elsewhere
        box = tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(les.slices, pad, grid.shape, strict=False))
        near = ndimage.distance_transform_edt(lesion_frac[box] <= 0.0, sampling=grid.array_spacing) <= NORMAL_MARROW_MARGIN_MM
        normal[box] &= ~near
    return normal


def _seed_voxel(grid: Grid, les: RenderedLesion, labels: np.ndarray) -> tuple[int, int, int]:
    """Deepest mask voxel outside internal foci, as array index (lr, si, ap)."""
    sl = les.slices
    inside = labels[sl] == les.plan.label
    if not inside.any():
        raise RuntimeError(f"lesion {les.plan.label} has an empty mask")
    depth = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=grid.array_spacing)[1:-1, 1:-1, 1:-1]
    depth = np.where(les.focus < 0.5, depth, depth * 0.5)
    local = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return tuple(int(x + s.start) for x, s in zip(local, sl, strict=False))  # type: ignore[return-value]


def _separability_box(grid: Grid, labels: np.ndarray, label: int) -> tuple[tuple[slice, ...], np.ndarray]:
    """The mask's bounding box grown by 10 mm (clipped to the image) and the mask inside it."""
    zyx = np.argwhere(labels == label)
    pad = np.ceil(SEPARABILITY_MARGIN_MM / np.asarray(grid.array_spacing)).astype(int)
    lo = np.maximum(zyx.min(0) - pad, 0)
    hi = np.minimum(zyx.max(0) + pad + 1, grid.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=False))
    return box, labels[box] == label


def _separability(
    img: np.ndarray, box: tuple[slice, ...], truth: np.ndarray, seed: tuple[int, int, int], reference: float, sigma: float
) -> float:
    """Dice of a plain region grower on the noise-free image: how separable the lesion is.

    The grower keeps the voxels connected to the seed whose signal lies on the lesion's
    side of the lesion/marrow midpoint and no further than twice the lesion contrast
    beyond it, widened by 0.75 noise standard deviations (tissue that close leaks once
    noise is added and lightly smoothed), inside the mask's box grown by 10 mm, with 2-D
    holes filled. A low
    value means neighbouring tissue (CSF next to a T2-bright epidural mass, a disc next
    to a T1-dark deposit) resembles the lesion on this sequence.
    """
    roi = img[box]
    local = tuple(int(x - b.start) for x, b in zip(seed, box, strict=False))
    lesion = float(roi[local])
    low, high = sorted((0.5 * (lesion + reference), 2.0 * lesion - reference))
    grown, _ = ndimage.label((roi >= low - 0.75 * sigma) & (roi <= high + 0.75 * sigma))
    region = grown == grown[local]
    region = np.stack([ndimage.binary_fill_holes(plane) for plane in region])
    return float(2.0 * (region & truth).sum() / max(region.sum() + truth.sum(), 1))


def _paint_lesion(
    img: np.ndarray, les: RenderedLesion, labels: np.ndarray, seq: str, reference: float, blur_grid: Grid | None = None
) -> None:
    """Blend the lesion in, scaled so its noise-free mask mean is ``ratio * reference``.

    With ``blur_grid`` the mean is the one after :func:`.realism.point_spread` (the blur
    is linear, so the scale is solved on the blurred parts of a box around the lesion).
    """
    sl = les.slices
    f = les.fraction
    texture = les.texture[seq]
    background = img[sl]
    inside = labels[sl] == les.plan.label
    if not inside.any():
        return
    target = les.plan.ratios[seq] * reference
    if blur_grid is None:
        rest = float(((1.0 - f) * background)[inside].mean())
        weight = float((f * texture)[inside].mean())
    else:
        pad = [int(np.ceil(3.0 * s)) + 1 for s in psf_sigma(blur_grid)]
        box = tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(sl, pad, img.shape, strict=False))
        inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sl, box, strict=False))
        local_inside = np.zeros(img[box].shape, bool)
        local_inside[inner] = inside
        without = img[box].copy()
        without[inner] -= f * background
        lesion_only = np.zeros_like(without)
        lesion_only[inner] = f * texture
        rest = float(point_spread(without, blur_grid)[local_inside].mean())
        weight = float(point_spread(lesion_only, blur_grid)[local_inside].mean())
    scale = max((target - rest) / max(weight, 1e-6), 0.02 * reference)
    img[sl] = background + f * (np.float32(scale) * texture - background)


def _lesion_info(
    grid: Grid,
    plan: CasePlan,
    les: RenderedLesion,
    labels: np.ndarray,
    seed: tuple[int, int, int],
    cnr: dict[str, float],
    separability: dict[str, float],
) -> LesionInfo:
    label = les.plan.label
    sl = les.slices
    inside = labels[sl] == label
    zyx = np.argwhere(inside)
    offset = np.array([sl[0].start, sl[1].start, sl[2].start])
    if len(zyx) == 0:
        raise RuntimeError(f"lesion {label} of {plan.case_id} has an empty mask")
    ijk = (zyx + offset)[:, ::-1]
    seed_ijk = tuple(int(x) for x in seed[::-1])
    lo, hi = ijk.min(0), ijk.max(0)
    bmin, bmax = grid.box_to_lps(lo, hi)
    p = les.plan
    vert = plan.spine.vertebrae[p.vertebra]
    return LesionInfo(
        label=label,
        level=vert.name,
        centre_lps=grid.index_to_lps(ijk.mean(0)),
        bbox_min_lps=bmin,
        bbox_max_lps=bmax,
        bbox_index_min=tuple(int(x) for x in lo),  # type: ignore[arg-type]
        bbox_index_max=tuple(int(x) for x in hi),  # type: ignore[arg-type]
        seed_lps=grid.index_to_lps(seed_ijk),
        seed_index=seed_ijk,  # type: ignore[arg-type]
        volume_ml=round(len(ijk) * grid.voxel_volume_ml, 6),
        n_voxels=int(len(ijk)),
        signal=dict(p.classes),
        target_ratio={k: round(v, 4) for k, v in p.ratios.items()},
        pattern=p.pattern,
        margin=p.margin,
        homogeneity=p.homogeneity,
        extension=p.extension,
        posterior_elements=p.posterior,
        fracture=vert.height_loss > 0,
        separability={k: round(v, 4) for k, v in separability.items()},
        cnr={k: round(v, 2) for k, v in cnr.items()},
        best_sequence=max(SEQUENCES, key=lambda s: (cnr[s] >= MIN_CNR, round(separability[s], 2), cnr[s])),
        diameter_mm=round(p.diameter_mm, 2),
    )
