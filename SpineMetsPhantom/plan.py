"""The case plan: every random choice that defines a case, drawn before any voxel.

The plan is cheap (numbers only), so :func:`sample_record` gives a case's manifest
row, hidden label and EDF items in microseconds, and exactly the row that
:func:`.case.generate_case` would record for the same seed and configuration.

Random streams: a case seed feeds ``numpy.random.SeedSequence(seed)``, whose five
spawned children drive (0) the plan, (1) the anatomy texture, (2) lesion shapes and
textures, (3) bias field and noise and (4) the realism of
:attr:`.config.PhantomConfig.realism` (the fifth child was added in version 2, so the
plan and the other four are those of version 1). Changing, say, the noise level
therefore never changes the anatomy, and no global random state is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SpineMetsCore.conventions import EDF_ITEMS
from SpineMetsCore.errors import InputError

from .anatomy import SpinePlan, plan_spine
from .config import CENTRES, PhantomConfig
from .lesions import LesionPlan, plan_lesion_shape
from .signal_rules import (
    ALL_SITES,
    LESION_DIAMETER_MM,
    NONE,
    P_FRACTURE,
    P_HETEROGENEOUS,
    P_ILL_DEFINED,
    P_POSTERIOR_ELEMENTS,
    PRIMARY_BONE,
    SAME_PATTERN_PROB,
    SEQUENCES,
    choose,
    sample_extension,
    sample_n_lesions,
    sample_patient,
    sample_pattern,
    sample_region,
    sample_signals,
    sample_site,
)

PHANTOM_VERSION = "2"
"""Bumped whenever the same seed would give different data."""
FRACTURE_TYPES: tuple[str, ...] = ("wedge", "biconcave", "crush")
FRACTURE_TYPE_PROBS: tuple[float, float, float] = (0.6, 0.25, 0.15)
HEIGHT_LOSS_RANGE: tuple[float, float] = (0.2, 0.5)

# The EDF items in the order the phantom has always written them (the two contrast/extension
# items last), so manifests stay byte-identical across versions; the set is the schema's.
_RECORD_EDF_ORDER: tuple[str, ...] = (
    *(item for item in EDF_ITEMS if item not in ("t1ce_signal", "extension_type")),
    "t1ce_signal",
    "extension_type",
)
assert sorted(_RECORD_EDF_ORDER) == sorted(EDF_ITEMS), "the phantom writes every EDF item of the schema once"

RECORD_COLUMNS: tuple[str, ...] = (
    "case_id",
    "seed",
    "site",
    "tumour_class",
    "centre",
    "field_strength",
    *_RECORD_EDF_ORDER,
    "fracture_type",
    "height_loss",
    "n_lesions",
    "lesion_levels",
    "levels_in_view",
    "phantom_version",
)
"""Fixed order of the record (the manifest row minus the image paths)."""


@dataclass
class CasePlan:
    case_id: str
    seed: int
    site: str
    tumour_class: str
    age: int
    sex: str
    centre: str
    field_strength: float
    region: str
    spine: SpinePlan
    lesions: list[LesionPlan] = field(default_factory=list)
    scanner_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """LPS position (mm) of the field-of-view centre."""
    gains: dict[str, float] = field(default_factory=dict)
    realism: bool = True
    """``PhantomConfig.realism``: without it the images are version 1's, and the record says so."""


def streams(seed: int) -> list[np.random.Generator]:
    """The five independent generators of a case (plan, anatomy, lesions, noise, realism).

    The first four are those of phantom version 1 (``spawn(5)`` starts with the children
    ``spawn(4)`` gave), so switching the realism off reproduces version 1 exactly.
    """
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(5)]


def check_seed(seed: object, what: str = "seed") -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(what, f"must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_site(site: str | None) -> str | None:
    if site is not None and site not in ALL_SITES:
        raise InputError("site", f"unknown site {site!r}; known: {ALL_SITES}")
    return site


def _lesion_appearance(rng: np.random.Generator, site: str, label: int, pattern: str, extension: str, diameter: float) -> LesionPlan:
    classes, ratios = sample_signals(rng, site, pattern)
    return LesionPlan(
        label=label, vertebra=-1, pattern=pattern, classes=classes, ratios=ratios,
        margin="ill-defined" if rng.random() < P_ILL_DEFINED else "well-defined",
        homogeneity="heterogeneous" if rng.random() < P_HETEROGENEOUS else "homogeneous",
        extension=extension, posterior=bool(rng.random() < P_POSTERIOR_ELEMENTS),
        diameter_mm=diameter, offset=(0.0, 0.0, 0.0), elongation=(1.0, 1.0, 1.0),
    )


def plan_case(
    seed: int,
    case_id: str = "case000",
    config: PhantomConfig | None = None,
    site: str | None = None,
    n_lesions: int | None = None,
) -> CasePlan:
    """Draw the hidden label, patient, scanner, spine and lesions of one case."""
    config = config or PhantomConfig()
    seed = check_seed(seed)
    check_site(site)
    if n_lesions is not None and not (isinstance(n_lesions, (int, np.integer)) and 0 <= n_lesions <= 3):
        raise InputError("n_lesions", f"must be 0..3 or None, got {n_lesions!r}")
    rng = streams(seed)[0]

    drawn_site = sample_site(rng, config.site_prevalence, config.primary_bone_fraction)
    site = site or drawn_site
    tumour_class = "primary_bone_tumour" if site == PRIMARY_BONE else "metastasis"
    age, sex = sample_patient(rng, site)
    centre = choose(rng, sorted(config.centre_probs), [config.centre_probs[k] for k in sorted(config.centre_probs)])
    u_field = rng.random()
    if len(config.field_strengths) == 1:
        field_strength = float(config.field_strengths[0])
    else:
        field_strength = 3.0 if u_field < CENTRES[centre].p_3t else 1.5
    region = sample_region(rng)
    lesion_free = rng.random() < config.zero_lesion_fraction
    n = sample_n_lesions(rng, site)
    if n_lesions is not None:
        n = int(n_lesions)
    elif lesion_free:
        n = 0

    lesions: list[LesionPlan] = []
    fracture = False
    lo, hi = LESION_DIAMETER_MM[tumour_class]
    if n > 0:
        pattern = sample_pattern(rng, site)
        index = _lesion_appearance(rng, site, 1, pattern, sample_extension(rng, site), float(rng.uniform(lo, hi)))
        fracture = bool(rng.random() < P_FRACTURE[site])
        lesions.append(index)
        for label in range(2, n + 1):
            same = rng.random() < SAME_PATTERN_PROB
            p2 = sample_pattern(rng, site)
            lesions.append(_lesion_appearance(
                rng, site, label, pattern if same else p2, sample_extension(rng, site, scale=0.5),
                float(rng.uniform(lo, index.diameter_mm)),
            ))

    spine = plan_spine(rng, region, config.fov_mm, age)
    eligible = spine.eligible()
    if lesions and not eligible:
        raise InputError("PhantomConfig", f"the field of view {config.fov_mm} mm holds no whole {region} vertebra for a lesion")
    order = [int(i) for i in rng.permutation(eligible)] if eligible else []
    lesions = lesions[: len(order)]
    for lesion, vertebra in zip(lesions, order, strict=False):
        lesion.vertebra = vertebra
        plan_lesion_shape(rng, lesion)
    if lesions and fracture:
        vert = spine.vertebrae[lesions[0].vertebra]
        vert.height_loss = float(rng.uniform(*HEIGHT_LOSS_RANGE))
        vert.fracture_type = FRACTURE_TYPES[int(rng.choice(3, p=FRACTURE_TYPE_PROBS))]

    scanner_centre = (float(rng.normal(0.0, 3.0)), float(rng.normal(15.0, 5.0)), float(rng.normal(0.0, 15.0)))
    gains = {seq: CENTRES[centre].gain * float(rng.uniform(0.85, 1.15)) for seq in SEQUENCES}
    return CasePlan(
        case_id=case_id, seed=seed, site=site, tumour_class=tumour_class, age=age, sex=sex, centre=centre,
        field_strength=field_strength, region=region, spine=spine, lesions=lesions,
        scanner_centre=scanner_centre, gains=gains, realism=config.realism,
    )


def plan_record(plan: CasePlan) -> dict[str, object]:
    """The case's record (manifest row minus paths), in :data:`RECORD_COLUMNS` order."""
    verts = plan.spine.vertebrae
    index = plan.lesions[0] if plan.lesions else None
    index_vert = verts[index.vertebra] if index else None
    visible = [vert for vert in verts if vert.visible] or verts

    def lesion_item(value: str) -> str:
        return value if index else NONE

    record: dict[str, object] = {
        "case_id": plan.case_id,
        "seed": plan.seed,
        "site": plan.site,
        "tumour_class": plan.tumour_class,
        "centre": plan.centre,
        "field_strength": plan.field_strength,
        "age": plan.age,
        "sex": plan.sex,
        "region": plan.region,
        "level": index_vert.name if index_vert else NONE,
        "n_involved_vertebrae": len({les.vertebra for les in plan.lesions}),
        "t1_signal": lesion_item(index.classes["T1"] if index else ""),
        "t2_signal": lesion_item(index.classes["T2"] if index else ""),
        "stir_signal": lesion_item(index.classes["STIR"] if index else ""),
        "fracture": "yes" if index_vert is not None and index_vert.height_loss > 0 else "no",
        "posterior_element_involvement": lesion_item(("yes" if index.posterior else "no") if index else ""),
        "soft_tissue_extension": lesion_item(("no" if index.extension == "none" else "yes") if index else ""),
        "margin": lesion_item(index.margin if index else ""),
        "pattern": lesion_item(index.pattern if index else ""),
        "homogeneity": lesion_item(index.homogeneity if index else ""),
        "t1ce_signal": lesion_item(index.classes["T1CE"] if index else ""),
        "extension_type": lesion_item(index.extension if index else ""),
        "fracture_type": index_vert.fracture_type if index_vert else "none",
        "height_loss": round(index_vert.height_loss, 4) if index_vert else 0.0,
        "n_lesions": len(plan.lesions),
        "lesion_levels": ";".join(verts[les.vertebra].name for les in plan.lesions),
        "levels_in_view": f"{visible[0].name}-{visible[-1].name}",
        "phantom_version": PHANTOM_VERSION if plan.realism else "1",
    }
    return {key: record[key] for key in RECORD_COLUMNS}


def sample_record(
    seed: int,
    case_id: str = "case000",
    config: PhantomConfig | None = None,
    site: str | None = None,
) -> dict[str, object]:
    """The record :func:`.case.generate_case` would produce, without rendering images."""
    return plan_record(plan_case(seed, case_id, config, site))
