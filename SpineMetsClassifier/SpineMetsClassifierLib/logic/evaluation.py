"""Study statistics for the Slicer module: predictions table -> table nodes and figures.

The numbers come from :func:`SpineMetsClassifierLib.evaluation.evaluate_predictions`
(the same code as ``spinemets stats evaluate``); this class only puts them in
MRML table nodes (with provenance) and returns the PNG figures for the panel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from SpineMetsCore import tables


@dataclass
class EvaluationResult:
    """Metric table node (estimate + CI per metric), raw result dict, figures written."""

    metricsTable: Any
    result: dict[str, Any]
    outDir: Path
    figures: list[Path] = field(default_factory=list)


class EvaluationLogic:
    """Evaluate a predictions CSV (truth + ``prob_<class>`` columns) into table nodes."""

    def evaluateToTables(
        self,
        predictionsPath: str | os.PathLike[str],
        truthColumn: str,
        outDir: str | os.PathLike[str],
        topk: int = 3,
        nBoot: int = 1000,
        seed: int = 0,
        tableNode: Any | None = None,
    ) -> EvaluationResult:
        """Metrics with stratified-bootstrap CIs as a table node; figures and HTML in ``outDir``."""
        from ..evaluation import evaluate_predictions, read_table

        frame = read_table(predictionsPath)
        result = evaluate_predictions(frame, truthColumn, topk=topk, n_boot=nBoot, seed=seed, out_dir=outDir)
        rows = []
        models = result.get("models") or {"": result}
        for model, res in models.items():
            for metric, value in res["metrics"].items():
                rows.append({"model": model, "metric": metric, "estimate": value["estimate"],
                             "ci_low": value["ci"][0], "ci_high": value["ci"][1]})
        metrics = pd.DataFrame(rows, columns=["model", "metric", "estimate", "ci_low", "ci_high"]).astype(
            {"estimate": float, "ci_low": float, "ci_high": float}
        )
        prov = tables.provenance(
            predictions=str(predictionsPath), truth=truthColumn, topk=topk, n_boot=nBoot, seed=seed,
            operation="evaluateToTables", conventions=result.get("conventions"),
        )
        node = tables.dataframe_to_table_node(metrics, name="EvaluationMetrics", node=tableNode, prov=prov)
        out = Path(outDir)
        return EvaluationResult(node, result, out, sorted(out.glob("*.png")))
