"""Inference: class probabilities, ranks and top-k labels for feature rows.

The predictions table is the project's convention, read by ``spinemets stats
evaluate``: ``case_id``, the truth column when known, one ``prob_<class>`` column
per class, ``top1`` .. ``topk`` (classes by decreasing probability, ties broken by
class order as in the statistics package) and ``predicted`` (= ``top1``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError
from SpineMetsCore.stats import class_ranks

from ..evaluation.evaluate import DEFAULT_PROB_PREFIX
from .package import ModelPackage
from .pipeline import limited_threads
from .schema import ERROR_COLUMN, QC_COLUMN, failed_rows

logger = logging.getLogger(__name__)

PROB_PREFIX = DEFAULT_PROB_PREFIX


def allowed_extra_columns(package: ModelPackage) -> set[str]:
    """Non-feature columns a features table may carry: ids, the label, the training split column."""
    allowed = {"case_id", package.id_column, package.label}
    split_column = package.card.get("training", {}).get("split", {}).get("column")
    if split_column:
        allowed.add(str(split_column))
    return allowed


def model_input(package: ModelPackage, frame: pd.DataFrame, *, ignore_extra: bool = False,
                allowed_extra: Iterable[str] = (), strict_categories: bool = False) -> pd.DataFrame:
    """``frame`` checked against the model's schema and reduced to its columns, in order.

    Unseen category values are logged, or rejected with ``strict_categories``.
    """
    return package.schema.coerce(frame, allowed_extra=allowed_extra_columns(package) | set(allowed_extra),
                                 ignore_extra=ignore_extra, unseen="error" if strict_categories else "warn")


def predict_proba(package: ModelPackage, frame: pd.DataFrame, *, ignore_extra: bool = False,
                  allowed_extra: Iterable[str] = (), strict_categories: bool = False) -> np.ndarray:
    """(n, K) probabilities in ``package.classes`` order."""
    X = model_input(package, frame, ignore_extra=ignore_extra, allowed_extra=allowed_extra,
                    strict_categories=strict_categories)
    with limited_threads():
        return np.asarray(package.pipeline.predict_proba(X), dtype=float)


def ranked_classes(proba_row: Sequence[float], classes: Sequence[str]) -> list[tuple[str, float]]:
    """``[(class, probability), ...]`` most probable first (ties by class order)."""
    p = np.asarray(proba_row, dtype=float).reshape(1, -1)
    order = np.argsort(class_ranks(p)[0])
    return [(str(classes[j]), float(p[0, j])) for j in order]


def predictions_frame(
    ids: Sequence[Any],
    proba: np.ndarray,
    classes: Sequence[str],
    topk: int = 3,
    truth: Sequence[Any] | None = None,
    truth_name: str | None = None,
    id_column: str = "case_id",
) -> pd.DataFrame:
    """The predictions table (see module docstring)."""
    proba = np.asarray(proba, dtype=float)
    k = max(1, min(int(topk), len(classes)))
    order = np.argsort(class_ranks(proba), axis=1)  # column indices by rank
    data: dict[str, Any] = {id_column: [str(i) for i in ids]}
    if truth is not None:
        data[truth_name or "truth"] = list(truth)
    for j, c in enumerate(classes):
        data[f"{PROB_PREFIX}{c}"] = proba[:, j]
    names = np.asarray([str(c) for c in classes], dtype=object)
    for r in range(k):
        data[f"top{r + 1}"] = names[order[:, r]]
    data["predicted"] = names[order[:, 0]]
    return pd.DataFrame(data)


def case_ids(frame: pd.DataFrame, id_column: str = "case_id") -> list[str]:
    """Ids from ``id_column`` (or ``case_id``), else ``row1``, ``row2``, ..."""
    for column in (id_column, "case_id"):
        if column in frame.columns:
            return [str(v) for v in frame[column]]
    return [f"row{i + 1}" for i in range(len(frame))]


def predict_table(package: ModelPackage, frame: pd.DataFrame, *, topk: int = 3, ignore_extra: bool = False,
                  allowed_extra: Iterable[str] = (), strict_categories: bool = False) -> pd.DataFrame:
    """Predictions table for every row of ``frame``; the truth is included when the label column is present.

    A feature table from the features package may carry an ``error`` column (cases
    whose extraction failed): those rows are not predicted (their features would
    be silently imputed); they keep their message in an ``error`` column.
    """
    failed = failed_rows(frame)
    allowed = {ERROR_COLUMN, QC_COLUMN, *allowed_extra}
    proba = np.full((len(frame), len(package.classes)), np.nan)
    if (~failed).any():
        proba[~failed] = predict_proba(package, frame.loc[~failed], ignore_extra=ignore_extra, allowed_extra=allowed,
                                       strict_categories=strict_categories)
    truth = None
    if package.label in frame.columns:
        truth = [None if pd.isna(v) else str(v) for v in frame[package.label]]
    table = predictions_frame(case_ids(frame, package.id_column), np.nan_to_num(proba), package.classes, topk,
                              truth=truth, truth_name=package.label)
    if ERROR_COLUMN in frame.columns:
        prob_columns = [c for c in table.columns if c.startswith(PROB_PREFIX)]
        rank_columns = [c for c in table.columns if c.startswith("top") or c == "predicted"]
        table.loc[failed, prob_columns] = np.nan
        table.loc[failed, rank_columns] = ""
        table[ERROR_COLUMN] = ["" if pd.isna(v) else str(v) for v in frame[ERROR_COLUMN]]
    return table


def extraction_settings(package: ModelPackage) -> Any:
    """``CaseSettings`` the model's training features were extracted with (from the model card).

    Without a record (features table without provenance), radiomics is extracted
    only if the model uses radiomics columns, with the shipped parameter file.
    """
    from dataclasses import fields

    from ..features.case import CaseSettings
    from .feature_sets import select_features

    recorded = (package.card.get("feature_extraction") or {}).get("settings")
    if isinstance(recorded, dict):
        known = {f.name for f in fields(CaseSettings)}
        values = {k: v for k, v in recorded.items() if k in known}
        for key in ("sequences",):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        if isinstance(values.get("anatomy_labels"), list):
            values["anatomy_labels"] = tuple((str(a), int(b)) for a, b in values["anatomy_labels"])
        params = values.get("params_path")
        if params and not Path(params).is_file():
            logger.warning("parameter file %s of the training features is not on this machine; "
                           "using the shipped default (check the model card's params_sha256)", params)
            values["params_path"] = None
        return CaseSettings(**values)
    try:
        select_features("radiomics", package.schema.names)
        uses_radiomics = True
    except InputError:
        uses_radiomics = False
    return CaseSettings(radiomics=uses_radiomics)


def manifest_features(package: ModelPackage, manifest: str | os.PathLike[str], *, edf_csv: str | None = None,
                      workers: int = 1, progress: Any = None) -> pd.DataFrame:
    """Features of every manifest case computed on the fly with the model's extraction settings."""
    try:
        from ..features.cohort import extract_cohort
    except ImportError as exc:
        raise InputError("--manifest", f"feature extraction is not available in this installation ({exc}); "
                         "compute a features table with 'spinemets features' and use --features") from None
    settings = extraction_settings(package)
    result = extract_cohort(manifest, settings=settings, workers=workers, cache_dir=None, edf_csv=edf_csv,
                            progress=progress)
    expected = (package.card.get("feature_extraction") or {}).get("params_sha256")
    got = result.provenance.get("params_sha256")
    if expected and got and expected != got:
        logger.warning("radiomics parameter file differs from the one used for training (sha256 %s vs %s)",
                       got[:12], expected[:12])
    return result.frame
