"""The Logic grows a click's lesion from ROI crops of the volume nodes: the same result as from whole copies."""

import unittest

import numpy as np
import SimpleITK as sitk
from SpineMetsSegmentLib.logic import LesionSegmentationLogic, _region_growing_images
from SpineMetsSegmentLib.region_growing import RegionGrowingParameters, grow_region
from SpineMetsSegmentLib.seeds import RAS_TO_LPS, RoiBox

from SpineMetsCore import segmentations, volumes
from SpineMetsCore.errors import ImageQualityError, InputError
from SpineMetsCore.runtime import get_runtime
from SpineMetsCore.testing import oblique_direction

PARAMS = RegionGrowingParameters(roi_margin_mm=7.0)


def oblique_case():
    """A textured sphere on an oblique left-handed T1 grid; T2 on a coarser, shifted grid of another orientation."""
    rng = np.random.default_rng(3)
    direction = oblique_direction(left_handed=True)
    size, spacing = (64, 64, 26), (0.9, 1.1, 2.5)
    grid = sitk.Image(list(size), sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetDirection(direction.ravel().tolist())
    grid.SetOrigin((12.0, -30.0, 25.0))
    centre = np.array(grid.TransformContinuousIndexToPhysicalPoint((np.array(size) / 2.0 - 0.5).tolist()))
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    lps = np.stack([i, j, k], axis=-1).reshape(-1, 3) * np.asarray(spacing) @ direction.T + np.asarray(grid.GetOrigin())
    inside = (np.linalg.norm(lps - centre, axis=1) <= 9.0).reshape(k.shape)
    images = {}
    for name, (lesion, tissue) in {"T1": (300.0, 800.0), "T2": (900.0, 350.0)}.items():
        image = sitk.GetImageFromArray((np.where(inside, lesion, tissue) * (1 + 0.05 * rng.standard_normal(k.shape))).astype(np.float32))
        image.CopyInformation(grid)
        images[name] = image
    other = oblique_direction(left_handed=False, angles_deg=(-10.0, 25.0, 5.0))
    images["T2"] = sitk.Resample(images["T2"], [80, 80, 48], sitk.Transform(), sitk.sitkLinear,
                                 tuple(centre - other @ (np.array([40, 40, 24]) * (1.3, 1.4, 1.9))), (1.3, 1.4, 1.9),
                                 other.ravel().tolist(), 0.0, sitk.sitkFloat32)
    seed = tuple(float(v) for v in centre * RAS_TO_LPS)
    roi = RoiBox(seed, tuple(oblique_direction(left_handed=False, angles_deg=(5.0, 10.0, 40.0)).ravel()), (16.0, 17.0, 15.0))
    return images, seed, roi


class CropPathTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scene = get_runtime().scene
        cls.images, cls.seed, cls.roi = oblique_case()
        cls.background = tuple(np.asarray(cls.seed) + np.array([10.5, 1.0, -2.0]))
        cls.foreground = tuple(np.asarray(cls.seed) + np.array([-6.0, 2.0, 1.0]))

    def setUp(self):
        self.nodes = {name: volumes.sitk_to_volume(image, name=name) for name, image in self.images.items()}
        for node in self.nodes.values():
            self.addCleanup(self.scene.RemoveNode, node)

    def test_crops_give_the_identical_mask_to_whole_copies(self):
        whole = {name: volumes.volume_to_sitk(node) for name, node in self.nodes.items()}
        clicks = dict(seeds_ras=[self.seed, self.foreground], background_ras=[self.background])
        for label, roi, kwargs in (("one click", self.roi, dict(seeds_ras=[self.seed])), ("corrections", self.roi, clicks),
                                   ("default ROI", None, clicks)):
            with self.subTest(label):
                crops, where = _region_growing_images(self.nodes, self.seed, roi, PARAMS, None)
                self.assertIsNotNone(where)
                for name in whole if roi is not None else ():  # only the ROI's neighbourhood was copied
                    self.assertLess(np.prod(crops[name].GetSize()), 0.75 * np.prod(whole[name].GetSize()))
                a = grow_region(crops, roi=roi, parameters=PARAMS, **kwargs)
                b = grow_region(whole, roi=roi, parameters=PARAMS, **kwargs)
                self.assertEqual(volumes.Geometry.from_image(a.mask), volumes.Geometry.from_image(b.mask))
                np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a.mask), sitk.GetArrayViewFromImage(b.mask))
                self.assertGreater(a.volume_ml, 0.5 * 4 / 3 * np.pi * 0.9**3)  # the 9 mm sphere is found, not a speck
                self.assertEqual((a.volume_ml, a.qc, a.lesion_median), (b.volume_ml, b.qc, b.lesion_median))

    def test_logic_segment_equals_the_whole_copy_result(self):
        logic = LesionSegmentationLogic()
        first = logic.segmentRegionGrowing(self.nodes, [self.seed], self.roi, parameters=PARAMS)
        self.addCleanup(self.scene.RemoveNode, first.segmentation_node)
        corrected = logic.segmentRegionGrowing(self.nodes, [self.seed, self.foreground], self.roi, parameters=PARAMS,
                                               segmentationNode=first.segmentation_node, replaceExisting=True,
                                               backgroundPoints=[self.background])
        whole = {name: volumes.volume_to_sitk(node) for name, node in self.nodes.items()}
        expected = grow_region(whole, [self.seed, self.foreground], self.roi, PARAMS, background_ras=[self.background])
        got = segmentations.segment_to_mask(corrected.segmentation_node, corrected.segment_id, self.nodes["T1"])
        pasted = sitk.Resample(expected.mask, got, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(got) > 0, sitk.GetArrayViewFromImage(pasted) > 0)
        self.assertAlmostEqual(corrected.volume_ml, expected.volume_ml, places=9)

    def test_clicks_off_the_roi_or_image_are_named_as_on_whole_copies(self):
        logic = LesionSegmentationLogic()
        first = logic.segmentRegionGrowing(self.nodes, [self.seed], self.roi, parameters=PARAMS)
        self.addCleanup(self.scene.RemoveNode, first.segmentation_node)
        whole = {name: volumes.volume_to_sitk(node) for name, node in self.nodes.items()}
        off_roi = tuple(np.asarray(self.seed) + np.array([0.0, 0.0, 24.0]))  # in the image, beyond the ROI and its crop
        off_image = (900.0, 0.0, 0.0)
        cases = [
            ("seed 2: RAS .* lies outside the ROI", dict(seeds=[self.seed, off_roi])),
            ("seed 2: RAS .* lies outside the image", dict(seeds=[self.seed, off_image])),
            ("background point 1: lies outside the ROI", dict(seeds=[self.seed], background=[off_roi])),
            ("background point 2: RAS .* lies outside the image", dict(seeds=[self.seed], background=[self.background, off_image])),
        ]
        for message, case in cases:
            with self.subTest(message):
                with self.assertRaisesRegex(InputError, message) as ours:
                    logic.segmentRegionGrowing(self.nodes, case["seeds"], self.roi, parameters=PARAMS,
                                               backgroundPoints=case.get("background"))
                with self.assertRaises(InputError) as theirs:
                    grow_region(whole, case["seeds"], self.roi, PARAMS, background_ras=case.get("background"))
                self.assertEqual(str(ours.exception), str(theirs.exception))

    def test_changed_voxels_are_checked_again(self):
        import slicer

        logic = LesionSegmentationLogic()
        first = logic.segmentRegionGrowing(self.nodes, [self.seed], self.roi, parameters=PARAMS)
        self.addCleanup(self.scene.RemoveNode, first.segmentation_node)
        slicer.util.arrayFromVolume(self.nodes["T2"])[0, 0, 0] = np.nan  # far from the ROI: only the QC can see it
        slicer.util.arrayFromVolumeModified(self.nodes["T2"])
        with self.assertRaisesRegex(ImageQualityError, "NaN"):
            logic.segmentRegionGrowing(self.nodes, [self.seed], self.roi, parameters=PARAMS)


if __name__ == "__main__":
    unittest.main()
