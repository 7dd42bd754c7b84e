"""Helpers for SpineMets tests in every folder (like slicer.testing; not used at run time)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation


def oblique_direction(left_handed: bool, angles_deg: tuple[float, float, float] = (20.0, -15.0, 30.0)) -> np.ndarray:
    """An oblique orthonormal 3x3 direction matrix, optionally left-handed (det = -1)."""
    rot = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    if left_handed:
        rot[:, 2] *= -1.0
    return rot


def random_image(
    size_kji: tuple[int, int, int] = (6, 9, 11),
    spacing: tuple[float, float, float] = (0.8, 1.1, 3.5),
    origin: tuple[float, float, float] = (-5.0, 12.0, 40.0),
    direction: np.ndarray | None = None,
    seed: int = 1,
    dtype: type = np.float32,
) -> sitk.Image:
    """A random test image with full geometry."""
    rng = np.random.default_rng(seed)
    array = (rng.normal(size=size_kji) * 100).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection((np.eye(3) if direction is None else direction).ravel().tolist())
    return image


def assert_same_physical_values(testcase, expected: sitk.Image, actual: sitk.Image, tol: float = 1e-4) -> None:
    """Every voxel of ``expected`` has the same value at the same physical point in ``actual``."""
    size = expected.GetSize()
    exp = sitk.GetArrayViewFromImage(expected)
    act = sitk.GetArrayViewFromImage(actual)
    testcase.assertEqual(sorted(size), sorted(actual.GetSize()))
    for k in range(size[2]):
        for j in range(size[1]):
            for i in range(size[0]):
                point = expected.TransformIndexToPhysicalPoint((i, j, k))
                idx = actual.TransformPhysicalPointToContinuousIndex(point)
                rounded = tuple(int(round(c)) for c in idx)
                testcase.assertTrue(
                    np.allclose(idx, rounded, atol=1e-3), f"voxel ({i},{j},{k}) maps off-grid to {idx}"
                )
                testcase.assertAlmostEqual(float(exp[k, j, i]), float(act[rounded[2], rounded[1], rounded[0]]), delta=tol)
