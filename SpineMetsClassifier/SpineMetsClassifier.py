"""SpineMetsClassifier: features, classifiers and study statistics (3D Slicer scripted module).

Only the Widget here touches Qt. All computation lives in the Qt-free
``SpineMetsClassifierLib`` (usable headless through the ``spinemets`` command).
"""

import logging
import os
from pathlib import Path

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from SpineMetsClassifierLib.features.edf import load_schema
from SpineMetsClassifierLib.features.quantitative import REFERENCES
from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS
from SpineMetsClassifierLib.logic.cohort import EDF_FORM_FIELDS
from SpineMetsClassifierLib.logic.cohort import CohortLogic as _LibLogic

_EDF_SCHEMA = load_schema()


def _edfChoices(item: str) -> list[str]:
    """Form choices of a categorical EDF item: '' (not recorded) then the schema's values."""
    return ["", *_EDF_SCHEMA.item(item).allowed]


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

    # Feature extraction of the case in the scene (one volume per sequence)
    caseId: str
    t1Volume: vtkMRMLScalarVolumeNode
    t2Volume: vtkMRMLScalarVolumeNode
    stirVolume: vtkMRMLScalarVolumeNode
    t1ceVolume: vtkMRMLScalarVolumeNode
    lesionSegmentName: str
    anatomySegmentation: vtkMRMLSegmentationNode
    signalReference: Annotated[str, Choice(["default", *REFERENCES]), Default("default")]
    radiomicsParams: Annotated[Path, Default(DEFAULT_RADIOMICS_PARAMS)]
    shellMm: Annotated[float, WithinRange(0.0, 30.0)]
    featuresCsv: Path
    featuresTable: vtkMRMLTableNode
    workers: Annotated[int, WithinRange(1, 64), Default(1)]

    # Expert-derived features (schema: SpineMetsCore/Resources/edf_schema.json); '' / -1 = not recorded
    edfAge: Annotated[int, WithinRange(-1, 120), Default(-1)]
    edfSex: Annotated[str, Choice(_edfChoices('sex'))]
    edfRegion: Annotated[str, Choice(_edfChoices('region'))]
    edfLevel: Annotated[str, Choice(_edfChoices('level'))]
    edfInvolvedVertebrae: Annotated[int, WithinRange(-1, 33), Default(-1)]
    edfT1Signal: Annotated[str, Choice(_edfChoices('t1_signal'))]
    edfT2Signal: Annotated[str, Choice(_edfChoices('t2_signal'))]
    edfStirSignal: Annotated[str, Choice(_edfChoices('stir_signal'))]
    edfT1ceSignal: Annotated[str, Choice(_edfChoices('t1ce_signal'))]
    edfFracture: Annotated[str, Choice(_edfChoices('fracture'))]
    edfPosteriorElements: Annotated[str, Choice(_edfChoices('posterior_element_involvement'))]
    edfSoftTissueExtension: Annotated[str, Choice(_edfChoices('soft_tissue_extension'))]
    edfExtensionType: Annotated[str, Choice(_edfChoices('extension_type'))]
    edfMargin: Annotated[str, Choice(_edfChoices('margin'))]
    edfPattern: Annotated[str, Choice(_edfChoices('pattern'))]
    edfHomogeneity: Annotated[str, Choice(_edfChoices('homogeneity'))]

    # Prediction for the scene case with a trained model package (folder or .zip)
    modelPath: Path
    predictionTable: vtkMRMLTableNode
    shapTable: vtkMRMLTableNode

    # Study statistics on a predictions CSV (truth + prob_<class> columns)
    predictionsCsv: Path
    truthColumn: Annotated[str, Default("truth")]
    evaluationTable: vtkMRMLTableNode


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
        self.ui.extractButton.connect("clicked(bool)", self.onExtractButton)
        self.ui.extractCohortButton.connect("clicked(bool)", self.onExtractCohortButton)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluateButton)
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
        self.ui.extractCohortButton.enabled = ready and bool(p.featuresCsv and str(p.featuresCsv).endswith(".csv"))
        self.ui.extractButton.enabled = bool(p and p.lesionSegmentation and self.logic.caseVolumes(p))
        self.ui.predictButton.enabled = bool(p and p.featuresTable and p.modelPath and os.path.exists(str(p.modelPath)))
        self.ui.evaluateButton.enabled = bool(p and p.predictionsCsv and os.path.isfile(str(p.predictionsCsv)))

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to check the manifest."), waitCursor=True):
            p = self._parameterNode
            table = self.logic.checkManifestToTable(p.manifestPath, p.resultsTable)
            p.resultsTable = table
            self._showTable(table)
            self.ui.statusLabel.text = _("{n} cases checked").format(n=table.GetNumberOfRows())

    def _showTable(self, table) -> None:
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def onExtractButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Feature extraction failed."), waitCursor=True):
            table = self.logic.extractFromParameterNode(self._parameterNode)
            self._parameterNode.featuresTable = table
            self._showTable(table)
            self.ui.statusLabel.text = _("{n} features extracted").format(n=table.GetNumberOfColumns())

    def onExtractCohortButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cohort feature extraction failed."), waitCursor=True):
            p = self._parameterNode
            progress = slicer.util.createProgressDialog(labelText=_("Extracting features"), maximum=100)

            def update(done: int, total: int) -> None:
                progress.setValue(int(100 * done / max(total, 1)))
                slicer.app.processEvents()

            try:
                table = self.logic.extractCohortFeatures(
                    p.manifestPath, p.featuresCsv, paramsPath=p.radiomicsParams, workers=p.workers,
                    shellMm=p.shellMm, reference=None if p.signalReference == "default" else p.signalReference,
                    tableNode=p.featuresTable, progress=update,
                )
            finally:
                progress.close()
            p.featuresTable = table
            self._showTable(table)
            errors = table.GetTable().GetColumnByName("error")
            failed = sum(1 for i in range(table.GetNumberOfRows()) if errors.GetValue(i))
            self.ui.statusLabel.text = _("{n} cases extracted, {f} failed (see the 'error' column)").format(
                n=table.GetNumberOfRows(), f=failed)

    def _showFigure(self, pngPath) -> None:
        import qt

        pixmap = qt.QPixmap(str(pngPath))
        self.ui.figureLabel.setPixmap(pixmap.scaledToWidth(max(200, self.ui.figureLabel.width)))
        self.ui.figureLabel.toolTip = str(pngPath)

    def onPredictButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Prediction failed."), waitCursor=True):
            p = self._parameterNode
            table, chart, shapTable, png = self.logic.predictFromParameterNode(p)
            p.predictionTable, p.shapTable = table, shapTable
            slicer.modules.plots.logic().ShowChartInLayout(chart)
            self._showFigure(png)
            top = [table.GetTable().GetValue(i, 1).ToString() for i in range(min(3, table.GetNumberOfRows()))]
            text = _("Top-3: {classes}").format(classes=", ".join(top))
            if table.GetAttribute("SpineMets.SyntheticTrainingData") == "true":
                text += " " + _("(model trained on synthetic data: not clinically valid)")
            self.ui.statusLabel.text = text

    def onEvaluateButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Evaluation failed."), waitCursor=True):
            p = self._parameterNode
            result = self.logic.evaluateFromParameterNode(p)
            p.evaluationTable = result.metricsTable
            self._showTable(result.metricsTable)
            rocs = [f for f in result.figures if "roc" in f.name.lower()] or result.figures
            if rocs:
                self._showFigure(rocs[0])
            self.ui.statusLabel.text = _("Metrics, figures and report written to {d}").format(d=result.outDir)


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

    @staticmethod
    def caseVolumes(p) -> dict:
        """Sequence name -> selected volume node (T1, T2, STIR, T1CE order; empty selectors skipped)."""
        volumes = {"T1": p.t1Volume, "T2": p.t2Volume, "STIR": p.stirVolume, "T1CE": p.t1ceVolume}
        return {seq: node for seq, node in volumes.items() if node is not None}

    def edfFromParameterNode(self, p) -> dict:
        """Validated EDF record of the module's form."""
        return self.edfFromForm({name: getattr(p, name) for name in EDF_FORM_FIELDS.values()})

    def extractFromParameterNode(self, p):
        """Extract the scene case's features as the parameter node describes it."""
        segmentIds = None
        if p.lesionSegmentName.strip():
            from SpineMetsCore.errors import InputError
            from SpineMetsCore.segmentations import find_segment_id

            segmentId = find_segment_id(p.lesionSegmentation, p.lesionSegmentName.strip())
            if segmentId is None:
                raise InputError(f"segmentation '{p.lesionSegmentation.GetName()}'", f"has no segment '{p.lesionSegmentName}'")
            segmentIds = [segmentId]
        csvPath = str(p.featuresCsv) if str(p.featuresCsv).endswith(".csv") else None
        return self.extractCaseFeatures(
            self.caseVolumes(p), p.lesionSegmentation, segmentIds, p.anatomySegmentation,
            paramsPath=p.radiomicsParams, caseId=p.caseId or "case", edf=self.edfFromParameterNode(p),
            shellMm=p.shellMm, reference=None if p.signalReference == "default" else p.signalReference,
            tableNode=p.featuresTable, csvPath=csvPath,
        )


    def predictFromParameterNode(self, p):
        """Ranked classes (table + bar plot) and the SHAP explanation for the scene case's features."""
        import tempfile

        from SpineMetsClassifierLib.logic.prediction import PredictionLogic

        predictor = PredictionLogic()
        table = predictor.predictToTable(str(p.modelPath), p.featuresTable, p.predictionTable)
        chart = predictor.probabilityBarPlot(table)
        outDir = tempfile.mkdtemp(prefix="SpineMetsShap-", dir=slicer.app.temporaryPath)
        shapTable, png = predictor.explainToTable(str(p.modelPath), p.featuresTable, p.shapTable, outDir)
        return table, chart, shapTable, png

    def evaluateFromParameterNode(self, p):
        """Study statistics of a predictions CSV as table nodes and figures (next to the CSV)."""
        from SpineMetsClassifierLib.logic.evaluation import EvaluationLogic

        csv = Path(str(p.predictionsCsv))
        return EvaluationLogic().evaluateToTables(
            csv, p.truthColumn, csv.with_name(csv.stem + "_evaluation"), tableNode=p.evaluationTable
        )


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
        self.setUp()
        self.test_extractCaseFeaturesFromNodes()

    def test_checkPhantomManifest(self):
        import tempfile

        from SpineMetsPhantom import write_cohort

        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_cohort(os.path.join(tmp, "cohort"), n_cases=2, seed=5)
            table = SpineMetsClassifierLogic().checkManifestToTable(manifest)
            self.assertEqual(table.GetNumberOfRows(), 2)
            problems = table.GetTable().GetColumnByName("problem")
            self.assertEqual([problems.GetValue(i) for i in range(2)], ["", ""])
        logging.info("SpineMetsClassifier test passed")
        self.delayDisplay("Test passed")

    def test_extractCaseFeaturesFromNodes(self):
        from SpineMetsCore.segmentations import find_segment_id, labelmap_to_segmentation
        from SpineMetsCore.volumes import sitk_to_volume
        from SpineMetsPhantom import ANATOMY_LABELS, generate_case

        case = generate_case(2, "case002")
        volumes = {seq: sitk_to_volume(case.images[seq], name=f"case002_{seq}") for seq in ("T1", "T2")}
        lesions, _ = labelmap_to_segmentation(case.lesion_mask, {1: "index lesion", 2: "lesion 2"}, name="lesions")
        anatomy, _ = labelmap_to_segmentation(case.anatomy, {v: n for v, n in ANATOMY_LABELS.items() if v}, name="anatomy")
        logic = SpineMetsClassifierLogic()
        table = logic.extractCaseFeatures(
            volumes, lesions, [find_segment_id(lesions, "index lesion")], anatomy, caseId="case002",
            edf={"age": case.record["age"], "t1_signal": case.record["t1_signal"]},
        )
        column = table.GetTable().GetColumnByName("q_T1_signal")
        self.assertEqual(column.GetValue(0), case.record["t1_signal"])
        self.assertEqual(table.GetTable().GetColumnByName("q_n_lesion_components").GetValue(0), case.record["n_lesions"])
        self.delayDisplay("Feature extraction test passed")
