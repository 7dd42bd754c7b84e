"""SpineMetsClassifier: features, classifiers and study statistics (3D Slicer scripted module).

Only the Widget here touches Qt. All computation lives in the Qt-free
``SpineMetsClassifierLib`` (usable headless through the ``spinemets`` command).
"""

import logging
import os
from pathlib import Path

import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from SpineMetsClassifierLib.logic import SpineMetsClassifierLogic as _LibLogic


#
# SpineMetsClassifier
#
class SpineMetsClassifier(ScriptedLoadableModule):
    """Module metadata (title, help, acknowledgement)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineMets Classifier")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineMets developers"]
        self.parent.helpText = _(
            "Cohort manifests, radiomic and expert-derived features, classifiers and the statistics of "
            "published spinal MRI studies (top-k accuracy, ROC-AUC with bootstrap CIs, DeLong, calibration, "
            "decision curves, SHAP). Headless: the 'spinemets' command. Models trained on synthetic data "
            "are not clinically valid."
        )
        self.parent.acknowledgementText = _(
            "SpineMets reproduces published spinal MRI study methods on researchers' own cohorts."
        )


#
# Parameter node
#
@parameterNodeWrapper
class SpineMetsClassifierParameterNode:
    """Module state, saved with the scene; bound to the .ui through SlicerParameterName."""

    manifestPath: Path
    referenceVolume: vtkMRMLScalarVolumeNode
    lesionSegmentation: vtkMRMLSegmentationNode
    resultsTable: vtkMRMLTableNode


#
# Widget
#
class SpineMetsClassifierWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds parameters and calls the Logic; nothing else."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineMetsClassifier.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineMetsClassifierLogic()
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
        ready = bool(p and p.manifestPath and os.path.isfile(str(p.manifestPath)))
        self.ui.applyButton.enabled = ready

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to check the manifest."), waitCursor=True):
            p = self._parameterNode
            table = self.logic.checkManifestToTable(p.manifestPath, p.resultsTable)
            p.resultsTable = table
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
            self.ui.statusLabel.text = _("{n} cases checked").format(n=table.GetNumberOfRows())


#
# Logic
#
class SpineMetsClassifierLogic(ScriptedLoadableModuleLogic, _LibLogic):
    """Slicer-facing logic: the Qt-free Lib logic plus the module's parameter node."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        _LibLogic.__init__(self)

    def getParameterNode(self):
        return SpineMetsClassifierParameterNode(super().getParameterNode())


#
# Test
#
class SpineMetsClassifierTest(ScriptedLoadableModuleTest):
    """Runs the Logic on a phantom cohort inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_checkPhantomManifest()

    def test_checkPhantomManifest(self):
        import tempfile

        from SpineMetsCore.phantom import write_cohort

        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_cohort(os.path.join(tmp, "cohort"), n_cases=2, seed=5)
            table = SpineMetsClassifierLogic().checkManifestToTable(manifest)
            self.assertEqual(table.GetNumberOfRows(), 2)
            problems = table.GetTable().GetColumnByName("problem")
            self.assertEqual([problems.GetValue(i) for i in range(2)], ["", ""])
        logging.info("SpineMetsClassifier test passed")
        self.delayDisplay("Test passed")
