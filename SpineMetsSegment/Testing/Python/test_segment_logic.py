"""LesionSegmentationLogic on MRML nodes: segments, markups, other segments untouched, failures change nothing."""

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from SpineMetsSegmentLib.logic import LesionSegmentationLogic
from SpineMetsSegmentLib.metrics import compute_metrics
from SpineMetsSegmentLib.seeds import RAS_TO_LPS

from SpineMetsCore import segmentations, volumes
from SpineMetsCore.dataio import write_segmentation
from SpineMetsCore.errors import GeometryError, InputError
from SpineMetsCore.runtime import get_runtime
from SpineMetsPhantom import generate_case

try:  # the U-Net part needs torch + MONAI (present in the project venv)
    import monai  # noqa: F401
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:  # pragma: no cover - plain Slicer without the PyTorch extension
    HAVE_TORCH = False


def snapshot(seg_node, reference):
    """Everything a failing call must not change: IDs, names, colours and voxels."""
    ids = segmentations.segment_ids(seg_node)
    seg = seg_node.GetSegmentation()
    colors = [tuple(round(c, 6) for c in seg.GetSegment(i).GetColor()) for i in ids]
    if ids:
        labelmap, _ = segmentations.segmentation_to_labelmap(seg_node, reference, ids)
        voxels = sitk.GetArrayFromImage(labelmap)
    else:
        voxels = None
    return ids, segmentations.segment_names(seg_node), colors, voxels


def data_nodes(scene):
    """IDs of data nodes (volumes, segmentations, markups, tables); display/colour nodes are not data."""
    classes = ("vtkMRMLVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsNode", "vtkMRMLTableNode")
    return sorted(
        scene.GetNthNode(i).GetID()
        for i in range(scene.GetNumberOfNodes())
        if any(scene.GetNthNode(i).IsA(c) for c in classes)
    )


class LogicTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.logic = LesionSegmentationLogic()
        cls.scene = get_runtime().scene
        cls.case = generate_case(7, case_id="logic")
        cls.lesion = cls.case.lesions[0]
        cls.seed_ras = tuple(np.asarray(cls.lesion.seed_lps) * RAS_TO_LPS)
        lo = np.asarray(cls.lesion.bbox_min_lps) - 10.0
        hi = np.asarray(cls.lesion.bbox_max_lps) + 10.0
        cls.roi_ras = (*(lo * RAS_TO_LPS), *(hi * RAS_TO_LPS))
        truth = sitk.GetArrayFromImage(cls.case.lesion_mask) == cls.lesion.label
        cls.truth = sitk.GetImageFromArray(truth.astype(np.uint8))
        cls.truth.CopyInformation(cls.case.lesion_mask)

    def setUp(self):
        self.nodes = {n: volumes.sitk_to_volume(img, name=n) for n, img in self.case.images.items()}
        anatomy = sitk.Cast(sitk.Equal(self.case.anatomy, 2), sitk.sitkUInt16)  # normal marrow, an unrelated segment
        self.seg, _ = segmentations.labelmap_to_segmentation(anatomy, {1: "Marrow"}, name="Existing")

    def tearDown(self):
        for node in [*self.nodes.values(), self.seg]:
            self.scene.RemoveNode(node)

    def seeds_node(self, points):
        node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seeds")
        for p in points:
            node.AddControlPoint(*p)
        self.addCleanup(self.scene.RemoveNode, node)
        return node

    def roi_node(self, corners):
        node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "Box")
        lo, hi = np.minimum(corners[:3], corners[3:]), np.maximum(corners[:3], corners[3:])
        node.SetCenter(*((lo + hi) / 2))
        node.SetSize(*(hi - lo))
        self.addCleanup(self.scene.RemoveNode, node)
        return node

    def test_markups_inputs_new_segment_and_others_untouched(self):
        before = snapshot(self.seg, self.nodes["T1"])
        result = self.logic.segmentRegionGrowing(
            self.nodes, self.seeds_node([self.seed_ras]), self.roi_node(np.array(self.roi_ras)), segmentationNode=self.seg
        )
        after = snapshot(self.seg, self.nodes["T1"])
        self.assertIs(result.segmentation_node, self.seg)
        self.assertEqual(result.segment_name, "Lesion")
        self.assertEqual(after[0], [*before[0], result.segment_id])
        # the existing segment: same ID, name, colour and voxels
        marrow_id = before[0][0]
        self.assertEqual(after[1][marrow_id], "Marrow")
        self.assertEqual(after[2][0], before[2][0])
        old, _ = segmentations.segmentation_to_labelmap(self.seg, self.nodes["T1"], [marrow_id])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(old) > 0, before[3] > 0)
        mask = segmentations.segment_to_mask(self.seg, result.segment_id, self.nodes["T1"])
        self.assertAlmostEqual(result.volume_ml, segmentations.segment_volume_ml(self.seg, result.segment_id, self.nodes["T1"]))
        self.assertGreater(compute_metrics(self.truth, mask).dice, 0.8)

    def test_same_name_gets_a_unique_name_unless_replace(self):
        first = self.logic.segmentRegionGrowing(self.nodes, [self.seed_ras], self.roi_ras, segmentationNode=self.seg)
        second = self.logic.segmentRegionGrowing(self.nodes, [self.seed_ras], self.roi_ras, segmentationNode=self.seg)
        self.assertEqual((first.segment_name, second.segment_name), ("Lesion", "Lesion_2"))
        smaller = self.logic.segmentRegionGrowing(
            self.nodes, [self.seed_ras], self.roi_ras, segmentationNode=self.seg, replaceExisting=True,
            parameters={"max_radius_mm": 4.0},
        )
        names = segmentations.segment_names(self.seg)
        self.assertEqual(sorted(names.values()), ["Lesion", "Lesion_2", "Marrow"])
        self.assertNotIn(first.segment_id, names)
        self.assertEqual(names[smaller.segment_id], "Lesion")
        self.assertLess(smaller.volume_ml, first.volume_ml)
        self.assertAlmostEqual(smaller.volume_ml, segmentations.segment_volume_ml(self.seg, smaller.segment_id, self.nodes["T1"]))

    def test_new_node_and_sequences_on_different_grids(self):
        t2 = self.case.images["T2"]
        coarse = sitk.Resample(t2, [70, 90, 12], sitk.Transform(), sitk.sitkLinear,
                               (t2.GetOrigin()[0] + 1.0, t2.GetOrigin()[1] - 2.0, t2.GetOrigin()[2] + 1.0),
                               (1.5, 1.6, 3.8), t2.GetDirection(), 0.0, sitk.sitkFloat32)
        t2_node = volumes.sitk_to_volume(coarse, name="T2coarse")
        self.addCleanup(self.scene.RemoveNode, t2_node)
        result = self.logic.segmentRegionGrowing(
            {"T1": self.nodes["T1"], "T2": t2_node, "STIR": self.nodes["STIR"], "T1CE": self.nodes["T1CE"]},
            [self.seed_ras], self.roi_ras, segmentName="Index lesion",
        )
        self.addCleanup(self.scene.RemoveNode, result.segmentation_node)
        self.assertEqual(segmentations.segment_names(result.segmentation_node), {result.segment_id: "Index lesion"})
        mask = segmentations.segment_to_mask(result.segmentation_node, result.segment_id, self.nodes["T1"])
        self.assertGreater(compute_metrics(self.truth, mask).dice, 0.75)

    def test_failing_calls_leave_the_segmentation_as_it_was(self):
        self.logic.segmentRegionGrowing(self.nodes, [self.seed_ras], self.roi_ras, segmentationNode=self.seg)
        moved = volumes.sitk_to_volume(self.case.images["T2"], name="far")
        g = volumes.node_geometry(moved)
        volumes.set_node_geometry(moved, volumes.Geometry(g.size, g.spacing, (900.0, 900.0, 900.0), g.direction))
        self.addCleanup(self.scene.RemoveNode, moved)
        empty_roi = self.roi_node(np.zeros(6))
        no_points = self.seeds_node([])
        before = snapshot(self.seg, self.nodes["T1"])
        nodes_before = data_nodes(self.scene)
        cases = [
            (InputError, "seed 1: .*outside the image", dict(seeds=[(900.0, 0.0, 0.0)])),
            (InputError, "seed 1: .*outside the ROI box", dict(seeds=[self.seed_ras], roi=(0, 0, 0, 1, 1, 1))),
            (InputError, "ROI node 'Box': is empty", dict(seeds=[self.seed_ras], roi=empty_roi)),
            (GeometryError, "sequence 'T2': does not overlap",
             dict(seeds=[self.seed_ras], volumeNodes={"T1": self.nodes["T1"], "T2": moved})),
            (InputError, "markups node 'Seeds': has no control points", dict(seeds=no_points)),
            (InputError, "region growing parameters", dict(seeds=[self.seed_ras], parameters={"closing_mm": -1})),
        ]
        for error, message, kwargs in cases:
            args = {"volumeNodes": self.nodes, "roi": self.roi_ras, "segmentationNode": self.seg, "replaceExisting": True, **kwargs}
            with self.subTest(message):
                with self.assertRaisesRegex(error, message):
                    self.logic.segmentRegionGrowing(**args)
                after = snapshot(self.seg, self.nodes["T1"])
                self.assertEqual(after[:3], before[:3])
                np.testing.assert_array_equal(after[3], before[3])
                self.assertEqual(data_nodes(self.scene), nodes_before, "a failing call left nodes behind")

    def test_import_segmentation_file_copies_names_and_colours(self):
        with tempfile.TemporaryDirectory() as tmp:
            labelmap = sitk.Cast(self.case.lesion_mask, sitk.sitkUInt16)
            node, _ = segmentations.labelmap_to_segmentation(
                labelmap, [segmentations.SegmentSpec(v.label, f"L{v.label}", (0.1, 0.2, 0.3 + 0.1 * v.label)) for v in self.case.lesions]
            )
            write_segmentation(node, Path(tmp) / "in.seg.nrrd")
            self.scene.RemoveNode(node)
            results = self.logic.importSegmentationFile(Path(tmp) / "in.seg.nrrd", self.nodes["T1"], self.seg)
        names = segmentations.segment_names(self.seg)
        self.assertEqual([r.segment_name for r in results], [f"L{v.label}" for v in self.case.lesions])
        for r, lesion in zip(results, self.case.lesions, strict=True):
            self.assertEqual(names[r.segment_id], f"L{lesion.label}")
            self.assertAlmostEqual(r.volume_ml, lesion.volume_ml, places=4)
            color = self.seg.GetSegmentation().GetSegment(r.segment_id).GetColor()
            np.testing.assert_allclose(color, (0.1, 0.2, 0.3 + 0.1 * lesion.label), atol=1e-6)


@unittest.skipUnless(HAVE_TORCH, "torch and MONAI are not installed")
class UNetLogicTest(unittest.TestCase):
    """``segmentWithUNet`` on a tiny package: same labelmap as the raw API, checks before any change."""

    @classmethod
    def setUpClass(cls):
        import torch
        from SpineMetsSegmentLib.unet import write_model_package
        from SpineMetsSegmentLib.unet.network import build_network, unet_spec

        cls.tmp = tempfile.TemporaryDirectory()
        card = {
            "name": "tiny logic test model", "version": "0.0.1", "task": "test",
            "labels": [{"value": 1, "name": "Lesion (U-Net)", "color": [230, 51, 51]},
                       {"value": 2, "name": "Other (U-Net)", "color": [0.2, 0.4, 0.9]}],
            "input_sequences": ["T1", "STIR"], "spacing": [2.0, 2.0, 3.5], "patch_size": [32, 32, 8],
            "normalisation": {"method": "zscore", "clip": 5.0},
            "network": unet_spec(3, 2, 3, channels=(4, 8), strides=(2,), num_res_units=0),
            "training_data": {"description": "none (random weights)"}, "validation_metrics": {},
            "synthetic_training_data": True,
        }
        torch.manual_seed(3)
        cls.package = write_model_package(Path(cls.tmp.name) / "tiny", card, build_network(card["network"]).state_dict())
        cls.case = generate_case(8, case_id="unet")
        cls.logic = LesionSegmentationLogic()
        cls.scene = get_runtime().scene

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.nodes = {n: volumes.sitk_to_volume(img, name=n) for n, img in self.case.images.items()}
        self.seg, _ = segmentations.labelmap_to_segmentation(sitk.Cast(self.case.lesion_mask > 0, sitk.sitkUInt16), {1: "Reader"})

    def tearDown(self):
        for node in [*self.nodes.values(), self.seg]:
            self.scene.RemoveNode(node)

    def test_segments_match_the_raw_api(self):
        from SpineMetsSegmentLib.unet import load_model_package, segment_images

        # sequence names are matched case-insensitively; unused sequences are ignored
        given = {"t1": self.nodes["T1"], "T2": self.nodes["T2"], "stir": self.nodes["STIR"]}
        results = self.logic.segmentWithUNet(given, self.package, segmentationNode=self.seg, forceCpu=True)
        raw = segment_images({"T1": self.case.images["T1"], "STIR": self.case.images["STIR"]},
                             load_model_package(self.package), force_cpu=True)
        names = segmentations.segment_names(self.seg)
        self.assertEqual([r.segment_name for r in results], ["Lesion (U-Net)", "Other (U-Net)"])
        self.assertIn("Reader", names.values())
        raw_arr = sitk.GetArrayFromImage(raw)
        voxel_ml = float(np.prod(raw.GetSpacing())) / 1000.0
        for value, r in zip((1, 2), results, strict=True):
            mask = sitk.GetArrayFromImage(segmentations.segment_to_mask(self.seg, r.segment_id, self.nodes["T1"]))
            np.testing.assert_array_equal(mask > 0, raw_arr == value)
            self.assertAlmostEqual(r.volume_ml, float((raw_arr == value).sum()) * voxel_ml)
        color = self.seg.GetSegmentation().GetSegment(results[0].segment_id).GetColor()
        np.testing.assert_allclose(color, (230 / 255, 51 / 255, 51 / 255), atol=1e-6)

    def test_mismatched_and_tampered_models_change_nothing(self):
        from SpineMetsSegmentLib.unet import ModelPackageError

        before = snapshot(self.seg, self.nodes["T1"])
        with self.assertRaisesRegex(InputError, r"expects input sequences \['T1', 'STIR'\] but got \['T1', 'T2'\]"):
            self.logic.segmentWithUNet({"T1": self.nodes["T1"], "T2": self.nodes["T2"]}, self.package, segmentationNode=self.seg)
        tampered = Path(self.tmp.name) / "tampered"
        shutil.copytree(self.package, tampered)
        weights = tampered / "weights.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        with self.assertRaises(ModelPackageError):
            self.logic.segmentWithUNet(self.nodes, tampered, segmentationNode=self.seg)
        after = snapshot(self.seg, self.nodes["T1"])
        self.assertEqual(after[:3], before[:3])
        np.testing.assert_array_equal(after[3], before[3])


if __name__ == "__main__":
    unittest.main()
