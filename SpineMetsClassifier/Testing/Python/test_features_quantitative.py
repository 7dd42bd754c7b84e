"""Quantitative EDF counterparts against the phantom's ground truth; segmentation features."""

import unittest

import numpy as np
import SimpleITK as sitk

N_CASES = 20
COHORT_SEED = 11


class PhantomCohortQuantitativeTest(unittest.TestCase):
    """One pass over a 20-case phantom cohort (no radiomics), then checks per feature."""

    @classmethod
    def setUpClass(cls):
        from SpineMetsClassifierLib.features.case import CaseSettings, extract_case

        from SpineMetsPhantom import case_seed, generate_case

        cls.rows = []
        for index in range(N_CASES):
            case = generate_case(case_seed(COHORT_SEED, index), f"case{index:04d}")
            if not case.lesions:
                continue
            rows = {
                ref: extract_case(case.images, case.lesion_mask, case.anatomy, CaseSettings(radiomics=False, reference=ref))
                for ref in ("normal_marrow", "auto", "muscle")
            }
            cls.rows.append((case, rows))

    def agreement(self, pairs):
        pairs = list(pairs)
        self.assertGreaterEqual(len(pairs), 15)
        return sum(a == b for a, b in pairs) / len(pairs)

    def test_t1_ratio_classifies_signal_as_the_phantom_generated_it(self):
        """Thresholds 0.85 / 1.15 (quantitative.SIGNAL_THRESHOLDS); normal-marrow segment reference."""
        for seq, item in (("T1", "t1_signal"), ("T2", "t2_signal"), ("STIR", "stir_signal")):
            got = self.agreement((rows["normal_marrow"][f"q_{seq}_signal"], case.record[item]) for case, rows in self.rows)
            self.assertGreaterEqual(got, 0.95, seq)
        classes = {case.record["t1_signal"] for case, _ in self.rows}
        self.assertGreaterEqual(len(classes), 2)  # the cohort really tests more than one class

    def test_automatic_marrow_estimate_without_anatomy(self):
        got = self.agreement((rows["auto"]["q_T1_signal"], case.record["t1_signal"]) for case, rows in self.rows)
        self.assertGreaterEqual(got, 0.90)
        auto = np.array([rows["auto"]["q_T1_ratio"] for _, rows in self.rows])
        segment = np.array([rows["normal_marrow"]["q_T1_ratio"] for _, rows in self.rows])
        self.assertGreater(np.corrcoef(auto, segment)[0, 1], 0.9)

    def test_muscle_reference_ratio(self):
        from SpineMetsPhantom import MUSCLE

        case, rows = self.rows[0]
        t1 = sitk.GetArrayFromImage(case.images["T1"])
        lesion = sitk.GetArrayFromImage(case.lesion_mask) == 1
        muscle = sitk.GetArrayFromImage(case.anatomy) == MUSCLE
        self.assertAlmostEqual(rows["muscle"]["q_T1_ratio"], t1[lesion].mean() / t1[muscle].mean(), places=6)
        self.assertNotIn("q_T1_signal", rows["muscle"])  # classes are defined against marrow only

    def test_height_loss_detects_the_phantoms_fractures(self):
        got = self.agreement((rows["normal_marrow"]["q_fracture"], case.record["fracture"]) for case, rows in self.rows)
        self.assertGreaterEqual(got, 0.95)
        fractured = [(rows["normal_marrow"]["q_height_loss_ratio"], case.record["height_loss"])
                     for case, rows in self.rows if case.record["fracture"] == "yes"]
        intact = [rows["normal_marrow"]["q_height_loss_ratio"] for case, rows in self.rows if case.record["fracture"] == "no"]
        self.assertGreaterEqual(len(fractured), 4)
        self.assertGreater(min(r for r, _ in fractured), max(intact))
        measured, truth = np.array(fractured).T
        self.assertLess(np.median(np.abs(measured - truth)), 0.1)

    def test_components_volume_and_involved_vertebrae(self):
        for case, rows in self.rows:
            row = rows["normal_marrow"]
            self.assertEqual(row["q_n_lesion_components"], case.record["n_lesions"], case.case_id)
            self.assertEqual(row["seg_lesion_n_components"], case.record["n_lesions"], case.case_id)
            self.assertAlmostEqual(row["q_lesion_volume_ml"], case.lesions[0].volume_ml, places=5)
            self.assertAlmostEqual(row["q_total_lesion_volume_ml"], sum(les.volume_ml for les in case.lesions), places=5)
        got = self.agreement((rows["normal_marrow"]["q_n_involved_vertebrae"], case.record["n_involved_vertebrae"])
                             for case, rows in self.rows)
        self.assertGreaterEqual(got, 0.95)


class SegmentationFeaturesTest(unittest.TestCase):
    def image(self, array):
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.SetSpacing((1.0, 2.0, 4.0))  # I, J, K
        image.SetOrigin((10.0, 20.0, 30.0))
        return image

    def test_known_geometry(self):
        from SpineMetsClassifierLib.features.segmentation_features import segmentation_features

        seg = np.zeros((6, 10, 12), np.uint8)  # K, J, I
        seg[1:3, 2:4, 2:6] = 1  # 2 x 2 x 4 voxels = 16 voxels of 8 mm^3
        seg[4, 8, 10] = 1  # a one-voxel second component
        ref = np.zeros_like(seg)
        ref[0:4, 0:10, 0:12] = 1  # 480 voxels, holds the first blob only
        f = segmentation_features(self.image(seg), "fat", self.image(ref))
        self.assertAlmostEqual(f["seg_fat_volume_ml"], 17 * 8 / 1000)
        self.assertEqual(f["seg_fat_n_components"], 2)
        self.assertAlmostEqual(f["seg_fat_largest_component_ml"], 16 * 8 / 1000)
        self.assertAlmostEqual(f["seg_fat_burden"], 16 / 480)
        self.assertAlmostEqual(f["seg_fat_outside_fraction"], 1 / 17)
        # LPS = origin + index * spacing (identity direction): L from i, P from j, S from k
        i = np.r_[np.repeat(np.arange(2, 6), 4), 10]
        self.assertAlmostEqual(f["seg_fat_centroid_L_mm"], 10.0 + i.mean())
        self.assertAlmostEqual(f["seg_fat_extent_L_mm"], (10 - 2) * 1.0 + 1.0)
        self.assertAlmostEqual(f["seg_fat_extent_S_mm"], (4 - 1) * 4.0 + 4.0)
        self.assertAlmostEqual(f["seg_fat_offset_L_mm"], i.mean() - 5.5)
        self.assertAlmostEqual(f["seg_fat_relpos_L"], i.mean() / 11.0)

    def test_empty_segment_is_a_finding(self):
        from SpineMetsClassifierLib.features.segmentation_features import segmentation_features

        empty = self.image(np.zeros((4, 5, 6)))
        f = segmentation_features(empty, "fat", self.image(np.ones((4, 5, 6))))
        self.assertEqual((f["seg_fat_volume_ml"], f["seg_fat_n_components"], f["seg_fat_burden"]), (0.0, 0, 0.0))
        self.assertTrue(np.isnan(f["seg_fat_centroid_P_mm"]))


if __name__ == "__main__":
    unittest.main()
