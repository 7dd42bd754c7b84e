"""SpineMetsClassifier: features, classifiers and study statistics (3D Slicer scripted module).

Only the Widget here touches Qt. All computation lives in the Qt-free
``SpineMetsClassifierLib`` (usable headless through the ``spinemets`` command).
At load time this file imports only what desktop Slicer bundles and the
extension's own light modules (the EDF form choices come from the schema's JSON
copy, read with the standard library). pandas, PyYAML, scikit-learn, skops,
matplotlib and shap are installed on first use (``SpineMetsCore.dependencies``,
one confirmation) and imported by the Logic after that check; PyRadiomics comes
from the SlicerRadiomics extension. Needs Slicer 5.10 or later (Python 3.12).
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineMetsClassifierLib.edf_form import EDF_FORM_FIELDS
from SpineMetsClassifierLib.features.edf import load_schema
from SpineMetsClassifierLib.features.quantitative import REFERENCES
from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS

from SpineMetsCore.errors import SpineMetsError
from SpineMetsCore.runtime import show_table_in_layout

MODULE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = MODULE_DIR / "Resources" / "SpineMetsClassifierRequirements.txt"
CLASSIFIER_CHOICES = ["lr", "svm", "rf", "gb", "knn", "nb", "mlp"]
"""SpineMetsClassifierLib.models.pipeline.CLASSIFIERS (checked by the module test; not imported: it needs scikit-learn)."""
ACTION_PACKAGES: dict[str, tuple[str, ...]] = {
    "manifest": ("pandas",),
    "features": ("pyradiomics", "pandas", "PyYAML"),
    "train": ("pandas", "PyYAML", "scikit-learn", "skops", "matplotlib"),
    "predict": ("pandas", "PyYAML", "scikit-learn", "skops", "matplotlib", "shap"),
    "evaluate": ("pandas", "scikit-learn", "matplotlib"),
}
"""What each action imports that Slicer does not bundle (names of the module's requirements file)."""
_EDF_SCHEMA = load_schema()  # the shipped JSON schema: read with the standard library


def _edfChoices(item: str) -> list[str]:
    """Form choices of a categorical EDF item: '' (not recorded) then the schema's values."""
    return ["", *_EDF_SCHEMA.item(item).allowed]


def _chosenPath(path: Any) -> str:
    """'' for an unset path parameter (a Path parameter defaults to '.')."""
    text = str(path or "").strip()
    return "" if text in ("", ".") else text


class OperationCancelled(SpineMetsError):
    """The user pressed Cancel in a progress dialog."""


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
            "decision curves, SHAP). Results are shown as tables (a layout with a table view), a probability "
            "bar plot and figures in the panel. Python packages are installed on first use after one "
            "confirmation; PyRadiomics comes from the SlicerRadiomics extension. Headless: the 'spinemets' "
            "command. Models trained on synthetic data are not clinically valid. Requires Slicer 5.10 or later."
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
    edfSex: Annotated[str, Choice(_edfChoices("sex"))]
    edfRegion: Annotated[str, Choice(_edfChoices("region"))]
    edfLevel: Annotated[str, Choice(_edfChoices("level"))]
    edfInvolvedVertebrae: Annotated[int, WithinRange(-1, 33), Default(-1)]
    edfT1Signal: Annotated[str, Choice(_edfChoices("t1_signal"))]
    edfT2Signal: Annotated[str, Choice(_edfChoices("t2_signal"))]
    edfStirSignal: Annotated[str, Choice(_edfChoices("stir_signal"))]
    edfT1ceSignal: Annotated[str, Choice(_edfChoices("t1ce_signal"))]
    edfFracture: Annotated[str, Choice(_edfChoices("fracture"))]
    edfPosteriorElements: Annotated[str, Choice(_edfChoices("posterior_element_involvement"))]
    edfSoftTissueExtension: Annotated[str, Choice(_edfChoices("soft_tissue_extension"))]
    edfExtensionType: Annotated[str, Choice(_edfChoices("extension_type"))]
    edfMargin: Annotated[str, Choice(_edfChoices("margin"))]
    edfPattern: Annotated[str, Choice(_edfChoices("pattern"))]
    edfHomogeneity: Annotated[str, Choice(_edfChoices("homogeneity"))]

    # Training a classifier on a features table (CSV: one row per case, a label column)
    trainingCsv: Path
    labelColumn: Annotated[str, Default("site")]
    featureSet: Annotated[str, Default("all")]
    classifierName: Annotated[str, Choice(CLASSIFIER_CHOICES), Default("lr")]
    modelOutput: Path
    trainingTable: vtkMRMLTableNode

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
    """Binds parameters and calls the Logic; long actions run with a cancellable progress dialog."""

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
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluateButton)
        self.ui.modelFolderButton.connect("clicked(bool)", self.onModelFolderButton)
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
        if p is None:
            return
        ready = self.logic.readiness(p)
        for action, button in (("manifest", self.ui.applyButton), ("cohort", self.ui.extractCohortButton),
                               ("features", self.ui.extractButton), ("train", self.ui.trainButton),
                               ("predict", self.ui.predictButton), ("evaluate", self.ui.evaluateButton)):
            ok, hint = ready[action]
            button.enabled = ok
            if not ok:
                button.toolTip = hint

    def _progress(self, title: str) -> tuple[Callable[[int, int], None], Any]:
        """A cancellable progress dialog and the callback the Logic calls (keeps the GUI responsive)."""
        dialog = slicer.util.createProgressDialog(labelText=title, maximum=100)

        def update(done: int, total: int) -> None:
            dialog.setValue(int(100 * done / max(total, 1)))
            slicer.app.processEvents()
            if dialog.wasCanceled:
                raise OperationCancelled(f"{title}: cancelled")

        return update, dialog

    def _run(self, title: str, action: str, work: Callable[..., Any], withProgress: bool = False) -> Any:
        """Dependency check, then ``work`` with error display (and a progress dialog)."""
        with slicer.util.tryWithErrorDisplay(_("{title} failed.").format(title=title), waitCursor=True):
            if not self.logic.ensureDependencies(action):
                self.ui.statusLabel.text = _("Not run: the needed Python packages were not installed.")
                return None
            if not withProgress:
                return work()
            update, dialog = self._progress(title)
            try:
                return work(update)
            except OperationCancelled:
                self.ui.statusLabel.text = _("{title} cancelled.").format(title=title)
                return None
            finally:
                dialog.close()
        return None

    def _showFigure(self, pngPath) -> None:
        pixmap = qt.QPixmap(str(pngPath))
        self.ui.figureLabel.setPixmap(pixmap.scaledToWidth(max(200, self.ui.figureLabel.width)))
        self.ui.figureLabel.toolTip = str(pngPath)

    def onModelFolderButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, _("Model package folder"), _chosenPath(self._parameterNode.modelPath))
        if folder:
            self._parameterNode.modelPath = Path(folder)

    def onApplyButton(self) -> None:
        table = self._run(_("Manifest check"), "manifest", lambda: self.logic.checkManifestFromParameterNode(self._parameterNode))
        if table is not None:
            show_table_in_layout(table)
            self.ui.statusLabel.text = _("{n} cases checked").format(n=table.GetNumberOfRows())

    def onExtractButton(self) -> None:
        table = self._run(_("Feature extraction"), "features", lambda: self.logic.extractFromParameterNode(self._parameterNode))
        if table is not None:
            show_table_in_layout(table)
            self.ui.statusLabel.text = _("{n} features extracted").format(n=table.GetNumberOfColumns())

    def onExtractCohortButton(self) -> None:
        table = self._run(_("Cohort feature extraction"), "features",
                          lambda progress: self.logic.extractCohortFromParameterNode(self._parameterNode, progress), True)
        if table is not None:
            show_table_in_layout(table)
            self.ui.statusLabel.text = _("{n} cases extracted, {f} failed (see the 'error' column)").format(
                n=table.GetNumberOfRows(), f=self.logic.failedCases(table))

    def onTrainButton(self) -> None:
        result = self._run(_("Training"), "train", lambda progress: self.logic.trainFromParameterNode(self._parameterNode, progress), True)
        if result is not None:
            show_table_in_layout(result.metricsTable)
            self.ui.statusLabel.text = _("Model written to {path} (cross-validated {metric} = {value:.3f})").format(
                path=result.package, metric=result.primaryMetric, value=result.primaryValue)

    def onPredictButton(self) -> None:
        result = self._run(_("Prediction"), "predict", lambda: self.logic.predictFromParameterNode(self._parameterNode))
        if result is None:
            return
        table, chart, shapTable, png = result
        if hasattr(slicer.modules, "plots"):
            slicer.modules.plots.logic().ShowChartInLayout(chart)
        self._showFigure(png)
        self.ui.statusLabel.text = self.logic.predictionSummary(table)

    def onEvaluateButton(self) -> None:
        result = self._run(_("Evaluation"), "evaluate", lambda: self.logic.evaluateFromParameterNode(self._parameterNode))
        if result is None:
            return
        show_table_in_layout(result.metricsTable)
        rocs = [f for f in result.figures if "roc" in f.name.lower()] or result.figures
        if rocs:
            self._showFigure(rocs[0])
        self.ui.statusLabel.text = _("Metrics, figures and report written to {d}").format(d=result.outDir)


#
# Logic
#
class TrainingOutcome:
    """What the Train action produced: the package, its metrics table and the predictions CSV."""

    def __init__(self, package: Path, metricsTable: Any, predictionsCsv: Path, primaryMetric: str, primaryValue: float) -> None:
        self.package = package
        self.metricsTable = metricsTable
        self.predictionsCsv = predictionsCsv
        self.primaryMetric = primaryMetric
        self.primaryValue = primaryValue


class SpineMetsClassifierLogic(ScriptedLoadableModuleLogic):
    """Slicer-facing logic: the parameter node, the dependency check, and the Qt-free Lib logics.

    The Lib logics import pandas and scikit-learn, which a fresh Slicer does not
    have, so they are created on first use (after :meth:`ensureDependencies`).
    """

    def __init__(self) -> None:
        from SpineMetsCore.runtime import get_runtime

        ScriptedLoadableModuleLogic.__init__(self)
        self.runtime = get_runtime()  # the scene of every node the Lib logics create (Slicer's own in Slicer)
        self._cohort = None

    def getParameterNode(self):
        return SpineMetsClassifierParameterNode(super().getParameterNode())

    # --- dependencies and readiness ----------------------------------------------------
    def ensureDependencies(self, action: str, installer=None) -> bool:
        """Install (after one confirmation) what ``action`` imports; False when the user declined."""
        from SpineMetsCore.dependencies import ensure_requirements

        return ensure_requirements(REQUIREMENTS, requester="SpineMetsClassifier", only=ACTION_PACKAGES[action],
                                   installer=installer)

    @property
    def cohort(self):
        """The Lib's cohort logic (manifests, features), created on first use."""
        if self._cohort is None:
            from SpineMetsClassifierLib.logic.cohort import CohortLogic

            self._cohort = CohortLogic()
        return self._cohort

    @staticmethod
    def caseVolumes(p) -> dict:
        """Sequence name -> selected volume node (T1, T2, STIR, T1CE order; empty selectors skipped)."""
        volumes = {"T1": p.t1Volume, "T2": p.t2Volume, "STIR": p.stirVolume, "T1CE": p.t1ceVolume}
        return {seq: node for seq, node in volumes.items() if node is not None}

    @staticmethod
    def isModelPackage(path: Any) -> bool:
        """A folder with a model card or a .zip: what Predict accepts."""
        text = _chosenPath(path)
        if not text:
            return False
        candidate = Path(text)
        if candidate.is_dir():
            return (candidate / "model.json").is_file()
        return candidate.is_file() and candidate.suffix.lower() == ".zip"

    def readiness(self, p) -> dict[str, tuple[bool, str]]:
        """For each button: can it run with these parameters, and what is missing otherwise."""
        manifest = bool(_chosenPath(p.manifestPath) and os.path.isfile(_chosenPath(p.manifestPath)))
        csvOut = _chosenPath(p.featuresCsv).endswith(".csv")
        training = bool(_chosenPath(p.trainingCsv) and os.path.isfile(_chosenPath(p.trainingCsv)) and p.labelColumn.strip())
        return {
            "manifest": (manifest, _("Choose a manifest CSV")),
            "cohort": (manifest and csvOut, _("Choose a manifest CSV and an output features .csv")),
            "features": (bool(p.lesionSegmentation and self.caseVolumes(p)), _("Select the case's volumes and lesion segmentation")),
            "train": (training, _("Choose a features CSV and its label column")),
            "predict": (bool(p.featuresTable and self.isModelPackage(p.modelPath)),
                        _("Extract the case's features and choose a model package (folder or .zip)")),
            "evaluate": (bool(_chosenPath(p.predictionsCsv) and os.path.isfile(_chosenPath(p.predictionsCsv))),
                         _("Choose a predictions CSV (truth + prob_<class> columns)")),
        }

    # --- manifests and features --------------------------------------------------------
    def checkManifestFromParameterNode(self, p):
        table = self.cohort.checkManifestToTable(_chosenPath(p.manifestPath), p.resultsTable)
        p.resultsTable = table
        return table

    def edfFromParameterNode(self, p) -> dict:
        """Validated EDF record of the module's form."""
        return self.cohort.edfFromForm({name: getattr(p, name) for name in EDF_FORM_FIELDS.values()})

    def extractFromParameterNode(self, p):
        """Extract the scene case's features as the parameter node describes it."""
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.segmentations import find_segment_id

        segmentIds = None
        if p.lesionSegmentName.strip():
            segmentId = find_segment_id(p.lesionSegmentation, p.lesionSegmentName.strip())
            if segmentId is None:
                raise InputError(f"segmentation '{p.lesionSegmentation.GetName()}'", f"has no segment '{p.lesionSegmentName}'")
            segmentIds = [segmentId]
        csvPath = _chosenPath(p.featuresCsv) if _chosenPath(p.featuresCsv).endswith(".csv") else None
        table = self.cohort.extractCaseFeatures(
            self.caseVolumes(p), p.lesionSegmentation, segmentIds, p.anatomySegmentation,
            paramsPath=p.radiomicsParams, caseId=p.caseId or "case", edf=self.edfFromParameterNode(p),
            shellMm=p.shellMm, reference=None if p.signalReference == "default" else p.signalReference,
            tableNode=p.featuresTable, csvPath=csvPath,
        )
        p.featuresTable = table
        return table

    def extractCohortFromParameterNode(self, p, progress=None):
        """Every case of the manifest -> the features CSV and a table node; progress(done, total)."""
        table = self.cohort.extractCohortFeatures(
            _chosenPath(p.manifestPath), _chosenPath(p.featuresCsv), paramsPath=p.radiomicsParams, workers=p.workers,
            shellMm=p.shellMm, reference=None if p.signalReference == "default" else p.signalReference,
            tableNode=p.featuresTable, progress=progress,
        )
        p.featuresTable = table
        if not _chosenPath(p.trainingCsv):
            p.trainingCsv = Path(_chosenPath(p.featuresCsv))
        return table

    @staticmethod
    def failedCases(table) -> int:
        errors = table.GetTable().GetColumnByName("error")
        return 0 if errors is None else sum(1 for i in range(table.GetNumberOfRows()) if errors.GetValue(i))

    # --- training ----------------------------------------------------------------------
    def trainFromParameterNode(self, p, progress=None) -> TrainingOutcome:
        """Train the chosen classifier on the training CSV; write the package and its CV predictions.

        The package goes to ``modelOutput`` (default ``<csv stem>_<classifier>_model``
        next to the CSV); the cross-validated predictions to ``<package>_cv_predictions.csv``,
        which becomes the Evaluation input. The new package becomes the Predict model.
        """
        import pandas as pd
        from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

        from SpineMetsCore import tables

        csv = Path(_chosenPath(p.trainingCsv))
        frame = pd.read_csv(csv)
        config = TrainConfig(label=p.labelColumn.strip(), feature_set=p.featureSet.strip() or "all",
                             classifier=p.classifierName)
        result = train_model(frame, config, progress=progress, source=csv)
        out = Path(_chosenPath(p.modelOutput) or csv.with_name(f"{csv.stem}_{p.classifierName}_model"))
        package = save_training(result, out)
        predictions = package.with_name(package.name.split(".")[0] + "_cv_predictions.csv")
        prov = tables.provenance(operation="train", model=str(package), label=config.label, feature_set=config.feature_set)
        tables.write_table_csv(result.cv_predictions, predictions, prov)
        metrics = pd.DataFrame({"metric": list(result.cv_metrics), "value": [float(v) for v in result.cv_metrics.values()]})
        table = tables.dataframe_to_table_node(metrics, name="TrainingMetrics", node=p.trainingTable, prov=prov)
        p.trainingTable = table
        p.modelPath = package
        p.predictionsCsv = predictions
        if config.label in result.cv_predictions.columns:
            p.truthColumn = config.label
        primary = "auc" if "auc" in result.cv_metrics else next(iter(result.cv_metrics))
        return TrainingOutcome(package, table, predictions, primary, float(result.cv_metrics[primary]))

    # --- prediction and evaluation -----------------------------------------------------
    def predictFromParameterNode(self, p, outputDir=None):
        """Ranked classes (table + bar plot) and the SHAP explanation for the scene case's features."""
        from SpineMetsClassifierLib.logic.prediction import PredictionLogic

        from SpineMetsCore.errors import InputError

        if not self.isModelPackage(p.modelPath):
            raise InputError(f"model '{_chosenPath(p.modelPath)}'", "is not a model package (a folder with a model card, or a .zip)")
        predictor = PredictionLogic()
        model = _chosenPath(p.modelPath)
        table = predictor.predictToTable(model, p.featuresTable, p.predictionTable)
        chart = predictor.probabilityBarPlot(table)
        outDir = outputDir or tempfile.mkdtemp(prefix="SpineMetsShap-")
        shapTable, png = predictor.explainToTable(model, p.featuresTable, p.shapTable, outDir)
        p.predictionTable, p.shapTable = table, shapTable
        return table, chart, shapTable, png

    @staticmethod
    def predictionSummary(table) -> str:
        top = [table.GetTable().GetValue(i, 1).ToString() for i in range(min(3, table.GetNumberOfRows()))]
        text = _("Top-3: {classes}").format(classes=", ".join(top))
        if table.GetAttribute("SpineMets.SyntheticTrainingData") == "true":
            text += " " + _("(model trained on synthetic data: not clinically valid)")
        return text

    def evaluateFromParameterNode(self, p, nBoot: int = 1000):
        """Study statistics of a predictions CSV as table nodes and figures (next to the CSV)."""
        from SpineMetsClassifierLib.logic.evaluation import EvaluationLogic

        csv = Path(_chosenPath(p.predictionsCsv))
        result = EvaluationLogic().evaluateToTables(
            csv, p.truthColumn, csv.with_name(csv.stem + "_evaluation"), nBoot=nBoot, tableNode=p.evaluationTable
        )
        p.evaluationTable = result.metricsTable
        return result



#
# Test
#
class SpineMetsClassifierTest(ScriptedLoadableModuleTest):
    """Every action of the module end to end through the Logic on phantom data."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for name in sorted(n for n in dir(self) if n.startswith("test_")):
            self.setUp()
            getattr(self, name)()

    def test_constantsMatchTheLib(self):
        from SpineMetsClassifierLib.models.pipeline import CLASSIFIERS

        self.assertEqual(CLASSIFIER_CHOICES, list(CLASSIFIERS))
        self.assertEqual(set(EDF_FORM_FIELDS), set(load_schema().names))
        for action in ACTION_PACKAGES:
            self.assertTrue(SpineMetsClassifierLogic().ensureDependencies(action), "all installed here: nothing to ask")

    def test_checkPhantomManifest(self):
        from SpineMetsPhantom import write_cohort

        logic = SpineMetsClassifierLogic()
        p = logic.getParameterNode()
        self.assertFalse(logic.readiness(p)["manifest"][0])
        with tempfile.TemporaryDirectory() as tmp:
            p.manifestPath = write_cohort(os.path.join(tmp, "cohort"), n_cases=2, seed=5)
            self.assertTrue(logic.readiness(p)["manifest"][0])
            table = logic.checkManifestFromParameterNode(p)
            self.assertIs(p.resultsTable, table)
            self.assertEqual(table.GetNumberOfRows(), 2)
            problems = table.GetTable().GetColumnByName("problem")
            self.assertEqual([problems.GetValue(i) for i in range(2)], ["", ""])
        self.delayDisplay("Manifest test passed")

    def test_extractCaseFeaturesFromNodes(self):
        from SpineMetsCore.segmentations import labelmap_to_segmentation
        from SpineMetsCore.volumes import sitk_to_volume
        from SpineMetsPhantom import ANATOMY_LABELS, generate_case

        case = generate_case(2, "case002")
        logic = SpineMetsClassifierLogic()
        p = logic.getParameterNode()
        p.t1Volume = sitk_to_volume(case.images["T1"], name="case002_T1")
        p.t2Volume = sitk_to_volume(case.images["T2"], name="case002_T2")
        p.lesionSegmentation, _ids = labelmap_to_segmentation(case.lesion_mask, {1: "index lesion", 2: "lesion 2"}, name="lesions")
        p.anatomySegmentation, _ids = labelmap_to_segmentation(
            case.anatomy, {v: n for v, n in ANATOMY_LABELS.items() if v}, name="anatomy")
        p.lesionSegmentName = "index lesion"
        p.caseId = "case002"
        p.edfAge = int(case.record["age"])
        p.edfT1Signal = case.record["t1_signal"]
        self.assertTrue(logic.readiness(p)["features"][0])
        table = logic.extractFromParameterNode(p)
        self.assertIs(p.featuresTable, table)
        columns = table.GetTable()
        self.assertEqual(columns.GetColumnByName("q_T1_signal").GetValue(0), case.record["t1_signal"])
        self.assertEqual(columns.GetColumnByName("q_n_lesion_components").GetValue(0), case.record["n_lesions"])
        self.assertEqual(columns.GetColumnByName("age").GetValue(0), case.record["age"])
        self.assertIsNotNone(columns.GetColumnByName("T1_original_firstorder_Mean"), "radiomics ran")
        self.delayDisplay("Feature extraction test passed")

    def test_extractCohortWithProgressAndCancel(self):
        from SpineMetsPhantom import write_cohort

        logic = SpineMetsClassifierLogic()
        p = logic.getParameterNode()
        with tempfile.TemporaryDirectory() as tmp:
            p.manifestPath = write_cohort(os.path.join(tmp, "cohort"), n_cases=2, seed=8)
            p.featuresCsv = Path(tmp) / "features.csv"
            self.assertTrue(logic.readiness(p)["cohort"][0])

            def cancelAtOnce(done, total):
                raise OperationCancelled("cancelled by the test")

            with self.assertRaises(OperationCancelled):
                logic.extractCohortFromParameterNode(p, cancelAtOnce)
            self.assertFalse(Path(tmp, "features.csv").exists(), "a cancelled extraction writes no table")
            seen = []
            table = logic.extractCohortFromParameterNode(p, lambda done, total: seen.append((done, total)))
            self.assertEqual(table.GetNumberOfRows(), 2)
            self.assertEqual(logic.failedCases(table), 0)
            self.assertEqual(seen[-1], (2, 2))
            self.assertTrue(Path(tmp, "features.csv").is_file())
            self.assertEqual(Path(str(p.trainingCsv)), Path(tmp) / "features.csv", "the cohort table feeds training")

    def test_trainPredictExplainEvaluate(self):
        import pandas as pd

        from SpineMetsCore.tables import dataframe_to_table_node
        from SpineMetsPhantom import PhantomConfig, sample_records

        logic = SpineMetsClassifierLogic()
        p = logic.getParameterNode()
        with tempfile.TemporaryDirectory() as tmp:
            records = pd.DataFrame(sample_records(150, seed=31, config=PhantomConfig(primary_bone_fraction=0.0)))
            csv = Path(tmp) / "edf.csv"
            records.to_csv(csv, index=False)
            p.trainingCsv = csv
            p.labelColumn = "site"
            p.featureSet = "edf"
            p.classifierName = "lr"
            self.assertTrue(logic.readiness(p)["train"][0])
            seen = []
            outcome = logic.trainFromParameterNode(p, lambda done, total: seen.append((done, total)))
            self.assertTrue(outcome.package.exists())
            self.assertEqual(Path(str(p.modelPath)), outcome.package)
            self.assertEqual(seen[-1][0], seen[-1][1])
            metrics = {outcome.metricsTable.GetTable().GetValue(i, 0).ToString(): outcome.metricsTable.GetTable().GetValue(i, 1).ToDouble()
                       for i in range(outcome.metricsTable.GetNumberOfRows())}
            self.assertGreater(metrics["top3_accuracy"], 0.5)

            # Predict is disabled until a model is chosen and the case has features
            p.modelPath = Path(".")
            self.assertFalse(logic.readiness(p)["predict"][0])
            p.featuresTable = dataframe_to_table_node(records.iloc[[0]].drop(columns=["site"]), "case features")
            self.assertFalse(logic.readiness(p)["predict"][0])
            p.modelPath = outcome.package
            self.assertTrue(logic.readiness(p)["predict"][0])
            table, chart, shapTable, png = logic.predictFromParameterNode(p, outputDir=tmp)
            probabilities = [table.GetTable().GetValue(i, 2).ToDouble() for i in range(table.GetNumberOfRows())]
            self.assertAlmostEqual(sum(probabilities), 1.0, places=6)
            self.assertEqual(probabilities, sorted(probabilities, reverse=True))
            self.assertEqual(chart.GetClassName(), "vtkMRMLPlotChartNode")
            self.assertGreater(shapTable.GetNumberOfRows(), 0)
            self.assertTrue(Path(png).is_file())
            self.assertIn("not clinically valid", logic.predictionSummary(table))

            self.assertTrue(logic.readiness(p)["evaluate"][0], "training set the predictions CSV")
            result = logic.evaluateFromParameterNode(p, nBoot=50)
            self.assertIs(p.evaluationTable, result.metricsTable)
            rows = {result.metricsTable.GetTable().GetValue(i, 1).ToString(): result.metricsTable.GetTable().GetValue(i, 2).ToDouble()
                    for i in range(result.metricsTable.GetNumberOfRows())}
            self.assertAlmostEqual(rows["top3_accuracy"], metrics["top3_accuracy"], places=6)
            self.assertTrue(result.figures)
        self.delayDisplay("Train, predict, explain and evaluate test passed")
