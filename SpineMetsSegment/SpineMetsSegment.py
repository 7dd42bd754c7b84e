"""SpineMetsSegment: spinal MRI lesion segmentation (3D Slicer scripted module).

Only the Widget here touches Qt. All computation lives in the Qt-free
``SpineMetsSegmentLib`` (usable from ``Slicer --no-main-window`` scripts, the
``spinemets`` command and plain Python on PyPI's slicer-core).
"""

import logging
import os

import vtk

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from SpineMetsSegmentLib.logic import SpineMetsSegmentLogic as _LibLogic


#
# SpineMetsSegment
#
class SpineMetsSegment(ScriptedLoadableModule):
    """Module metadata (title, help, acknowledgement)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineMets Segment")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineMets developers"]
        self.parent.helpText = _(
            "Lesion segmentation on spinal MRI: import lesion labelmaps as named segments of a "
            "segmentation node; seeded region growing and U-Net segmentation build on the same logic. "
            "Everything here is also available headless through the 'spinemets' command. "
            "Models trained on synthetic data are not clinically valid."
        )
        self.parent.acknowledgementText = _(
            "SpineMets reproduces published spinal MRI study methods on researchers' own cohorts. "
            "It ships a synthetic multi-sequence spine phantom instead of patient data."
        )


#
# Parameter node
#
@parameterNodeWrapper
class SpineMetsSegmentParameterNode:
    """Module state, saved with the scene; bound to the .ui through SlicerParameterName."""

    t1Volume: vtkMRMLScalarVolumeNode
    t2Volume: vtkMRMLScalarVolumeNode
    stirVolume: vtkMRMLScalarVolumeNode
    t1ceVolume: vtkMRMLScalarVolumeNode
    lesionLabelmap: vtkMRMLLabelMapVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    replaceExisting: bool = False


#
# Widget
#
class SpineMetsSegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds parameters and calls the Logic; nothing else."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineMetsSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineMetsSegmentLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.t1Volume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.t1Volume = first

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        ready = bool(p and p.t1Volume and p.lesionLabelmap)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Import the lesion labelmap as segments") if ready else _(
            "Select a reference volume and a lesion labelmap"
        )

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to import the lesion labelmap."), waitCursor=True):
            p = self._parameterNode
            from SpineMetsCore.volumes import volume_to_sitk

            seg, ids = self.logic.importLabelmapAsSegments(
                volume_to_sitk(p.lesionLabelmap),
                p.t1Volume,
                segmentationNode=p.outputSegmentation,
                replaceExisting=p.replaceExisting,
            )
            p.outputSegmentation = seg
            volumes = self.logic.segmentVolumesMl(seg, p.t1Volume)
            self.ui.statusLabel.text = ", ".join(f"{name}: {ml:.2f} mL" for name, ml in volumes.items())


#
# Logic
#
class SpineMetsSegmentLogic(ScriptedLoadableModuleLogic, _LibLogic):
    """Slicer-facing logic: the Qt-free Lib logic plus the module's parameter node."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        _LibLogic.__init__(self)

    def getParameterNode(self):
        return SpineMetsSegmentParameterNode(super().getParameterNode())


#
# Test
#
class SpineMetsSegmentTest(ScriptedLoadableModuleTest):
    """Runs the Logic on a phantom case inside Slicer (the Lib tests run headless too)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_importPhantomLesions()

    def test_importPhantomLesions(self):
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from SpineMetsCore.manifest import read_manifest
        from SpineMetsCore.phantom import write_cohort

        self.delayDisplay("Generating a phantom case")
        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_cohort(os.path.join(tmp, "cohort"), n_cases=1, seed=3)
            row = read_manifest(manifest)[0]
            logic = SpineMetsSegmentLogic()
            case = logic.loadCase(row)
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(row.mask)))
            labels = [int(v) for v in np.unique(mask) if v]
            self.assertEqual(len(case.segment_ids), len(labels))
            if labels:
                vols = logic.segmentVolumesMl(case.segmentation, case.volumes["T1"])
                voxel_ml = float(np.prod(sitk.ReadImage(str(row.mask)).GetSpacing())) / 1000.0
                self.assertAlmostEqual(sum(vols.values()), float((mask > 0).sum()) * voxel_ml, places=3)
        logging.info("SpineMetsSegment test passed")
        self.delayDisplay("Test passed")
