"""Classification metrics for a predictions table (truth + per-class probabilities).

Reference implementation: scikit-learn ``sklearn.metrics`` (accuracy_score,
precision_recall_fscore_support, confusion_matrix, roc_auc_score,
top_k_accuracy_score, brier_score_loss).  Conventions:

* Predicted class = argmax of the probabilities; ties go to the class that
  comes first in ``classes`` (``numpy.argmax``).  Rows need not sum to 1.
* Precision/recall/F1 with zero denominators are 0 (sklearn
  ``zero_division=0``).  Macro = unweighted mean over ``classes``; weighted =
  mean weighted by true support (sklearn ``average="macro"/"weighted"`` with
  ``labels=classes``).
* ROC-AUC: Mann-Whitney estimate with ties counted 1/2 (sklearn
  ``roc_auc_score``, pROC ``auc`` with direction "<").  Multi-class: one-vs-rest
  per class on column k, macro = unweighted mean, weighted = prevalence-weighted
  (sklearn ``multi_class="ovr"``).  This is not pROC's ``multiclass.roc``
  (Hand & Till pairwise).  A class absent from the truth has an undefined AUC
  (NaN), and then so does the macro AUC.
* Top-k: classes are ranked by decreasing probability with the same tie rule as
  argmax, so top-1 accuracy equals accuracy.  (sklearn ``top_k_accuracy_score``
  breaks ties toward the later class; identical whenever there are no ties.)
  Per class c and k:

  - top-k recall[c]    = #(truth = c and c in top k) / #(truth = c)
  - top-k precision[c] = #(truth = c and c in top k) / #(c in top k)
  - top-k F1[c]        = harmonic mean of the two = 2 TP_k / (#truth=c + #c in top k)

  i.e. "c in the top k" plays the role of "predicted c"; for k = 1 these are
  the ordinary precision, recall and F1.
* Brier score: binary = mean (p_positive - y)^2; multi-class = mean over rows
  of sum over classes (p_k - 1[y=k])^2 (Brier 1950; sklearn
  ``brier_score_loss`` with ``scale_by_half="auto"``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from ._common import (
    SingleClassError,
    StatsInputError,
    as_binary_truth,
    as_label_array,
    as_score_array,
    check_same_length,
    require_both_classes,
)

__all__ = [
    "roc_auc",
    "roc_curve_points",
    "encode_truth",
    "validate_probabilities",
    "class_ranks",
    "confusion_matrix",
    "classification_metrics",
    "binary_metrics",
    "top_k_accuracy",
    "BINARY_METRICS",
]

BINARY_METRICS = ("auc", "accuracy", "sensitivity", "recall", "specificity", "precision", "ppv",
                  "npv", "f1", "brier")


def _auc_cases_controls(cases: np.ndarray, controls: np.ndarray) -> float:
    """Mann-Whitney AUC = P(case > control) + 0.5 P(tie), via midranks."""
    m, n = cases.size, controls.size
    ranks = sps.rankdata(np.concatenate([cases, controls]), method="average")
    return float((ranks[:m].sum() - m * (m + 1) / 2.0) / (m * n))


def roc_auc(y_true: Any, score: Any, *, positive: Hashable | None = None, direction: str = "<",
            score_name: str = "score", truth_name: str = "y_true") -> float:
    """ROC AUC (sklearn ``roc_auc_score`` for ``direction="<"``; pROC ``auc`` otherwise).

    ``direction="<"``: higher score = case (AUC may be below 0.5);
    ``">"``: lower score = case; ``"auto"``: pROC's median rule.
    Raises SingleClassError when the truth lacks cases or controls.
    """
    from .delong import _split  # local import: delong imports nothing from here

    y = as_binary_truth(y_true, truth_name, positive)
    s = as_score_array(score, score_name, allow_inf=True)
    check_same_length(**{truth_name: y, score_name: s})
    require_both_classes(y, truth_name)
    if direction not in ("auto", "<", ">"):
        raise StatsInputError("direction", f"must be 'auto', '<' or '>', got {direction!r}")
    cases, controls, _ = _split(y, s, direction)
    return _auc_cases_controls(cases, controls)


def roc_curve_points(y_true: Any, score: Any, *, positive: Hashable | None = None,
                     direction: str = "<", score_name: str = "score",
                     truth_name: str = "y_true") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve: (fpr, tpr, thresholds) with a case test-positive if score >= threshold.

    Same points as sklearn ``roc_curve(drop_intermediate=False)`` / pROC ``coords``
    (for direction ">", test-positive if score <= threshold).  Starts at (0, 0).
    """
    from .delong import _split

    y = as_binary_truth(y_true, truth_name, positive)
    s = as_score_array(score, score_name, allow_inf=True)
    check_same_length(**{truth_name: y, score_name: s})
    require_both_classes(y, truth_name)
    cases, controls, used = _split(y, s, direction)
    allv = np.concatenate([cases, controls])
    lab = np.concatenate([np.ones(cases.size, bool), np.zeros(controls.size, bool)])
    order = np.argsort(-allv, kind="mergesort")
    v, lab = allv[order], lab[order]
    tps = np.cumsum(lab)
    fps = np.cumsum(~lab)
    last = np.r_[np.flatnonzero(np.diff(v)), v.size - 1]
    tpr = np.r_[0.0, tps[last] / cases.size]
    fpr = np.r_[0.0, fps[last] / controls.size]
    thr = v[last]
    thr = -thr if used == ">" else thr
    return fpr, tpr, np.r_[np.inf if used == "<" else -np.inf, thr]


def encode_truth(y_true: Any, classes: Sequence[Hashable], truth_name: str = "y_true") -> np.ndarray:
    """Integer codes of the truth labels in ``classes`` order; unknown labels raise."""
    labels = as_label_array(y_true, truth_name)
    lookup = {str(c).strip(): i for i, c in enumerate(classes)}
    if len(lookup) != len(classes):
        raise StatsInputError("classes", f"class names must be unique, got {list(classes)}")
    codes = np.empty(labels.size, dtype=np.int64)
    for i, v in enumerate(labels):
        key = str(v).strip()
        if key not in lookup:
            # accept 1 == "1.0" style numeric equality
            try:
                fv = float(key)
                key = next(k for k in lookup if _num_eq(k, fv))
            except (ValueError, StopIteration):
                raise StatsInputError(
                    truth_name, f"label {v!r} (row {i}) is not one of the classes {list(classes)}"
                ) from None
        codes[i] = lookup[key]
    return codes


def _num_eq(text: str, value: float) -> bool:
    try:
        return float(text) == value
    except ValueError:
        return False


def validate_probabilities(proba: Any, n_rows: int, classes: Sequence[Hashable],
                           name: str = "proba") -> np.ndarray:
    """An (n, K) float matrix of probabilities in [0, 1] without NaN."""
    try:
        p = np.asarray(proba, dtype=float)
    except (TypeError, ValueError):
        raise StatsInputError(name, "must be numeric") from None
    if p.ndim != 2 or p.shape != (n_rows, len(classes)):
        raise StatsInputError(name, f"must have shape ({n_rows}, {len(classes)}), got {p.shape}")
    if len(classes) < 2:
        raise StatsInputError("classes", "need at least two classes")
    for j, c in enumerate(classes):
        as_score_array(p[:, j], f"{name}[{c}]")
        bad = (p[:, j] < 0) | (p[:, j] > 1)
        if bad.any():
            raise StatsInputError(f"{name}[{c}]", f"probabilities must lie in [0, 1] "
                                  f"({int(bad.sum())} value(s) outside, first at row {int(np.argmax(bad))})")
    return p


def class_ranks(proba: np.ndarray) -> np.ndarray:
    """0-based rank of every class in every row (0 = most probable; ties by column order)."""
    order = np.argsort(-proba, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(proba.shape[0])[:, None]
    ranks[rows, order] = np.arange(proba.shape[1])[None, :]
    return ranks


def confusion_matrix(y_true: Any, proba: Any, classes: Sequence[Hashable],
                     truth_name: str = "y_true") -> np.ndarray:
    """Confusion matrix, rows = truth, columns = argmax prediction (sklearn orientation)."""
    codes = encode_truth(y_true, classes, truth_name)
    p = validate_probabilities(proba, codes.size, classes)
    k = len(classes)
    pred = np.argmax(p, axis=1)
    return np.bincount(codes * k + pred, minlength=k * k).reshape(k, k)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _codes_metrics(codes: np.ndarray, proba: np.ndarray, classes: Sequence[Hashable],
                   topk: int, positive_index: int | None) -> dict[str, float]:
    """All metrics from integer-coded truth; fast enough to run per bootstrap replicate."""
    n, k = proba.shape
    names = [str(c) for c in classes]
    pred = np.argmax(proba, axis=1)
    cm = np.bincount(codes * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)
    tn = n - support - predicted + tp
    specificity = _safe_div(tn, n - support)
    weights = support / support.sum()

    out: dict[str, float] = {"accuracy": float(tp.sum() / n)}
    for label, vec in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[f"{label}_macro"] = float(vec.mean())
        out[f"{label}_weighted"] = float((vec * weights).sum())
    for j, nm in enumerate(names):
        out[f"precision[{nm}]"] = float(precision[j])
        out[f"recall[{nm}]"] = float(recall[j])
        out[f"f1[{nm}]"] = float(f1[j])
        out[f"specificity[{nm}]"] = float(specificity[j])

    aucs = np.full(k, np.nan)
    for j in range(k):
        mask = codes == j
        m = int(mask.sum())
        if 0 < m < n:
            aucs[j] = _auc_cases_controls(proba[mask, j], proba[~mask, j])
        out[f"auc[{names[j]}]"] = float(aucs[j])
    out["auc_macro_ovr"] = float(aucs.mean())  # NaN if any class is undefined
    out["auc_weighted_ovr"] = float((aucs * weights).sum())

    onehot = np.zeros_like(proba)
    onehot[np.arange(n), codes] = 1.0
    if k == 2 and positive_index is not None:
        out["brier"] = float(np.mean((proba[:, positive_index] - onehot[:, positive_index]) ** 2))
    else:
        out["brier"] = float(np.mean(((proba - onehot) ** 2).sum(axis=1)))

    if k == 2 and positive_index is not None:
        neg = 1 - positive_index
        out["auc"] = out[f"auc[{names[positive_index]}]"]
        out["sensitivity"] = float(recall[positive_index])
        out["specificity"] = float(recall[neg])
        out["ppv"] = float(precision[positive_index])
        out["npv"] = float(precision[neg])

    if topk >= 1:
        ranks = class_ranks(proba)
        true_rank = ranks[np.arange(n), codes]
        for kk in range(1, min(topk, k) + 1):
            in_top = ranks < kk
            hit = true_rank < kk
            tp_k = np.bincount(codes[hit], minlength=k).astype(float)
            pred_k = in_top.sum(axis=0).astype(float)
            rec_k = _safe_div(tp_k, support)
            prec_k = _safe_div(tp_k, pred_k)
            f1_k = _safe_div(2 * tp_k, support + pred_k)
            out[f"top{kk}_accuracy"] = float(hit.mean())
            out[f"top{kk}_recall_macro"] = float(rec_k.mean())
            out[f"top{kk}_precision_macro"] = float(prec_k.mean())
            out[f"top{kk}_f1_macro"] = float(f1_k.mean())
            for j, nm in enumerate(names):
                out[f"top{kk}_recall[{nm}]"] = float(rec_k[j])
                out[f"top{kk}_precision[{nm}]"] = float(prec_k[j])
                out[f"top{kk}_f1[{nm}]"] = float(f1_k[j])
    return out


def _positive_index(classes: Sequence[Hashable], positive: Hashable | None) -> int | None:
    if len(classes) != 2:
        if positive is not None:
            raise StatsInputError("positive", "only meaningful for two classes")
        return None
    if positive is None:
        # sklearn/pROC/dcurves: the greater label (second level) is the positive class
        from ._common import sorted_labels

        return [str(c) for c in classes].index(str(sorted_labels(classes)[1]))
    names = [str(c).strip() for c in classes]
    if str(positive).strip() not in names:
        raise StatsInputError("positive", f"{positive!r} is not one of the classes {list(classes)}")
    return names.index(str(positive).strip())


def classification_metrics(y_true: Any, proba: Any, classes: Sequence[Hashable], *, topk: int = 3,
                           positive: Hashable | None = None, truth_name: str = "y_true",
                           require_all_classes: bool = False) -> dict[str, float]:
    """Flat dict of accuracy, precision/recall/F1 (macro, weighted, per class), OvR AUCs, top-k, Brier.

    Conventions follow sklearn (see module docstring).  Keys: ``accuracy``,
    ``precision_macro``, ``f1_weighted``, ``recall[<class>]``, ``auc[<class>]``,
    ``auc_macro_ovr``, ``top2_accuracy``, ``top3_precision[<class>]``, ...;
    for two classes also ``auc``, ``sensitivity``, ``specificity``, ``ppv``,
    ``npv`` for the ``positive`` class (default: the class that sorts last).
    """
    codes = encode_truth(y_true, classes, truth_name)
    p = validate_probabilities(proba, codes.size, classes)
    if int(topk) < 0:
        raise StatsInputError("topk", f"must be >= 0, got {topk}")
    present = np.unique(codes)
    if present.size < 2:
        raise SingleClassError(truth_name, f"only one class present ({classes[int(present[0])]!r})")
    if require_all_classes and present.size < len(classes):
        missing = [classes[j] for j in range(len(classes)) if j not in set(present.tolist())]
        raise SingleClassError(truth_name, f"classes never observed in the truth: {missing}")
    return _codes_metrics(codes, p, classes, int(topk), _positive_index(classes, positive))


def top_k_accuracy(y_true: Any, proba: Any, classes: Sequence[Hashable], k: int) -> float:
    """Top-k accuracy (sklearn ``top_k_accuracy_score``; ties by column order, see module docstring)."""
    codes = encode_truth(y_true, classes)
    p = validate_probabilities(proba, codes.size, classes)
    if not 1 <= int(k) <= len(classes):
        raise StatsInputError("k", f"must be between 1 and {len(classes)}, got {k}")
    ranks = class_ranks(p)
    return float((ranks[np.arange(codes.size), codes] < int(k)).mean())


def _binary_from_arrays(y: np.ndarray, s: np.ndarray, metric: str, threshold: float,
                        direction: str) -> float:
    if metric == "auc":
        cases, controls = (s[y], s[~y]) if direction == "<" else (-s[y], -s[~y])
        if cases.size == 0 or controls.size == 0:
            return float("nan")
        return _auc_cases_controls(cases, controls)
    if metric == "brier":
        return float(np.mean((s - y) ** 2))
    pos = s >= threshold if direction == "<" else s <= threshold
    tp = float(np.sum(pos & y))
    fp = float(np.sum(pos & ~y))
    fn = float(np.sum(~pos & y))
    tn = float(np.sum(~pos & ~y))

    def div(a: float, b: float) -> float:
        return a / b if b > 0 else 0.0

    if metric == "accuracy":
        return (tp + tn) / y.size
    if metric in ("sensitivity", "recall"):
        return div(tp, tp + fn)
    if metric == "specificity":
        return div(tn, tn + fp)
    if metric in ("precision", "ppv"):
        return div(tp, tp + fp)
    if metric == "npv":
        return div(tn, tn + fn)
    if metric == "f1":
        return div(2 * tp, 2 * tp + fp + fn)
    raise StatsInputError("metric", f"unknown metric {metric!r}; choose from {BINARY_METRICS}")


def binary_metrics(y_true: Any, score: Any, *, positive: Hashable | None = None,
                   threshold: float = 0.5, direction: str = "<",
                   metrics: Sequence[str] = BINARY_METRICS, score_name: str = "score",
                   truth_name: str = "y_true") -> dict[str, float]:
    """Binary metrics of one score; test-positive when ``score >= threshold``.

    The ``>=`` rule is pROC ``coords`` for direction "<" (``<=`` for ">").
    Zero denominators give 0 (sklearn ``zero_division=0``).  ``brier`` needs
    probabilities in [0, 1].  AUC as :func:`roc_auc`.
    """
    y = as_binary_truth(y_true, truth_name, positive)
    s = as_score_array(score, score_name, allow_inf=True)
    check_same_length(**{truth_name: y, score_name: s})
    require_both_classes(y, truth_name)
    if direction == "auto":
        from .delong import roc_direction

        direction = roc_direction(s[y], s[~y])
    if direction not in ("<", ">"):
        raise StatsInputError("direction", f"must be 'auto', '<' or '>', got {direction!r}")
    if "brier" in metrics and ((s < 0) | (s > 1)).any():
        raise StatsInputError(score_name, "Brier score needs probabilities in [0, 1]")
    return {m: _binary_from_arrays(y, s, m, float(threshold), direction) for m in metrics}
