"""The headless MRML runtime on slicer-core (or desktop Slicer's, when run inside it)."""

import gc
import unittest

import numpy as np


class RuntimeTest(unittest.TestCase):
    def test_runtime_builds_real_scene_with_logics(self):
        import slicer

        from SpineMetsCore.runtime import get_runtime

        rt = get_runtime()
        self.assertIs(rt, get_runtime(), "runtime must be a process singleton")
        self.assertIs(slicer.mrmlScene, rt.scene, "slicer.mrmlScene must be set for slicer.util helpers")
        self.assertTrue(rt.scene.IsA("vtkMRMLScene"))
        self.assertGreater(rt.scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode"), 10, "default colour tables")
        self.assertIsNotNone(rt.scene.GetFirstNodeByName("GenericAnatomyColors") or rt.scene.GetFirstNodeByName("Labels"))
        self.assertTrue(rt.volumes_logic.IsA("vtkSlicerVolumesLogic"))
        self.assertTrue(rt.segmentations_logic.IsA("vtkSlicerSegmentationsModuleLogic"))
        self.assertTrue(rt.subject_hierarchy_logic.IsA("vtkSlicerSubjectHierarchyModuleLogic"))
        if not rt.in_slicer_app:
            self.assertIs(rt.app_logic.GetModuleLogic("Volumes"), rt.volumes_logic)
            self.assertIsNotNone(slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(rt.scene))

    def test_converter_rules_registered(self):
        import slicer

        from SpineMetsCore.runtime import get_runtime

        get_runtime()
        rules = {r.GetClassName() for r in slicer.vtkSegmentationConverterFactory.GetInstance().GetConverterRules()}
        self.assertIn("vtkBinaryLabelmapToClosedSurfaceConversionRule", rules)
        self.assertIn("vtkClosedSurfaceToBinaryLabelmapConversionRule", rules)

    def test_slicer_util_array_helpers_work_after_gc(self):
        import slicer

        from SpineMetsCore.runtime import get_runtime

        scene = get_runtime().scene
        gc.collect()  # the runtime keeps its logics alive; collection must not drop them
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "gc_check")
        slicer.util.updateVolumeFromArray(node, np.arange(24, dtype=np.int16).reshape(2, 3, 4))
        self.assertEqual(slicer.util.arrayFromVolume(node).sum(), sum(range(24)))
        self.assertIs(slicer.util.getNode("gc_check"), node)
        scene.RemoveNode(node)


if __name__ == "__main__":
    unittest.main()
