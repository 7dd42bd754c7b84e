"""Crops of volume nodes: the voxels and positions of RegionOfInterest on a full copy, without the full copy."""

import unittest

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.testing import oblique_direction, random_image


class VolumeCropTest(unittest.TestCase):
    def setUp(self):
        from SpineMetsCore.runtime import get_runtime

        self.scene = get_runtime().scene

    def test_crop_equals_region_of_interest_on_oblique_left_handed_grids(self):
        from SpineMetsCore.volumes import (
            Geometry,
            index_box,
            node_geometry,
            sitk_to_volume,
            volume_crop_to_sitk,
            volume_to_sitk,
        )

        for left in (False, True):
            with self.subTest(left_handed=left):
                node = sitk_to_volume(random_image(size_kji=(7, 12, 14), direction=oblique_direction(left)), name=f"crop_{left}")
                self.addCleanup(self.scene.RemoveNode, node)
                full = volume_to_sitk(node)
                lo, hi = np.array([2, 3, 1]), np.array([9, 10, 5])
                crop = volume_crop_to_sitk(node, lo, hi)
                expected = sitk.RegionOfInterest(full, [int(v) for v in hi - lo + 1], [int(v) for v in lo])
                self.assertEqual(Geometry.from_image(crop), Geometry.from_image(expected))  # bit-identical grid
                np.testing.assert_array_equal(sitk.GetArrayViewFromImage(crop), sitk.GetArrayViewFromImage(expected))
                # index_box gives the box an image on the grid gives, clipped, padded, or None when disjoint
                points = [full.TransformContinuousIndexToPhysicalPoint(p) for p in ((2.4, 3.3, 1.2), (8.7, 9.9, 4.6))]
                box = index_box(node_geometry(node), points, pad=1)
                np.testing.assert_array_equal(box[0], [1, 2, 0])
                np.testing.assert_array_equal(box[1], [10, 11, 6])
                far = full.TransformContinuousIndexToPhysicalPoint((100.0, 100.0, 100.0))
                self.assertIsNone(index_box(node_geometry(node), [far], pad=1))

    def test_bad_crop_box_is_named(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.volumes import sitk_to_volume, volume_crop_to_sitk

        node = sitk_to_volume(random_image(), name="small")
        self.addCleanup(self.scene.RemoveNode, node)
        with self.assertRaisesRegex(InputError, "volume 'small': has no voxel box"):
            volume_crop_to_sitk(node, (0, 0, 0), (11, 3, 3))  # i runs 0..10

    def test_qc_on_a_view_finds_nan_and_blank_volumes(self):
        from SpineMetsCore.errors import ImageQualityError
        from SpineMetsCore.qc import validate_image
        from SpineMetsCore.volumes import sitk_to_volume, volume_to_array

        node = sitk_to_volume(random_image(), name="qc")
        self.addCleanup(self.scene.RemoveNode, node)
        view = volume_to_array(node, copy=False)
        self.assertEqual(validate_image(view, sequence="T1"), [])
        view[1, 2, 3] = np.inf
        with self.assertRaisesRegex(ImageQualityError, "1 NaN or infinite"):
            validate_image(view, sequence="T1")
        view[...] = 7.0
        with self.assertRaisesRegex(ImageQualityError, "is blank"):
            validate_image(view, sequence="T1")
        with self.assertRaisesRegex(ImageQualityError, "2-D image"):
            validate_image(np.zeros((1, 5, 5), np.float32), sequence="T1")

    def test_headless_nodes_without_display_nodes(self):
        import tempfile
        from pathlib import Path

        from SpineMetsCore.dataio import read_volume, write_image
        from SpineMetsCore.volumes import sitk_to_volume, volume_to_array

        image = random_image()
        with tempfile.TemporaryDirectory() as tmp:
            path = write_image(image, Path(tmp) / "t1.nrrd")
            nodes = [sitk_to_volume(image, name="bare", display=False), read_volume(path, display=False), read_volume(path)]
            for node in nodes:
                self.addCleanup(self.scene.RemoveNode, node)
                np.testing.assert_array_equal(volume_to_array(node), sitk.GetArrayViewFromImage(image))
            self.assertEqual([node.GetDisplayNode() is None for node in nodes], [True, True, False])

if __name__ == "__main__":
    unittest.main()
