"""U-Net anti-aliasing at the cost of the working grid: same Dice as the full-grid Gaussian.

The demo model was validated with a Gaussian (sigma = half the target spacing)
run on the full input grid before downsampling. ``antialias_shrink`` gets the
same low-pass from block averages (BinShrink) plus the remaining variance on
the shrunk grid. Checked on three held-out phantom (version 1) cases on a fine grid
(0.575 x 0.575 x 1.75 mm, shrunk 2 x 2 x 2 onto the model's 1.15 x 1.15 x 3.5
mm): lesion Dice against the phantom's truth within 0.005 of the full-grid
pipeline's. Also: the one-channel foreground > 0.5 labelmap equals the
two-channel argmax, and a package loaded again is reused (weights parsed and
the network built once per process) until its checksums change.
"""

import unittest

import numpy as np
import SimpleITK as sitk

HELD_OUT_SEEDS = (7001, 7002, 7003)  # not seeds of the training (1001) or held-out (2002) cohorts
FINE_SIZE = (192, 256, 28)  # default field of view: 0.575 x 0.575 x 1.75 mm voxels


def lesion_dice(prediction, truth):
    p = sitk.GetArrayViewFromImage(prediction) > 0
    t = sitk.GetArrayViewFromImage(truth) > 0
    return 2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum())


def full_grid_gaussian(image, geometry):
    """The previous anti-alias filter: a Gaussian on the whole input grid."""
    from SpineMetsCore.imaging import antialias_sigma

    sigma = antialias_sigma(image, geometry)
    if not any(s > 0 for s in sigma):
        return image
    return sitk.SmoothingRecursiveGaussian(image, [max(s, 1e-3) for s in sigma])


class AntialiasShrinkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        from SpineMetsSegmentLib.unet import demo_model_path, load_model_package

        from SpineMetsPhantom import PhantomConfig, generate_case

        torch.manual_seed(0)
        cls.pkg = load_model_package(demo_model_path())
        # phantom version 1 images (realism off): the demo model's training data (its card says
        # phantom_version 1), so the comparison isolates the preprocessing from a domain shift
        config = PhantomConfig(size=FINE_SIZE, realism=False)
        cls.cases = [generate_case(seed=s, case_id=f"held{s}", config=config) for s in HELD_OUT_SEEDS]

    def _segment(self, case):
        from SpineMetsSegmentLib.unet import segment_images

        return segment_images({s: case.images[s] for s in self.pkg.input_sequences}, self.pkg, force_cpu=True)

    def test_dice_matches_full_grid_gaussian_on_held_out_cases(self):
        from unittest import mock

        from SpineMetsCore import imaging

        for case in self.cases:
            with self.subTest(seed=case.seed):
                fast = lesion_dice(self._segment(case), case.lesion_mask)
                with mock.patch.object(imaging, "antialias_shrink", full_grid_gaussian):
                    full = lesion_dice(self._segment(case), case.lesion_mask)
                self.assertGreater(full, 0.8)  # the reference pipeline really segments these cases
                self.assertLessEqual(abs(fast - full), 0.005, f"Dice {fast:.4f} (shrink) vs {full:.4f} (full-grid Gaussian)")

    def test_shrink_filters_on_the_shrunk_grid(self):
        from SpineMetsSegmentLib.unet.preprocessing import working_geometry

        from SpineMetsCore.imaging import antialias_shrink

        image = self.cases[0].images["T1"]
        geometry = working_geometry(image, self.pkg.spacing, self.pkg.card.get("orientation"))
        shrunk = antialias_shrink(image, geometry)
        self.assertEqual(shrunk.GetSize(), tuple(n // 2 for n in image.GetSize()))
        self.assertEqual(antialias_shrink(image, working_geometry(image, [None, None, None])).GetSize(), image.GetSize())
        # the block averages keep the image's mean and its physical box
        self.assertAlmostEqual(
            float(sitk.GetArrayViewFromImage(shrunk).mean()), float(sitk.GetArrayViewFromImage(image).mean()), delta=0.02 * float(sitk.GetArrayViewFromImage(image).std())
        )
        np.testing.assert_allclose(
            shrunk.TransformContinuousIndexToPhysicalPoint([-0.5] * 3), image.TransformContinuousIndexToPhysicalPoint([-0.5] * 3), atol=1e-4
        )

    def test_foreground_threshold_equals_two_channel_argmax(self):
        import torch
        from SpineMetsSegmentLib.unet.inference import _argmax, scores_to_labelmap
        from SpineMetsSegmentLib.unet.preprocessing import geometry_image, prepare_images

        case = self.cases[1]
        images = {s: case.images[s] for s in self.pkg.input_sequences}
        prepared = prepare_images(images, self.pkg.input_sequences, self.pkg.spacing, self.pkg.card["normalisation"], self.pkg.card.get("orientation"))
        rng = np.random.default_rng(0)
        logits = torch.from_numpy(rng.normal(size=(2, *prepared.array.shape[1:])).astype(np.float32))
        probs = torch.softmax(logits, dim=0).numpy()
        fast = scores_to_labelmap(probs, [1], prepared.working, prepared.reference, True)
        channels = [
            sitk.GetArrayFromImage(sitk.Resample(geometry_image(probs[c], prepared.working), prepared.reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
            for c in range(2)
        ]
        expected = _argmax(np.stack(channels))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(fast), expected)
        self.assertGreater(int(expected.sum()), 1000)


class PackageCacheTest(unittest.TestCase):
    def test_same_package_is_reused_until_it_changes(self):
        import shutil
        import tempfile
        from pathlib import Path

        from SpineMetsSegmentLib.unet import demo_model_path, load_model_package, update_card

        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "model"
            shutil.copytree(demo_model_path(), copy)
            first = load_model_package(copy)
            again = load_model_package(str(copy) + "/")
            self.assertIs(again, first)
            self.assertIs(first.network("cpu"), first.network("cpu"))
            update_card(copy, {"version": "9.9.9"})
            changed = load_model_package(copy)
            self.assertIsNot(changed, first)
            self.assertEqual(changed.card["version"], "9.9.9")
            self.assertEqual(first.card["version"], load_model_package(demo_model_path()).card["version"])


if __name__ == "__main__":
    unittest.main()
