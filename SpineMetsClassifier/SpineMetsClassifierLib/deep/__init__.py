"""Deep-learning classifiers: MONAI ResNets on lesion-centred MRI slices or crops (studies A, B and C).

Qt-free; torch and MONAI are imported only when a network is built or run.
Public API (imported lazily, so ``import SpineMetsClassifierLib.deep`` stays cheap):

- inputs: :class:`InputSpec`, :func:`build_case_input` (2-D sagittal slices with most lesion / 3-D crops)
- training: :class:`DeepConfig`, :func:`train_deep_classifier` -> :class:`DeepTrainResult`
- packages: :func:`load_deep_package`, :func:`save_deep_package`, :class:`DeepPackage`, :class:`DeepPackageError`
- inference: :func:`predict_deep` (the classical predictions table), :func:`deep_features` (``dl_000`` ...),
  :func:`merge_feature_tables` (radiomics + deep for DRad-M), :func:`predict_images` (one case in memory),
  :func:`write_table` (CSV + provenance)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "InputSpec": "inputs",
    "CaseInput": "inputs",
    "build_case_input": "inputs",
    "ARCHITECTURES": "network",
    "DeepPackageError": "package",
    "ModelPackageError": "package",
    "DeepConfig": "training",
    "DeepTrainResult": "training",
    "train_deep_classifier": "training",
    "DeepPackage": "package",
    "load_deep_package": "package",
    "save_deep_package": "package",
    "read_deep_card": "package",
    "predict_deep": "inference",
    "deep_features": "inference",
    "merge_feature_tables": "inference",
    "predict_images": "inference",
    "write_table": "inference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
