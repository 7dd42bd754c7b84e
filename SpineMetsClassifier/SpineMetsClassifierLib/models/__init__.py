"""Classifiers of the studies: feature sets, pipelines, training, secure packages, inference, SHAP.

Public API (imported lazily, so ``import SpineMetsClassifierLib.models`` stays cheap):

- feature sets: :func:`select_features` (``edf``, ``radiomics+age``, patterns; see :mod:`.feature_sets`)
- pipeline: :data:`CLASSIFIERS` (``lr svm rf gb knn nb mlp``), :class:`SelectionConfig`, :func:`build_pipeline`
- training: :class:`TrainConfig`, :func:`train_model`, :func:`train_all`, :func:`save_training`
- packages (the Core format, skops payload): :func:`load_package`, :func:`save_package`, :func:`read_card`,
  :data:`TRUSTED_TYPES`, :class:`ModelPackageError` (``SpineMetsCore.packages``)
- inference: :func:`predict_table`, :func:`predict_proba`, :func:`ranked_classes`, :class:`FeatureMismatchError`
- SHAP: :func:`explain`, :func:`global_importance`, :func:`ranking`, :func:`case_contributions`,
  :func:`write_explanations`
- MRML: :class:`PredictionLogic` (``predictToTable``, ``probabilityBarPlot``, ``explainToTable``)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "EDF_ITEMS": "feature_sets",
    "select_features": "feature_sets",
    "FeatureSchema": "schema",
    "FeatureMismatchError": "schema",
    "read_feature_table": "schema",
    "CLASSIFIERS": "pipeline",
    "SelectionConfig": "pipeline",
    "build_pipeline": "pipeline",
    "feature_origins": "pipeline",
    "TrainConfig": "training",
    "TrainResult": "training",
    "train_model": "training",
    "train_all": "training",
    "save_training": "training",
    "comparison_table": "training",
    "ModelPackage": "package",
    "ModelPackageError": "package",
    "TRUSTED_TYPES": "package",
    "load_package": "package",
    "save_package": "package",
    "read_card": "package",
    "predict_proba": "inference",
    "predict_table": "inference",
    "predictions_frame": "inference",
    "ranked_classes": "inference",
    "ShapResult": "explain",
    "explain": "explain",
    "global_importance": "explain",
    "ranking": "explain",
    "case_contributions": "explain",
    "write_explanations": "explain",
    "PredictionLogic": "prediction_logic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
