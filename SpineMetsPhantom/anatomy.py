"""Normal anatomy of a sagittal spine segment: shapes, tissue signals and the label map.

The segment is a short run of vertebrae along a gently curved column (lordosis in
the cervical and lumbar spine, kyphosis in the thoracic spine). Each vertebra has a
body (cortical shell around fatty marrow, concave endplates), pedicles, articular
pillars, a lamina and a spinous process; discs (annulus around a T2-bright nucleus,
dark when degenerated) fill the column between bodies; the canal holds epidural fat,
the CSF-filled thecal sac, the cord (above the conus) or cauda-equina roots; muscle
lies behind, subcutaneous fat behind that, and prevertebral tissue (aorta, lung,
psoas, longus colli as the region has them) in front. Dimensions are adult means
interpolated along the level (C2..S1), scaled per case by ~5 %.

Normal tissue signal (relative units at 1.5 T, centre C1; T1CE is fat-suppressed):

==================  =====  =====  =====  =====
tissue              T1     T2     STIR   T1CE
==================  =====  =====  =====  =====
fat                 1.00   0.85   resid. 0.06
red marrow          0.33   0.38   0.40   0.38
vertebral marrow    fat fraction ff mixes fat and red marrow; ff rises with age
cortex / ligament   0.05   0.04   0.04   0.05
muscle              0.40   0.28   0.25   0.30
disc annulus        0.35   0.20   0.18   0.18
disc nucleus        0.40   0.90   0.85   0.22   (degenerated: 0.38 0.30 0.25 0.18)
CSF                 0.15   1.10   1.05   0.10
cord / roots        0.50   0.48   0.42   0.30
flowing blood       0.04   0.04   0.04   0.15
other soft tissue   0.45   0.42   0.40   0.30
==================  =====  =====  =====  =====

At 3 T relative T1 signal is raised to the power 0.85 (flatter T1 contrast); centre
settings (:data:`.config.CENTRES`) change STIR fat residual, T2 fluid brightness and T1
contrast a little. Labels of the anatomy map are :data:`SpineMetsCore.conventions.ANATOMY_LABELS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from SpineMetsCore.conventions import ANATOMY_LABEL_VALUES

from .config import CentreSettings
from .geometry import Grid, box_sdf, ellipsoid_sdf, soft_fractions, superellipse_sdf
from .noise import SmoothField

# Label values of the anatomy map: the project's conventions (SpineMetsCore/Resources/conventions.json).
_LABEL = ANATOMY_LABEL_VALUES
BACKGROUND = 0
VERTEBRAL_BODY = _LABEL["vertebral_body"]  # body voxels that are not normal marrow (cortex, lesion, near lesion)
NORMAL_MARROW = _LABEL["normal_marrow"]  # full-volume marrow >= 3 mm from any lesion, unfractured bodies
DISC = _LABEL["disc"]
CANAL = _LABEL["canal_cord"]  # bony canal: epidural fat, thecal sac, cord/roots
POSTERIOR_ELEMENTS = _LABEL["posterior_elements"]
MUSCLE = _LABEL["muscle"]
NORMAL_MARROW_MARGIN_MM = 3.0

LEVELS: tuple[str, ...] = (
    "C2", "C3", "C4", "C5", "C6", "C7",
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    "S1",
)
REGION_OF_LEVEL: dict[str, str] = {
    name: {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[name[0]] for name in LEVELS
}
LESION_LEVELS: dict[str, tuple[str, ...]] = {
    "cervical": ("C3", "C4", "C5", "C6", "C7"),
    "thoracic": tuple(f"T{i}" for i in range(1, 13)),
    "lumbar": tuple(f"L{i}" for i in range(1, 6)),
}
CENTRE_LEVELS: dict[str, tuple[str, ...]] = {
    # level placed near the centre of the field of view, by region
    "cervical": ("C5", "C6"),
    "thoracic": tuple(f"T{i}" for i in range(3, 11)),
    "lumbar": ("L2", "L3", "L4"),
}

_DIM_NAMES = ("height", "depth", "width", "disc_below", "canal_ap", "canal_lr", "ped_w", "ped_h",
              "lamina_t", "spin_len", "spin_h", "spin_slope")
_DIM_ANCHORS: dict[str, tuple[float, ...]] = {
    # level: body height, AP depth, LR width, disc below, canal AP, canal LR, pedicle width,
    #        pedicle height, lamina thickness, spinous length, spinous height, spinous slope (mm/mm)
    "C2": (15.0, 16.0, 22.0, 4.5, 15.0, 25.0, 5.0, 7.0, 5.0, 20.0, 9.0, 0.2),
    "C5": (14.0, 17.0, 25.0, 5.0, 14.0, 24.0, 5.5, 7.0, 5.0, 18.0, 8.0, 0.3),
    "C7": (15.0, 17.5, 28.0, 5.0, 14.0, 22.0, 6.0, 8.0, 5.0, 25.0, 9.0, 0.4),
    "T1": (16.0, 18.0, 30.0, 4.5, 14.0, 18.0, 6.5, 9.0, 6.0, 30.0, 9.0, 0.6),
    "T6": (20.0, 25.0, 31.0, 5.0, 15.0, 16.0, 6.0, 11.0, 6.0, 32.0, 9.0, 1.0),
    "T12": (25.0, 30.0, 40.0, 7.0, 16.0, 20.0, 7.5, 14.0, 7.0, 28.0, 16.0, 0.3),
    "L3": (27.0, 33.0, 46.0, 10.0, 17.0, 23.0, 8.5, 14.0, 7.5, 28.0, 20.0, 0.0),
    "L5": (28.0, 35.0, 50.0, 11.0, 17.0, 25.0, 10.0, 14.0, 7.5, 22.0, 18.0, 0.0),
    "S1": (30.0, 38.0, 50.0, 0.0, 16.0, 28.0, 12.0, 14.0, 7.0, 15.0, 15.0, 0.0),
}
_CORD = {"cervical": (7.5, 11.0), "thoracic": (8.0, 9.0), "lumbar": (8.0, 9.0)}
_EPIDURAL_FAT = {"cervical": 0.8, "thoracic": 1.5, "lumbar": 3.0}
_MUSCLE_DEPTH = {"cervical": 35.0, "thoracic": 35.0, "lumbar": 55.0}
_CURVATURE = {"cervical": 0.004, "thoracic": -0.003, "lumbar": 0.0035}
CORTEX_MM = 1.0
ENDPLATE_CONCAVITY_MM = 1.0

TISSUE_SIGNAL: dict[str, tuple[float, float, float, float]] = {
    # (T1, T2, STIR, T1CE) relative signal at 1.5 T; STIR of fat is set by the centre
    "fat": (1.00, 0.85, 0.04, 0.06),
    "red_marrow": (0.33, 0.38, 0.40, 0.38),
    "cortex": (0.05, 0.04, 0.04, 0.05),
    "muscle": (0.40, 0.28, 0.25, 0.30),
    "soft": (0.45, 0.42, 0.40, 0.30),
    "annulus": (0.35, 0.20, 0.18, 0.18),
    "nucleus": (0.40, 0.90, 0.85, 0.22),
    "nucleus_degenerate": (0.38, 0.30, 0.25, 0.18),
    "csf": (0.15, 1.10, 1.05, 0.10),
    "cord": (0.50, 0.48, 0.42, 0.30),
    "ligament": (0.08, 0.07, 0.07, 0.10),
    "flow_void": (0.04, 0.04, 0.04, 0.15),
    "lung": (0.03, 0.03, 0.03, 0.03),
    "air": (0.01, 0.01, 0.01, 0.01),
}
_SEQ_INDEX = {"T1": 0, "T2": 1, "STIR": 2, "T1CE": 3}
_FLUID = ("csf", "nucleus")
T1_GAMMA_3T = 0.85


def tissue_signal(tissue: str, seq: str, field_strength: float, centre: CentreSettings) -> float:
    """Relative signal of a normal tissue for one sequence, scanner and centre."""
    value = TISSUE_SIGNAL[tissue][_SEQ_INDEX[seq]]
    if seq == "STIR" and tissue == "fat":
        value = centre.stir_fat_residual
    if seq == "T2" and tissue in _FLUID:
        value *= centre.t2_fluid_scale
    if seq == "T1":
        gamma = (T1_GAMMA_3T if field_strength >= 3.0 else 1.0) * centre.t1_contrast
        value = value**gamma
    return float(value)


def marrow_signal(fat_fraction: np.ndarray | float, seq: str, field_strength: float, centre: CentreSettings) -> np.ndarray | float:
    """Vertebral marrow as a fat / red-marrow mixture."""
    fat = tissue_signal("fat", seq, field_strength, centre)
    red = tissue_signal("red_marrow", seq, field_strength, centre)
    return fat_fraction * fat + (1.0 - fat_fraction) * red


# --------------------------------------------------------------------------------------
# Plan of the spine (cheap numbers, no arrays): also used by the record-only path
# --------------------------------------------------------------------------------------
@dataclass
class Vertebra:
    """One vertebra, in image millimetres (u: A->P, v: S->I) of its body centre."""

    name: str
    centre_u: float
    centre_v: float
    tilt: float
    """Angle (rad) of the column axis against the S->I image axis."""
    height: float
    depth: float
    width: float
    disc_below: float
    canal_ap: float
    canal_lr: float
    ped_w: float
    ped_h: float
    lamina_t: float
    spin_len: float
    spin_h: float
    spin_slope: float
    fat_fraction: float
    eligible: bool = False
    """Fully inside the field of view and in the case's region: may carry a lesion."""
    visible: bool = False
    """Some of the body is inside the field of view."""
    height_loss: float = 0.0
    fracture_type: str = "none"

    @property
    def region(self) -> str:
        return REGION_OF_LEVEL[self.name]


@dataclass
class SpinePlan:
    region: str
    vertebrae: list[Vertebra]
    w0: float
    """Image-mm left-right position of the midline."""
    u0: float
    v0: float
    slope: float
    kappa: float
    cord_ap: float
    cord_lr: float
    conus_v: float | None
    """Image-mm S->I position of the conus tip (None: cord through the whole field)."""
    epidural_fat: float
    muscle_depth: float
    fat_thickness: float
    disc_degeneration: list[float] = field(default_factory=list)
    """Per disc below vertebra k: 0 healthy .. 1 fully degenerated nucleus."""

    def centre_u_at(self, v: np.ndarray | float) -> np.ndarray | float:
        dv = v - self.v0
        return self.u0 + self.slope * dv + 0.5 * self.kappa * dv * dv

    def tilt_at(self, v: np.ndarray | float) -> np.ndarray | float:
        return np.arctan(self.slope + self.kappa * (v - self.v0))

    def eligible(self) -> list[int]:
        return [i for i, vert in enumerate(self.vertebrae) if vert.eligible]


def _dims(level_index: float) -> dict[str, float]:
    idx = [LEVELS.index(k) for k in _DIM_ANCHORS]
    table = np.array(list(_DIM_ANCHORS.values()))
    return {name: float(np.interp(level_index, idx, table[:, c])) for c, name in enumerate(_DIM_NAMES)}


def plan_spine(rng: np.random.Generator, region: str, fov_mm: tuple[float, float, float], age: int) -> SpinePlan:
    """Draw the segment's geometry: which levels, where, how large, how curved."""
    # Size does not depend on sex: which levels are in view (the ``level`` EDF item) must
    # stay independent of the hidden site.
    scale = float(rng.normal(1.0, 0.05))
    centre_name = CENTRE_LEVELS[region][int(rng.integers(len(CENTRE_LEVELS[region])))]
    ic = LEVELS.index(centre_name)
    kappa = _CURVATURE[region] * float(rng.uniform(0.5, 1.5))
    slope = float(rng.normal(0.0, 0.08))
    ff_case = float(np.clip(0.25 + 0.006 * (age - 20) + rng.normal(0.0, 0.05), 0.2, 0.75))
    dims = {i: {k: v * (scale if k not in ("spin_slope",) else 1.0) for k, v in _dims(i).items()} for i in range(len(LEVELS))}
    for d in dims.values():
        jitter = float(rng.normal(1.0, 0.02))
        d["height"] *= jitter
        d["depth"] *= jitter

    # S->I positions: walk up and down from the centre level.
    pitch = dims[ic]["height"] / 2 + dims[ic]["disc_below"] + dims[min(ic + 1, len(LEVELS) - 1)]["height"] / 2
    v_centre = fov_mm[1] / 2.0 + float(rng.uniform(-0.5, 0.5)) * pitch
    vs = {ic: v_centre}
    i = ic
    while i > 0 and vs[i] - dims[i]["height"] / 2 > -25.0:
        vs[i - 1] = vs[i] - (dims[i]["height"] / 2 + dims[i - 1]["disc_below"] + dims[i - 1]["height"] / 2)
        i -= 1
    i = ic
    while i < len(LEVELS) - 1 and vs[i] + dims[i]["height"] / 2 < fov_mm[1] + 25.0:
        vs[i + 1] = vs[i] + (dims[i]["height"] / 2 + dims[i]["disc_below"] + dims[i + 1]["height"] / 2)
        i += 1

    c = dims[ic]
    u0 = 0.58 * fov_mm[0] - (c["depth"] / 2 + 2.0 + c["canal_ap"] / 2)
    plan = SpinePlan(
        region=region, vertebrae=[], w0=fov_mm[2] / 2.0 + float(rng.normal(0.0, 1.0)), u0=u0, v0=v_centre,
        slope=slope, kappa=kappa, cord_ap=_CORD[region][0] * scale, cord_lr=_CORD[region][1] * scale,
        conus_v=None, epidural_fat=_EPIDURAL_FAT[region], muscle_depth=_MUSCLE_DEPTH[region] * float(rng.uniform(0.85, 1.15)),
        fat_thickness=float(rng.uniform(12.0, 30.0)),
    )
    for i in sorted(vs):
        d = dims[i]
        v = vs[i]
        name = LEVELS[i]
        tilt = float(plan.tilt_at(v))
        half_extent = d["height"] / 2 * math.cos(tilt) + d["depth"] / 2 * abs(math.sin(tilt)) + 2.0
        inside = v - half_extent >= 0.0 and v + half_extent <= fov_mm[1]
        plan.vertebrae.append(Vertebra(
            name=name, centre_u=float(plan.centre_u_at(v)), centre_v=v, tilt=tilt,
            height=d["height"], depth=d["depth"], width=d["width"], disc_below=d["disc_below"],
            canal_ap=d["canal_ap"], canal_lr=d["canal_lr"], ped_w=d["ped_w"], ped_h=d["ped_h"],
            lamina_t=d["lamina_t"], spin_len=d["spin_len"], spin_h=d["spin_h"], spin_slope=d["spin_slope"],
            fat_fraction=float(np.clip(ff_case + rng.normal(0.0, 0.025), 0.15, 0.8)),
            eligible=inside and name in LESION_LEVELS[region],
            visible=v + d["height"] / 2 > 0.0 and v - d["height"] / 2 < fov_mm[1],
        ))
    p_degenerate = float(np.clip((age - 30) / 60.0, 0.05, 0.8))
    plan.disc_degeneration = [float(rng.random() < p_degenerate) * float(rng.uniform(0.5, 1.0)) for _ in plan.vertebrae]
    names = [vert.name for vert in plan.vertebrae]
    if "L1" in names:
        l1 = plan.vertebrae[names.index("L1")]
        plan.conus_v = l1.centre_v + l1.height / 2 + l1.disc_below / 2
    elif names[-1].startswith("L") or names[-1] == "S1":
        plan.conus_v = -1e3
    return plan


# --------------------------------------------------------------------------------------
# Signed distance fields of one vertebra in its local frame
# --------------------------------------------------------------------------------------
def vertebra_frame(vert: Vertebra, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local (a: posterior+, s: inferior+) coordinates of image-mm points in a vertebra's frame."""
    du = u - np.float32(vert.centre_u)
    dv = v - np.float32(vert.centre_v)
    c, sn = np.float32(math.cos(vert.tilt)), np.float32(math.sin(vert.tilt))
    return du * c - dv * sn, du * sn + dv * c


def body_sdf(vert: Vertebra, a: np.ndarray, s: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(body, endplate slab) distances. A fracture lowers the superior endplate."""
    half_d = vert.depth / 2
    bowl = np.float32(ENDPLATE_CONCAVITY_MM) * np.clip(1.0 - (a / half_d) ** 2, 0.0, 1.0)
    top = -vert.height / 2 + bowl
    if vert.height_loss > 0:
        if vert.fracture_type == "wedge":
            profile = np.clip(0.5 - a / vert.depth, 0.0, 1.0)
        elif vert.fracture_type == "biconcave":
            profile = np.clip(1.0 - (a / half_d) ** 2, 0.0, 1.0)
        else:
            profile = np.ones_like(a)
        top = top + np.float32(vert.height_loss * vert.height) * profile
    bottom = vert.height / 2 - bowl
    slab = np.maximum(top - s, s - bottom)
    cross = superellipse_sdf(a, r, half_d, vert.width / 2, p=2.4)
    cross = np.maximum(cross, a - np.float32(half_d - 1.5))  # flat posterior wall
    return np.maximum(slab, cross), slab


def posterior_sdf(vert: Vertebra, a: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pedicles, articular pillars, lamina and spinous process as one distance field."""
    ra = np.abs(r)
    canal_front = vert.depth / 2 + 2.0
    canal_back = canal_front + vert.canal_ap
    rp = vert.canal_lr / 2 + vert.ped_w / 2
    h = vert.height
    a_start, a_end = 0.55 * vert.depth / 2, canal_front + 0.75 * vert.canal_ap
    pedicle = np.maximum(
        superellipse_sdf(ra - rp, s + 0.15 * h, vert.ped_w / 2, vert.ped_h / 2),
        np.abs(a - (a_start + a_end) / 2) - (a_end - a_start) / 2,
    )
    pillar = ellipsoid_sdf(a - (canal_back - 2.0), s - 0.1 * h, ra - (rp + 0.5),
                           6.0, 0.5 * (h + vert.disc_below) - 1.0, vert.ped_w / 2 + 1.5)
    lamina = box_sdf((a - (canal_back + vert.lamina_t / 2), vert.lamina_t / 2), (s - 0.1 * h, 0.4 * h), (r, rp))
    a0 = canal_back + vert.lamina_t / 2
    spinous = box_sdf(
        (r, 3.0),
        (s - (0.15 * h + vert.spin_slope * (a - a0)), vert.spin_h / 2),
        (a - (a0 + vert.spin_len / 2), vert.spin_len / 2),
    )
    return np.minimum(np.minimum(pedicle, pillar), np.minimum(lamina, spinous))


def vertebra_band(vert: Vertebra, grid: Grid) -> tuple[int, int]:
    """Image rows (S->I index range) that can hold any part of the vertebra."""
    reach_up = vert.height + 12.0 + abs(math.sin(vert.tilt)) * 80.0
    reach_down = vert.height / 2 + vert.disc_below + vert.spin_h + vert.spin_slope * (vert.spin_len + 15.0) + 12.0
    reach_down += abs(math.sin(vert.tilt)) * 80.0
    sy = grid.spacing[1]
    j0 = max(0, int(math.floor((vert.centre_v - reach_up) / sy)))
    j1 = min(grid.size[1], int(math.ceil((vert.centre_v + reach_down) / sy)) + 1)
    return j0, j1


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
@dataclass
class AnatomyModel:
    """Tissue fractions on the grid and everything needed to paint the sequences.

    Fractions of structures that do not vary left-right have shape (1, ny, nx) and
    broadcast.
    """

    grid: Grid
    spine: SpinePlan
    fractions: dict[str, np.ndarray]
    vertebra_id: np.ndarray
    """Index into ``spine.vertebrae`` of the body covering each voxel (-1: none)."""
    marrow_texture: np.ndarray
    background_mix: np.ndarray
    nucleus_degeneration: np.ndarray
    labels: np.ndarray
    """Anatomy labels before normal marrow is carved out (no NORMAL_MARROW yet)."""
    fat_modulation: np.ndarray | None = None
    """Multiplies the marrow fat fraction (red-marrow islands of :mod:`.realism`); None: uniform per body."""

    def paint(self, seq: str, field_strength: float, centre: CentreSettings) -> np.ndarray:
        """Noise-free, bias-free relative signal of the normal anatomy."""
        f = self.fractions

        def t(name: str) -> np.float32:
            return np.float32(tissue_signal(name, seq, field_strength, centre))

        img = self.background_mix * t("fat") + (1.0 - self.background_mix) * t("soft")
        layers: list[tuple[str, np.ndarray | np.float32]] = [
            ("air", t("air")),
            ("subcut_fat", t("fat")),
            ("muscle", t("muscle")),
            ("lung", t("lung")),
            ("aorta", t("flow_void")),
            ("pe", t("cortex")),
            ("pe_marrow", np.float32(marrow_signal(min(self._ff_mean + 0.05, 0.85), seq, field_strength, centre))),
            ("annulus", t("annulus")),
            ("nucleus", (1.0 - self.nucleus_degeneration) * t("nucleus") + self.nucleus_degeneration * t("nucleus_degenerate")),
            ("body", t("cortex")),
        ]
        for name, value in layers:
            frac = f[name]
            img = img + frac * (value - img)
        ff = self._fat_fraction_map()
        marrow = marrow_signal(ff, seq, field_strength, centre) * (1.0 + np.float32(0.05) * self.marrow_texture)
        img = img + f["marrow"] * (marrow - img)
        for name, value in (("canal", t("fat")), ("thecal", t("csf")), ("cord", t("cord"))):
            img = img + f[name] * (value - img)
        return img.astype(np.float32)

    @property
    def _ff_mean(self) -> float:
        return float(np.mean([vert.fat_fraction for vert in self.spine.vertebrae]))

    def _fat_fraction_map(self) -> np.ndarray:
        table = np.array([vert.fat_fraction for vert in self.spine.vertebrae] + [self._ff_mean], dtype=np.float32)
        ff = table[self.vertebra_id]
        return ff if self.fat_modulation is None else ff * self.fat_modulation


def render_anatomy(grid: Grid, spine: SpinePlan, rng: np.random.Generator) -> AnatomyModel:
    """Tissue fractions (partial volume included) and the anatomy label map."""
    shape = grid.shape
    sp = grid.array_spacing
    u, v, w = grid.axes_mm()
    r = (w - np.float32(spine.w0)).astype(np.float32)
    verts = spine.vertebrae
    vc = np.array([vert.centre_v for vert in verts])

    def per_row(values: list[float]) -> np.ndarray:
        return np.interp(v[0, :, 0], vc, values).astype(np.float32)[None, :, None]

    depth = per_row([vert.depth for vert in verts])
    width = per_row([vert.width for vert in verts])
    canal_ap = per_row([vert.canal_ap for vert in verts])
    canal_lr = per_row([vert.canal_lr for vert in verts])
    disc_h = per_row([max(vert.disc_below, 3.0) for vert in verts])
    uc = spine.centre_u_at(v).astype(np.float32)
    cos_t = np.cos(spine.tilt_at(v)).astype(np.float32)
    a_col = ((u - uc) * cos_t).astype(np.float32)  # (1, ny, nx)

    # --- vertebrae (per band): body, marrow, endplate slabs, posterior elements ---
    f_body = np.zeros(shape, np.float32)
    f_marrow = np.zeros(shape, np.float32)
    f_pe = np.zeros(shape, np.float32)
    f_pe_marrow = np.zeros(shape, np.float32)
    slabs = np.full(shape, 100.0, np.float32)
    vid = np.full(shape, -1, np.int16)
    for k, vert in enumerate(verts):
        j0, j1 = vertebra_band(vert, grid)
        if j1 <= j0:
            continue
        vb = v[:, j0:j1, :]
        a, s = vertebra_frame(vert, u, vb)
        d_body, d_slab = body_sdf(vert, a, s, r)
        (fb, fm), _ = soft_fractions(d_body, sp, offsets=(0.0, CORTEX_MM))
        (fp, fpm), _ = soft_fractions(posterior_sdf(vert, a, s, r), sp, offsets=(0.0, 1.2))
        sl = (slice(None), slice(j0, j1), slice(None))
        vid[sl] = np.where(fb > f_body[sl], k, vid[sl])
        f_body[sl] = np.maximum(f_body[sl], fb)
        f_marrow[sl] = np.maximum(f_marrow[sl], fm)
        f_pe[sl] = np.maximum(f_pe[sl], fp)
        f_pe_marrow[sl] = np.maximum(f_pe_marrow[sl], fpm)
        slabs[sl] = np.minimum(slabs[sl], np.broadcast_to(d_slab, fb.shape))

    # --- discs: the column between endplate slabs ---
    first, last = verts[0], verts[-1]
    v_top = first.centre_v - first.height / 2 - 4.0
    v_bottom = last.centre_v + last.height / 2 + last.disc_below
    ends = np.maximum(np.float32(v_top) - v, v - np.float32(v_bottom))
    d_col = superellipse_sdf(a_col, r, depth / 2 + 0.5, width / 2 + 0.5, p=2.4)
    d_disc = np.maximum(np.maximum(d_col, -slabs), ends)
    (f_annulus,), _ = soft_fractions(d_disc, sp)
    d_nuc = np.maximum(superellipse_sdf(a_col, r, 0.55 * depth / 2, 0.6 * width / 2), 0.22 * disc_h - slabs)
    (f_nucleus,), _ = soft_fractions(np.maximum(d_nuc, ends), sp)
    disc_index = np.clip(np.searchsorted(vc, v[0, :, 0]) - 1, 0, len(verts) - 1)
    nucleus_deg = np.asarray(spine.disc_degeneration, np.float32)[disc_index][None, :, None]

    # --- canal: bony canal (epidural fat), thecal sac, cord or roots ---
    a_canal = depth / 2 + 2.0 + canal_ap / 2
    da = a_col - a_canal
    (f_canal,), _ = soft_fractions(superellipse_sdf(da, r, canal_ap / 2, canal_lr / 2), sp)
    epi = np.float32(spine.epidural_fat)
    (f_thecal,), _ = soft_fractions(superellipse_sdf(da + epi / 2, r, canal_ap / 2 - epi / 2 - 0.5, canal_lr / 2 - 1.5), sp)
    if spine.conus_v is None:
        taper = np.ones_like(v)
    else:
        taper = np.sqrt(np.clip((np.float32(spine.conus_v) - v) / 15.0, 0.0, 1.0))
    cord_ap = np.maximum(spine.cord_ap / 2 * taper, 0.05)
    cord_lr = np.maximum(spine.cord_lr / 2 * taper, 0.05)
    d_cord = superellipse_sdf(da + 1.0, r, cord_ap, cord_lr)
    d_cord = np.where(taper > 0.02, d_cord, np.float32(50.0))
    if spine.conus_v is not None:
        below = v > np.float32(spine.conus_v)
        for r_root in (-5.0, -3.0, -1.0, 1.0, 3.0, 5.0):
            d_root = np.sqrt((da - 0.35 * canal_ap / 2) ** 2 + (r - np.float32(r_root)) ** 2) - np.float32(0.8)
            d_cord = np.minimum(d_cord, np.where(below, d_root, np.float32(50.0)))
    (f_cord,), _ = soft_fractions(d_cord, sp)

    # --- soft tissues around the spine ---
    a_back = depth / 2 + 2.0 + canal_ap
    a_skin = a_back + np.float32(spine.muscle_depth)
    d_muscle = np.maximum(a_back - 3.0 - a_col, a_col - a_skin)  # (1, ny, nx) unless psoas/longus
    if spine.region == "lumbar":
        grow = np.clip((v - np.float32(vc[0])) / 100.0, 0.2, 1.0)
        psoas = superellipse_sdf(a_col + 2.0, np.abs(r) - (width / 2 + 10.0), 14.0 * grow, 11.0 * grow)
        d_muscle = np.minimum(d_muscle, psoas)
    if spine.region == "cervical":
        longus = box_sdf((a_col + depth / 2 + 2.5, 2.5), (r, 10.0))
        d_muscle = np.minimum(d_muscle, longus)
    (f_muscle,), _ = soft_fractions(np.asarray(d_muscle, np.float32), sp)
    d_sub = np.maximum(a_skin - a_col, a_col - (a_skin + np.float32(spine.fat_thickness)))
    (f_sub,), _ = soft_fractions(d_sub, sp)
    (f_air,), _ = soft_fractions(a_skin + np.float32(spine.fat_thickness) - a_col, sp)
    zeros = np.zeros((1, 1, 1), np.float32)
    f_lung, f_aorta = zeros, zeros
    if spine.region in ("thoracic", "lumbar"):
        radius = 11.0 if spine.region == "thoracic" else 9.0
        d_aorta = np.sqrt((a_col + depth / 2 + 14.0) ** 2 + (r + 14.0) ** 2) - np.float32(radius)
        (f_aorta,), _ = soft_fractions(d_aorta.astype(np.float32), sp)
    if spine.region == "thoracic":
        d_lung = np.maximum(width / 2 + 3.0 - np.abs(r), a_col - 0.2 * depth)
        (f_lung,), _ = soft_fractions(np.asarray(d_lung, np.float32), sp)

    fractions = {
        "air": f_air, "subcut_fat": f_sub, "muscle": f_muscle, "lung": f_lung, "aorta": f_aorta,
        "pe": f_pe, "pe_marrow": f_pe_marrow, "annulus": f_annulus, "nucleus": f_nucleus,
        "body": f_body, "marrow": f_marrow, "canal": f_canal, "thecal": f_thecal, "cord": f_cord,
    }
    labels = np.zeros(shape, np.uint8)
    for name, label in (("muscle", MUSCLE), ("pe", POSTERIOR_ELEMENTS), ("annulus", DISC),
                        ("body", VERTEBRAL_BODY), ("canal", CANAL)):
        labels[np.broadcast_to(fractions[name] >= 0.5, shape)] = label
    marrow_texture = SmoothField(rng, grid.fov_mm, corr_mm=3.0).sample(grid)
    background_mix = 1.0 / (1.0 + np.exp(-2.5 * SmoothField(rng, grid.fov_mm, corr_mm=12.0).sample(grid)))
    return AnatomyModel(
        grid=grid, spine=spine, fractions=fractions, vertebra_id=vid, marrow_texture=marrow_texture,
        background_mix=background_mix.astype(np.float32), nucleus_degeneration=nucleus_deg, labels=labels,
    )
