"""The shipped demo U-Net: honest card, recorded held-out Dice, and it really segments.

The model is not retrained here (Resources/Scripts/train_demo_unet.py does that);
these tests check what ships: the checksum-verified package, its synthetic-data
flag, the held-out Dice the training script measured, and one fresh phantom case
(a seed used by neither the training nor the held-out cohort) segmented in a
single inference, also through a left-handed copy of the same images.
"""

import unittest

import numpy as np
import SimpleITK as sitk

FRESH_SEED = 31337


def lesion_dice(prediction, truth):
    p = sitk.GetArrayViewFromImage(prediction) > 0
    t = sitk.GetArrayViewFromImage(truth) > 0
    return 2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum())


def flip_k_left_handed(image):
    """Same voxels at the same physical points, stored with the k axis reversed (det = -1)."""
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(image)[::-1]))
    direction = np.reshape(image.GetDirection(), (3, 3)).copy()
    direction[:, 2] *= -1.0
    flipped.SetSpacing(image.GetSpacing())
    flipped.SetDirection(direction.ravel().tolist())
    flipped.SetOrigin(image.TransformIndexToPhysicalPoint((0, 0, image.GetSize()[2] - 1)))
    return flipped


class DemoModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        from SpineMetsSegmentLib.unet import demo_model_path, load_model_package

        from SpineMetsPhantom import generate_case

        torch.set_num_threads(1)
        cls.pkg = load_model_package(demo_model_path())  # verifies the SHA-256 first
        cls.case = generate_case(FRESH_SEED, case_id="fresh")

    def test_card_is_honest_and_records_held_out_dice(self):
        card = self.pkg.card
        self.assertIs(card["synthetic_training_data"], True)
        self.assertIn("synthetic", card["disclaimer"].lower())
        self.assertIn("not clinically valid", card["disclaimer"].lower())
        held_out = card["validation_metrics"]["held_out"]
        self.assertEqual(held_out["n_cases"], 20)
        self.assertEqual(len(held_out["per_case_dice"]), 20)
        self.assertTrue(held_out["not_used_in_training"])
        self.assertAlmostEqual(held_out["dice_lesion_mean"], float(np.mean(list(held_out["per_case_dice"].values()))), places=3)
        self.assertGreaterEqual(held_out["dice_lesion_mean"], 0.85)
        self.assertTrue(held_out["case_seeds_disjoint_from_training"])
        self.assertLess(card["payload"]["bytes"], 5_000_000)
        self.assertEqual(card["format_version"], 2)  # the shipped package is in the current format
        self.assertIn("not clinically valid", card["intended_use"])
        self.assertEqual([lab["name"] for lab in self.pkg.labels], ["lesion"])

    def test_fresh_phantom_case_is_segmented_in_one_inference(self):
        from SpineMetsSegmentLib.unet import segment_images

        images = {s: self.case.images[s] for s in self.pkg.input_sequences}
        labelmap = segment_images(images, self.pkg, force_cpu=True)
        self.assertGreater(int(sitk.GetArrayViewFromImage(self.case.lesion_mask).astype(bool).sum()), 0)
        self.assertGreaterEqual(lesion_dice(labelmap, self.case.lesion_mask), 0.7)

        # the same study stored left-handed (k reversed): the same lesion voxels in physical space
        flipped = {s: flip_k_left_handed(img) for s, img in images.items()}
        first = self.pkg.input_sequences[0]
        same = sitk.Resample(flipped[first], images[first], sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, images[first].GetPixelID())
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(same), sitk.GetArrayViewFromImage(images[first]))
        self.assertLess(np.linalg.det(np.reshape(flipped[self.pkg.input_sequences[0]].GetDirection(), (3, 3))), 0)
        labelmap_flipped = segment_images(flipped, self.pkg, force_cpu=True)
        self.assertEqual(labelmap_flipped.GetDirection(), flipped[self.pkg.input_sequences[0]].GetDirection())
        back = sitk.Resample(labelmap_flipped, labelmap, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        self.assertGreaterEqual(lesion_dice(back, labelmap), 0.97)

    def test_wrong_sequences_are_refused_by_name(self):
        from SpineMetsSegmentLib.unet import segment_images

        from SpineMetsCore.errors import InputError

        images = {s: self.case.images[s] for s in self.pkg.input_sequences[:-1]}
        with self.assertRaisesRegex(InputError, rf"missing sequence\(s\) \['{self.pkg.input_sequences[-1]}'\]"):
            segment_images(images, self.pkg)


if __name__ == "__main__":
    unittest.main()
