"""Volume node <-> SimpleITK: geometry (LPS/RAS, oblique, left-handed) and values."""

import unittest

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.testing import oblique_direction, random_image


class VolumeBridgeTest(unittest.TestCase):
    def setUp(self):
        from SpineMetsCore.runtime import get_runtime

        self.scene = get_runtime().scene

    def test_round_trip_right_and_left_handed_oblique(self):
        from SpineMetsCore.volumes import Geometry, node_geometry, sitk_to_volume, volume_to_sitk

        for left in (False, True):
            with self.subTest(left_handed=left):
                image = random_image(direction=oblique_direction(left))
                node = sitk_to_volume(image, name=f"rt_{left}")
                back = volume_to_sitk(node)
                self.assertTrue(Geometry.from_image(back).same_grid(Geometry.from_image(image)))
                np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
                # RAS convention: MRML origin is the LPS origin with x, y negated.
                ras_origin = np.array(node.GetOrigin())
                np.testing.assert_allclose(ras_origin, [5.0, -12.0, 40.0], atol=1e-9)
                np.testing.assert_allclose(node_geometry(node).spacing, image.GetSpacing(), atol=1e-6)
                self.scene.RemoveNode(node)

    def test_ras_lps_point_mapping(self):
        from SpineMetsCore.volumes import ras_to_ijk, sitk_to_volume

        image = random_image(direction=oblique_direction(True))
        node = sitk_to_volume(image, name="pts")
        for idx in [(0, 0, 0), (10, 8, 5), (3, 4, 2)]:
            lps = np.array(image.TransformIndexToPhysicalPoint(idx))
            ras = lps * [-1, -1, 1]
            np.testing.assert_allclose(ras_to_ijk(node, tuple(ras)), idx, atol=1e-6)
        self.scene.RemoveNode(node)

    def test_linear_parent_transform_is_applied(self):
        import vtk

        from SpineMetsCore.volumes import node_geometry, sitk_to_volume

        image = random_image()
        node = sitk_to_volume(image, name="moved")
        transform = self.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        m = vtk.vtkMatrix4x4()
        m.SetElement(0, 3, 10.0)  # +10 mm in R
        transform.SetMatrixTransformToParent(m)
        node.SetAndObserveTransformNodeID(transform.GetID())
        np.testing.assert_allclose(node_geometry(node).origin, [-5.0 - 10.0, 12.0, 40.0], atol=1e-9)
        self.scene.RemoveNode(node)
        self.scene.RemoveNode(transform)

    def test_bad_inputs_are_named(self):
        from SpineMetsCore.errors import GeometryError, InputError
        from SpineMetsCore.volumes import Geometry, array_to_volume, sitk_to_volume, volume_to_sitk

        with self.assertRaisesRegex(InputError, "2-D"):
            sitk_to_volume(sitk.Image(4, 4, sitk.sitkFloat32), name="flat")
        with self.assertRaisesRegex(InputError, "components"):
            sitk_to_volume(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), name="vec")
        geometry = Geometry.from_image(random_image())
        with self.assertRaisesRegex(GeometryError, "shape"):
            array_to_volume(np.zeros((2, 2, 2)), geometry, name="wrong")
        seg = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "notvolume")
        with self.assertRaisesRegex(InputError, "notvolume"):
            volume_to_sitk(seg)
        self.scene.RemoveNode(seg)

    def test_resample_like_by_physical_position(self):
        from SpineMetsCore.errors import GeometryError
        from SpineMetsCore.volumes import resample_like

        reference = random_image(size_kji=(8, 8, 8), spacing=(1, 1, 1), origin=(0, 0, 0))
        ramp = sitk.GetImageFromArray(np.tile(np.arange(16, dtype=np.float32), (16, 16, 1)))
        ramp.SetSpacing((0.5, 0.5, 0.5))
        out = resample_like(ramp, reference, name="ramp")
        # x (LPS) = i_ref * 1 mm -> ramp index 2 * i_ref
        np.testing.assert_allclose(sitk.GetArrayViewFromImage(out)[3, 3, :], np.arange(8) * 2.0, atol=1e-5)
        far = random_image(origin=(1000.0, 0, 0))
        with self.assertRaisesRegex(GeometryError, "far_image"):
            resample_like(far, reference, name="far_image")


if __name__ == "__main__":
    unittest.main()
