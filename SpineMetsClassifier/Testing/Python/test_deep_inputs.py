"""Deep-classifier inputs on a phantom case: slices with most lesion, native slice positions, crops,
canonical orientation whatever the acquisition axes, per-channel normalisation, errors."""

import unittest

import numpy as np
import SimpleITK as sitk


class DeepInputsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from SpineMetsPhantom import generate_case

        cls.case = generate_case(3)
        cls.images = {s: cls.case.images[s] for s in ("T1", "T2", "STIR")}
        cls.mask = cls.case.lesion_mask
        cls.lesion = sitk.GetArrayFromImage(cls.mask) == 1

    def build(self, images=None, mask=None, **spec):
        from SpineMetsClassifierLib.deep import InputSpec, build_case_input

        return build_case_input(images or self.images, mask or self.mask, InputSpec(**spec))

    def test_2d_takes_the_native_slices_with_most_lesion(self):
        case = self.build(n_slices=3, size=(48, 40))
        self.assertEqual(case.array.shape, (3, 3, 48, 40))
        self.assertEqual(case.array.dtype, np.float32)
        # independently: the phantom's sagittal slices (k) with the most lesion voxels
        counts = self.lesion.sum(axis=(1, 2))
        expected = sorted(np.argsort(-counts, kind="stable")[:3].tolist())
        reference = self.images["T1"]
        g = case.geometry
        direction = np.reshape(g.direction, (3, 3))
        native = []
        for k in case.slices:
            point = np.asarray(g.origin) + direction @ (np.array([0.0, 0.0, k]) * np.asarray(g.spacing))
            index = reference.TransformPhysicalPointToContinuousIndex(point.tolist())
            self.assertAlmostEqual(index[2], round(index[2]), places=6)  # on a native slice: no interpolation across
            native.append(int(round(index[2])))
        self.assertEqual(native, expected)
        self.assertEqual(len(case.lesion_voxels), 3)
        self.assertTrue(all(v > 0 for v in case.lesion_voxels))
        # per channel z-score over the chosen slices together
        for c in range(3):
            self.assertAlmostEqual(float(case.array[:, c].mean()), 0.0, places=4)
            self.assertAlmostEqual(float(case.array[:, c].std()), 1.0, delta=0.05)

    def test_crop_is_centred_on_the_lesion(self):
        case = self.build(dims=3, size=(24, 24, 24), margin=0.5)
        self.assertEqual(case.array.shape, (1, 3, 24, 24, 24))
        g = case.geometry
        self.assertTrue(np.allclose(g.spacing, g.spacing[0]))  # cubic input: isotropic voxels
        kji = np.argwhere(self.lesion)
        points = np.array([self.mask.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in kji])
        centroid = points.mean(axis=0)
        index = (np.reshape(g.direction, (3, 3)).T @ (centroid - np.asarray(g.origin))) / np.asarray(g.spacing)
        np.testing.assert_allclose(index, (np.asarray(g.size) - 1) / 2.0, atol=3.0)
        self.assertGreater(case.lesion_voxels[0], 0)
        # the whole lesion fits: the crop side covers the lesion extent plus the margin
        extent = points.max(axis=0) - points.min(axis=0)
        self.assertGreaterEqual(g.spacing[0] * g.size[0], extent.max())

    def test_orientation_is_canonical_whatever_the_acquisition_axes(self):
        """The same anatomy stored with permuted and flipped axes gives the same network input."""
        def reorient(image):
            return sitk.Flip(sitk.PermuteAxes(image, [2, 0, 1]), [True, False, True])

        images = {s: reorient(img) for s, img in self.images.items()}
        mask = reorient(self.mask)
        self.assertNotEqual(images["T1"].GetSize(), self.images["T1"].GetSize())
        for dims, size in ((2, (32, 32)), (3, (16, 16, 16))):
            a = self.build(dims=dims, size=size)
            b = self.build(images=images, mask=mask, dims=dims, size=size)
            self.assertEqual(a.array.shape, b.array.shape)
            np.testing.assert_allclose(a.array, b.array, atol=1e-3)

    def test_other_sequence_grids_are_resampled_by_position(self):
        t2 = self.images["T2"]
        shifted = sitk.Resample(t2, [s * 2 for s in t2.GetSize()], sitk.Transform(), sitk.sitkLinear, t2.GetOrigin(),
                                [s / 2 for s in t2.GetSpacing()], t2.GetDirection(), 0.0, sitk.sitkFloat32)
        a = self.build(dims=3, size=(16, 16, 16))
        b = self.build(images={**self.images, "T2": shifted}, dims=3, size=(16, 16, 16))
        np.testing.assert_allclose(a.array[:, 0], b.array[:, 0], atol=1e-5)  # T1 untouched
        self.assertGreater(np.corrcoef(a.array[0, 1].ravel(), b.array[0, 1].ravel())[0, 1], 0.95)

    def test_errors_name_the_input(self):
        from SpineMetsCore.errors import InputError

        empty = sitk.Image(self.mask.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(self.mask)
        with self.assertRaises(InputError) as ctx:
            self.build(mask=empty)
        self.assertIn("no lesion voxels", str(ctx.exception))
        with self.assertRaises(InputError) as ctx:
            self.build(lesion_label=9)
        self.assertIn("label 9", str(ctx.exception))
        with self.assertRaises(InputError) as ctx:
            self.build(images={"T1": self.images["T1"]})
        self.assertIn("T2", str(ctx.exception))
        with self.assertRaises(InputError):
            self.build(dims=4)
        with self.assertRaises(InputError):
            self.build(size=(4, 4))

    def test_unet_and_classifier_share_core_normalisation(self):
        from SpineMetsCore import imaging
        from SpineMetsCore.imaging import normalise

        x = np.arange(100, dtype=np.float32).reshape(4, 25)
        out = normalise(x, {"method": "zscore", "clip": 5.0})
        self.assertAlmostEqual(float(out.mean()), 0.0, places=5)
        self.assertEqual(sorted(imaging.NORMALISATIONS), ["percentile", "zscore", "zscore_nonzero"])


if __name__ == "__main__":
    unittest.main()
