"""Phantom cohorts shaped like the four studies SpineMets reproduces (``--study a|b|c|d``).

Each study is one small :class:`StudySpec`: its label column and classes, its sequences,
and its strata (centre, split) with the paper's counts. ``--cases N`` scales the strata
to ``N`` by largest remainders, first over strata, then over classes within each
stratum (every stratum and class keeps at least one case when ``N`` allows), so a
reduced cohort has the paper's proportions and the paper's size is one number away.
The order of cases is shuffled by the cohort seed so case ids carry no label.

========  ==============================================  =========  ==========
study     label column: classes                           paper N    default N
========  ==============================================  =========  ==========
``a``     ``site``: the 7 primary sites (T1, T2, STIR)    514        98
``b``     ``diagnosis``: metastasis / primary bone        (none)     40
          tumour (T1, contrast T1)
``c``     ``diagnosis``, solitary lesions, two centres    510        60
          (T1, T2, STIR, contrast T1)
``d``     ``axspa``: yes / no, sacroiliac joints,         706        60
          two centres (T1, STIR)
========  ==============================================  =========  ==========

Manifest columns (beyond the project's ``case_id``, sequences, ``mask``, ``anatomy``):
``study``, the label column, ``split``, ``centre``, region-growing inputs ``seed_ras``
(``R,A,S`` in Slicer RAS mm: the deepest voxel of the index lesion, as a reader would
click it) and ``roi_min_ras`` / ``roi_max_ras`` (a box 10 mm around the index lesion;
for study D a box around both joints), then the truth and clinical columns of the case
record. Study A keeps the EDF items and ``age``/``sex``; study C's CRad-M uses
``age``. A case without a lesion (study D's non-axSpA controls) has empty seed cells.

Case ``i`` uses the seed ``SeedSequence([seed, study salt, i, attempt]) >> 11``;
``attempt`` only moves past plans that break a study's inclusion rule (study B: the
index lesion enhances on contrast T1). Same seed, same bytes. The cohort is synthetic
data for demos and tests: it says nothing about patients, and figures computed on it
are not the papers' results.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import atomic_path

from .case import generate_case
from .cohort import FORMATS, case_id_for
from .config import PhantomConfig
from .plan import RECORD_COLUMNS, check_seed, plan_case
from .sacroiliac import SI_SEQUENCES, SIConfig, generate_si_case
from .signal_rules import PRIMARY_BONE, SITE_PREVALENCE, SITES

logger = logging.getLogger(__name__)

STUDY_VERSION = "1"
"""Bumped whenever a study cohort of the same seed and size would change."""
ROI_MARGIN_MM = 10.0
MAX_ATTEMPTS = 200
METASTASIS = "metastasis"
PRIMARY = "primary_bone_tumour"


@dataclass(frozen=True)
class Stratum:
    """Cases sharing a centre and a split; ``classes`` weights the labels within it."""

    split: str
    weight: float
    classes: Mapping[str, float]
    centre: str | None = None
    """``C1``/``C2``, or None for the spine phantom's default centre mixture."""


@dataclass(frozen=True)
class StudySpec:
    key: str
    title: str
    reference: str
    label: str
    sequences: tuple[str, ...]
    strata: tuple[Stratum, ...]
    paper_n: int | None
    default_n: int
    salt: int

    @property
    def classes(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for stratum in self.strata:
            seen.update(dict.fromkeys(stratum.classes))
        return tuple(seen)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.split for s in self.strata))


_SITES_A = {site: SITE_PREVALENCE[site] for site in SITES}
_BALANCED = {METASTASIS: 0.5, PRIMARY: 0.5}

STUDIES: dict[str, StudySpec] = {
    "a": StudySpec(
        "a", "Primary site of spinal metastases from non-contrast MRI", "J Magn Reson Imaging 2025, doi 10.1002/jmri.29720",
        "site", ("T1", "T2", "STIR"),
        (Stratum("development", 360, _SITES_A), Stratum("test", 154, _SITES_A)), 514, 98, 0x5A01),
    "b": StudySpec(
        "b", "Spinal metastasis vs primary malignant spinal bone tumour on contrast-enhanced MRI",
        "J Bone Oncol 2023, doi 10.1016/j.jbo.2023.100498", "diagnosis", ("T1", "T1CE"),
        (Stratum("train", 0.7, _BALANCED), Stratum("test", 0.3, _BALANCED)), None, 40, 0x5A02),
    "c": StudySpec(
        "c", "Solitary primary spinal tumour vs solitary spinal metastasis (two centres)",
        "clinical-radiomics multiparametric MRI study (MISSION.md, study C)", "diagnosis", ("T1", "T2", "STIR", "T1CE"),
        (Stratum("train", 328, _BALANCED, "C1"), Stratum("internal_validation", 82, _BALANCED, "C1"),
         Stratum("external_test", 100, _BALANCED, "C2")), 510, 60, 0x5A03),
    "d": StudySpec(
        "d", "Fat metaplasia on sacroiliac-joint MRI and axial spondyloarthritis",
        "Insights Imaging 2024, doi 10.1186/s13244-024-01659-y", "axspa", SI_SEQUENCES,
        (Stratum("train", 455, {"yes": 462, "no": 186}, "C1"), Stratum("validation", 64, {"yes": 462, "no": 186}, "C1"),
         Stratum("internal_test", 129, {"yes": 462, "no": 186}, "C1"),
         Stratum("external_test", 58, {"yes": 37, "no": 21}, "C2")), 706, 60, 0x5A04),
}
"""The four studies (counts from ../shared/MISSION.md; study B's cohort size is not given there)."""


def study_spec(study: str) -> StudySpec:
    key = str(study).strip().lower()
    if key not in STUDIES:
        raise InputError("study", f"unknown study {study!r}; use one of {sorted(STUDIES)}")
    return STUDIES[key]


def allocate(weights: Mapping[str, float], n: int) -> dict[str, int]:
    """Split ``n`` over ``weights`` by largest remainders; each key gets >= 1 when ``n`` allows."""
    keys = list(weights)
    w = np.array([float(weights[k]) for k in keys])
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = sorted(range(len(keys)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - int(counts.sum())]:
        counts[i] += 1
    if n >= len(keys):
        for i in range(len(keys)):
            while counts[i] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[i] += 1
    return {k: int(c) for k, c in zip(keys, counts, strict=True)}


@dataclass(frozen=True)
class Assignment:
    index: int
    label: str
    split: str
    centre: str | None


def assignments(spec: StudySpec, n_cases: int, seed: int) -> list[Assignment]:
    """Label, split and centre of every case of a study cohort (deterministic per seed)."""
    per_stratum = allocate({str(i): s.weight for i, s in enumerate(spec.strata)}, n_cases)
    slots: list[tuple[str, str, str | None]] = []
    for i, stratum in enumerate(spec.strata):
        for label, count in allocate(stratum.classes, per_stratum[str(i)]).items():
            slots.extend([(label, stratum.split, stratum.centre)] * count)
    rng = np.random.default_rng(np.random.SeedSequence([seed, spec.salt, 0xC0]))
    order = rng.permutation(len(slots))
    return [Assignment(i, *slots[int(j)]) for i, j in enumerate(order)]


def study_case_seed(seed: int, spec: StudySpec, index: int, attempt: int = 0) -> int:
    state = np.random.SeedSequence([int(seed), spec.salt, int(index), int(attempt)]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 11


def manifest_columns(spec: StudySpec) -> list[str]:
    head = ["case_id", *spec.sequences, "mask", "anatomy", "study", spec.label, "split", "centre",
            "seed_ras", "roi_min_ras", "roi_max_ras"]
    if spec.key == "d":
        rest = ["seed", "field_strength", "age", "sex", "fm_volume_ml", "fm_areas", "fm_components",
                "bone_marrow_oedema", "severity", "marrow_fat_fraction", "phantom_version"]
    else:
        rest = [c for c in RECORD_COLUMNS[1:] if c not in ("centre",)]
    return [*head, *[c for c in rest if c not in head], "study_version"]


def _ras(lps: tuple[float, ...]) -> tuple[float, float, float]:
    return (-float(lps[0]), -float(lps[1]), float(lps[2]))


def _fmt(point: tuple[float, ...]) -> str:
    return ",".join(f"{v:.3f}" for v in point)


def _box_ras(lo_lps: tuple[float, ...], hi_lps: tuple[float, ...], margin: float) -> tuple[str, str]:
    corners = np.array([_ras(lo_lps), _ras(hi_lps)])
    lo = corners.min(0) - margin
    hi = corners.max(0) + margin
    return _fmt(tuple(lo)), _fmt(tuple(hi))


def _spine_config(spec: StudySpec, base: PhantomConfig, centre: str | None) -> PhantomConfig:
    config = replace(base, primary_bone_fraction=0.0, zero_lesion_fraction=0.0)
    if centre is not None:
        config = replace(config, centre_probs={centre: 1.0})
    return config


def _spine_case(spec: StudySpec, a: Assignment, seed: int, config: PhantomConfig) -> tuple[object, int]:
    """Generate the spine case of one assignment, moving past plans the study excludes."""
    site: str | None = a.label if spec.key == "a" else (PRIMARY_BONE if a.label == PRIMARY else None)
    n_lesions = 1 if spec.key == "c" else None
    case_id = case_id_for(a.index)
    for attempt in range(MAX_ATTEMPTS):
        s = study_case_seed(seed, spec, a.index, attempt)
        if spec.key == "b":
            plan = plan_case(s, case_id, config, site, n_lesions)
            if not plan.lesions or plan.lesions[0].classes["T1CE"] != "hyper":
                continue
        return generate_case(s, case_id, config, site=site, n_lesions=n_lesions), attempt
    raise InputError(f"study {spec.key}", f"no case of {a.label!r} met the inclusion rule in {MAX_ATTEMPTS} tries")


def _write_images(out: Path, case_id: str, items: list[tuple[str, sitk.Image]], fmt: str) -> dict[str, str]:
    row = {}
    for column, image in items:
        name = f"{case_id}_{column}.{fmt}"
        try:
            with atomic_path(out / name) as tmp:
                sitk.WriteImage(image, str(tmp), useCompression=fmt != "nii")
        except (OSError, RuntimeError) as exc:
            raise InputError(str(out / name), f"cannot be written ({exc})") from exc
        row[column] = name
    return row


def study_case_row(spec: StudySpec, a: Assignment, seed: int, out: Path, fmt: str,
                   config: PhantomConfig, si_config: SIConfig) -> dict[str, object]:
    """Generate and write one case of a study cohort; return its manifest row."""
    case_id = case_id_for(a.index)
    row: dict[str, object] = {"case_id": case_id, "study": spec.key, "split": a.split, "study_version": STUDY_VERSION}
    if spec.key == "d":
        assert a.centre is not None
        si = generate_si_case(study_case_seed(seed, spec, a.index), case_id, a.label, a.centre, si_config)
        row.update(_write_images(out, case_id, [*((s, si.images[s]) for s in spec.sequences),
                                                ("mask", si.lesion_mask), ("anatomy", si.anatomy)], fmt))
        row.update(si.record)
        row["seed_ras"] = _fmt(_ras(si.seed_lps)) if si.seed_lps is not None else ""
        row["roi_min_ras"], row["roi_max_ras"] = _box_ras(*si.roi_lps, 0.0)
        return row
    case, _ = _spine_case(spec, a, seed, _spine_config(spec, config, a.centre))
    row.update(_write_images(out, case_id, [*((s, case.images[s]) for s in spec.sequences),  # type: ignore[attr-defined]
                                            ("mask", case.lesion_mask), ("anatomy", case.anatomy)], fmt))  # type: ignore[attr-defined]
    record = case.record  # type: ignore[attr-defined]
    row.update({k: record[k] for k in RECORD_COLUMNS[1:]})
    row[spec.label] = record["site"] if spec.key == "a" else record["tumour_class"]
    index = next(les for les in case.lesions if les.label == 1)  # type: ignore[attr-defined]
    row["seed_ras"] = _fmt(_ras(index.seed_lps))
    row["roi_min_ras"], row["roi_max_ras"] = _box_ras(index.bbox_min_lps, index.bbox_max_lps, ROI_MARGIN_MM)
    return row


def write_study_cohort(
    study: str,
    out_dir: str | os.PathLike[str],
    n_cases: int | None = None,
    seed: int = 0,
    fmt: str = "nii.gz",
    config: PhantomConfig | None = None,
    si_config: SIConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a study cohort (images, masks, ``manifest.csv``); return the manifest path.

    ``n_cases`` defaults to the study's reduced size; ``spec.paper_n`` gives the paper's.
    ``config``/``si_config`` set the grid (tests use small ones).
    """
    spec = study_spec(study)
    n = spec.default_n if n_cases is None else n_cases
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError("n_cases", f"must be a positive integer, got {n_cases!r}")
    check_seed(seed, "seed")
    if fmt not in FORMATS:
        raise InputError("fmt", f"unknown image format {fmt!r}; use one of {FORMATS}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(out), f"cannot create the output folder ({exc})") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(str(out), "is not a writable folder")
    config = config or PhantomConfig()
    si_config = si_config or SIConfig()
    plan = assignments(spec, int(n), seed)
    columns = manifest_columns(spec)
    rows = []
    for done, a in enumerate(plan, start=1):
        rows.append(study_case_row(spec, a, seed, out, fmt, config, si_config))
        if progress is not None:
            progress(done, len(plan))
    manifest = out / "manifest.csv"
    with atomic_path(manifest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    logger.info("wrote study %s phantom cohort: %d case(s), %s", spec.key, len(rows), manifest)
    return manifest
