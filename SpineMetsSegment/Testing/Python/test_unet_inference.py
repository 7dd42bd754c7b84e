"""U-Net preprocessing and inference: physical geometry in and out, input checks, post-processing."""

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.testing import assert_same_physical_values, oblique_direction, random_image


def sphere_image(reference, centre_lps, radius_mm):
    """Float image on ``reference``'s grid: 1 inside a physical sphere, else 0."""
    size = reference.GetSize()
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3).astype(float)
    direction = np.reshape(reference.GetDirection(), (3, 3))
    points = np.asarray(reference.GetOrigin()) + (direction @ (idx * np.asarray(reference.GetSpacing())).T).T
    inside = np.linalg.norm(points - np.asarray(centre_lps), axis=1) <= radius_mm
    arr = inside.reshape(size).transpose(2, 1, 0).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(reference)
    return image


def dice(a, b):
    a, b = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


class WorkingGridTest(unittest.TestCase):
    def test_working_grid_keeps_values_at_physical_positions(self):
        """A left-handed oblique input reoriented to the model's axes: same value at every point."""
        from SpineMetsSegmentLib.unet.preprocessing import geometry_image, prepare_images

        image = random_image(size_kji=(7, 9, 11), direction=oblique_direction(True))
        model_direction = np.reshape(image.GetDirection(), (3, 3))[:, [1, 2, 0]] * [1, -1, 1]
        prepared = prepare_images({"T1": image}, ["T1"], [None, None, None], {"method": "zscore"}, model_direction.ravel())
        self.assertTrue(prepared.resampled)  # axes reordered and flipped, never rotated
        self.assertEqual(prepared.working.size, (image.GetSize()[1], image.GetSize()[2], image.GetSize()[0]))
        np.testing.assert_allclose(np.reshape(prepared.working.direction, (3, 3)), model_direction, atol=1e-9)
        arr = sitk.GetArrayFromImage(image).astype(np.float64)
        zscored = sitk.GetImageFromArray(((arr - arr.mean()) / arr.std()).astype(np.float32))
        zscored.CopyInformation(image)
        assert_same_physical_values(self, zscored, geometry_image(prepared.array[0], prepared.working), tol=1e-4)

    def test_same_grid_is_not_resampled_and_spacing_change_covers_same_box(self):
        from SpineMetsSegmentLib.unet.preprocessing import prepare_images, working_geometry

        from SpineMetsCore.volumes import apply_geometry, physical_bounds

        image = random_image(size_kji=(6, 20, 30), spacing=(1.0, 1.0, 3.0), direction=oblique_direction(False))
        geometry = working_geometry(image, [1.0, 1.0, 3.0])
        prepared = prepare_images({"T1": image}, ["T1"], [1.0, 1.0, 3.0], {"method": "zscore"})
        self.assertFalse(prepared.resampled)
        self.assertEqual(geometry.size, image.GetSize())
        coarse = working_geometry(image, [2.0, 2.0, None])
        self.assertEqual(coarse.size, (15, 10, 6))
        self.assertEqual(coarse.spacing, (2.0, 2.0, 3.0))
        ref = sitk.Image(coarse.size, sitk.sitkUInt8)
        apply_geometry(ref, coarse)
        lo_a, hi_a = physical_bounds(image)
        lo_b, hi_b = physical_bounds(ref)
        # voxel-edge boxes coincide: centres move inwards by half the spacing change
        np.testing.assert_allclose((lo_a + hi_a) / 2, (lo_b + hi_b) / 2, atol=1e-6)

    def test_scores_return_to_the_reference_grid_by_physical_position(self):
        """A sphere predicted on the coarse working grid lands on the sphere of the oblique input."""
        from SpineMetsSegmentLib.unet.inference import scores_to_labelmap
        from SpineMetsSegmentLib.unet.preprocessing import working_geometry

        from SpineMetsCore.volumes import apply_geometry

        reference = random_image(size_kji=(20, 40, 40), spacing=(0.8, 0.8, 1.5), direction=oblique_direction(True))
        centre = reference.TransformContinuousIndexToPhysicalPoint((20, 19, 10))
        working = working_geometry(reference, [1.6, 1.6, 3.0])
        grid = sitk.Image(working.size, sitk.sitkFloat32)
        apply_geometry(grid, working)
        fg = sitk.GetArrayFromImage(sphere_image(grid, centre, 9.0))  # (K, J, I) like every U-Net array
        labelmap = scores_to_labelmap(np.stack([1.0 - fg, fg]), [3], working, reference, resampled=True)
        self.assertEqual(labelmap.GetPixelID(), sitk.sitkUInt8)
        self.assertEqual(labelmap.GetSize(), reference.GetSize())
        self.assertEqual(labelmap.GetDirection(), reference.GetDirection())
        self.assertEqual(labelmap.GetOrigin(), reference.GetOrigin())
        self.assertEqual(set(np.unique(sitk.GetArrayViewFromImage(labelmap)).tolist()), {0, 3})
        self.assertGreater(dice(labelmap, sphere_image(reference, centre, 9.0)), 0.9)

    def test_small_islands_are_removed(self):
        from SpineMetsSegmentLib.unet.inference import scores_to_labelmap
        from SpineMetsSegmentLib.unet.preprocessing import working_geometry

        reference = random_image(size_kji=(10, 30, 30), spacing=(1.0, 1.0, 2.0))
        working = working_geometry(reference, [None, None, None])
        fg = np.zeros(reference.GetSize()[::-1], dtype=np.float32)  # (K, J, I)
        fg[2:7, 5:15, 5:15] = 1.0  # 500 voxels = 1 mL
        fg[8, 25, 25] = 1.0  # one 2 uL voxel
        labelmap = scores_to_labelmap(np.stack([1.0 - fg, fg]), [1], working, reference, resampled=False, min_component_ml=0.1)
        arr = sitk.GetArrayViewFromImage(labelmap)
        self.assertEqual(int(arr.sum()), 500)
        self.assertEqual(int(arr[8, 25, 25]), 0)


class SegmentImagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        from SpineMetsSegmentLib.unet import load_model_package, write_model_package
        from SpineMetsSegmentLib.unet.network import build_network, unet_spec

        cls.tmp = Path(tempfile.mkdtemp(prefix="unet_inf_"))
        packages = {}
        for dim in (3, 2):
            card = {
                "name": f"random {dim}-D", "version": "0", "task": "test",
                "labels": [{"value": 1, "name": "lesion", "color": [255, 0, 0]}, {"value": 7, "name": "other", "color": [0, 255, 0]}],
                "input_sequences": ["T2", "T1"],
                "spacing": [1.5, 1.5, 3.0] if dim == 3 else [1.5, 1.5, None],
                "patch_size": [16, 16, 8] if dim == 3 else [16, 16, 1],
                "normalisation": {"method": "percentile", "lower": 1, "upper": 99},
                "network": unet_spec(dim, 2, 3, channels=(4, 8), strides=(2,), num_res_units=0),
                "postprocessing": {"min_component_ml": 0.0},
                "training_data": {}, "validation_metrics": {}, "synthetic_training_data": True,
            }
            torch.manual_seed(dim)
            state = build_network(card["network"]).state_dict()
            packages[dim] = load_model_package(write_model_package(cls.tmp / f"m{dim}", card, state))
        cls.packages = packages

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_output_is_on_the_first_inputs_grid_oblique_left_handed(self):
        from SpineMetsSegmentLib.unet import segment_images

        t2 = random_image(size_kji=(9, 30, 25), spacing=(1.1, 0.9, 2.5), direction=oblique_direction(True), seed=3)
        # T1 on another grid overlapping T2: resampled by physical position
        t1 = random_image(size_kji=(12, 20, 20), spacing=(1.4, 1.4, 2.0), origin=t2.GetOrigin(), direction=oblique_direction(False), seed=4)
        for dim, pkg in self.packages.items():
            with self.subTest(dim=dim):
                calls = []

                def record(done, total, calls=calls):
                    calls.append((done, total))

                labelmap = segment_images({"T1": t1, "T2": t2}, pkg, force_cpu=True, progress=record)
                self.assertEqual(labelmap.GetPixelID(), sitk.sitkUInt8)
                self.assertEqual(labelmap.GetSize(), t2.GetSize())
                np.testing.assert_allclose(labelmap.GetSpacing(), t2.GetSpacing())
                np.testing.assert_allclose(labelmap.GetOrigin(), t2.GetOrigin())
                np.testing.assert_allclose(labelmap.GetDirection(), t2.GetDirection())
                self.assertTrue(set(np.unique(sitk.GetArrayViewFromImage(labelmap)).tolist()) <= {0, 1, 7})
                self.assertEqual(calls[-1][0], calls[-1][1])
                self.assertGreater(len(calls), 1)

    def test_sequence_mismatch_and_non_overlap_are_named(self):
        from SpineMetsSegmentLib.unet import segment_images

        from SpineMetsCore.errors import InputError

        pkg = self.packages[3]
        t2 = random_image(size_kji=(6, 20, 20))
        with self.assertRaisesRegex(InputError, r"missing sequence\(s\) \['T1'\].*expects exactly \['T2', 'T1'\]"):
            segment_images({"T2": t2}, pkg)
        with self.assertRaisesRegex(InputError, r"unexpected sequence\(s\) \['STIR'\]"):
            segment_images({"T2": t2, "T1": t2, "STIR": t2}, pkg)
        far = random_image(size_kji=(6, 20, 20), origin=(500.0, 500.0, 500.0))
        with self.assertRaisesRegex(InputError, "sequence 'T1': does not overlap sequence 'T2'"):
            segment_images({"T2": t2, "T1": far}, pkg)
        with self.assertRaisesRegex(InputError, "sequence 'T1': must be a 3-D scalar image"):
            segment_images({"T2": t2, "T1": sitk.Image(5, 5, sitk.sitkFloat32)}, pkg)


if __name__ == "__main__":
    unittest.main()
