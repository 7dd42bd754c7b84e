"""U-Net lesion segmentation: model packages, preprocessing, inference and training.

Public API (torch and MONAI are imported only when a function needs them)::

    from SpineMetsSegmentLib.unet import load_model_package, segment_images
    pkg = load_model_package("Model/")           # verifies every SHA-256 (card included) first
    labelmap = segment_images({"T1": t1, "T2": t2, "STIR": stir}, pkg)

A model package is a folder (or .zip) with ``model.json`` (the model card),
``weights.safetensors`` and ``checksums.json``, in the one SpineMets package format
(:mod:`SpineMetsCore.packages`, docs/model-packages.md); :mod:`.package` adds the U-Net parts. Trained models are written by
:func:`train_model` (``spinemets train-seg``).
"""

from pathlib import Path

from .inference import segment_images, select_device
from .package import (
    CARD_NAME,
    REQUIRED_KEYS,
    WEIGHTS_NAME,
    ModelPackage,
    ModelPackageError,
    load_model_package,
    update_card,
    verify_model_package,
    write_model_package,
)
from .preprocessing import NORMALISATIONS
from .training import TrainingConfig, TrainingResult, train_model


def demo_model_path() -> Path:
    """Folder of the shipped demo model package (trained on synthetic phantom data only)."""
    return Path(__file__).resolve().parents[2] / "Resources" / "Models"


__all__ = [
    "CARD_NAME",
    "NORMALISATIONS",
    "REQUIRED_KEYS",
    "WEIGHTS_NAME",
    "ModelPackage",
    "ModelPackageError",
    "TrainingConfig",
    "TrainingResult",
    "demo_model_path",
    "load_model_package",
    "segment_images",
    "select_device",
    "train_model",
    "update_card",
    "verify_model_package",
    "write_model_package",
]
