"""Training: splits, stratified nested cross-validated hyper-parameter search, final fit, model card.

Protocol (what the studies report, with no selection or tuning leakage):

1. Split: ``cv`` (all rows are development data; performance from nested CV),
   ``random`` (stratified hold-out test set of ``test_size``) or ``column``
   (rows whose ``split_column`` value is in ``test_values`` are the test set, e.g.
   ``centre == C2`` for external testing, or a prepared ``partition`` column).
2. Nested CV on the development rows: outer stratified K folds; in each, a grid
   search over inner stratified folds tunes the whole pipeline (selection
   included) and the tuned pipeline predicts the held-out outer fold. The pooled
   out-of-fold probabilities give the CV metrics (statistics package).
3. Final model: the same grid search on all development rows, refitted.
4. Test metrics on the test rows, if any.

Every fold split and estimator takes ``seed``: the same seed gives the same
numbers. With ``classifier="all"`` (:func:`train_all`) the seven classifiers are
trained on the same folds and compared in one table, as seed 002 does.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from SpineMetsCore.errors import InputError, SpineMetsError
from SpineMetsCore.fileio import sha256_file
from SpineMetsCore.progress import ProgressCallback
from SpineMetsCore.stats import StatsInputError, classification_metrics, delong_roc_test, json_safe
from SpineMetsCore.tables import library_versions, provenance, write_table_csv

from .feature_sets import select_features
from .inference import predictions_frame
from .package import save_package
from .pipeline import (
    CLASSIFIER_NAMES,
    CLASSIFIERS,
    GB_MIN_SAMPLES_LEAF,
    SelectionConfig,
    build_pipeline,
    check_classifier,
    class_weighting,
    describe,
    fit_params,
    gb_min_samples_leaf,
    limited_threads,
    model_input_names,
    param_grid,
)
from .schema import FeatureSchema, exclude_failed_rows

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("cv", "random", "column")
DEFAULT_KNN_NEIGHBOURS = 15
"""``make_classifier``'s k-NN ``n_neighbors`` (used when a grid does not tune it)."""
DEFAULT_SVM_CALIBRATION_FOLDS = 3
"""``make_classifier``'s internal Platt-scaling CV folds of the SVM."""
DEFAULT_SCORING = "neg_log_loss"
INTENDED_USE = ("Research use only. Not a medical device; not validated for clinical decisions. "
                "Performance figures are those of the training data described here.")
MULTICLASS_KEYS = ("accuracy", "top2_accuracy", "top3_accuracy", "auc_macro_ovr", "f1_macro",
                   "precision_macro", "recall_macro", "brier")
BINARY_KEYS = ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1_macro", "brier")



@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (recorded in the model card)."""

    label: str
    feature_set: str = "all"
    classifier: str = "lr"
    split: str = "cv"
    test_size: float = 0.3
    split_column: str | None = None
    test_values: tuple[str, ...] = ("test",)
    cv_folds: int = 5
    inner_folds: int = 3
    grid: str = "default"
    scoring: str = DEFAULT_SCORING
    seed: int = 0
    class_weight: str | None = "balanced"
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    id_column: str = "case_id"
    positive: str | None = None
    topk: int = 3
    background_size: int = 100
    threads: int | None = None
    synthetic_training_data: bool | None = None
    """``None``: detected from the table (a ``phantom_version`` column marks phantom data)."""
    metadata_columns: tuple[str, ...] | None = None
    """Non-feature columns (``all`` never uses them); ``None``: ``non_feature_columns`` of the table's provenance."""


@dataclass
class TrainResult:
    """A fitted pipeline with its card, background sample and evaluation tables."""

    pipeline: Any
    card: dict[str, Any]
    background: pd.DataFrame
    cv_predictions: pd.DataFrame
    cv_metrics: dict[str, float]
    fold_metrics: pd.DataFrame
    test_predictions: pd.DataFrame | None = None
    test_metrics: dict[str, float] | None = None


# ----------------------------------------------------------------------------- checks
def _check_config(config: TrainConfig) -> None:
    check_classifier(config.classifier)
    if config.split not in SPLITS:
        raise InputError("--split", f"unknown split {config.split!r}; choose from {SPLITS}")
    if config.split == "column" and not config.split_column:
        raise InputError("--split-column", "needed for split 'column'")
    if config.split == "random" and not 0.0 < config.test_size < 1.0:
        raise InputError("--test-size", f"must be between 0 and 1, got {config.test_size}")
    if config.cv_folds < 2 or config.inner_folds < 2:
        raise InputError("--cv-folds", f"outer and inner folds must be >= 2, got {config.cv_folds} and {config.inner_folds}")
    if config.topk < 1:
        raise InputError("--topk", f"must be >= 1, got {config.topk}")
    try:
        get_scorer(config.scoring)
    except ValueError:
        raise InputError("--scoring", f"unknown scikit-learn scorer {config.scoring!r}") from None


def label_values(frame: pd.DataFrame, label: str) -> np.ndarray:
    """The label column as text; a missing label is an error naming the rows."""
    if label not in frame.columns:
        raise InputError("--label", f"column {label!r} not found (columns: {list(frame.columns)[:30]})")
    raw = frame[label]
    missing = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        rows = [int(i) + 1 for i in np.flatnonzero(missing)[:5]]
        raise InputError(label, f"{int(missing.sum())} row(s) without a label (data rows {rows}...)")
    values = np.array([str(v).strip() for v in raw], dtype=object)
    if len(set(values)) < 2:
        raise InputError(label, f"needs at least two classes, found {sorted(set(values))}")
    return values


def _check_class_counts(y: np.ndarray, config: TrainConfig, what: str) -> None:
    classes, counts = np.unique(y, return_counts=True)
    need_outer = config.cv_folds
    rare = [f"{c!r} ({n})" for c, n in zip(classes, counts, strict=True)
            if n < need_outer or (n * (config.cv_folds - 1)) // config.cv_folds < config.inner_folds]
    if rare:
        raise InputError(config.label, f"class(es) {', '.join(rare)} have too few {what} cases for stratified "
                         f"{config.cv_folds}-fold outer / {config.inner_folds}-fold inner CV; merge rare classes "
                         "or lower --cv-folds/--inner-folds")


def detect_synthetic(frame: pd.DataFrame, source: str | Path | None = None) -> bool:
    """True for phantom data: a ``phantom_version`` column (phantom records and manifests carry one,
    and feature tables pass manifest columns through), or ``"synthetic_data": true`` in the
    table's provenance file."""
    if "phantom_version" in frame.columns:
        return True
    if source is not None:
        prov = Path(source).with_name(Path(source).stem + ".provenance.json")
        if prov.is_file():
            try:
                data = json.loads(prov.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return False
            return isinstance(data, dict) and any(data.get(k) is True for k in ("synthetic_data", "synthetic_training_data"))
    return False


def holdout_mask(frame: pd.DataFrame, y: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Boolean mask of test rows and a description of the split for the model card."""
    n = len(frame)
    if config.split == "cv":
        return np.zeros(n, dtype=bool), {"method": "cv", "description": "all rows are development data (nested CV)"}
    if config.split == "random":
        idx = np.arange(n)
        try:
            _, test_idx = train_test_split(idx, test_size=config.test_size, stratify=y, random_state=config.seed)
        except ValueError as exc:
            raise InputError("--test-size", f"cannot make a stratified split ({exc})") from None
        mask = np.zeros(n, dtype=bool)
        mask[test_idx] = True
        return mask, {"method": "random", "test_size": config.test_size, "stratified": True}
    column = str(config.split_column)
    if column not in frame.columns:
        raise InputError("--split-column", f"column {column!r} not found")
    values = frame[column].map(lambda v: "" if pd.isna(v) else str(v).strip())
    wanted = {str(v).strip() for v in config.test_values}
    mask = values.isin(wanted).to_numpy()
    if not mask.any():
        raise InputError("--test-value", f"no row has {column} in {sorted(wanted)} (values: {sorted(set(values))[:20]})")
    if mask.all():
        raise InputError("--test-value", f"every row has {column} in {sorted(wanted)}; no development rows left")
    return mask, {"method": "column", "column": column, "test_values": sorted(wanted)}


# ----------------------------------------------------------------------------- fitting
def adapt_grid(grid: Mapping[str, list[Any]], classifier: str, n_fit: int, min_class_fit: int) -> dict[str, list[Any]]:
    """The grid without settings a cohort this small cannot fit.

    ``n_fit`` / ``min_class_fit``: rows / rows of the smallest class in the smallest training set the
    estimator will see. k-NN never gets more neighbours than ``n_fit``; the SVM's internal Platt-scaling
    CV never more folds than ``min_class_fit``; gradient boosting's leaves (when the grid does not tune
    them) hold :func:`.pipeline.gb_min_samples_leaf` rows, so small cohorts still grow trees.
    """
    adapted = {k: list(v) for k, v in grid.items()}
    if classifier == "gb" and "clf__min_samples_leaf" not in adapted:
        leaf = gb_min_samples_leaf(n_fit)
        if leaf != GB_MIN_SAMPLES_LEAF:
            adapted["clf__min_samples_leaf"] = [leaf]
            logger.info("gb: min_samples_leaf %d (smallest training set: %d cases)", leaf, n_fit)
    if classifier == "knn":
        limit = max(1, int(n_fit))
        values = adapted.get("clf__n_neighbors", [DEFAULT_KNN_NEIGHBOURS])
        kept = [v for v in values if v <= limit] or [min(limit, min(values))]
        if kept != values:
            logger.info("knn: n_neighbors %s trimmed to %s (smallest training set: %d cases)", values, kept, limit)
            adapted["clf__n_neighbors"] = kept
    if classifier == "svm" and min_class_fit < DEFAULT_SVM_CALIBRATION_FOLDS:
        adapted["clf__cv"] = [max(2, int(min_class_fit))]
        logger.info("svm: Platt scaling with %d internal folds (smallest class: %d cases)", adapted["clf__cv"][0],
                    min_class_fit)
    return adapted


def _search(schema: FeatureSchema, config: TrainConfig, classifier: str, seed_offset: int = 0,
            y: np.ndarray | None = None) -> Any:
    pipeline = build_pipeline(schema, classifier, config.selection, config.seed, config.class_weight)
    grid = param_grid(classifier, config.grid)
    searched = bool(grid)
    if y is not None:
        # A search fits on the inner folds' training parts: n - ceil(n / inner_folds) rows.
        n, smallest = len(y), int(np.unique(y, return_counts=True)[1].min())
        if searched:
            n, smallest = n - -(-n // config.inner_folds), smallest - -(-smallest // config.inner_folds)
        grid = adapt_grid(grid, classifier, n, smallest)
    if not grid:
        return pipeline
    if not searched:
        return pipeline.set_params(**{k: v[0] for k, v in grid.items()})
    inner = StratifiedKFold(config.inner_folds, shuffle=True, random_state=config.seed + seed_offset)
    return GridSearchCV(pipeline, grid, scoring=config.scoring, cv=inner, refit=True, n_jobs=1, error_score="raise")


def _fit(estimator: Any, X: pd.DataFrame, y: np.ndarray, config: TrainConfig, classifier: str) -> tuple[Any, dict[str, Any], float | None]:
    """Fit (with search); return the fitted pipeline, chosen parameters and inner-CV score."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            estimator.fit(X, y, **fit_params(classifier, y, config.class_weight))
        except ValueError as exc:  # e.g. a class too small for an inner split; name the classifier and data
            raise InputError(f"--classifier {classifier}", f"fitting on {len(y)} cases failed ({exc})") from None
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if n_conv:
        logger.info("%s: %d convergence warning(s) during fitting", classifier, n_conv)
    for message in sorted({str(w.message) for w in caught if not issubclass(w.category, ConvergenceWarning)}):
        logger.info("%s: %s", classifier, message)
    if isinstance(estimator, GridSearchCV):
        best = {k.removeprefix("clf__"): v for k, v in estimator.best_params_.items()}
        return estimator.best_estimator_, best, float(estimator.best_score_)
    return estimator, {}, None


def _metrics(y: np.ndarray, proba: np.ndarray, classes: list[str], config: TrainConfig) -> dict[str, float]:
    return classification_metrics(y, proba, classes, topk=min(config.topk, len(classes)), positive=config.positive,
                                  truth_name=config.label)


def key_metrics(metrics: Mapping[str, float] | None, n_classes: int) -> dict[str, float]:
    """The headline metrics of a task (multi-class: top-k and macro AUC; binary: AUC, sens., spec.)."""
    if not metrics:
        return {}
    keys = BINARY_KEYS if n_classes == 2 else MULTICLASS_KEYS
    return {k: float(metrics[k]) for k in keys if k in metrics}


def nested_cv(
    X: pd.DataFrame, y: np.ndarray, schema: FeatureSchema, config: TrainConfig, classifier: str,
    classes: list[str], progress: ProgressCallback | None = None, step0: int = 0, total: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], pd.DataFrame]:
    """Out-of-fold probabilities, fold index of each row, chosen parameters and metrics per fold."""
    outer = StratifiedKFold(config.cv_folds, shuffle=True, random_state=config.seed)
    proba = np.full((len(y), len(classes)), np.nan)
    fold_of = np.full(len(y), -1, dtype=int)
    chosen: list[dict[str, Any]] = []
    rows = []
    for k, (tr, te) in enumerate(outer.split(np.zeros(len(y)), y)):
        model, best, _ = _fit(_search(schema, config, classifier, seed_offset=k + 1, y=y[tr]), X.iloc[tr], y[tr],
                              config, classifier)
        proba[te] = _aligned_proba(model, X.iloc[te], classes)
        fold_of[te] = k
        chosen.append(best)
        try:
            fold = key_metrics(_metrics(y[te], proba[te], classes, config), len(classes))
        except StatsInputError as exc:  # a tiny fold may miss a class
            logger.info("fold %d metrics undefined: %s", k + 1, exc)
            fold = {}
        rows.append({"fold": k + 1, "n": len(te), **fold, "params": json.dumps(json_safe(best), sort_keys=True)})
        if progress is not None:
            progress(step0 + k + 1, total or config.cv_folds + 1)
    return proba, fold_of, chosen, pd.DataFrame(rows)


def _aligned_proba(model: Any, X: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Probabilities in ``classes`` order (a fold's model may have seen every class, by stratification)."""
    p = model.predict_proba(X)
    model_classes = [str(c) for c in model.classes_]
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(model_classes):
        out[:, classes.index(c)] = p[:, j]
    return out


FEATURE_PROVENANCE_KEYS = ("operation", "settings", "params", "params_sha256", "pyradiomics_version", "edf_schema",
                           "naming", "manifest_sha256")


def feature_provenance(source: str | Path | None) -> dict[str, Any] | None:
    """How the training features were extracted (from ``<stem>.provenance.json``), for ``predict --manifest``."""
    if source is None:
        return None
    path = Path(source).with_name(Path(source).stem + ".provenance.json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("cannot read %s; the model card will not record how features were extracted", path)
        return None
    return {k: data[k] for k in FEATURE_PROVENANCE_KEYS if k in data} if isinstance(data, dict) else None


def non_feature_columns(source: str | Path | None) -> list[str]:
    """Columns a features table's provenance (``<stem>.provenance.json``) declares as not features."""
    if source is None:
        return []
    prov = Path(source).with_name(Path(source).stem + ".provenance.json")
    try:
        data = json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    columns = data.get("non_feature_columns") if isinstance(data, dict) else None
    return [str(c) for c in columns] if isinstance(columns, list) else []


def _file_sha256(path: str | Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return sha256_file(path)


def _summary(fold_metrics: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    numeric = fold_metrics.drop(columns=["fold", "n", "params"], errors="ignore").select_dtypes("number")
    return ({k: float(v) for k, v in numeric.mean().items()}, {k: float(v) for k, v in numeric.std(ddof=1).items()})


def train_model(
    frame: pd.DataFrame,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    source: str | Path | None = None,
) -> TrainResult:
    """Train one classifier on a features table (nothing is written; see :func:`save_training`)."""
    _check_config(config)
    classifier = config.classifier
    frame = exclude_failed_rows(frame, str(source) if source is not None else "features")
    y_all = label_values(frame, config.label)
    exclude = {config.label, config.id_column, "case_id"}
    if config.split == "column" and config.split_column:
        exclude.add(config.split_column)
    metadata = config.metadata_columns
    if metadata is None:
        metadata = tuple(non_feature_columns(source))
    features = select_features(config.feature_set, frame.columns, exclude=exclude, metadata=metadata)
    is_test, split_info = holdout_mask(frame, y_all, config)
    dev = frame.loc[~is_test]
    y = y_all[~is_test]
    _check_class_counts(y, config, "development")
    classes = sorted(set(y))
    unseen_classes = sorted(set(y_all[is_test]) - set(classes))
    if unseen_classes:
        raise InputError(config.label, f"test rows have class(es) {unseen_classes} absent from the development rows")
    if config.positive is not None and (len(classes) != 2 or config.positive not in classes):
        raise InputError("--positive", f"{config.positive!r} must be one of the two classes of a binary task "
                         f"(classes: {classes})")
    schema = FeatureSchema.infer(dev, features)
    X_all = schema.coerce(frame, ignore_extra=True, unseen="warn")
    X = X_all.loc[~is_test]
    ids = [str(v) for v in frame[config.id_column]] if config.id_column in frame.columns else \
        [f"row{i + 1}" for i in range(len(frame))]
    ids_arr = np.asarray(ids, dtype=object)

    started = time.perf_counter()
    total = config.cv_folds + 1
    with limited_threads(config.threads):
        oof, fold_of, _, fold_metrics = nested_cv(X, y, schema, config, classifier, classes, progress, 0, total)
        pipeline, best, inner_score = _fit(_search(schema, config, classifier, y=y), X, y, config, classifier)
        if progress is not None:
            progress(total, total)
        test_pred = test_metrics = None
        if is_test.any():
            y_test = y_all[is_test]
            test_proba = _aligned_proba(pipeline, X_all.loc[is_test], classes)
            test_pred = predictions_frame(ids_arr[is_test], test_proba, classes, config.topk,
                                          truth=list(y_test), truth_name=config.label, id_column=config.id_column)
            try:
                test_metrics = _metrics(y_test, test_proba, classes, config)
            except StatsInputError as exc:  # e.g. an external test set holding one class only
                logger.warning("test metrics undefined (%s); test predictions are still written", exc)
    seconds = time.perf_counter() - started

    cv_pred = predictions_frame(ids_arr[~is_test], oof, classes, config.topk, truth=list(y),
                                truth_name=config.label, id_column=config.id_column)
    cv_pred["fold"] = fold_of + 1
    cv_metrics = _metrics(y, oof, classes, config)
    rng = np.random.default_rng(config.seed)
    n_bg = min(config.background_size, len(X))
    background = X.iloc[np.sort(rng.choice(len(X), size=n_bg, replace=False))].reset_index(drop=True)
    synthetic = config.synthetic_training_data
    if synthetic is None:
        synthetic = detect_synthetic(frame, source)
    card = _card(config, schema, pipeline, classes, y, best, inner_score, cv_metrics, fold_metrics, test_metrics,
                 split_info, int(is_test.sum()), synthetic, source, seconds)
    return TrainResult(pipeline=pipeline, card=card, background=background, cv_predictions=cv_pred,
                       cv_metrics=cv_metrics, fold_metrics=fold_metrics, test_predictions=test_pred,
                       test_metrics=test_metrics)


def _card(config: TrainConfig, schema: FeatureSchema, pipeline: Any, classes: list[str], y: np.ndarray,
          best: dict[str, Any], inner_score: float | None, cv_metrics: dict[str, float], fold_metrics: pd.DataFrame,
          test_metrics: dict[str, float] | None, split_info: dict[str, Any], n_test: int, synthetic: bool,
          source: str | Path | None, seconds: float) -> dict[str, Any]:
    """The model card (package.save_package adds checksums and the trusted-type list)."""
    described = describe(pipeline, config.classifier)
    described["classifier"].update({
        "best_params": json_safe(best),
        "class_weighting": class_weighting(config.classifier, config.class_weight),
    })
    fold_mean, fold_sd = _summary(fold_metrics)
    n_classes = len(classes)
    positive = None
    if n_classes == 2:
        positive = config.positive if config.positive is not None else classes[1]
    labels, counts = np.unique(y, return_counts=True)
    card: dict[str, Any] = {
        "name": f"{config.label} ~ {config.feature_set} ({config.classifier})",
        "created_utc": provenance()["created_utc"],
        "task": {"label": config.label, "type": "binary" if n_classes == 2 else "multiclass",
                 "classes": classes, "positive_class": positive, "topk": min(config.topk, n_classes)},
        "classes": classes,
        "feature_set": config.feature_set,
        "feature_names": schema.names,
        "features": schema.to_json(),
        "id_column": config.id_column,
        **described,
        "selection": config.selection.to_json(),
        "selected_inputs": model_input_names(pipeline),
        "search": {"grid": config.grid, "param_grid": json_safe(param_grid(config.classifier, config.grid)),
                   "scoring": config.scoring, "inner_folds": config.inner_folds,
                   "inner_cv_score": inner_score},
        "training": {
            "n_cases": int(len(y)),
            "label_counts": {str(k): int(v) for k, v in zip(labels, counts, strict=True)},
            "n_test_cases": n_test,
            "split": split_info,
            "source": {"path": None if source is None else str(source), "sha256": _file_sha256(source)},
            "fit_seconds": round(seconds, 2),
        },
        "cv_metrics": {
            "scheme": f"nested stratified CV: {config.cv_folds} outer x {config.inner_folds} inner folds, "
                      f"shuffled with seed {config.seed}",
            "pooled_out_of_fold": json_safe(key_metrics(cv_metrics, n_classes)),
            "fold_mean": json_safe(fold_mean),
            "fold_sd": json_safe(fold_sd),
        },
        "test_metrics": json_safe(key_metrics(test_metrics, n_classes)) if test_metrics else None,
        "feature_extraction": json_safe(feature_provenance(source)),
        "seed": config.seed,
        "synthetic_training_data": bool(synthetic),
        "intended_use": INTENDED_USE,
        "library_versions": library_versions(),
        "metrics_convention": "SpineMetsCore.stats.classification_metrics (sklearn conventions)",
    }
    return card  # the synthetic-data warning is derived from the flag on every load (SpineMetsCore.packages)


# ----------------------------------------------------------------------------- outputs
def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def training_reports(result: TrainResult) -> dict[str, bytes]:
    """Report files stored with the package: predictions (``stats evaluate`` format) and all metrics."""
    files = {
        "cv_predictions.csv": _csv_bytes(result.cv_predictions),
        "cv_folds.csv": _csv_bytes(result.fold_metrics),
        "metrics.json": (json.dumps(json_safe({"cv": result.cv_metrics, "test": result.test_metrics}), indent=2)
                         + "\n").encode("utf-8"),
    }
    if result.test_predictions is not None:
        files["test_predictions.csv"] = _csv_bytes(result.test_predictions)
    return files


def save_training(result: TrainResult, out: str | Path) -> Path:
    """Write the model package (folder or .zip) with its training reports."""
    return save_package(out, result.pipeline, result.card, result.background, extra_files=training_reports(result))


def _primary(n_classes: int) -> str:
    return "auc" if n_classes == 2 else "auc_macro_ovr"


def train_all(
    frame: pd.DataFrame,
    config: TrainConfig,
    out: str | Path | None = None,
    progress: ProgressCallback | None = None,
    source: str | Path | None = None,
    classifiers: tuple[str, ...] = CLASSIFIERS,
) -> tuple[dict[str, TrainResult], pd.DataFrame]:
    """Train each classifier on the same folds; return results and the comparison table.

    With ``out``: packages in ``out/<classifier>/``, ``out/comparison.csv`` (with
    provenance) and ``out/test_predictions_all.csv`` (long format with a ``model``
    column, for ``spinemets stats evaluate --model-column model``).
    """
    results: dict[str, TrainResult] = {}
    failures: dict[str, str] = {}
    frame = exclude_failed_rows(frame, str(source) if source is not None else "features")  # warn once, not per model
    per_model = config.cv_folds + 1
    total = per_model * len(classifiers)
    for i, name in enumerate(classifiers):
        def sub_progress(done: int, _total: int, offset: int = i * per_model) -> None:
            if progress is not None:
                progress(offset + done, total)

        try:
            result = train_model(frame, replace(config, classifier=name), sub_progress, source)
        except (SpineMetsError, ValueError) as exc:  # one classifier that cannot fit does not stop the others
            logger.warning("classifier %s failed: %s", name, exc)
            failures[name] = str(exc)
            continue
        results[name] = result
        if out is not None:
            save_training(result, Path(out) / name)  # atomic: a failure never leaves a partial package
    if not results:
        raise InputError("--classifier all", "every classifier failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    table = comparison_table(results, config)
    table.attrs["failures"] = failures
    if out is not None:
        out = Path(out)
        prov = provenance(operation="train --classifier all", label=config.label, feature_set=config.feature_set,
                          seed=config.seed, source=None if source is None else str(source), failed_models=failures,
                          synthetic_training_data=next(iter(results.values())).card["synthetic_training_data"])
        write_table_csv(table, out / "comparison.csv", prov)
        tests = [r.test_predictions.assign(model=name) for name, r in results.items() if r.test_predictions is not None]
        if tests:
            write_table_csv(pd.concat(tests, ignore_index=True), out / "test_predictions_all.csv", prov)
        cvs = [r.cv_predictions.assign(model=name) for name, r in results.items()]
        write_table_csv(pd.concat(cvs, ignore_index=True), out / "cv_predictions_all.csv", prov)
    return results, table


def comparison_table(results: Mapping[str, TrainResult], config: TrainConfig) -> pd.DataFrame:
    """One row per classifier: CV (and test) headline metrics, chosen parameters, rank by CV AUC."""
    rows = []
    n_classes = len(next(iter(results.values())).card["classes"])
    for name, r in results.items():
        row: dict[str, Any] = {"model": name, "description": CLASSIFIER_NAMES[name]}
        row.update({f"cv_{k}": v for k, v in key_metrics(r.cv_metrics, n_classes).items()})
        row.update({f"test_{k}": v for k, v in key_metrics(r.test_metrics, n_classes).items()})
        row["best_params"] = json.dumps(r.card["classifier"]["best_params"], sort_keys=True)
        row["fit_seconds"] = r.card["training"]["fit_seconds"]
        rows.append(row)
    table = pd.DataFrame(rows)
    primary = f"cv_{_primary(n_classes)}"
    table["rank"] = table[primary].rank(ascending=False, method="min").astype(int)
    if n_classes == 2 and all(r.test_predictions is not None for r in results.values()):
        _delong_vs_best(table, results, config)
    return table.sort_values(["rank", "model"]).reset_index(drop=True)


def _delong_vs_best(table: pd.DataFrame, results: Mapping[str, TrainResult], config: TrainConfig) -> None:
    """Paired DeLong p-value of each model's test AUC against the CV-best model (statistics package)."""
    best = str(table.loc[table["rank"].idxmin(), "model"])
    card = results[best].card
    positive = card["task"]["positive_class"]
    ref = results[best].test_predictions
    truth = ref[config.label].to_numpy()
    col = f"prob_{positive}"
    pvalues = []
    for name in table["model"]:
        if name == best:
            pvalues.append(np.nan)
            continue
        other = results[name].test_predictions
        try:
            res = delong_roc_test(truth == positive, ref[col].to_numpy(), other[col].to_numpy(), direction="<")
            pvalues.append(res.p_value)
        except StatsInputError as exc:
            logger.info("DeLong %s vs %s undefined: %s", name, best, exc)
            pvalues.append(np.nan)
    table["test_delong_p_vs_best"] = pvalues
    table["best_by_cv"] = best
