"""MRML-facing prediction logic: one case's ranked classes as a table node, bar plot and SHAP table.

Qt-free so it runs in desktop Slicer, in ``Slicer --no-main-window`` scripts and
headless on slicer-core; the module widget only calls these methods and shows
the nodes. Nothing is touched in the scene until the prediction has succeeded,
so a feature mismatch leaves a given table node exactly as it was.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore import tables
from SpineMetsCore.errors import InputError
from SpineMetsCore.runtime import MRMLRuntime, get_runtime

from ..models.explain import case_contributions, explain, plot_waterfall
from ..models.inference import predict_proba, ranked_classes
from ..models.package import ModelPackage, load_package

logger = logging.getLogger(__name__)

PREDICTED_CLASS_ATTRIBUTE = "SpineMets.PredictedClass"
SYNTHETIC_ATTRIBUTE = "SpineMets.SyntheticTrainingData"
MODEL_ATTRIBUTE = "SpineMets.ModelSHA256"
TOPK = 3


class PredictionLogic:
    """Apply a model package to one case and publish the result as MRML nodes."""

    def __init__(self, runtime: MRMLRuntime | None = None) -> None:
        self.runtime = runtime or get_runtime()
        self._cache: dict[tuple[str, int, int], ModelPackage] = {}

    # ------------------------------------------------------------------ model
    def loadModel(self, modelPath: str | os.PathLike[str]) -> ModelPackage:
        """Verified package, cached while the file (or model.json of a folder) is unchanged."""
        path = Path(modelPath).resolve()
        stamp_file = path / "model.skops" if path.is_dir() else path
        if not stamp_file.exists():
            return load_package(path)  # raises the package error naming the path
        stat = stamp_file.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != str(path)}
            self._cache[key] = load_package(path)
        return self._cache[key]

    # ------------------------------------------------------------------ inputs
    def featuresFrame(self, featuresRow: Any) -> pd.DataFrame:
        """One-row DataFrame from a mapping, Series, one-row DataFrame or a vtkMRMLTableNode."""
        if isinstance(featuresRow, pd.DataFrame):
            frame = featuresRow
        elif isinstance(featuresRow, pd.Series):
            frame = featuresRow.to_frame().T
        elif isinstance(featuresRow, Mapping):
            frame = pd.DataFrame([dict(featuresRow)])
        elif hasattr(featuresRow, "IsA") and featuresRow.IsA("vtkMRMLTableNode"):
            frame = tables.table_node_to_dataframe(featuresRow)
        else:
            raise InputError("featuresRow", f"expected a mapping, pandas row/table or table node, got {type(featuresRow).__name__}")
        if len(frame) != 1:
            raise InputError("featuresRow", f"must hold exactly one case, got {len(frame)} rows")
        return frame.reset_index(drop=True)

    # ------------------------------------------------------------------ prediction
    def predictRanked(self, modelPath: str | os.PathLike[str], featuresRow: Any) -> list[tuple[str, float]]:
        """``[(class, probability), ...]`` most probable first."""
        package = self.loadModel(modelPath)
        frame = self.featuresFrame(featuresRow)
        proba = predict_proba(package, frame, ignore_extra=True)
        return ranked_classes(proba[0], package.classes)

    def predictToTable(self, modelPath: str | os.PathLike[str], featuresRow: Any, tableNode: Any | None = None) -> Any:
        """Table node of all classes ranked by probability (columns rank, class, probability, top3).

        Extra columns in ``featuresRow`` (e.g. the whole features row of a case)
        are ignored; missing or wrongly typed model features raise before any
        node is created or changed.
        """
        package = self.loadModel(modelPath)
        frame = self.featuresFrame(featuresRow)
        proba = predict_proba(package, frame, ignore_extra=True)
        ranked = ranked_classes(proba[0], package.classes)
        result = pd.DataFrame({
            "rank": np.arange(1, len(ranked) + 1, dtype=int),
            "class": [c for c, _ in ranked],
            "probability": [p for _, p in ranked],
            f"top{TOPK}": [int(i < TOPK) for i in range(len(ranked))],
        })
        prov = tables.provenance(
            operation="predictToTable", model=str(package.path), model_sha256=package.sha256,
            task=package.card["task"], synthetic_training_data=package.synthetic_training_data,
            features={k: _jsonable(frame.iloc[0][k]) for k in package.schema.names},
        )
        name = tableNode.GetName() if tableNode is not None else f"{package.label} prediction"
        node = tables.dataframe_to_table_node(result, name=name, node=tableNode, prov=prov)
        node.SetAttribute(PREDICTED_CLASS_ATTRIBUTE, ranked[0][0])
        node.SetAttribute(SYNTHETIC_ATTRIBUTE, "true" if package.synthetic_training_data else "false")
        node.SetAttribute(MODEL_ATTRIBUTE, package.sha256)
        if package.synthetic_training_data:
            logger.warning("model %s was trained on synthetic data: not clinically valid", package.path)
        return node

    def probabilityBarPlot(self, tableNode: Any, chartNode: Any | None = None) -> Any:
        """Bar plot (vtkMRMLPlotChartNode) of a :meth:`predictToTable` table; reuses ``chartNode``'s series."""
        for column in ("class", "probability"):
            if tableNode.GetTable().GetColumnByName(column) is None:
                raise InputError(tableNode.GetName(), f"has no '{column}' column; make it with predictToTable")
        scene = tableNode.GetScene() or self.runtime.scene
        name = tableNode.GetName()
        series = None
        if chartNode is not None and chartNode.GetNumberOfPlotSeriesNodes() > 0:
            series = chartNode.GetNthPlotSeriesNode(0)
        if series is None:
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} probabilities")
        series.SetAndObserveTableNodeID(tableNode.GetID())
        series.SetPlotType(series.PlotTypeBar)
        series.SetXColumnName("rank")
        series.SetYColumnName("probability")
        series.SetLabelColumnName("class")
        series.SetColor(0.2, 0.45, 0.75)
        if chartNode is None:
            chartNode = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{name} chart")
        if not chartNode.HasPlotSeriesNodeID(series.GetID()):
            chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
        title = f"{name}"
        if tableNode.GetAttribute(SYNTHETIC_ATTRIBUTE) == "true":
            title += " (synthetic training data)"
        chartNode.SetTitle(title)
        chartNode.SetXAxisTitle("class (by rank)")
        chartNode.SetYAxisTitle("probability")
        chartNode.SetYAxisRangeAuto(False)
        chartNode.SetYAxisRange(0.0, 1.0)
        chartNode.SetLegendVisibility(False)
        return chartNode

    # ------------------------------------------------------------------ explanation
    def explainToTable(
        self,
        modelPath: str | os.PathLike[str],
        featuresRow: Any,
        tableNode: Any | None = None,
        outputDir: str | os.PathLike[str] | None = None,
        className: str | None = None,
        maxDisplay: int = 10,
    ) -> tuple[Any, Path]:
        """SHAP contributions of one case to ``className`` (default: predicted) as a table node + waterfall PNG.

        Columns: feature (original EDF item / feature name), value, shap, abs_shap,
        largest first. The PNG goes to ``outputDir`` (default: a new temporary folder).
        """
        package = self.loadModel(modelPath)
        frame = self.featuresFrame(featuresRow)
        result = explain(package, frame, ignore_extra=True)
        contributions = case_contributions(result, 0, className)
        out = Path(outputDir) if outputDir is not None else Path(tempfile.mkdtemp(prefix="spinemets_shap_"))
        cls = contributions.attrs["class"]
        png = plot_waterfall(result, 0, out / f"shap_waterfall_{result.case_ids[0]}_{cls}.png".replace(" ", "_"),
                             cls=cls, max_display=maxDisplay)
        prov = tables.provenance(
            operation="explainToTable", model=str(package.path), model_sha256=package.sha256,
            explainer=result.explainer, output=result.output, explained_class=cls,
            base_value=contributions.attrs["base_value"], synthetic_training_data=package.synthetic_training_data, figure=str(png),
        )
        name = tableNode.GetName() if tableNode is not None else f"{package.label} SHAP"
        node = tables.dataframe_to_table_node(contributions.reset_index(drop=True), name=name, node=tableNode, prov=prov)
        node.SetAttribute(PREDICTED_CLASS_ATTRIBUTE, result.predicted[0])
        node.SetAttribute("SpineMets.ExplainedClass", cls)
        node.SetAttribute("SpineMets.ShapFigure", str(png))
        node.SetAttribute(SYNTHETIC_ATTRIBUTE, "true" if package.synthetic_training_data else "false")
        return node, png


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)
