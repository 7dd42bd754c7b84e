"""Study cohorts of the phantom (``spinemets phantom --study a|b|c|d``): labels, splits, seeds, signal."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import roc_auc_score

from SpineMetsCore.errors import InputError
from SpineMetsPhantom import PhantomConfig
from SpineMetsPhantom.sacroiliac import SI_JOINT, SIConfig, generate_si_case, subchondral_fat_signal
from SpineMetsPhantom.studies import STUDIES, allocate, assignments, study_spec, write_study_cohort

SMALL = PhantomConfig(size=(48, 64, 8))
SMALL_SI = SIConfig(size=(48, 36, 8))


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _ras_to_index(image: sitk.Image, text: str) -> tuple[int, int, int]:
    r, a, s = (float(v) for v in text.split(","))
    return image.TransformPhysicalPointToIndex((-r, -a, s))


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("studies")
    sizes = {"a": 14, "b": 6, "c": 8, "d": 8}
    return {k: write_study_cohort(k, out / k, n_cases=n, seed=3, config=SMALL, si_config=SMALL_SI)
            for k, n in sizes.items()}


def test_allocation_keeps_paper_proportions_and_every_class() -> None:
    assert allocate({"x": 360, "y": 154}, 514) == {"x": 360, "y": 154}
    spec = study_spec("d")
    full = assignments(spec, 706, seed=0)
    counts = Counter((a.centre, a.split, a.label) for a in full)
    assert sum(v for (c, _, lab), v in counts.items() if c == "C2" and lab == "yes") == 37
    assert sum(v for (c, _, lab), v in counts.items() if c == "C2" and lab == "no") == 21
    assert sum(v for (_, s, _), v in counts.items() if s == "train") == 455
    c = Counter(a.split for a in assignments(study_spec("c"), 510, seed=0))
    assert c == {"train": 328, "internal_validation": 82, "external_test": 100}
    a = assignments(study_spec("a"), 14, seed=0)
    assert {x.label for x in a} == set(STUDIES["a"].classes) and len(STUDIES["a"].classes) == 7
    assert Counter(x.split for x in a) == {"development": 10, "test": 4}


def test_study_a_sites_split_sequences_and_seeds(cohorts: dict[str, Path]) -> None:
    manifest = cohorts["a"]
    rows = _rows(manifest)
    assert {r["site"] for r in rows} == {"lung", "breast", "kidney", "prostate", "thyroid", "liver", "other"}
    assert {r["split"] for r in rows} == {"development", "test"}
    header = list(rows[0])
    assert "T1CE" not in header and {"T1", "T2", "STIR", "age", "sex", "t1_signal", "fracture"} <= set(header)
    for row in rows:  # the seed lies in the index lesion and the ROI holds the lesion
        mask = sitk.ReadImage(str(manifest.parent / row["mask"]))
        assert mask[_ras_to_index(mask, row["seed_ras"])] == 1
        lo = np.array([float(v) for v in row["roi_min_ras"].split(",")])
        hi = np.array([float(v) for v in row["roi_max_ras"].split(",")])
        arr = sitk.GetArrayFromImage(mask)
        for k, j, i in np.argwhere(arr == 1)[::7]:
            p = mask.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
            ras = np.array([-p[0], -p[1], p[2]])
            assert np.all(ras >= lo) and np.all(ras <= hi)


def test_study_b_enhancing_lesions_both_diagnoses(cohorts: dict[str, Path]) -> None:
    rows = _rows(cohorts["b"])
    assert Counter(r["diagnosis"] for r in rows) == {"metastasis": 3, "primary_bone_tumour": 3}
    assert all(r["t1ce_signal"] == "hyper" for r in rows)
    assert "T1CE" in rows[0] and all(r["diagnosis"] == r["tumour_class"] for r in rows)
    base = cohorts["b"].parent
    for row in rows:  # the lesion enhances: brighter than the whole slab on contrast T1
        t1ce = sitk.GetArrayFromImage(sitk.ReadImage(str(base / row["T1CE"])))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(base / row["mask"])))
        assert t1ce[mask == 1].mean() > 1.5 * np.median(t1ce)


def test_study_c_solitary_two_centres(cohorts: dict[str, Path]) -> None:
    rows = _rows(cohorts["c"])
    assert all(r["n_lesions"] == "1" for r in rows)
    assert {(r["centre"], r["split"]) for r in rows} == {("C1", "train"), ("C1", "internal_validation"),
                                                         ("C2", "external_test")}
    assert {r["diagnosis"] for r in rows if r["split"] == "external_test"} == {"metastasis", "primary_bone_tumour"}
    assert {"T1", "T2", "STIR", "T1CE", "age"} <= set(rows[0])


def test_study_d_sacroiliac_masks_and_labels(cohorts: dict[str, Path]) -> None:
    manifest = cohorts["d"]
    rows = _rows(manifest)
    assert {r["axspa"] for r in rows} == {"yes", "no"}
    assert {r["centre"] for r in rows if r["split"] == "external_test"} == {"C2"}
    anatomy = sitk.GetArrayFromImage(sitk.ReadImage(str(manifest.parent / rows[0]["anatomy"])))
    assert (anatomy == SI_JOINT).sum() > 50
    for row in rows:
        mask = sitk.ReadImage(str(manifest.parent / row["mask"]))
        n = int(sitk.GetArrayViewFromImage(mask).sum())
        assert np.isclose(n * np.prod(mask.GetSpacing()) / 1000.0, float(row["fm_volume_ml"]))
        if row["seed_ras"]:
            assert mask[_ras_to_index(mask, row["seed_ras"])] == 1
        else:
            assert n == 0
    assert any(float(r["fm_volume_ml"]) > 0 for r in rows)


def test_sacroiliac_fat_metaplasia_follows_the_hidden_label() -> None:
    labels, volumes, t1_ratio = [], [], []
    for i in range(24):
        axspa = "yes" if i % 2 else "no"
        case = generate_si_case(500 + i, f"c{i}", axspa, "C1", SIConfig(size=(64, 48, 8)))
        mask = sitk.GetArrayViewFromImage(case.lesion_mask)
        t1 = sitk.GetArrayViewFromImage(case.images["T1"])
        if mask.any():  # fat metaplasia is T1-bright against the rest of the bone marrow
            anatomy = sitk.GetArrayViewFromImage(case.anatomy)
            marrow = np.isin(anatomy, (1, 2)) & (mask == 0)
            t1_ratio.append(t1[mask == 1].mean() / t1[marrow].mean())
        labels.append(i % 2)
        volumes.append(float(case.record["fm_volume_ml"]))
        assert np.isfinite(subchondral_fat_signal(case))
    assert roc_auc_score(labels, volumes) > 0.75
    assert np.median(t1_ratio) > 1.15


def test_study_cohorts_are_reproducible(tmp_path: Path, cohorts: dict[str, Path]) -> None:
    for key, n in (("c", 8), ("d", 8)):
        again = write_study_cohort(key, tmp_path / key, n_cases=n, seed=3, config=SMALL, si_config=SMALL_SI)
        first = cohorts[key]
        assert again.read_bytes() == first.read_bytes()
        for row in _rows(first)[:3]:
            for column in ("T1", "mask"):
                a = hashlib.sha256((first.parent / row[column]).read_bytes()).hexdigest()
                b = hashlib.sha256((again.parent / row[column]).read_bytes()).hexdigest()
                assert a == b


def test_bad_study_and_case_count() -> None:
    with pytest.raises(InputError, match="unknown study"):
        study_spec("e")
    with pytest.raises(InputError, match="n_cases"):
        write_study_cohort("a", "/tmp/never", n_cases=0)
