"""Logic calls leave the scene as they found it: temporary nodes go with their display/storage nodes.

For each call the scene's node count is taken before; afterwards the nodes the call
returns as results are removed with ``remove_node_tree`` and the count must be back
at its baseline. A 500-case batch must not leave thousands of orphan display nodes.
"""

import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from SpineMetsClassifierLib.logic.cohort import CohortLogic
from SpineMetsSegmentLib.logic import LesionSegmentationLogic

from SpineMetsCore import dataio, segmentations, volumes
from SpineMetsCore.errors import SpineMetsError
from SpineMetsCore.runtime import get_scene, remove_node_tree, temporary_nodes
from SpineMetsPhantom import generate_case, write_case


def node_count() -> int:
    return get_scene().GetNumberOfNodes()


class SceneHygieneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.case = generate_case(7, case_id="hygiene")
        cls.row = write_case(cls.case, cls.dir)
        cls.lesion = cls.case.lesions[0]
        cls.seed_ras = tuple(volumes.lps_to_ras(cls.lesion.seed_lps))
        lo = volumes.lps_to_ras(np.asarray(cls.lesion.bbox_min_lps) - 10.0)
        hi = volumes.lps_to_ras(np.asarray(cls.lesion.bbox_max_lps) + 10.0)
        cls.roi_ras = (*np.minimum(lo, hi), *np.maximum(lo, hi))
        cls.seg_logic = LesionSegmentationLogic()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_back_to_baseline(self, baseline: int, results=()):
        for node in results:
            remove_node_tree(node)
        self.assertEqual(node_count(), baseline, "nodes left behind in the scene")

    def test_temporary_nodes_removes_display_and_storage_nodes(self):
        baseline = node_count()
        with temporary_nodes() as temp:
            node = temp.add(dataio.read_volume(self.dir / self.row["T1"], name="temp_T1"))
            node.CreateDefaultDisplayNodes()
            self.assertIsNotNone(node.GetDisplayNode())
            self.assertGreater(node_count(), baseline + 1)
        self.assertEqual(node_count(), baseline)
        with self.assertRaises(RuntimeError), temporary_nodes() as temp:
            temp.add(dataio.read_segmentation(self.write_seg("err.seg.nrrd")))
            raise RuntimeError("fails inside the block")
        self.assertEqual(node_count(), baseline)

    def write_seg(self, name: str) -> Path:
        path = self.dir / name
        if not path.exists():
            with temporary_nodes() as temp:
                seg, _ = segmentations.labelmap_to_segmentation(
                    sitk.Cast(self.case.lesion_mask > 0, sitk.sitkUInt16), {1: "lesion"}, name="truth")
                dataio.write_segmentation(temp.add(seg), path)
        return path

    def test_segment_logic_calls(self):
        logic = self.seg_logic
        sequences = {s: self.dir / self.row[s] for s in ("T1", "T2", "STIR", "T1CE")}
        baseline = node_count()
        nodes = logic.loadSequences(sequences)
        grown = logic.segmentRegionGrowing(nodes, [self.seed_ras], self.roi_ras)
        self.assertGreater(grown.volume_ml, 0.1)
        path = self.dir / "grown.seg.nrrd"
        logic.saveSegmentation(grown.segmentation_node, path)
        metrics = logic.computeFileMetrics(path, self.write_seg("truth.seg.nrrd"))
        self.assertGreater(metrics.dice, 0.5)
        imported = logic.importSegmentationFile(path, nodes["T1"])
        self.assertEqual(len(imported), 1)
        results = {id(n): n for n in [*nodes.values(), grown.segmentation_node, imported[0].segmentation_node]}
        self.assert_back_to_baseline(baseline, results.values())

    def test_segment_logic_failures_leave_nothing(self):
        logic = self.seg_logic
        baseline = node_count()
        far = sitk.Image(self.case.images["T1"])
        far.SetOrigin((5000.0, 5000.0, 5000.0))
        far_path = self.dir / "far.nrrd"
        sitk.WriteImage(far, str(far_path))
        with self.assertRaises(SpineMetsError):
            logic.loadSequences({"T1": self.dir / self.row["T1"], "T2": far_path})
        with self.assertRaises(SpineMetsError):
            logic.computeFileMetrics(self.write_seg("truth.seg.nrrd"), self.dir / "missing.seg.nrrd")
        self.assert_back_to_baseline(baseline)

    def test_loaded_case_and_classifier_logic(self):
        from SpineMetsCore.manifest import read_manifest

        baseline = node_count()
        manifest = self.dir / "manifest.csv"
        if not manifest.exists():
            columns = ["case_id", "T1", "T2", "STIR", "T1CE", "mask", "anatomy"]
            manifest.write_text(",".join(columns) + "\n" + ",".join(str(self.row[c]) for c in columns) + "\n")
        loaded = self.seg_logic.loadCase(read_manifest(manifest)[0])
        table = CohortLogic().checkManifestToTable(manifest)
        self.assertEqual(table.GetNumberOfRows(), 1)
        features = CohortLogic().extractCaseFeatures(loaded.volumes, loaded.segmentation, radiomics=False,
                                                     caseId="hygiene")
        self.assertEqual(features.GetNumberOfRows(), 1)
        self.assert_back_to_baseline(baseline, [*loaded.volumes.values(), loaded.segmentation, table, features])


if __name__ == "__main__":
    unittest.main()
