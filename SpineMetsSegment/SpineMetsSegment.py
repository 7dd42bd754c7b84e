"""SpineMetsSegment: spinal MRI lesion segmentation (3D Slicer scripted module).

Only the Widget here touches Qt. All computation lives in the Qt-free
``SpineMetsSegmentLib`` (usable from ``Slicer --no-main-window`` scripts, the
``spinemets`` command and plain Python on PyPI's slicer-core).
"""

import logging
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from SpineMetsSegmentLib.logic import LesionSegmentationLogic as _LibLogic

METHOD_REGION_GROWING = "Region growing"
METHOD_UNET = "U-Net"
METHOD_IMPORT = "Import labelmap"
SEQUENCE_PARAMETERS = (("T1", "t1Volume"), ("T2", "t2Volume"), ("STIR", "stirVolume"), ("T1CE", "t1ceVolume"))

HELP_TEXT = """
Lesion segmentation on spinal MRI into named segments of a segmentation node
(other segments are never touched; a segment of the same name is replaced only
when asked). Everything is also available headless: <code>spinemets segment</code>,
<code>spinemets seg-metrics</code> and the module Logic in
<code>Slicer --no-main-window --python-script</code> or plain Python.
<h3>Region growing (competitive, multi-sequence)</h3>
Seeds (and an optional ROI the lesion may not leave) on any of the sequences; a lesion front
and a background front compete (GrowCut-like fast marching). The algorithm and every
parameter: <a href="https://github.com/spinemets/SlicerSpineMets/blob/main/docs/region_growing.md">docs/region_growing.md</a>.
<h3>U-Net</h3>
A model package (folder or .zip with model.json and weights.safetensors; the weights'
SHA-256 is verified before use) runs in a background process with progress, Cancel
and Force CPU; segments are named and coloured from the model card. Torch comes from
the PyTorch extension. Models trained on synthetic data are not clinically valid.
"""


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
        self.parent.helpText = _(HELP_TEXT)
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
    method: Annotated[str, Choice([METHOD_REGION_GROWING, METHOD_UNET, METHOD_IMPORT])] = METHOD_REGION_GROWING
    seedPoints: vtkMRMLMarkupsFiducialNode
    roiNode: vtkMRMLMarkupsROINode
    seedRadiusMm: Annotated[float, WithinRange(0.0, 20.0)] = 3.0
    backgroundBorderMm: Annotated[float, WithinRange(0.5, 20.0)] = 2.0
    maxRadiusMm: Annotated[float, WithinRange(5.0, 300.0)] = 60.0
    smoothingIterations: Annotated[int, WithinRange(0, 50)] = 5
    fillHoles: bool = True
    modelPath: Path
    forceCpu: bool = False
    lesionLabelmap: vtkMRMLLabelMapVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    segmentName: str = "Lesion"
    replaceExisting: bool = False


#
# Widget
#
class SpineMetsSegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds parameters and calls the Logic; runs the U-Net in a child process."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineMetsSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineMetsSegmentLogic()
        self.ui.progressBar.hide()
        self.ui.seedPlaceWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        self.ui.seedSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.ui.seedPlaceWidget.setCurrentNode)
        self.ui.roiSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.ui.roiPlaceWidget.setCurrentNode)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancelButton()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.t1Volume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first and not first.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.t1Volume = first

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
            self._updateGui()

    def _updateGui(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        method = p.method
        self.ui.regionGrowingCollapsibleButton.visible = method == METHOD_REGION_GROWING
        self.ui.advancedCollapsibleButton.visible = method == METHOD_REGION_GROWING
        self.ui.unetCollapsibleButton.visible = method == METHOD_UNET
        self.ui.importCollapsibleButton.visible = method == METHOD_IMPORT
        if method == METHOD_REGION_GROWING:
            ready = bool(p.t1Volume and p.seedPoints)
            hint = _("Select a T1 volume and place at least one seed point")
        elif method == METHOD_UNET:
            ready = bool(p.t1Volume and p.modelPath and str(p.modelPath) not in ("", "."))
            hint = _("Select the input volumes and a model package")
        else:
            ready = bool(p.t1Volume and p.lesionLabelmap)
            hint = _("Select a reference volume and a lesion labelmap")
        busy = self._job is not None
        self.ui.applyButton.enabled = ready and not busy
        self.ui.applyButton.toolTip = _("Segment") if ready else hint
        self.ui.cancelButton.enabled = busy

    def _volumes(self) -> dict:
        p = self._parameterNode
        return {seq: getattr(p, attr) for seq, attr in SEQUENCE_PARAMETERS if getattr(p, attr)}

    def _showResults(self, results) -> None:
        self._parameterNode.outputSegmentation = results[0].segmentation_node
        self.ui.statusLabel.text = ", ".join(f"{r.segment_name}: {r.volume_ml:.2f} mL" for r in results)

    def onApplyButton(self) -> None:
        p = self._parameterNode
        if p.method == METHOD_UNET:
            with slicer.util.tryWithErrorDisplay(_("Failed to start the U-Net segmentation."), waitCursor=True):
                self._startUNet()
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
            if p.method == METHOD_REGION_GROWING:
                from SpineMetsSegmentLib.region_growing import RegionGrowingParameters

                params = RegionGrowingParameters(
                    seed_radius_mm=p.seedRadiusMm,
                    background_border_mm=p.backgroundBorderMm,
                    max_radius_mm=p.maxRadiusMm,
                    smoothing_iterations=p.smoothingIterations,
                    fill_holes=p.fillHoles,
                )
                result = self.logic.segmentRegionGrowing(
                    self._volumes(),
                    p.seedPoints,
                    p.roiNode,
                    segmentationNode=p.outputSegmentation,
                    segmentName=p.segmentName or "Lesion",
                    replaceExisting=p.replaceExisting,
                    parameters=params,
                    referenceSequence="T1",
                )
                self._showResults([result])
            else:
                from SpineMetsCore.volumes import volume_to_sitk

                seg, _ids = self.logic.importLabelmapAsSegments(
                    volume_to_sitk(p.lesionLabelmap),
                    p.t1Volume,
                    segmentationNode=p.outputSegmentation,
                    replaceExisting=p.replaceExisting,
                )
                p.outputSegmentation = seg
                volumes = self.logic.segmentVolumesMl(seg, p.t1Volume)
                self.ui.statusLabel.text = ", ".join(f"{name}: {ml:.2f} mL" for name, ml in volumes.items())

    # --- U-Net in a child process -------------------------------------------------
    def _startUNet(self) -> None:
        from SpineMetsSegmentLib.background import child_environment, launch, unet_command

        from SpineMetsCore.dataio import write_volume

        if not self.logic.ensureUNetDependencies():
            return
        p = self._parameterNode
        workdir = tempfile.TemporaryDirectory(prefix="SpineMetsUNet_")
        images = {}
        for seq, node in self._volumes().items():
            images[seq] = write_volume(node, os.path.join(workdir.name, f"{seq}.nrrd"))
        out = os.path.join(workdir.name, "result.seg.nrrd")
        args = unet_command(images, p.modelPath, out, force_cpu=p.forceCpu)
        logging.info("SpineMetsSegment: running %s", " ".join(args))
        proc = launch(args, child_environment())
        lines = queue.Queue()
        reader = threading.Thread(target=self._readOutput, args=(proc, lines), daemon=True)
        reader.start()
        timer = qt.QTimer()
        timer.setInterval(200)
        timer.connect("timeout()", self._pollUNet)
        self._job = {"proc": proc, "lines": lines, "timer": timer, "workdir": workdir, "out": out, "log": []}
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self.ui.statusLabel.text = _("U-Net running...")
        timer.start()
        self._updateGui()

    @staticmethod
    def _readOutput(proc, lines) -> None:
        for line in proc.stdout:
            lines.put(line.rstrip())
        lines.put(None)

    def _pollUNet(self) -> None:
        from SpineMetsSegmentLib.background import parse_progress

        job = self._job
        if job is None:
            return
        finished = False
        while True:
            try:
                line = job["lines"].get_nowait()
            except queue.Empty:
                break
            if line is None:
                finished = True
                break
            job["log"].append(line)
            percent = parse_progress(line)
            if percent is not None:
                self.ui.progressBar.value = percent
        if not finished:
            return
        code = job["proc"].wait()
        self._finishJob()
        if code != 0:
            tail = "\n".join(job["log"][-15:])
            slicer.util.errorDisplay(_("U-Net segmentation failed."), detailedText=tail)
            self.ui.statusLabel.text = _("U-Net segmentation failed (see details).")
            job["workdir"].cleanup()
            return
        with slicer.util.tryWithErrorDisplay(_("Could not load the U-Net result."), waitCursor=True):
            p = self._parameterNode
            results = self.logic.importSegmentationFile(job["out"], p.t1Volume, p.outputSegmentation, p.replaceExisting)
            self._showResults(results)
        job["workdir"].cleanup()

    def _finishJob(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job["timer"].stop()
        self.ui.progressBar.hide()
        self._updateGui()

    def onCancelButton(self) -> None:
        job = self._job
        if job is None:
            return
        from SpineMetsSegmentLib.background import terminate

        terminate(job["proc"])
        self._finishJob()
        job["workdir"].cleanup()
        self.ui.statusLabel.text = _("U-Net segmentation cancelled.")


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

    def ensureUNetDependencies(self) -> bool:
        """Install MONAI etc. (with consent) and torch through the PyTorch extension; False if declined."""
        from SpineMetsCore.dependencies import ensure_requirements

        try:
            import PyTorchUtils
        except ImportError:
            slicer.util.errorDisplay(_("The U-Net needs the PyTorch extension: install 'PyTorch' from the Extensions Manager."))
            return False
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if not torchLogic.torchInstalled():
            torch = torchLogic.installTorch(askConfirmation=True, torchVersionRequirement=">=2.0")
            if torch is None:
                return False
        module_dir = Path(__file__).resolve().parent
        ensure_requirements(module_dir / "Resources" / "requirements.txt", requester="SpineMetsSegment")
        return True


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
        self.setUp()
        self.test_regionGrowingWithMarkups()

    def test_importPhantomLesions(self):
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from SpineMetsCore.manifest import read_manifest
        from SpineMetsPhantom import write_cohort

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

    def test_regionGrowingWithMarkups(self):
        import numpy as np
        import SimpleITK as sitk
        from SpineMetsSegmentLib.metrics import compute_metrics

        from SpineMetsCore.volumes import sitk_to_volume
        from SpineMetsPhantom import generate_case

        self.delayDisplay("Region growing from a seed point list inside an ROI")
        case = generate_case(7, case_id="slicerTest")
        nodes = {name: sitk_to_volume(image, name=name) for name, image in case.images.items()}
        lesion = case.lesions[0]
        flip = np.array([-1.0, -1.0, 1.0])
        seeds = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seeds")
        seeds.AddControlPoint(*(np.asarray(lesion.seed_lps) * flip))
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "ROI")
        lo = (np.asarray(lesion.bbox_min_lps) - 10.0) * flip
        hi = (np.asarray(lesion.bbox_max_lps) + 10.0) * flip
        roi.SetCenter(*((lo + hi) / 2))
        roi.SetSize(*np.abs(hi - lo))
        result = SpineMetsSegmentLogic().segmentRegionGrowing(nodes, seeds, roi, segmentName="Index lesion")
        from SpineMetsCore.segmentations import segment_to_mask

        truth = sitk.Cast(sitk.Equal(case.lesion_mask, lesion.label), sitk.sitkUInt8)
        mask = segment_to_mask(result.segmentation_node, result.segment_id, nodes["T1"])
        self.assertEqual(result.segment_name, "Index lesion")
        self.assertGreater(compute_metrics(truth, mask).dice, 0.8)
        self.delayDisplay("Test passed")
