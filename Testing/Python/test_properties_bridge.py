"""Property-based tests (hypothesis) of the MRML bridge geometry: random oblique, left-handed grids.

Each example builds a random grid (size, spacing, origin, rotation, handedness),
goes SimpleITK -> volume node -> SimpleITK and checks that every voxel keeps its
physical position and value, and that RAS <-> LPS point mapping agrees with ITK.
"""

import unittest

import numpy as np
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.tuples(st.integers(2, 7), st.integers(2, 7), st.integers(2, 6))
spacings = st.tuples(*[st.floats(0.2, 6.0, allow_nan=False) for _ in range(3)])
origins = st.tuples(*[st.floats(-500.0, 500.0, allow_nan=False) for _ in range(3)])
angles = st.tuples(st.floats(-180.0, 180.0), st.floats(-89.0, 89.0), st.floats(-180.0, 180.0))


def make_image(size, spacing, origin, euler, left_handed, seed=0):
    direction = Rotation.from_euler("zyx", euler, degrees=True).as_matrix()
    if left_handed:
        direction[:, 2] *= -1.0
    array = np.random.default_rng(seed).normal(size=tuple(reversed(size))).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction.ravel().tolist())
    return image


class BridgeGeometryProperties(unittest.TestCase):
    def setUp(self):
        from SpineMetsCore.runtime import get_runtime

        self.scene = get_runtime().scene

    @SETTINGS
    @given(sizes, spacings, origins, angles, st.booleans())
    def test_volume_round_trip_keeps_every_voxel_in_place(self, size, spacing, origin, euler, left_handed):
        from SpineMetsCore.volumes import Geometry, sitk_to_volume, volume_to_sitk

        image = make_image(size, spacing, origin, euler, left_handed)
        node = sitk_to_volume(image, name="prop")
        try:
            back = volume_to_sitk(node)
        finally:
            self.scene.RemoveNode(node)
        self.assertTrue(Geometry.from_image(back).same_grid(Geometry.from_image(image), tol=1e-4))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
        self.assertAlmostEqual(float(np.linalg.det(np.reshape(back.GetDirection(), (3, 3)))),
                               -1.0 if left_handed else 1.0, places=6)

    @SETTINGS
    @given(sizes, spacings, origins, angles, st.booleans(),
           st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)))
    def test_ras_point_maps_to_the_itk_index(self, size, spacing, origin, euler, left_handed, fraction):
        from SpineMetsCore.volumes import Geometry, ras_to_ijk

        image = make_image(size, spacing, origin, euler, left_handed)
        index = tuple(f * (n - 1) for f, n in zip(fraction, size, strict=False))
        lps = np.array(image.TransformContinuousIndexToPhysicalPoint(index))
        ras = lps * np.array([-1.0, -1.0, 1.0])
        geometry = Geometry.from_image(image)
        np.testing.assert_allclose(ras_to_ijk(geometry, tuple(ras)), index, atol=1e-6)
        # and the RAS matrix is the LPS one with x and y negated
        np.testing.assert_allclose(geometry.ijk_to_ras()[:2], -geometry.ijk_to_lps()[:2], atol=1e-9)

    @SETTINGS
    @given(sizes, spacings, origins, angles, st.booleans())
    def test_ijk_to_ras_split_and_rebuild(self, size, spacing, origin, euler, left_handed):
        from SpineMetsCore.volumes import Geometry, geometry_from_ijk_to_ras

        geometry = Geometry.from_image(make_image(size, spacing, origin, euler, left_handed))
        rebuilt = geometry_from_ijk_to_ras(geometry.ijk_to_ras(), geometry.size)
        self.assertTrue(rebuilt.same_grid(geometry, tol=1e-6))
        np.testing.assert_allclose(rebuilt.spacing, spacing, rtol=1e-9)


if __name__ == "__main__":
    unittest.main()
