"""Model packages: ``model.json`` + the fitted pipeline in skops format, as a folder or .zip.

A package is what a researcher downloads and opens in Slicer, so loading it must
never run code the package author chose. Hence:

* no pickle, no joblib: the pipeline is stored with ``skops.io`` and loaded with
  an explicit trusted-type list: every type skops does not trust by default must
  be on :data:`TRUSTED_TYPES` (our allow-list) or loading is refused;
* ``model.json`` records the SHA-256 of ``model.skops`` (and of the SHAP
  background sample); a mismatch means the file was modified or corrupted and
  loading is refused before skops parses a byte;
* the card carries what a reader of a paper would ask: task, classes, features
  in order, preprocessing, classifier and hyper-parameters, cohort size and label
  counts, CV metrics, library versions, seed and whether the training data were
  synthetic.

Members: ``model.json``, ``model.skops``, ``background.csv`` (raw feature rows for
SHAP), optionally training reports (``cv_predictions.csv``, ``metrics.json``, ...).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as sio

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import atomic_dir, atomic_path, sha256_bytes

from .schema import NA_VALUES, FeatureSchema

logger = logging.getLogger(__name__)

FORMAT = "spinemets-model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
MODEL_FILE = "model.skops"
BACKGROUND_FILE = "background.csv"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

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


class ModelPackageError(InputError):
    """A model package is missing, malformed or of an unknown format."""


class ModelIntegrityError(ModelPackageError):
    """A package file does not match the SHA-256 recorded in model.json."""


class UntrustedModelError(ModelPackageError):
    """The skops file contains types outside the allow-list."""




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
class ModelPackage:
    """A loaded, verified model package (the SHAP background is parsed on first use)."""

    path: Path
    card: dict[str, Any]
    pipeline: Any
    background_csv: bytes = field(repr=False, default=b"")

    @functools.cached_property
    def background(self) -> pd.DataFrame:
        """Raw feature rows sampled from the training data (SHAP's reference distribution)."""
        raw = pd.read_csv(io.BytesIO(self.background_csv), keep_default_na=False, na_values=list(NA_VALUES))
        return self.schema.coerce(raw, unseen="ignore", what=f"{self.path}/{BACKGROUND_FILE}")

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
    def synthetic(self) -> bool:
        return bool(self.card.get("synthetic_training_data", False))

    @property
    def sha256(self) -> str:
        return str(self.card["model_file"]["sha256"])

    @property
    def id_column(self) -> str:
        return str(self.card.get("id_column") or "case_id")


def _background_bytes(background: pd.DataFrame) -> bytes:
    return background.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _check_target(out: Path) -> None:
    """Never replace a folder that is not a model package (atomic_dir would delete its files)."""
    if out.suffix.lower() == ".zip":
        if out.is_dir():
            raise InputError(str(out), "is a folder; a .zip package path must be a file")
        return
    if out.is_file():
        raise InputError(str(out), "exists and is a file; give a folder or a .zip path")
    if out.is_dir() and any(out.iterdir()) and not (out / MODEL_JSON).is_file():
        raise InputError(str(out), "exists, is not empty and is not a SpineMets model package; refusing to replace it")


def save_package(
    out: str | os.PathLike[str],
    pipeline: Any,
    card: Mapping[str, Any],
    background: pd.DataFrame,
    extra_files: Mapping[str, bytes | str] | None = None,
) -> Path:
    """Write the package atomically (folder, or a .zip if ``out`` ends in .zip); return its path.

    The checksums and the trusted-type list are filled in here, from the bytes
    actually written, so a card can never describe a different file.
    """
    out = Path(out)
    _check_target(out)
    data = sio.dumps(pipeline)
    needed = sio.get_untrusted_types(data=data)
    bad = disallowed_types(needed)
    if bad:
        raise UntrustedModelError("model", f"contains types outside the trusted list {bad}; it could not be loaded again")
    background_data = _background_bytes(background)
    full = dict(card)
    full.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_file": {"name": MODEL_FILE, "format": "skops", "sha256": sha256_bytes(data)},
        "background_file": {"name": BACKGROUND_FILE, "sha256": sha256_bytes(background_data),
                            "n_rows": int(len(background))},
        "trusted_types": sorted(needed),
    })
    members: dict[str, bytes] = {
        MODEL_JSON: (json.dumps(full, indent=2, default=str) + "\n").encode("utf-8"),
        MODEL_FILE: data,
        BACKGROUND_FILE: background_data,
    }
    for name, content in (extra_files or {}).items():
        if name in members or "/" in name or "\\" in name or name.startswith("."):
            raise InputError(name, "is not a valid extra file name for a model package")
        members[name] = content.encode("utf-8") if isinstance(content, str) else content
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, content in members.items():
                    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, content)
    else:
        with atomic_dir(out) as tmp:
            for name, content in members.items():
                (tmp / name).write_bytes(content)
    logger.info("wrote model package %s (sha256 %s)", out, full["model_file"]["sha256"][:12])
    return out


def _read_members(path: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Bytes of the named members of a folder or zip package (nothing is extracted)."""
    found: dict[str, bytes] = {}
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                found[name] = (path / name).read_bytes()
        return found
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            available = set(zf.namelist())
            for name in names:
                if name in available:
                    found[name] = zf.read(name)
        return found
    if path.is_file():
        raise ModelPackageError(str(path), "is neither a model package folder nor a .zip file")
    raise ModelPackageError(str(path), "model package not found")


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``model.json`` of a package, without loading the model."""
    p = Path(path)
    members = _read_members(p, (MODEL_JSON,))
    if MODEL_JSON not in members:
        raise ModelPackageError(str(p), f"has no {MODEL_JSON}; not a SpineMets model package")
    try:
        card = json.loads(members[MODEL_JSON].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{p}/{MODEL_JSON}", f"is not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelPackageError(f"{p}/{MODEL_JSON}", f"is not a '{FORMAT}' model card")
    if int(card.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelPackageError(f"{p}/{MODEL_JSON}", f"format version {card.get('format_version')} is newer than "
                                f"this SpineMets supports ({FORMAT_VERSION}); update SpineMets")
    for key in ("task", "classes", "features", "model_file"):
        if key not in card:
            raise ModelPackageError(f"{p}/{MODEL_JSON}", f"lacks the '{key}' entry")
    return card


def _verify(p: Path, name: str, data: bytes | None, expected: str | None) -> bytes:
    if data is None:
        raise ModelPackageError(str(p), f"has no {name}")
    actual = sha256_bytes(data)
    if not expected or actual != expected:
        raise ModelIntegrityError(
            f"{p}/{name}",
            f"SHA-256 checksum mismatch (model.json records {expected}, the file has {actual}): "
            "the file was modified or corrupted; refusing to load it",
        )
    return data


def load_package(path: str | os.PathLike[str], expected_sha256: str | None = None) -> ModelPackage:
    """Verify checksums and types, then load; ``expected_sha256`` pins the model file (e.g. from a registry)."""
    p = Path(path)
    card = read_card(p)
    members = _read_members(p, (MODEL_FILE, BACKGROUND_FILE))
    model_sha = str(card["model_file"].get("sha256", ""))
    if expected_sha256 is not None and expected_sha256.lower() != model_sha.lower():
        raise ModelIntegrityError(f"{p}/{MODEL_FILE}", f"SHA-256 {model_sha} is not the expected {expected_sha256}")
    data = _verify(p, MODEL_FILE, members.get(MODEL_FILE), model_sha)
    background_sha = str(card.get("background_file", {}).get("sha256", ""))
    background_data = _verify(p, BACKGROUND_FILE, members.get(BACKGROUND_FILE), background_sha)
    try:
        needed = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises assorted errors on malformed archives
        raise ModelPackageError(f"{p}/{MODEL_FILE}", f"is not a readable skops file ({exc})") from None
    bad = disallowed_types(needed)
    if bad:
        raise UntrustedModelError(
            f"{p}/{MODEL_FILE}",
            f"contains untrusted type(s) {bad}; SpineMets only loads types on its allow-list "
            "(SpineMetsClassifierLib.models.package.TRUSTED_TYPES); refusing to load it",
        )
    try:
        pipeline = sio.loads(data, trusted=needed)
    except Exception as exc:
        raise ModelPackageError(f"{p}/{MODEL_FILE}", f"cannot be loaded ({exc})") from None
    _check_pipeline(p, pipeline, card)
    FeatureSchema.from_json(card["features"])  # a malformed feature list fails here, not at prediction
    return ModelPackage(path=p, card=card, pipeline=pipeline, background_csv=background_data)


def _check_pipeline(p: Path, pipeline: Any, card: Mapping[str, Any]) -> None:
    steps = getattr(pipeline, "named_steps", None)
    if steps is None or "prep" not in steps or "clf" not in steps:
        raise ModelPackageError(f"{p}/{MODEL_FILE}", "does not hold a SpineMets pipeline (steps 'prep' ... 'clf')")
    classes = [str(c) for c in getattr(pipeline, "classes_", [])]
    if classes != [str(c) for c in card["classes"]]:
        raise ModelPackageError(f"{p}/{MODEL_JSON}", f"classes {card['classes']} do not match the model's {classes}")
    expected = [f["name"] for f in card["features"]]
    got = [str(c) for c in getattr(pipeline, "feature_names_in_", expected)]
    if got != expected:
        raise ModelPackageError(f"{p}/{MODEL_JSON}", "feature list does not match the model's input columns")
