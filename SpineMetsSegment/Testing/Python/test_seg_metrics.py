"""Segmentation metrics on physical geometry, the reader study and ``spinemets seg-metrics``."""

import contextlib
import csv
import io
import json
import math
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree
from SpineMetsSegmentLib.logic import LesionSegmentationLogic
from SpineMetsSegmentLib.metrics import compute_metrics
from SpineMetsSegmentLib.reader_study import paired_comparison, read_cohort

from SpineMetsApp.cli import main as spinemets
from SpineMetsCore import segmentations
from SpineMetsCore.dataio import write_image, write_segmentation
from SpineMetsCore.errors import InputError
from SpineMetsCore.runtime import get_runtime
from SpineMetsCore.tables import PROVENANCE_ATTRIBUTE, table_node_to_dataframe
from SpineMetsCore.testing import oblique_direction


def grid(size=(30, 34, 12), spacing=(0.9, 1.2, 3.0), direction=None, origin=(5.0, -12.0, 30.0)):
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection((np.eye(3) if direction is None else direction).ravel().tolist())
    return image


def ellipsoid(reference, centre_mm, radii_mm):
    """Mask of an ellipsoid given in physical (LPS) millimetres."""
    size = reference.GetSize()
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    d = np.reshape(reference.GetDirection(), (3, 3))
    lps = ijk * np.asarray(reference.GetSpacing()) @ d.T + np.asarray(reference.GetOrigin())
    inside = (((lps - np.asarray(centre_mm)) / np.asarray(radii_mm)) ** 2).sum(axis=1) <= 1.0
    image = sitk.GetImageFromArray(inside.reshape(k.shape).astype(np.uint8))
    image.CopyInformation(reference)
    return image


def brute_force(reference, test):
    """Independent HD95 / MSD: boundary voxels' physical positions and nearest neighbours."""

    def boundary_points(image):
        arr = sitk.GetArrayFromImage(image).astype(bool)
        edge = arr & ~ndimage.binary_erosion(arr, structure=np.ones((3, 3, 3)), border_value=0)
        kji = np.argwhere(edge)
        return np.array([image.TransformIndexToPhysicalPoint((int(i), int(j), int(k))) for k, j, i in kji])

    a, b = boundary_points(reference), boundary_points(test)
    d_ab = cKDTree(b).query(a)[0]
    d_ba = cKDTree(a).query(b)[0]
    return max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)), np.concatenate([d_ab, d_ba]).mean()


class MetricsTest(unittest.TestCase):
    def test_shifted_box_on_anisotropic_grid(self):
        ref = grid()
        a = sitk.GetArrayFromImage(ref)
        a[3:9, 8:20, 5:20] = 1
        b = np.zeros_like(a)
        b[3:9, 8:20, 8:23] = 1  # shifted 3 voxels along i (0.9 mm) = 2.7 mm
        A, B = sitk.GetImageFromArray(a), sitk.GetImageFromArray(b)
        A.CopyInformation(ref)
        B.CopyInformation(ref)
        m = compute_metrics(A, B)
        self.assertAlmostEqual(m.dice, 2 * (6 * 12 * 12) / (2 * 6 * 12 * 15))
        self.assertAlmostEqual(m.jaccard, (6 * 12 * 12) / (6 * 12 * 18))
        self.assertAlmostEqual(m.hd95_mm, 2.7, places=4)
        self.assertAlmostEqual(m.volume_difference_ml, 0.0)
        self.assertAlmostEqual(m.reference_volume_ml, 6 * 12 * 15 * 0.9 * 1.2 * 3.0 / 1000.0)
        hd95, msd = brute_force(A, B)
        self.assertAlmostEqual(m.hd95_mm, hd95, places=4)
        self.assertAlmostEqual(m.msd_mm, msd, places=4)

    def test_ellipsoids_on_an_oblique_grid_match_brute_force(self):
        ref = grid(direction=oblique_direction(left_handed=True))
        centre = np.array(ref.TransformContinuousIndexToPhysicalPoint((15.0, 17.0, 6.0)))
        a = ellipsoid(ref, centre, (9.0, 11.0, 13.0))
        b = ellipsoid(ref, centre + (2.0, -1.0, 1.5), (8.0, 12.0, 12.0))
        m = compute_metrics(a, b)
        hd95, msd = brute_force(a, b)
        self.assertAlmostEqual(m.hd95_mm, hd95, places=3)
        self.assertAlmostEqual(m.msd_mm, msd, places=3)
        self.assertGreater(m.dice, 0.6)
        self.assertAlmostEqual(m.jaccard, m.dice / (2 - m.dice))

    def test_test_mask_on_another_grid_is_compared_by_physical_position(self):
        ref = grid()
        centre = np.array(ref.TransformContinuousIndexToPhysicalPoint((15.0, 17.0, 6.0)))
        a = ellipsoid(ref, centre, (8.0, 9.0, 12.0))
        fine = grid(size=(60, 70, 36), spacing=(0.45, 0.6, 1.0), origin=(4.0, -12.5, 29.0))
        b = ellipsoid(fine, centre, (8.0, 9.0, 12.0))
        m = compute_metrics(a, b)
        self.assertGreater(m.dice, 0.93)
        self.assertLess(m.hd95_mm, 1.3)
        # volumes are measured on each mask's own grid: the finer one is closer to 4/3 pi abc
        exact = 4 / 3 * math.pi * 8 * 9 * 12 / 1000.0
        self.assertLess(abs(m.test_volume_ml - exact), abs(m.reference_volume_ml - exact) + 0.05)
        self.assertAlmostEqual(m.volume_difference_ml, m.test_volume_ml - m.reference_volume_ml)

    def test_empty_masks(self):
        ref = grid()
        a = ellipsoid(ref, ref.TransformContinuousIndexToPhysicalPoint((15.0, 17.0, 6.0)), (6.0, 6.0, 9.0))
        empty = sitk.Image(ref)
        both = compute_metrics(empty, empty)
        self.assertEqual((both.dice, both.hd95_mm, both.msd_mm), (1.0, 0.0, 0.0))
        one = compute_metrics(a, empty)
        self.assertEqual(one.dice, 0.0)
        self.assertTrue(math.isnan(one.hd95_mm))
        self.assertIsNone(one.as_dict(json_safe=True)["hd95_mm"])


class ReaderStudyTest(unittest.TestCase):
    """Readers closer to the reference with assistance: the paired tests must say so."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        rng = np.random.default_rng(4)
        ref = grid()
        rows = []
        for case in range(8):
            centre = np.array(ref.TransformContinuousIndexToPhysicalPoint((15.0, 17.0, 6.0))) + rng.normal(0, 1.5, 3)
            radii = rng.uniform(6.0, 9.0, 3) * (1, 1, 1.4)
            write_image(ellipsoid(ref, centre, radii), root / f"c{case}_ref.nii.gz")
            for reader in ("R1", "R2"):
                for condition, error in (("unassisted", 3.0), ("assisted", 0.8)):
                    shift = rng.normal(0, 0.3, 3) + error * np.array([1.0, -0.5, 0.3])
                    mask = ellipsoid(ref, centre + shift, radii * (1 + error * 0.05))
                    path = root / f"c{case}_{reader}_{condition}.nii.gz"
                    write_image(mask, path)
                rows.append({"case_id": f"c{case}", "reader": reader, "reference": f"c{case}_ref.nii.gz",
                             "unassisted": f"c{case}_{reader}_unassisted.nii.gz",
                             "assisted": f"c{case}_{reader}_assisted.nii.gz"})
        cls.cohort = root / "readers.csv"
        pd.DataFrame(rows).to_csv(cls.cohort, index=False)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_logic_tables_csv_and_paired_tests(self):
        logic = LesionSegmentationLogic()
        scene = get_runtime().scene
        n_segmentations = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
        out = Path(self.tmp.name) / "out" / "metrics.csv"
        result = logic.runReaderStudy(self.cohort, out)
        self.assertEqual(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), n_segmentations)
        self.assertEqual(len(result.per_case), 8 * 2 * 2)
        summary = result.summary.set_index(["scope", "metric"])
        dice = summary.loc[("all readers", "dice")]
        self.assertEqual(dice["n"], 16)
        self.assertGreater(dice["mean_difference"], 0.1)
        self.assertLess(dice["wilcoxon_p"], 0.001)
        self.assertLess(dice["ttest_p"], 0.001)
        self.assertLess(dice["ci95_low"], dice["mean_difference"])
        self.assertGreater(dice["ci95_low"], 0.0)
        self.assertLess(summary.loc[("all readers", "hd95_mm"), "mean_difference"], 0.0)
        self.assertIn(("reader R2", "msd_mm"), summary.index)
        # CSVs with provenance; table nodes with the same numbers
        written = pd.read_csv(out)
        self.assertEqual(list(written["condition"].unique()), ["unassisted", "assisted"])
        self.assertTrue((Path(self.tmp.name) / "out" / "metrics_summary.csv").is_file())
        prov = json.loads((Path(self.tmp.name) / "out" / "metrics.provenance.json").read_text())
        self.assertIn("Wilcoxon", prov["tests"])
        table = table_node_to_dataframe(result.summary_table)
        self.assertAlmostEqual(float(table["wilcoxon_p"][0]), float(result.summary["wilcoxon_p"][0]))
        self.assertIn("versions", json.loads(result.metrics_table.GetAttribute(PROVENANCE_ATTRIBUTE)))

    def test_paired_comparison_without_differences(self):
        frame = pd.DataFrame({"case_id": ["a", "a", "b", "b"], "reader": ["R"] * 4,
                              "condition": ["unassisted", "assisted"] * 2, "dice": [0.8, 0.8, 0.7, 0.7]})
        row = paired_comparison(frame, ("dice",)).iloc[0]
        self.assertEqual((row["n"], row["mean_difference"], row["wilcoxon_p"]), (2, 0.0, 1.0))

    def test_bad_cohort_files_are_named(self):
        bad = Path(self.tmp.name) / "bad.csv"
        bad.write_text("case_id,reader,reference,unassisted\nc0,R1,a.nii.gz,b.nii.gz\n")
        with self.assertRaisesRegex(InputError, r"bad.csv: is missing column\(s\) \['assisted'\]"):
            read_cohort(bad)
        bad.write_text("case_id,reader,reference,unassisted,assisted\nc0,R1,c0_ref.nii.gz,nope.nii.gz,c0_R1_assisted.nii.gz\n")
        with self.assertRaisesRegex(InputError, "line 2, column 'unassisted': file 'nope.nii.gz' does not exist"):
            read_cohort(bad)

    def test_cli_cohort_form(self):
        out = Path(self.tmp.name) / "cli" / "readers_metrics.csv"
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = spinemets(["seg-metrics", "--cohort", str(self.cohort), "--out", str(out)])
        self.assertEqual(code, 0)
        report = json.loads(stdout.getvalue())
        dice = next(r for r in report["summary"] if r["scope"] == "all readers" and r["metric"] == "dice")
        self.assertLess(dice["wilcoxon_p"], 0.001)
        with out.with_name("readers_metrics_summary.csv").open() as fh:
            self.assertEqual(len(list(csv.DictReader(fh))), 3 * 5)


class SegMetricsCliTest(unittest.TestCase):
    def test_seg_nrrd_against_labelmap_with_named_segments(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            ref = grid()
            centre = np.array(ref.TransformContinuousIndexToPhysicalPoint((15.0, 17.0, 6.0)))
            truth = ellipsoid(ref, centre, (7.0, 8.0, 11.0))
            other = ellipsoid(ref, centre + (0.0, 12.0, 0.0), (3.0, 3.0, 6.0))
            write_image(truth, root / "truth.nii.gz")
            labelmap = sitk.Cast(truth, sitk.sitkUInt16) + 2 * sitk.Cast(other, sitk.sitkUInt16)
            node, _ = segmentations.labelmap_to_segmentation(labelmap, {1: "Lesion", 2: "Other"})
            write_segmentation(node, root / "model.seg.nrrd")
            get_runtime().scene.RemoveNode(node)
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                code = spinemets(["seg-metrics", "--reference", str(root / "truth.nii.gz"), "--test",
                                  str(root / "model.seg.nrrd"), "--test-segment", "Lesion", "--out", str(root / "m.csv")])
            self.assertEqual(code, 0)
            report = json.loads(stdout.getvalue())
            self.assertAlmostEqual(report["dice"], 1.0)
            self.assertAlmostEqual(report["hd95_mm"], 0.0)
            self.assertAlmostEqual(report["volume_difference_ml"], 0.0, places=6)
            self.assertEqual(pd.read_csv(root / "m.csv")["dice"][0], 1.0)
            # default: union of all segments -> the extra segment lowers Dice
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                spinemets(["seg-metrics", "--reference", str(root / "truth.nii.gz"), "--test", str(root / "model.seg.nrrd")])
            self.assertLess(json.loads(stdout.getvalue())["dice"], 1.0)
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                code = spinemets(["seg-metrics", "--reference", str(root / "truth.nii.gz"), "--test",
                                  str(root / "model.seg.nrrd"), "--test-segment", "Nope"])
            self.assertEqual(code, 2)
            self.assertIn("has no segment 'Nope'", stderr.getvalue())


if __name__ == "__main__":
    unittest.main()
