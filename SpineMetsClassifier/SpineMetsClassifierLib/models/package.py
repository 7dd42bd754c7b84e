"""Classifier model packages: the Core package format with a skops payload.

A package is what a researcher downloads and opens in Slicer, so loading it must
never run code the package author chose. The format (card schema, SHA-256 of every
member *and of the card* in ``checksums.json``, zip rules, versions, legacy reader)
is :mod:`SpineMetsCore.packages`; this module adds what is scikit-learn specific:

* no pickle, no joblib: the pipeline is stored with ``skops.io`` and loaded with
  an explicit trusted-type list: every type skops does not trust by default must
  be on :data:`TRUSTED_TYPES` (our allow-list) or loading is refused;
* the card carries what a reader of a paper would ask: task, classes, features
  in order, preprocessing, classifier and hyper-parameters, cohort size and label
  counts, CV metrics, library versions, seed and whether the training data were
  synthetic.

Members: ``model.json``, ``checksums.json``, ``model.skops``, ``background.csv`` (raw
feature rows for SHAP), optionally training reports (``cv_predictions.csv``, ...).
"""

from __future__ import annotations

import copy
import functools
import io
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from SpineMetsCore import packages as core
from SpineMetsCore.fileio import sha256_bytes
from SpineMetsCore.packages import CARD_NAME, ModelPackageError

from .schema import NA_VALUES, FeatureSchema

logger = logging.getLogger(__name__)

_ARRAY_API_TORCH = "sklearn.externals.array_api_compat.torch"


def _import_skops_io() -> Any:
    """``skops.io`` without importing torch (3 s and hundreds of MB for a scikit-learn model).

    Importing skops.io builds its trusted-type list with scikit-learn's
    ``all_estimators()``, whose package walk imports every sub-package,
    including the array-API shim for torch, which imports torch. That shim
    holds no estimator: while skops is imported it is marked absent (the walk
    skips packages that fail to import), then unmarked, so code that really
    uses torch arrays can still import it later.
    """
    if "skops.io" in sys.modules or _ARRAY_API_TORCH in sys.modules:
        import skops.io

        return skops.io
    sys.modules[_ARRAY_API_TORCH] = None  # type: ignore[assignment]
    try:
        import skops.io
    finally:
        if sys.modules.get(_ARRAY_API_TORCH, False) is None:
            del sys.modules[_ARRAY_API_TORCH]
    return skops.io


sio = _import_skops_io()

KIND = "sklearn-classifier"
MODEL_JSON = CARD_NAME
MODEL_FILE = "model.skops"
BACKGROUND_FILE = "background.csv"

__all__ = ["BACKGROUND_FILE", "KIND", "MODEL_FILE", "MODEL_JSON", "TRUSTED_TYPES", "ModelPackage",
           "ModelPackageError", "disallowed_types", "load_package", "read_card", "save_package", "sha256_bytes"]

TRUSTED_TYPES: frozenset[str] = frozenset({
    # Types skops does not trust by default that our seven pipelines contain. Each is
    # a plain data container or a pure function; none can run code when loaded.
    "SpineMetsClassifierLib.models.selectors.CorrelationFilter",  # our selector: a boolean mask
    "SpineMetsClassifierLib.models.selectors.MRMRSelector",  # our selector: a boolean mask + ranking
    "SpineMetsClassifierLib.models.selectors.L1Selector",  # our selector: a boolean mask + importances
    "numpy.dtype",  # dtype descriptors of stored arrays
    "sklearn.feature_selection._univariate_selection.f_classif",  # SelectKBest's score function
    "sklearn.calibration._CalibratedClassifier",  # svm: SVC + Platt calibrators
    "sklearn.calibration._SigmoidCalibration",  # svm: two floats per class
    "sklearn.tree._tree.Tree",  # rf: node arrays
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # gb: node arrays
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # mlp: optimiser state
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",  # mlp with solver='sgd'
})


def library_versions() -> dict[str, str]:
    """Versions that decide whether a package loads and predicts the same (SpineMetsCore's + skops)."""
    from SpineMetsCore.tables import library_versions as core_versions

    versions = core_versions()
    try:
        versions["skops"] = metadata.version("skops")
    except metadata.PackageNotFoundError:  # pragma: no cover - skops is a dependency
        pass
    return versions


def disallowed_types(types: list[str]) -> list[str]:
    """Types that are neither trusted by skops by default nor on :data:`TRUSTED_TYPES`."""
    return sorted(set(types) - TRUSTED_TYPES)


@dataclass
class ModelPackage(core.CardFields):
    """A loaded, verified model package (the SHAP background is parsed on first use)."""

    path: Path
    card: dict[str, Any]
    pipeline: Any
    background_csv: bytes = field(repr=False, default=b"")
    digest: str = ""
    """SHA-256 of the package's checksums.json (identifies the whole package)."""

    @functools.cached_property
    def background(self) -> pd.DataFrame:
        """Raw feature rows sampled from the training data (SHAP's reference distribution)."""
        raw = pd.read_csv(io.BytesIO(self.background_csv), keep_default_na=False, na_values=list(NA_VALUES))
        return self.schema.coerce(raw, unseen="ignore", what=f"{self.path}/{self.card['background']['file']}")

    @property
    def schema(self) -> FeatureSchema:
        return FeatureSchema.from_json(self.card["features"])

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.card["classes"]]

    @property
    def label(self) -> str:
        return str(self.card["task"]["label"])

    @property
    def sha256(self) -> str:
        """SHA-256 of the skops model file (what ``--sha256`` pins)."""
        return str(self.card["payload"]["sha256"])

    @property
    def id_column(self) -> str:
        return str(self.card.get("id_column") or "case_id")


def _background_bytes(background: pd.DataFrame) -> bytes:
    return background.to_csv(index=False, lineterminator="\n").encode("utf-8")


def save_package(
    out: str | os.PathLike[str],
    pipeline: Any,
    card: Mapping[str, Any],
    background: pd.DataFrame,
    extra_files: Mapping[str, bytes | str] | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Write the package atomically (folder, or a .zip if ``out`` ends in .zip); return its path.

    The payload entry, the checksums and the trusted-type list are filled in
    here, from the bytes actually written, so a card can never describe a
    different file; the written package is re-loaded before it replaces anything.
    """
    data = sio.dumps(pipeline)
    needed = sio.get_untrusted_types(data=data)
    bad = disallowed_types(needed)
    if bad:
        raise ModelPackageError("model", f"contains types outside the trusted list {bad}; it could not be loaded again")
    background_data = _background_bytes(background)
    full = {k: copy.deepcopy(v) for k, v in card.items()
            if k not in ("model_file", "background_file", "payload", "versions", "legacy_format")}
    full.update({
        "kind": KIND,
        "payload": {"format": "skops", "file": MODEL_FILE},
        "background": {"file": BACKGROUND_FILE, "n_rows": int(len(background))},
        "trusted_types": sorted(needed),
    })
    full.setdefault("version", "1")
    if "versions" in card and "library_versions" not in card:
        full["library_versions"] = copy.deepcopy(card["versions"])
    members: dict[str, bytes] = {MODEL_FILE: data, BACKGROUND_FILE: background_data}
    for name, content in (extra_files or {}).items():
        if name in members or name in (CARD_NAME, core.CHECKSUMS_NAME):
            raise ModelPackageError(name, "is not a valid extra file name for a model package")
        members[name] = content.encode("utf-8") if isinstance(content, str) else content
    return core.write_package(out, full, members, overwrite=overwrite, verify=_from_package)


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified card of a classifier package (checksums checked; the model is not parsed)."""
    return copy.deepcopy(core.open_package(path, kind=KIND).card)


def _from_package(package: core.Package, expected_sha256: str | None = None) -> ModelPackage:
    """Scan the verified skops bytes against the allow-list, then load and cross-check the pipeline."""
    model_name = package.payload_name
    what = package.where(model_name)
    if expected_sha256 is not None and expected_sha256.lower() != package.sha256(model_name):
        raise ModelPackageError(what, f"SHA-256 {package.sha256(model_name)} is not the expected {expected_sha256}")
    data = package.payload_bytes()
    background_data = package.read_bytes(package.card["background"]["file"])
    try:
        needed = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises assorted errors on malformed archives
        raise ModelPackageError(what, f"is not a readable skops file ({exc})") from None
    bad = disallowed_types(needed)
    if bad:
        raise ModelPackageError(
            what,
            f"contains untrusted type(s) {bad}; SpineMets only loads types on its allow-list "
            "(SpineMetsClassifierLib.models.package.TRUSTED_TYPES); refusing to load it",
        )
    try:
        pipeline = sio.loads(data, trusted=needed)
    except Exception as exc:
        raise ModelPackageError(what, f"cannot be loaded ({exc})") from None
    _check_pipeline(package, pipeline)
    FeatureSchema.from_json(package.card["features"])  # a malformed feature list fails here, not at prediction
    return ModelPackage(path=package.path, card=package.card, pipeline=pipeline, background_csv=background_data,
                        digest=package.digest)


def load_package(path: str | os.PathLike[str], expected_sha256: str | None = None) -> ModelPackage:
    """Verify checksums (card included) and types, then load; ``expected_sha256`` pins the model file."""
    return _from_package(core.open_package(path, kind=KIND), expected_sha256)


def _check_pipeline(package: core.Package, pipeline: Any) -> None:
    card = package.card
    steps = getattr(pipeline, "named_steps", None)
    if steps is None or "prep" not in steps or "clf" not in steps:
        raise ModelPackageError(package.where(package.payload_name), "does not hold a SpineMets pipeline (steps 'prep' ... 'clf')")
    classes = [str(c) for c in getattr(pipeline, "classes_", [])]
    if classes != [str(c) for c in card["classes"]]:
        raise ModelPackageError(package.where(CARD_NAME), f"classes {card['classes']} do not match the model's {classes}")
    expected = [f["name"] for f in card["features"]]
    got = [str(c) for c in getattr(pipeline, "feature_names_in_", expected)]
    if got != expected:
        raise ModelPackageError(package.where(CARD_NAME), "feature list does not match the model's input columns")
