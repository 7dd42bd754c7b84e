"""Tests of the synthetic spine MRI phantom (SpineMetsPhantom).

Plain unittest assertions so Slicer's unittest runner and pytest both run them.
They check real outcomes: bytes on disk, geometry, what the images show versus what
the record claims, and the statistics of the hidden-label rules.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import random
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, stats

from SpineMetsCore.errors import InputError
from SpineMetsPhantom import (
    CANAL,
    DISC,
    EDF_ITEMS,
    INFORMATIVE_EDF,
    MANIFEST_COLUMNS,
    NOISE_EDF,
    NORMAL_MARROW,
    POSTERIOR_ELEMENTS,
    PRIMARY_BONE,
    SAGITTAL_DIRECTION,
    SEQUENCES,
    SITE_PREVALENCE,
    SITES,
    VERTEBRAL_BODY,
    PhantomConfig,
    case_seed,
    generate_case,
    sample_record,
    sample_records,
    signal_class,
    write_case,
    write_cohort,
)

COHORT_SEED = 0
COHORT_SIZE = 40


@functools.cache
def cohort_case(index: int):
    """Case ``index`` of the 40-case test cohort (generated once per test run)."""
    return generate_case(case_seed(COHORT_SEED, index), f"case{index:04d}")


@functools.cache
def forced_case(site: str, seed: int):
    return generate_case(seed, f"{site}{seed}", site=site)


def arrays(case) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    images = {seq: sitk.GetArrayFromImage(case.images[seq]).astype(np.float64) for seq in SEQUENCES}
    return images, sitk.GetArrayFromImage(case.lesion_mask), sitk.GetArrayFromImage(case.anatomy)


def measured_ratios(case) -> dict[int, dict[str, float]]:
    """Mean lesion signal / mean normal-marrow signal, per lesion label and sequence."""
    images, mask, anatomy = arrays(case)
    marrow = anatomy == NORMAL_MARROW
    return {
        lesion.label: {seq: float(images[seq][mask == lesion.label].mean() / images[seq][marrow].mean()) for seq in SEQUENCES}
        for lesion in case.lesions
    }


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


class PhantomTestCase(unittest.TestCase):
    def assertClose(self, actual, expected, atol: float = 1e-9) -> None:
        """numpy allclose as a unittest assertion (Slicer runs these with unittest)."""
        actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
        self.assertTrue(np.allclose(actual, expected, rtol=1e-7, atol=atol), f"{actual} != {expected}")


class DeterminismTest(PhantomTestCase):
    def test_same_seed_gives_identical_files(self) -> None:
        for fmt in ("nii.gz", "nrrd"):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                write_case(generate_case(11, "c11"), a, fmt=fmt)
                write_case(generate_case(11, "c11"), b, fmt=fmt)
                da, db = file_digests(Path(a)), file_digests(Path(b))
                self.assertEqual(len(da), 6, fmt)
                self.assertEqual(da, db, fmt)

    def test_cohort_files_byte_identical_and_no_leftovers(self) -> None:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            write_cohort(a, n_cases=2, seed=5)
            write_cohort(b, n_cases=2, seed=5)
            da, db = file_digests(Path(a)), file_digests(Path(b))
            self.assertEqual(da, db)
            self.assertEqual(len(da), 2 * 6 + 1)
            self.assertFalse([n for n in da if n.startswith(".")], "temporary files left behind")

    def test_different_seeds_differ(self) -> None:
        a, b = generate_case(1), generate_case(2)
        self.assertFalse(np.array_equal(sitk.GetArrayFromImage(a.images["T2"]), sitk.GetArrayFromImage(b.images["T2"])))

    def test_case_independent_of_cohort_size(self) -> None:
        few, many = sample_records(3, seed=9), sample_records(7, seed=9)
        self.assertEqual(few, many[:3])
        case = generate_case(int(many[2]["seed"]), str(many[2]["case_id"]))
        self.assertEqual(case.record, many[2])

    def test_record_only_path_matches_generated_case(self) -> None:
        for index in range(5):
            case = cohort_case(index)
            self.assertEqual(sample_record(case.seed, case.case_id), case.record)

    def test_global_random_state_untouched(self) -> None:
        np_state, py_state = np.random.get_state(), random.getstate()
        generate_case(3)
        after = np.random.get_state()
        self.assertEqual(np_state[0], after[0])
        self.assertTrue(np.array_equal(np_state[1], after[1]))
        self.assertEqual(py_state, random.getstate())


class GeometryTest(PhantomTestCase):
    def test_all_images_share_a_sagittal_grid(self) -> None:
        case = cohort_case(0)
        reference = case.images["T1"]
        for image in [*case.images.values(), case.lesion_mask, case.anatomy]:
            self.assertEqual(image.GetSize(), reference.GetSize())
            self.assertEqual(image.GetSpacing(), reference.GetSpacing())
            self.assertEqual(image.GetOrigin(), reference.GetOrigin())
            self.assertEqual(image.GetDirection(), reference.GetDirection())
        for seq in SEQUENCES:
            self.assertEqual(case.images[seq].GetPixelID(), sitk.sitkFloat32)
        self.assertEqual(case.lesion_mask.GetPixelID(), sitk.sitkUInt8)
        self.assertEqual(case.anatomy.GetPixelID(), sitk.sitkUInt8)

        direction = np.array(reference.GetDirection()).reshape(3, 3)
        self.assertEqual(reference.GetDirection(), SAGITTAL_DIRECTION)
        self.assertAlmostEqual(float(np.linalg.det(direction)), 1.0)
        self.assertClose(direction[:, 0], [0, 1, 0])  # axis 0: anterior -> posterior
        self.assertClose(direction[:, 1], [0, 0, -1])  # axis 1: superior -> inferior
        self.assertClose(direction[:, 2], [-1, 0, 0])  # axis 2: left -> right
        spacing = reference.GetSpacing()
        self.assertEqual(reference.GetSize(), (96, 128, 14))
        self.assertClose(spacing, (1.15, 1.15, 3.5))
        self.assertGreater(spacing[2], 2.5 * max(spacing[:2]))  # thick sagittal slices
        self.assertGreater(float(np.linalg.norm(reference.GetOrigin())), 1.0)

    def test_size_parameter_keeps_field_of_view(self) -> None:
        config = PhantomConfig(size=(48, 64, 10))
        case = generate_case(4, config=config)
        image = case.images["T1"]
        self.assertEqual(image.GetSize(), (48, 64, 10))
        fov = np.array(image.GetSize()) * np.array(image.GetSpacing())
        self.assertClose(fov, (110.4, 147.2, 49.0))
        self.assertEqual(case.record["site"], sample_record(4, config=config)["site"])

    def test_anatomy_is_ordered_front_to_back(self) -> None:
        _, _, anatomy = arrays(cohort_case(1))
        ap = {label: np.argwhere(anatomy == label)[:, 2].mean() for label in (VERTEBRAL_BODY, NORMAL_MARROW, CANAL, POSTERIOR_ELEMENTS)}
        self.assertLess(ap[NORMAL_MARROW], ap[CANAL])
        self.assertLess(ap[CANAL], ap[POSTERIOR_ELEMENTS])
        # discs and bodies alternate down the midline column of the vertebral bodies
        mid = anatomy.shape[0] // 2
        column = anatomy[mid, :, int(round(ap[NORMAL_MARROW]))]
        runs = [k for k, _ in itertools.groupby(c for c in column if c in (DISC, NORMAL_MARROW))]
        self.assertGreaterEqual(len(runs), 5)


class LesionTest(PhantomTestCase):
    def test_masks_match_lesions_and_stay_in_the_column(self) -> None:
        n_with_lesions = 0
        for index in range(COHORT_SIZE):
            case = cohort_case(index)
            _, mask, anatomy = arrays(case)
            labels = sorted(int(v) for v in np.unique(mask) if v)
            self.assertEqual(labels, [lesion.label for lesion in case.lesions])
            self.assertEqual(len(case.lesions), case.record["n_lesions"])
            n_with_lesions += bool(case.lesions)
            for lesion in case.lesions:
                where = anatomy[mask == lesion.label]
                self.assertGreater(lesion.n_voxels, 20)
                self.assertLess(np.mean(where == DISC), 0.02, "metastases spare the disc")
                in_bone = np.isin(where, (VERTEBRAL_BODY, POSTERIOR_ELEMENTS)).mean()
                if lesion.extension != "none":
                    self.assertGreater(in_bone, 0.4)
                elif lesion.posterior_elements:  # the route body -> pedicle crosses a little soft tissue
                    self.assertGreater(in_bone, 0.85)
                else:
                    self.assertGreater(np.mean(where == VERTEBRAL_BODY), 0.97)
                self.assertEqual(int(mask[tuple(lesion.seed_index[::-1])]), lesion.label)
                # the LPS box encloses the mask voxels, edges included
                zyx = np.argwhere(mask == lesion.label)
                centres = np.array([case.lesion_mask.TransformIndexToPhysicalPoint(tuple(int(x) for x in p[::-1])) for p in zyx])
                self.assertTrue((centres >= np.array(lesion.bbox_min_lps) - 1e-6).all())
                self.assertTrue((centres <= np.array(lesion.bbox_max_lps) + 1e-6).all())
                self.assertClose(centres.mean(0), lesion.centre_lps, atol=1e-6)
                self.assertTrue(0.1 < lesion.volume_ml < 25.0)
        self.assertEqual(n_with_lesions, COHORT_SIZE)

    def test_extensions_reach_their_compartments(self) -> None:
        hits, total = 0, 0
        for index in range(COHORT_SIZE):
            case = cohort_case(index)
            _, mask, anatomy = arrays(case)
            for lesion in case.lesions:
                where = anatomy[mask == lesion.label]
                if lesion.extension in ("epidural", "both"):
                    total += 1
                    hits += bool(np.any(where == CANAL))
                if lesion.posterior_elements:
                    total += 1
                    hits += bool(np.any(where == POSTERIOR_ELEMENTS))
        self.assertGreater(total, 10)
        self.assertGreaterEqual(hits / total, 0.9)

    def test_recorded_signal_classes_match_the_images(self) -> None:
        agree, total = 0, 0
        for index in range(COHORT_SIZE):
            case = cohort_case(index)
            ratios = measured_ratios(case)
            for lesion in case.lesions:
                for seq in SEQUENCES:
                    total += 1
                    agree += signal_class(ratios[lesion.label][seq]) == lesion.signal[seq]
            if case.lesions:
                index_lesion = case.lesions[0]
                for seq, item in (("T1", "t1_signal"), ("T2", "t2_signal"), ("STIR", "stir_signal")):
                    self.assertEqual(case.record[item], index_lesion.signal[seq])
        self.assertGreater(total, 4 * COHORT_SIZE)
        self.assertGreaterEqual(agree / total, 0.95)

    def test_site_contrast_rules(self) -> None:
        lung_t1 = []
        for seed in range(4):
            case = forced_case("lung", seed)
            ratios = measured_ratios(case)
            lung_t1 += [ratios[les.label]["T1"] for les in case.lesions if les.pattern == "lytic"]
        self.assertTrue(lung_t1)
        self.assertLess(float(np.mean(lung_t1)), 0.85)  # lung: T1-hypo lytic deposits

        for site in ("kidney", "thyroid"):  # hypervascular: avid enhancement
            for seed in range(3):
                case = forced_case(site, seed)
                ratios = measured_ratios(case)
                for lesion in case.lesions:
                    if lesion.pattern != "sclerotic":
                        self.assertGreater(ratios[lesion.label]["T1CE"], 2.5, (site, seed))

        sclerotic = 0
        for seed in range(5):
            case = forced_case("prostate", seed)
            self.assertEqual(case.record["sex"], "M")
            ratios = measured_ratios(case)
            for lesion in case.lesions:
                if lesion.pattern == "sclerotic":  # dark on every sequence
                    sclerotic += 1
                    self.assertLess(ratios[lesion.label]["T1"], 0.5)
                    for seq in ("T2", "STIR", "T1CE"):
                        self.assertLess(ratios[lesion.label][seq], 1.15)
        self.assertGreater(sclerotic, 0)

    def test_pathological_fracture_loses_height(self) -> None:
        checked = 0
        for index in range(COHORT_SIZE):
            case = cohort_case(index)
            if case.record["fracture"] != "yes":
                continue
            _, _, anatomy = arrays(case)
            bodies, _ = ndimage.label(np.isin(anatomy, (VERTEBRAL_BODY, NORMAL_MARROW)))
            heights = {}
            for vert in case.vertebrae:
                if not vert["eligible"] and not vert["height_loss"]:
                    continue
                i, j, k = case.anatomy.TransformPhysicalPointToIndex(vert["centre_lps"])
                component = bodies[k, :, :] == bodies[k, j, i] if bodies[k, j, i] else None
                if component is None:
                    continue
                extent = component.sum(axis=0)  # SI extent per AP column, midline slice
                central = extent[extent > 0]
                heights[vert["name"]] = float(np.median(central))
            index_level = case.record["level"]
            others = [h for name, h in heights.items() if name != index_level]
            if index_level in heights and others:
                checked += 1
                self.assertLess(heights[index_level], 0.97 * float(np.median(others)), case.case_id)
        self.assertGreater(checked, 3)

    def test_lesions_are_separable_on_their_best_sequence(self) -> None:
        # Version 2's realism (heterogeneous lesions, oedema, blur) is meant to defeat a plain
        # threshold grower's exact boundary (mean 0.86 -> 0.79 on this cohort), not to hide the
        # lesion: nearly every lesion stays mostly separable on its best sequence.
        best = [les.separability[les.best_sequence] for i in range(COHORT_SIZE) for les in cohort_case(i).lesions]
        self.assertGreater(float(np.mean(best)), 0.75)
        self.assertGreater(float(np.mean(np.array(best) >= 0.6)), 0.85)

    def test_lesion_free_case(self) -> None:
        case = generate_case(21, n_lesions=0)
        self.assertEqual(case.lesions, [])
        self.assertEqual(int(sitk.GetArrayViewFromImage(case.lesion_mask).max()), 0)
        self.assertEqual(case.record["n_involved_vertebrae"], 0)
        self.assertEqual(case.record["t1_signal"], "none")
        self.assertGreater(int((sitk.GetArrayViewFromImage(case.anatomy) == NORMAL_MARROW).sum()), 1000)


class CohortStatisticsTest(PhantomTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.records = sample_records(1500, seed=123)

    def test_site_prevalence_and_tumour_class(self) -> None:
        n = len(self.records)
        sites = [r["site"] for r in self.records]
        primary = sites.count(PRIMARY_BONE) / n
        self.assertAlmostEqual(primary, 0.2, delta=0.03)
        total = sum(SITE_PREVALENCE.values())
        for site in SITES:
            expected = 0.8 * SITE_PREVALENCE[site] / total
            self.assertAlmostEqual(sites.count(site) / n, expected, delta=0.03, msg=site)
        self.assertEqual(max(set(SITES), key=sites.count), "lung")
        for r in self.records:
            self.assertEqual(r["tumour_class"], "primary_bone_tumour" if r["site"] == PRIMARY_BONE else "metastasis")

    def test_sex_and_age(self) -> None:
        prostate = [r["sex"] for r in self.records if r["site"] == "prostate"]
        breast = [r["sex"] for r in self.records if r["site"] == "breast"]
        self.assertTrue(prostate and all(s == "M" for s in prostate))
        self.assertGreater(breast.count("F") / len(breast), 0.95)
        ages = np.array([r["age"] for r in self.records])
        self.assertTrue(((ages >= 18) & (ages <= 90)).all())
        mets = np.array([r["age"] for r in self.records if r["site"] != PRIMARY_BONE])
        primaries = np.array([r["age"] for r in self.records if r["site"] == PRIMARY_BONE])
        self.assertGreater(mets.mean() - primaries.mean(), 8.0)
        self.assertEqual({r["centre"] for r in self.records}, {"C1", "C2"})
        self.assertEqual({r["field_strength"] for r in self.records}, {1.5, 3.0})

    def test_edf_lists_partition_the_items(self) -> None:
        self.assertEqual(sorted(INFORMATIVE_EDF + NOISE_EDF), sorted(EDF_ITEMS))
        self.assertFalse(set(INFORMATIVE_EDF) & set(NOISE_EDF))
        for item in EDF_ITEMS:
            self.assertIn(item, self.records[0])

    def test_informative_items_associate_with_site_and_noise_does_not(self) -> None:
        mets = [r for r in self.records if r["site"] != PRIMARY_BONE][:400]
        sites = [r["site"] for r in mets]

        def p_value(item: str) -> float:
            values = [r[item] for r in mets]
            if item == "age":
                values = list(np.digitize(values, [50, 60, 70]))
            rows, cols = sorted(set(sites)), sorted(set(map(str, values)))
            table = np.zeros((len(rows), len(cols)))
            for s, v in zip(sites, map(str, values), strict=False):
                table[rows.index(s), cols.index(v)] += 1
            return float(stats.chi2_contingency(table)[1])

        for item in INFORMATIVE_EDF:
            self.assertLess(p_value(item), 0.01, item)
        for item in NOISE_EDF:
            self.assertGreater(p_value(item), 0.001, item)

    def test_configured_mixture_is_respected(self) -> None:
        config = PhantomConfig(site_prevalence={"kidney": 1.0}, primary_bone_fraction=0.0, field_strengths=(3.0,),
                               zero_lesion_fraction=0.5)
        records = sample_records(60, seed=1, config=config)
        self.assertEqual({r["site"] for r in records}, {"kidney"})
        self.assertEqual({r["field_strength"] for r in records}, {3.0})
        empty = [r for r in records if r["n_lesions"] == 0]
        self.assertTrue(10 < len(empty) < 50)
        for r in empty:
            self.assertEqual(r["pattern"], "none")
            self.assertEqual(r["fracture"], "no")


class WriterTest(PhantomTestCase):
    def test_cohort_manifest(self) -> None:
        calls: list[tuple[int, int]] = []
        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_cohort(Path(tmp) / "cohort", n_cases=3, seed=2, progress=lambda i, n: calls.append((i, n)))
            self.assertEqual(manifest.name, "manifest.csv")
            self.assertEqual(calls, [(1, 3), (2, 3), (3, 3)])
            with manifest.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                self.assertEqual(tuple(reader.fieldnames or ()), MANIFEST_COLUMNS)
                rows = list(reader)
            self.assertEqual([r["case_id"] for r in rows], ["case0000", "case0001", "case0002"])
            for row, record in zip(rows, sample_records(3, seed=2), strict=False):
                for column in (*SEQUENCES, "mask", "anatomy"):
                    path = Path(row[column])
                    self.assertFalse(path.is_absolute())
                    self.assertTrue((manifest.parent / path).is_file(), row[column])
                self.assertEqual(row["site"], record["site"])
                self.assertEqual(int(row["seed"]), record["seed"])
                image = sitk.ReadImage(str(manifest.parent / row["T2"]))
                mask = sitk.ReadImage(str(manifest.parent / row["mask"]))
                self.assertEqual(image.GetSize(), mask.GetSize())
                self.assertClose(image.GetDirection(), SAGITTAL_DIRECTION, atol=1e-6)
                self.assertClose(image.GetSpacing(), (1.15, 1.15, 3.5), atol=1e-5)
                case = generate_case(record["seed"], record["case_id"])
                self.assertClose(image.GetOrigin(), case.images["T2"].GetOrigin(), atol=1e-4)
                self.assertTrue(np.array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(case.lesion_mask)))
            try:
                from SpineMetsCore.manifest import read_manifest
            except ImportError:  # pragma: no cover - the manifest reader ships separately
                return
            self.assertEqual(len(read_manifest(manifest, required_sequences=SEQUENCES, require_mask=True)), 3)

    def test_bad_inputs_raise_input_error(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            blocker = Path(tmp) / "file.txt"
            blocker.write_text("not a folder")
            with self.assertRaises(InputError):
                write_cohort(tmp, n_cases=-1, seed=0)
            with self.assertRaises(InputError):
                write_cohort(tmp, n_cases=1, seed=0, fmt="png")
            with self.assertRaises(InputError):
                write_cohort(blocker, n_cases=1, seed=0)
            with self.assertRaises(InputError):
                write_cohort(blocker / "sub", n_cases=1, seed=0)
            with self.assertRaises(InputError):
                write_case(cohort_case(0), tmp, fmt="mhd")
        with self.assertRaises(InputError):
            generate_case(0, site="pancreas")
        with self.assertRaises(InputError):
            generate_case(-1)
        with self.assertRaises(InputError):
            sample_records(-2, seed=0)
        with self.assertRaises(InputError):
            PhantomConfig(size=(4, 4, 4))
        with self.assertRaises(InputError):
            PhantomConfig(site_prevalence={"spleen": 1.0})
        with self.assertRaises(InputError):
            PhantomConfig(field_strengths=(7.0,))

    def test_zero_cases_writes_header_only(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_cohort(tmp, n_cases=0, seed=0)
            self.assertEqual(manifest.read_text(encoding="utf-8").strip(), ",".join(MANIFEST_COLUMNS))


if __name__ == "__main__":
    unittest.main()
