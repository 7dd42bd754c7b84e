"""SpineMetsSegment: spinal MRI lesion segmentation (3D Slicer scripted module).

Only the Widget here touches Qt. All computation lives in the Qt-free
``SpineMetsSegmentLib`` (usable from ``Slicer --no-main-window`` scripts, the
``spinemets`` command and plain Python on PyPI's slicer-core). At load time this
file imports only what desktop Slicer bundles (numpy, SimpleITK, scipy, vtk) and
the extension's own packages; torch, MONAI and safetensors are installed on first
use of the U-Net (``SpineMetsCore.dependencies``) and imported only by the
background process. Needs Slicer 5.10 or later (Python 3.12).
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

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
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineMetsSegmentLib.logic import LesionSegmentationLogic as _LibLogic

from SpineMetsCore.runtime import show_table_in_layout

METHOD_REGION_GROWING = "Region growing"
METHOD_UNET = "U-Net"
METHOD_IMPORT = "Import labelmap"
SEQUENCE_PARAMETERS = (("T1", "t1Volume"), ("T2", "t2Volume"), ("STIR", "stirVolume"), ("T1CE", "t1ceVolume"))
MODULE_DIR = Path(__file__).resolve().parent
DEMO_MODEL = MODULE_DIR / "Resources" / "Models"
REQUIREMENTS = MODULE_DIR / "Resources" / "SpineMetsSegmentRequirements.txt"
RESULTS_TABLE_NAME = "SpineMetsSegment results"

HELP_TEXT = """
Lesion segmentation on spinal MRI into named segments of a segmentation node
(other segments are never touched; a segment of the same name is replaced only
when asked). Everything is also available headless: <code>spinemets segment</code>,
<code>spinemets seg-metrics</code> and the module Logic in
<code>Slicer --no-main-window --python-script</code> or plain Python.
<h3>Region growing (one click + ROI, corrective clicks)</h3>
The first seed is the lesion's centre; the lesion is a star-shaped surface around it,
found ray by ray from edges, signal (lesion vs ROI-border tissue classes, all chosen
sequences) and a box prior (the lesion fills its ROI up to about 1 cm on each side), then
refined voxel-wise as far as the signal separates the lesion from its surroundings. More
seeds are foreground corrections, background points are background corrections; each
moves the surface near it, and repeated clicks reuse what the first computed. With
"Update on every click" each point placed re-segments the same segment at once. A warning
says when the surface runs into the ROI border (a leak, or an ROI drawn too tight) or
follows the ROI shape for lack of a visible border. Algorithm, every parameter and the
failure modes: docs/region_growing.md.
<h3>U-Net</h3>
A model package (folder or .zip with model.json and weights.safetensors; the weights'
SHA-256 is verified before use) runs in a background process with progress, Cancel
and Force CPU; segments are named and coloured from the model card. Torch comes from
the PyTorch extension. Models trained on synthetic data are not clinically valid.
"""
HELP_TEXT += """
<h3>Sample data</h3>
<b>Load synthetic phantom case</b> (or the Sample Data module, category SpineMets) loads
one case of the SpineMets phantom with its lesion and anatomy segmentations; each
file's SHA-256 is checked. It is synthetic, not a patient.
<h3>Results</h3>
Each run adds or replaces named segments and fills the table
<i>SpineMets Segment results</i> (segment, method, volume in mL), shown in a
layout with a table view. A U-Net import is one undoable step (Edit / Undo).
<p>Requires 3D Slicer 5.10 or later (Python 3.12).</p>
"""


def _chosenPath(path: Any) -> str:
    """'' for an unset path parameter (a Path parameter defaults to '.')."""
    text = str(path or "").strip()
    return "" if text in ("", ".") else text


#
# SpineMetsSegment
#
class SpineMetsSegment(ScriptedLoadableModule):
    """Module metadata (title, help, acknowledgement) and the sample data registration."""

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
        if hasattr(slicer, "app"):  # the desktop application (not PythonSlicer, not a headless script)
            slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """Add the synthetic phantom case to the Sample Data module (category SpineMets)."""
    from SpineMetsSegmentLib.sample_data import register_sample_data

    try:
        register_sample_data()
    except Exception as exc:  # noqa: BLE001 - a broken sample must not break start-up
        logging.warning("SpineMetsSegment: sample data not registered: %s", exc)


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
    backgroundPoints: vtkMRMLMarkupsFiducialNode
    roiNode: vtkMRMLMarkupsROINode
    autoUpdate: bool = False
    seedRadiusMm: Annotated[float, WithinRange(0.0, 20.0)] = 3.0
    backgroundBorderMm: Annotated[float, WithinRange(0.5, 20.0)] = 2.0
    maxRadiusMm: Annotated[float, WithinRange(5.0, 300.0)] = 60.0
    modelPath: Path = DEMO_MODEL
    forceCpu: bool = False
    lesionLabelmap: vtkMRMLLabelMapVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    segmentName: str = "Lesion"
    replaceExisting: bool = False


#
# Widget
#
class SpineMetsSegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds parameters and calls the Logic; the U-Net job is polled by a timer."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._clickNodes = []
        self._parameterNodeGuiTag = None
        self._job = None
        self._timer = None

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
        self.ui.backgroundPlaceWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        self.ui.backgroundSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.ui.backgroundPlaceWidget.setCurrentNode)
        self.ui.roiSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.ui.roiPlaceWidget.setCurrentNode)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSampleButton)
        self.ui.modelFolderButton.connect("clicked(bool)", self.onModelFolderButton)
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onTimer)
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
        self._observeClicks(p)
        ready, hint = self.logic.readiness(p)
        busy = self._job is not None
        self.ui.applyButton.enabled = ready and not busy
        self.ui.applyButton.toolTip = _("Segment") if ready else hint
        self.ui.cancelButton.enabled = busy
        self.ui.loadSampleButton.enabled = not busy

    def _observeClicks(self, p) -> None:
        """Watch the seed and background point lists while live update is on."""
        wanted = [n for n in (p.seedPoints, p.backgroundPoints) if n] if p.autoUpdate else []
        if wanted == self._clickNodes:
            return
        event = slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent
        for node in self._clickNodes:
            self.removeObserver(node, event, self.onClickPlaced)
        for node in wanted:
            self.addObserver(node, event, self.onClickPlaced)
        self._clickNodes = wanted

    def onClickPlaced(self, caller=None, event=None) -> None:
        """Live update: re-segment the same segment with every click so far (the Logic reuses its session)."""
        p = self._parameterNode
        if p is None or not p.autoUpdate or p.method != METHOD_REGION_GROWING or self._job is not None:
            return
        if not self.logic.readiness(p)[0]:
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
            self._showResults([self.logic.segmentFromParameterNode(p, replaceExisting=True)])

    def _showResults(self, results) -> None:
        table = self.logic.resultsToTable(results)
        self._parameterNode.outputSegmentation = results[0].segmentation_node if results else self._parameterNode.outputSegmentation
        show_table_in_layout(table)
        self.ui.statusLabel.text = ", ".join(f"{r.segment_name}: {r.volume_ml:.2f} mL" for r in results)

    def onLoadSampleButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the phantom sample."), waitCursor=True):
            case = self.logic.loadSampleCase()
            self.logic.useCase(self._parameterNode, case)
            slicer.util.setSliceViewerLayers(background=case.volumes["T1"], fit=True)
            self.ui.statusLabel.text = _("Synthetic phantom case loaded (not a patient).")

    def onModelFolderButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, _("Model package folder"), _chosenPath(self._parameterNode.modelPath))
        if folder:
            self._parameterNode.modelPath = Path(folder)

    def onApplyButton(self) -> None:
        p = self._parameterNode
        if p.method == METHOD_UNET:
            with slicer.util.tryWithErrorDisplay(_("Failed to start the U-Net segmentation."), waitCursor=True):
                if not self.logic.ensureUNetDependencies():
                    return
                self._job = self.logic.startUNet(p)
                self.ui.progressBar.value = 0
                self.ui.progressBar.show()
                self.ui.statusLabel.text = _("U-Net running in the background...")
                self._timer.start()
                self._updateGui()
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
            if p.method == METHOD_REGION_GROWING:
                results = [self.logic.segmentFromParameterNode(p)]
            else:
                results = self.logic.importLabelmapFromParameterNode(p)
            self._showResults(results)

    def onTimer(self) -> None:
        """Only polls the job (never blocks); imports the result when it is done."""
        job = self._job
        if job is None:
            self._timer.stop()
            return
        status = job.poll()
        self.ui.progressBar.value = int(round(100 * status.fraction))
        self.ui.statusLabel.text = status.message
        if not status.finished:
            return
        self._timer.stop()
        self._job = None
        self.ui.progressBar.hide()
        self._updateGui()
        if status.state == "succeeded":
            with slicer.util.tryWithErrorDisplay(_("Could not import the U-Net result."), waitCursor=True):
                self._showResults(self.logic.finishUNet(job, self._parameterNode))
        elif status.state == "failed":
            slicer.util.errorDisplay(_("U-Net segmentation failed."), detailedText=status.message + "\n\n" + "\n".join(job.log[-20:]))
            job.cleanup()

    def onCancelButton(self) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        job.cancel()
        job.cleanup()
        if self._timer is not None:
            self._timer.stop()
        self.ui.progressBar.hide()
        self.ui.statusLabel.text = _("U-Net segmentation cancelled.")
        self._updateGui()


#
# Logic
#
class SpineMetsSegmentLogic(ScriptedLoadableModuleLogic, _LibLogic):
    """Slicer-facing logic: the Qt-free Lib logic, the parameter node, the U-Net job and the sample."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        _LibLogic.__init__(self)

    def getParameterNode(self):
        return SpineMetsSegmentParameterNode(super().getParameterNode())

    # --- readiness and inputs ----------------------------------------------------
    @staticmethod
    def volumesOf(p) -> dict:
        """Sequence name -> selected volume node (empty selectors skipped)."""
        return {seq: getattr(p, attr) for seq, attr in SEQUENCE_PARAMETERS if getattr(p, attr)}

    @staticmethod
    def readiness(p) -> tuple[bool, str]:
        """Whether Apply can run with these parameters, and what is missing otherwise."""
        if p.method == METHOD_REGION_GROWING:
            return bool(p.t1Volume and p.seedPoints and p.seedPoints.GetNumberOfControlPoints()), _(
                "Select a T1 volume and place at least one seed point")
        if p.method == METHOD_UNET:
            return bool(p.t1Volume and _chosenPath(p.modelPath) and os.path.exists(_chosenPath(p.modelPath))), _(
                "Select the input volumes and a model package (folder or .zip)")
        return bool(p.t1Volume and p.lesionLabelmap), _("Select a reference volume and a lesion labelmap")

    @staticmethod
    def modelPackagePath(p) -> Path:
        """The chosen model package (a picked ``model.json`` means its folder)."""
        path = Path(_chosenPath(p.modelPath))
        return path.parent if path.name == "model.json" else path

    # --- region growing and labelmap import ----------------------------------------
    def segmentFromParameterNode(self, p, replaceExisting: bool | None = None):
        """Region growing from the seed markups (the first one starts, later ones correct), minus the
        background markups, inside the ROI (no ROI: a box around the seeds)."""
        from SpineMetsSegmentLib.region_growing import RegionGrowingParameters

        params = RegionGrowingParameters(
            seed_radius_mm=p.seedRadiusMm,
            background_border_mm=p.backgroundBorderMm,
            max_radius_mm=p.maxRadiusMm,
        )
        result = self.segmentRegionGrowing(
            self.volumesOf(p), p.seedPoints, p.roiNode, segmentationNode=p.outputSegmentation,
            segmentName=p.segmentName or "Lesion",
            replaceExisting=p.replaceExisting if replaceExisting is None else replaceExisting, parameters=params,
            referenceSequence="T1", backgroundPoints=p.backgroundPoints,
        )
        p.outputSegmentation = result.segmentation_node
        return result

    def importLabelmapFromParameterNode(self, p):
        """Every label of the chosen labelmap volume as a named segment."""
        from SpineMetsSegmentLib.logic import SegmentResult

        from SpineMetsCore.volumes import volume_to_sitk

        seg, ids = self.importLabelmapAsSegments(
            volume_to_sitk(p.lesionLabelmap), p.t1Volume, segmentationNode=p.outputSegmentation,
            replaceExisting=p.replaceExisting,
        )
        p.outputSegmentation = seg
        volumes = self.segmentVolumesMl(seg, p.t1Volume)
        names = seg.GetSegmentation()
        return [SegmentResult(seg, sid, names.GetSegment(sid).GetName(), volumes[names.GetSegment(sid).GetName()])
                for sid in ids.values()]

    # --- U-Net in a background process -----------------------------------------------
    def ensureUNetDependencies(self, installer=None) -> bool:
        """torch (PyTorch extension), MONAI matched to it, safetensors; one confirmation. False: declined."""
        from SpineMetsCore.dependencies import ensure_requirements

        return ensure_requirements(REQUIREMENTS, requester="SpineMetsSegment", installer=installer)

    def startUNet(self, p, launcher=None, python=None):
        """Write the inputs and start the worker; returns the running :class:`UNetJob`."""
        from SpineMetsSegmentLib.unet.job import UNetJob

        from SpineMetsCore.dataio import write_image
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.volumes import volume_to_sitk

        ready, hint = self.readiness(p)
        if p.method == METHOD_UNET and not ready:
            raise InputError("U-Net", hint)
        workdir = Path(tempfile.mkdtemp(prefix="SpineMetsUNet-"))
        try:
            # uncompressed: the worker reads them once, right away
            images = {seq: write_image(volume_to_sitk(node), workdir / f"{seq}.nrrd", compress=False)
                      for seq, node in self.volumesOf(p).items()}
            kwargs = {"launcher": launcher} if launcher is not None else {}
            job = UNetJob(images, self.modelPackagePath(p), workdir, force_cpu=p.forceCpu, python=python,
                          remove_workdir=True, **kwargs)
            job.start()
        except Exception:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return job

    def finishUNet(self, job, p) -> list:
        """Import a finished job's labelmap into the output segmentation, then remove its files."""
        try:
            results = self.importUNetResult(job.result(), p.t1Volume, p.outputSegmentation, p.replaceExisting)
        finally:
            job.cleanup()
        p.outputSegmentation = results[0].segmentation_node
        return results

    def importUNetResult(self, result, referenceVolume, segmentationNode=None, replaceExisting=False) -> list:
        """Read the worker's labelmap once and add one segment per model-card label, as one undoable step."""
        import numpy as np
        import SimpleITK as sitk
        from SpineMetsSegmentLib.logic import SegmentResult
        from SpineMetsSegmentLib.unet.job import label_color

        from SpineMetsCore import segmentations
        from SpineMetsCore.dataio import read_image

        labelmap = read_image(result.labelmap)
        specs = [segmentations.SegmentSpec(int(label["value"]), str(label["name"]), label_color(label))
                 for label in result.labels]
        self.scene.SaveStateForUndo()
        ids = self._addSegments(labelmap, specs, referenceVolume, segmentationNode, replaceExisting)
        voxel_ml = float(np.prod(labelmap.GetSpacing())) / 1000.0
        counts = np.bincount(sitk.GetArrayViewFromImage(labelmap).ravel().astype(np.int64), minlength=256)
        out = []
        for spec in specs:
            node, sid = ids[spec.label]
            out.append(SegmentResult(node, sid, node.GetSegmentation().GetSegment(sid).GetName(), float(counts[spec.label]) * voxel_ml))
        return out

    # --- results and sample data -------------------------------------------------------
    def resultsToTable(self, results, tableNode=None):
        """A table node (segment, segmentation, volume mL) of the latest results, for the table view."""
        if tableNode is None:
            tableNode = self.scene.GetFirstNodeByName(RESULTS_TABLE_NAME) or self.scene.AddNewNodeByClass(
                "vtkMRMLTableNode", RESULTS_TABLE_NAME)
        table = tableNode.GetTable()
        table.Initialize()
        columns = (("Segment", vtk.vtkStringArray()), ("Segmentation", vtk.vtkStringArray()), ("Volume (mL)", vtk.vtkDoubleArray()))
        for name, array in columns:
            array.SetName(name)
            table.AddColumn(array)
        for r in results:
            columns[0][1].InsertNextValue(r.segment_name)
            columns[1][1].InsertNextValue(r.segmentation_node.GetName())
            columns[2][1].InsertNextValue(round(float(r.volume_ml), 4))
        table.Modified()
        tableNode.Modified()
        return tableNode

    def loadSampleCase(self):
        """The synthetic phantom sample (checksums verified) as volume and segmentation nodes."""
        from SpineMetsSegmentLib.sample_data import SAMPLE_NAME, SEQUENCES, SampleCase, verify_sample

        from SpineMetsCore.dataio import read_segmentation, read_volume

        paths = verify_sample()
        volumes = {seq: read_volume(paths[seq], name=f"{SAMPLE_NAME}_{seq}") for seq in SEQUENCES}
        lesions = read_segmentation(paths["lesions"], name=f"{SAMPLE_NAME}_lesions")
        anatomy = read_segmentation(paths["anatomy"], name=f"{SAMPLE_NAME}_anatomy")
        return SampleCase(volumes, lesions, anatomy)

    def useCase(self, p, case) -> None:
        """Select a loaded case's sequences as the module's inputs."""
        for seq, attr in SEQUENCE_PARAMETERS:
            if seq in case.volumes:
                setattr(p, attr, case.volumes[seq])


#
# Test
#
class SpineMetsSegmentTest(ScriptedLoadableModuleTest):
    """Every action of the module, end to end through the Logic, on the phantom sample."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for name in sorted(n for n in dir(self) if n.startswith("test_")):
            self.setUp()
            getattr(self, name)()

    # helpers ---------------------------------------------------------------------
    def _sample(self):
        logic = SpineMetsSegmentLogic()
        case = logic.loadSampleCase()
        p = logic.getParameterNode()
        logic.useCase(p, case)
        return logic, case, p

    @staticmethod
    def _truth(logic, case):
        return logic.segmentMask(case.lesions, "index lesion")

    def _dice(self, logic, case, node, segment):
        from SpineMetsSegmentLib.metrics import compute_metrics

        return compute_metrics(self._truth(logic, case), logic.segmentMask(node, segment)).dice

    # tests -------------------------------------------------------------------------
    def test_sampleDataChecksumsAndContents(self):
        from SpineMetsSegmentLib.sample_data import read_index, verify_sample

        from SpineMetsCore.errors import InputError

        self.delayDisplay("Loading the phantom sample")
        logic, case, p = self._sample()
        self.assertEqual(sorted(case.volumes), ["STIR", "T1", "T1CE", "T2"])
        self.assertIs(p.t1Volume, case.volumes["T1"])
        self.assertIs(p.t1ceVolume, case.volumes["T1CE"])
        names = logic.segmentVolumesMl(case.lesions, case.volumes["T1"])
        self.assertEqual(list(names), ["index lesion"])
        self.assertGreater(names["index lesion"], 0.3)
        anatomy = logic.segmentVolumesMl(case.anatomy, case.volumes["T1"])
        self.assertIn("vertebral_body", anatomy)
        files, description = read_index()
        self.assertTrue(description["synthetic"])
        with tempfile.TemporaryDirectory() as tmp:
            for entry in files:
                shutil.copy(verify_sample()[entry.role], tmp)
            shutil.copy(Path(verify_sample()["T1"]).with_name("SpineMetsPhantom.json"), tmp)
            damaged = Path(tmp) / files[0].file
            data = bytearray(damaged.read_bytes())
            data[-1] ^= 0xFF
            damaged.write_bytes(bytes(data))
            with self.assertRaisesRegex(InputError, "does not match the sample index"):
                verify_sample(tmp)
        self.delayDisplay("Sample data test passed")

    def test_regionGrowingWithMarkupsSeedAndRoi(self):
        import numpy as np
        import SimpleITK as sitk

        self.delayDisplay("Region growing from a seed point list inside an ROI")
        logic, case, p = self._sample()
        truth = self._truth(logic, case)
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(truth)
        flip = np.array([-1.0, -1.0, 1.0])  # LPS -> RAS
        centre = np.asarray(truth.TransformContinuousIndexToPhysicalPoint(
            truth.TransformPhysicalPointToContinuousIndex(stats.GetCentroid(1)))) * flip
        box = stats.GetBoundingBox(1)
        corners = [truth.TransformIndexToPhysicalPoint([int(box[i] + box[i + 3] * k) for i in range(3)]) for k in (0, 1)]
        lo, hi = (np.asarray(c) * flip for c in corners)
        p.method = METHOD_REGION_GROWING
        self.assertFalse(logic.readiness(p)[0], "no seed yet")
        p.seedPoints = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seeds")
        p.seedPoints.AddControlPoint(*centre)
        p.roiNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "ROI")
        p.roiNode.SetCenter(*((lo + hi) / 2))
        p.roiNode.SetSize(*(np.abs(hi - lo) + 20.0))
        p.segmentName = "Index lesion (RG)"
        self.assertTrue(logic.readiness(p)[0])
        result = logic.segmentFromParameterNode(p)
        self.assertEqual(result.segment_name, "Index lesion (RG)")
        self.assertIs(p.outputSegmentation, result.segmentation_node)
        self.assertGreater(self._dice(logic, case, result.segmentation_node, "Index lesion (RG)"), 0.8)
        table = logic.resultsToTable([result])
        self.assertEqual(table.GetTable().GetValueByName(0, "Segment").ToString(), "Index lesion (RG)")
        self.assertAlmostEqual(table.GetTable().GetValueByName(0, "Volume (mL)").ToDouble(), result.volume_ml, places=3)

        self.delayDisplay("A background click on a segmented voxel away from the seed removes it")
        mask = logic.segmentMask(result.segmentation_node, "Index lesion (RG)")
        inside = np.argwhere(sitk.GetArrayFromImage(mask) > 0)
        seedIndex = np.asarray(mask.TransformPhysicalPointToIndex(tuple(centre * flip)))[::-1]
        far = inside[np.argmax(np.linalg.norm((inside - seedIndex) * np.asarray(mask.GetSpacing())[::-1], axis=1))]
        click = np.asarray(mask.TransformIndexToPhysicalPoint([int(v) for v in far[::-1]])) * flip
        p.backgroundPoints = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Background")
        p.backgroundPoints.AddControlPoint(*click)
        corrected = logic.segmentFromParameterNode(p, replaceExisting=True)
        self.assertIs(corrected.segmentation_node, result.segmentation_node)
        self.assertEqual(result.segmentation_node.GetSegmentation().GetNumberOfSegments(), 1)
        after = sitk.GetArrayFromImage(logic.segmentMask(corrected.segmentation_node, "Index lesion (RG)"))
        self.assertEqual(after[tuple(far)], 0, "the background click's voxel is still in the lesion")
        self.assertLess(corrected.volume_ml, result.volume_ml)
        self.assertGreater(self._dice(logic, case, corrected.segmentation_node, "Index lesion (RG)"), 0.75)
        self.delayDisplay("Region growing test passed")

    def test_importLabelmap(self):
        import numpy as np

        from SpineMetsCore.volumes import sitk_to_volume

        logic, case, p = self._sample()
        truth = self._truth(logic, case)
        p.method = METHOD_IMPORT
        p.lesionLabelmap = sitk_to_volume(truth, name="lesion labelmap", labelmap=True)
        self.assertTrue(logic.readiness(p)[0])
        results = logic.importLabelmapFromParameterNode(p)
        self.assertEqual([r.segment_name for r in results], ["Lesion 1"])
        voxel_ml = float(np.prod(truth.GetSpacing())) / 1000.0
        self.assertAlmostEqual(results[0].volume_ml, float(slicer.util.arrayFromVolume(p.lesionLabelmap).sum()) * voxel_ml, places=4)
        p.replaceExisting = True
        again = logic.importLabelmapFromParameterNode(p)
        self.assertEqual(again[0].segment_name, "Lesion 1")
        self.assertEqual(p.outputSegmentation.GetSegmentation().GetNumberOfSegments(), 1)

    def test_unetInBackgroundProcess(self):
        import sys

        self.delayDisplay("U-Net in a background process, polled like the widget's timer")
        logic, case, p = self._sample()
        p.method = METHOD_UNET
        p.forceCpu = True
        self.assertEqual(Path(str(p.modelPath)), DEMO_MODEL)
        self.assertTrue(logic.readiness(p)[0])
        self.assertTrue(logic.ensureUNetDependencies(), "everything is installed here: nothing to ask")
        p.outputSegmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "U-Net output")
        p.outputSegmentation.CreateDefaultDisplayNodes()
        slicer.mrmlScene.SetUndoOn()
        p.outputSegmentation.SetUndoEnabled(True)
        job = logic.startUNet(p, python=sys.executable)
        import time

        deadline = time.monotonic() + 600
        while not job.poll().finished:
            self.assertLess(time.monotonic(), deadline, "the U-Net job did not finish")
            time.sleep(0.1)
        self.assertEqual(job.poll().state, "succeeded", job.poll().message)
        workdir = Path(job.workdir)
        results = logic.finishUNet(job, p)
        self.assertFalse(workdir.exists(), "the job's files are removed after the import")
        self.assertEqual([r.segment_name for r in results], ["lesion"])
        segment = p.outputSegmentation.GetSegmentation().GetSegment(results[0].segment_id)
        self.assertEqual([round(c * 255) for c in segment.GetColor()], [230, 51, 51])
        self.assertGreater(self._dice(logic, case, p.outputSegmentation, "lesion"), 0.8)
        self.assertEqual(slicer.mrmlScene.GetNumberOfUndoLevels(), 1, "the import is one undoable step")
        slicer.mrmlScene.Undo()
        self.assertEqual(p.outputSegmentation.GetSegmentation().GetNumberOfSegments(), 0)
        slicer.mrmlScene.SetUndoOff()
        self.delayDisplay("U-Net test passed")

    def test_unetCancel(self):
        import sys

        from SpineMetsSegmentLib.background import launch

        logic, case, p = self._sample()
        p.method = METHOD_UNET
        started = []

        def slowLauncher(args, env):
            started.append(args)
            return launch([sys.executable, "-c", "import time; print('{\"event\": \"start\"}', flush=True); time.sleep(60)"], env)

        job = logic.startUNet(p, launcher=slowLauncher, python="PythonSlicer")
        self.assertEqual(started[0][:3], ["PythonSlicer", "-m", "SpineMetsSegmentLib.unet.worker"])
        self.assertTrue(job.poll().running)
        self.assertEqual(job.cancel().state, "cancelled")
        job.cleanup()
        self.assertFalse(Path(job.workdir).exists())
        self.assertIsNone(p.outputSegmentation)
