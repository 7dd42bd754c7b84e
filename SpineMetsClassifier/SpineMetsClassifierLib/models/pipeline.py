"""The model: one scikit-learn Pipeline from a raw features row to class probabilities.

Steps (names are the keys of ``Pipeline.named_steps``)::

    prep         ColumnTransformer: numeric -> median imputation -> standard scaling;
                 categorical (EDF items) -> constant "missing" imputation -> one-hot
    variance     VarianceThreshold (drops constant columns)
    correlation  CorrelationFilter (|r| above a threshold)
    univariate   SelectKBest(ANOVA F)                       (optional)
    mrmr         MRMRSelector                                (optional)
    l1           L1Selector (L1/LASSO logistic regression)    (optional)
    clf          one of the seven classifiers of the studies

Keeping everything in one Pipeline means the package stores one object, cross-
validation refits the selection inside each fold (no selection leakage), and
SHAP can map every classifier input back to the EDF item or feature it came from
(:func:`feature_origins`). Every random element takes the same ``seed``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight

from SpineMetsCore.errors import InputError

from .schema import FeatureSchema
from .selectors import CorrelationFilter, L1Selector, MRMRSelector

CLASSIFIERS: tuple[str, ...] = ("lr", "svm", "rf", "gb", "knn", "nb", "mlp")
CLASSIFIER_NAMES: dict[str, str] = {
    "lr": "logistic regression",
    "svm": "support vector machine (RBF, Platt-scaled probabilities)",
    "rf": "random forest",
    "gb": "gradient boosting (scikit-learn HistGradientBoosting)",
    "knn": "k-nearest neighbours",
    "nb": "Gaussian naive Bayes",
    "mlp": "multi-layer perceptron",
}
MISSING_CATEGORY = "missing"
"""Imputed value of an empty categorical cell (its own one-hot column)."""

# How each classifier honours class weighting: an estimator parameter, a
# ``sample_weight`` at fit time, or not at all (k-NN has no notion of it).
_WEIGHT_BY_PARAMETER = {"lr", "svm", "rf", "gb"}
_WEIGHT_BY_SAMPLE = {"nb", "mlp"}

PARAM_GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    # grid name -> classifier -> {parameter of the ``clf`` step: values}
    "default": {
        "lr": {"C": [0.01, 0.1, 1.0, 10.0]},
        "svm": {"estimator__C": [0.3, 1.0, 3.0], "estimator__gamma": ["scale", 0.01]},
        "rf": {"max_depth": [None, 8], "min_samples_leaf": [1, 5]},
        "gb": {"learning_rate": [0.03, 0.1], "max_depth": [3, None]},
        "knn": {"n_neighbors": [5, 15, 31], "weights": ["uniform", "distance"]},
        "nb": {"var_smoothing": [1e-9, 1e-6, 1e-3]},
        "mlp": {"alpha": [1e-3, 1e-1, 1.0], "hidden_layer_sizes": [(32,), (64, 32)]},
    },
    "small": {
        "lr": {"C": [0.1, 1.0]},
        "svm": {"estimator__C": [0.3, 3.0]},
        "rf": {"min_samples_leaf": [1, 5]},
        "gb": {"learning_rate": [0.05, 0.1]},
        "knn": {"n_neighbors": [9, 21]},
        "nb": {"var_smoothing": [1e-9, 1e-3]},
        "mlp": {"alpha": [1e-2, 1.0]},
    },
    "none": {name: {} for name in CLASSIFIERS},
}


@dataclass(frozen=True)
class SelectionConfig:
    """Feature-selection steps; ``None`` switches a step off."""

    variance_threshold: float | None = 0.0
    correlation_threshold: float | None = 0.95
    univariate_k: int | None = None
    mrmr_k: int | None = None
    l1_C: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelectionConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def default_threads() -> int:
    """Thread cap for model fitting/prediction: ``SPINEMETS_THREADS`` or 1."""
    try:
        return max(1, int(os.environ.get("SPINEMETS_THREADS", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def limited_threads(n: int | None = None) -> Iterator[None]:
    """Cap OpenMP/BLAS threads while fitting or predicting.

    HistGradientBoosting spins one OpenMP thread per core; on a busy shared
    machine that made a 300-case fit take 40 s instead of 1.7 s. Our cohorts are
    hundreds of rows, where one thread is as fast, and results do not depend on it.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n or default_threads()):
        yield


GB_MIN_SAMPLES_LEAF = 20
"""HistGradientBoosting's own ``min_samples_leaf`` (kept from 200 training rows up)."""


def gb_min_samples_leaf(n_fit: int) -> int:
    """``min_samples_leaf`` for gradient boosting fitted on ``n_fit`` rows: ``min(20, max(2, n_fit // 10))``.

    scikit-learn's default of 20 means a tree on fewer than 40 rows cannot split at
    all: every tree is one leaf and every case gets the class prior (AUC exactly
    0.5 on a 38-case study cohort). A tenth of the rows per leaf still regularises
    like the default does at 200 rows (leaves of >= 10 % of the data, so at most
    ten leaves), the floor of 2 keeps single-case leaves out, and from 200 rows up
    the library default applies unchanged.
    """
    return min(GB_MIN_SAMPLES_LEAF, max(2, int(n_fit) // 10))


def check_classifier(name: str) -> str:
    if name not in CLASSIFIERS:
        raise InputError("--classifier", f"unknown classifier {name!r}; choose from {CLASSIFIERS} or 'all'")
    return name


def make_classifier(name: str, seed: int = 0, class_weight: str | None = "balanced") -> Any:
    """The classifier step, untuned (hyper-parameters come from :data:`PARAM_GRIDS`)."""
    check_classifier(name)
    weight = class_weight if name in _WEIGHT_BY_PARAMETER else None
    if name == "lr":
        return LogisticRegression(C=1.0, max_iter=5000, class_weight=weight, random_state=seed)
    if name == "svm":
        # SVC(probability=True) is deprecated in scikit-learn 1.9; this is the replacement it
        # names: Platt scaling fitted on internal CV predictions, one SVC refitted on all data.
        from sklearn.calibration import CalibratedClassifierCV

        svc = SVC(kernel="rbf", C=1.0, gamma="scale", class_weight=weight, random_state=seed)
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)
    if name == "rf":
        return RandomForestClassifier(n_estimators=200, class_weight=weight, random_state=seed, n_jobs=1)
    if name == "gb":
        return HistGradientBoostingClassifier(max_iter=150, early_stopping=False, class_weight=weight, random_state=seed)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=15)
    if name == "nb":
        return GaussianNB()
    return MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=seed)


def class_weighting(name: str, class_weight: str | None) -> str:
    """How class weighting is applied for ``name`` (for the model card)."""
    if class_weight is None:
        return "none"
    if name in _WEIGHT_BY_PARAMETER:
        return f"class_weight={class_weight!r}"
    if name in _WEIGHT_BY_SAMPLE:
        return f"sample_weight ({class_weight})"
    return "not supported by this classifier"


def fit_params(name: str, y: Any, class_weight: str | None) -> dict[str, Any]:
    """``Pipeline.fit`` keyword arguments (sample weights for classifiers without ``class_weight``)."""
    if class_weight is None or name not in _WEIGHT_BY_SAMPLE:
        return {}
    return {"clf__sample_weight": compute_sample_weight(class_weight, np.asarray(y))}


def build_pipeline(
    schema: FeatureSchema,
    classifier: str,
    selection: SelectionConfig | None = None,
    seed: int = 0,
    class_weight: str | None = "balanced",
) -> Pipeline:
    """Unfitted pipeline for ``schema``'s columns (a DataFrame in schema order goes in)."""
    selection = selection or SelectionConfig()
    transformers = []
    if schema.numeric:
        transformers.append(("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                                              ("scale", StandardScaler())]), schema.numeric))
    if schema.categorical:
        categories = [list(schema.spec(c).categories) + [MISSING_CATEGORY] for c in schema.categorical]
        transformers.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("onehot", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)),
        ]), schema.categorical))
    if not transformers:
        raise InputError("features", "no feature columns")
    steps: list[tuple[str, Any]] = [("prep", ColumnTransformer(transformers, remainder="drop"))]
    if selection.variance_threshold is not None:
        steps.append(("variance", VarianceThreshold(selection.variance_threshold)))
    if selection.correlation_threshold is not None:
        steps.append(("correlation", CorrelationFilter(selection.correlation_threshold)))
    if selection.univariate_k is not None:
        steps.append(("univariate", SelectKBest(f_classif, k=int(selection.univariate_k))))
    if selection.mrmr_k is not None:
        steps.append(("mrmr", MRMRSelector(int(selection.mrmr_k))))
    if selection.l1_C is not None:
        steps.append(("l1", L1Selector(float(selection.l1_C), seed)))
    steps.append(("clf", make_classifier(classifier, seed, class_weight)))
    return Pipeline(steps)


def param_grid(classifier: str, grid: str = "default") -> dict[str, list[Any]]:
    """Hyper-parameter grid of the ``clf`` step, as ``GridSearchCV`` keys (``clf__C``)."""
    if grid not in PARAM_GRIDS:
        raise InputError("--grid", f"unknown grid {grid!r}; choose from {tuple(PARAM_GRIDS)}")
    return {f"clf__{k}": list(v) for k, v in PARAM_GRIDS[grid][check_classifier(classifier)].items()}


def _prep_columns(prep: ColumnTransformer) -> list[tuple[str, str]]:
    """(original feature, readable name) of every output column of the fitted ColumnTransformer."""
    columns: list[tuple[str, str]] = []
    for name, transformer, features in prep.transformers_:
        if name == "num":
            columns.extend((f, f) for f in features)
        elif name == "cat":
            encoder = transformer.named_steps["onehot"]
            for feature, cats in zip(features, encoder.categories_, strict=True):
                columns.extend((feature, f"{feature}={c}") for c in cats)
    return columns


def _through_selection(pipeline: Pipeline, values: list[Any]) -> list[Any]:
    for _name, step in pipeline.steps[1:-1]:
        if step == "passthrough" or step is None:
            continue
        mask = step.get_support()
        values = [v for v, keep in zip(values, mask, strict=True) if keep]
    return values


def feature_origins(pipeline: Pipeline) -> list[str]:
    """For each classifier input column of a fitted pipeline: the original feature it came from."""
    return [origin for origin, _ in _through_selection(pipeline, _prep_columns(pipeline.named_steps["prep"]))]


def model_input_names(pipeline: Pipeline) -> list[str]:
    """Readable names of the classifier inputs (``age``, ``t1_signal=hyper``, ...)."""
    return [name for _, name in _through_selection(pipeline, _prep_columns(pipeline.named_steps["prep"]))]


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def describe(pipeline: Pipeline, classifier: str) -> dict[str, Any]:
    """Model-card description: preprocessing, selection and classifier hyper-parameters."""
    clf = pipeline.named_steps["clf"]
    params = clf.get_params(deep=True)
    simple = {k: _plain(v) for k, v in params.items()
              if isinstance(v, (int, float, str, bool, tuple, type(None), np.integer, np.floating))}
    return {
        "preprocessing": {
            "numeric": "median imputation, standard scaling",
            "categorical": f"constant '{MISSING_CATEGORY}' imputation, one-hot (a category unseen in training is logged and encoded as none of the known ones)",
        },
        "selection_steps": [name for name, _ in pipeline.steps[1:-1]],
        "classifier": {"name": classifier, "description": CLASSIFIER_NAMES[classifier],
                       "estimator": type(clf).__name__, "hyper_parameters": simple},
    }
