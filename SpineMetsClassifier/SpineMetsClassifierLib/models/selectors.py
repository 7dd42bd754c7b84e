"""Feature selectors scikit-learn lacks: a correlation filter, mRMR and a never-empty L1 selection.

Radiomics tables hold hundreds of near-duplicate features (the same texture at
several wavelet bands); the correlation filter drops the redundant copies before
univariate or L1 selection so the model card's selected features stay readable.
Both are ordinary scikit-learn selectors (``get_support``,
``get_feature_names_out``) and are on the model package's trusted-type list.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted


def _as_matrix(estimator: BaseEstimator, X: Any, fitting: bool) -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{type(estimator).__name__} expects a 2-D array, got shape {arr.shape}")
    if fitting:
        estimator.n_features_in_ = arr.shape[1]
    elif arr.shape[1] != estimator.n_features_in_:
        raise ValueError(f"{type(estimator).__name__} was fitted on {estimator.n_features_in_} features, got {arr.shape[1]}")
    return arr


def abs_correlation(X: np.ndarray) -> np.ndarray:
    """|Pearson r| between columns; a constant column correlates 0 with everything (and 1 with itself)."""
    centred = X - np.nanmean(X, axis=0)
    centred = np.nan_to_num(centred)
    norm = np.sqrt((centred**2).sum(axis=0))
    safe = np.where(norm > 0, norm, 1.0)
    corr = np.abs((centred.T @ centred) / np.outer(safe, safe))
    corr[norm == 0, :] = 0.0
    corr[:, norm == 0] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


class CorrelationFilter(SelectorMixin, BaseEstimator):
    """Keep a column unless its |Pearson r| with an earlier kept column exceeds ``threshold``.

    Greedy in column order, so the first of two duplicates survives: with the
    preprocessing order (numeric first, then one-hot) a measured feature is
    preferred over a one-hot copy of it.
    """

    def __init__(self, threshold: float = 0.95) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> CorrelationFilter:
        arr = _as_matrix(self, X, fitting=True)
        if not 0.0 < float(self.threshold) <= 1.0:
            raise ValueError(f"CorrelationFilter.threshold must be in (0, 1], got {self.threshold}")
        corr = abs_correlation(arr)
        keep: list[int] = []
        for j in range(arr.shape[1]):
            if all(corr[j, k] <= self.threshold for k in keep):
                keep.append(j)
        mask = np.zeros(arr.shape[1], dtype=bool)
        mask[keep] = True
        self.support_mask_ = mask
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_mask_")
        return self.support_mask_


class MRMRSelector(SelectorMixin, BaseEstimator):
    """Minimum-redundancy maximum-relevance selection of ``k`` columns (FCQ variant).

    Relevance is the ANOVA F statistic with the label, redundancy the mean |r|
    with the columns already chosen; each step takes the column maximising
    relevance / redundancy (Ding and Peng 2005, "F-test correlation quotient").
    """

    def __init__(self, k: int = 10) -> None:
        self.k = k

    def fit(self, X: Any, y: Any) -> MRMRSelector:
        arr = _as_matrix(self, X, fitting=True)
        n = arr.shape[1]
        k = min(int(self.k), n)
        if k < 1:
            raise ValueError(f"MRMRSelector.k must be >= 1, got {self.k}")
        with np.errstate(divide="ignore", invalid="ignore"):
            relevance = np.nan_to_num(f_classif(np.nan_to_num(arr), y)[0], nan=0.0, posinf=0.0)
        corr = abs_correlation(arr)
        chosen = [int(np.argmax(relevance))]
        redundancy_sum = corr[:, chosen[0]].copy()
        while len(chosen) < k:
            score = relevance / np.maximum(redundancy_sum / len(chosen), 1e-6)
            score[chosen] = -np.inf
            best = int(np.argmax(score))
            chosen.append(best)
            redundancy_sum += corr[:, best]
        mask = np.zeros(n, dtype=bool)
        mask[chosen] = True
        self.support_mask_ = mask
        self.ranking_ = np.array(chosen, dtype=np.int64)
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_mask_")
        return self.support_mask_


def l1_logistic(C: float, seed: int) -> LogisticRegression:
    """L1 (LASSO) logistic regression on every scikit-learn version we support."""
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":  # >= 1.8
        return LogisticRegression(l1_ratio=1.0, C=C, solver="saga", max_iter=5000, random_state=seed)
    return LogisticRegression(penalty="l1", C=C, solver="saga", max_iter=5000, random_state=seed)


class L1Selector(SelectorMixin, BaseEstimator):
    """Columns with a non-zero coefficient in an L1 (LASSO) logistic regression.

    Unlike ``SelectFromModel``, never returns zero columns: when the penalty
    zeroes every coefficient (strong ``C`` on a small fold) the single column
    with the largest |coefficient| is kept, so a fold cannot break the pipeline.
    ``importances_`` (sum of |coefficients| over classes) is kept for the card.
    """

    def __init__(self, C: float = 1.0, random_state: int = 0) -> None:
        self.C = C
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> L1Selector:
        arr = _as_matrix(self, X, fitting=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = l1_logistic(float(self.C), int(self.random_state)).fit(arr, y)
        importances = np.abs(np.atleast_2d(model.coef_)).sum(axis=0)
        mask = importances > 1e-10
        if not mask.any():
            mask[int(np.argmax(importances))] = True
        self.importances_ = importances
        self.support_mask_ = mask
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_mask_")
        return self.support_mask_
