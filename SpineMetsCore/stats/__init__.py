"""Study statistics for SpineMets, each following a named reference implementation.

==========================  =====================================================
statistic                   reference convention
==========================  =====================================================
accuracy, precision, ...    scikit-learn ``sklearn.metrics`` (zero_division=0)
ROC AUC                     sklearn ``roc_auc_score`` (OvR for multi-class)
DeLong CI / tests           R pROC ``ci.auc`` / ``roc.test`` (fast DeLong, Sun & Xu)
bootstrap CIs / test        pROC stratified bootstrap, percentile (BCa optional)
calibration intercept/slope R rms ``val.prob``; citl = offset-model intercept
Hosmer-Lemeshow             R ResourceSelection ``hoslem.test`` (>= 0.3-6)
decision curves             R dcurves ``dca`` / ``net_intervention_avoided``
Table 1 tests               scipy.stats, choices mirroring R defaults
paired t / Wilcoxon         scipy ``ttest_rel`` / ``wilcoxon`` (R ``t.test``/``wilcox.test`` paired)
==========================  =====================================================

Errors are :class:`StatsInputError` (an ``InputError``, so a ``SpineMetsError`` and a ``ValueError``) naming the bad argument
or column; :class:`SingleClassError` and :class:`MissingValueError` subclass it.
"""

from ._common import MissingValueError, SingleClassError, StatsInputError, json_safe
from .bootstrap import (
    DEFAULT_N_BOOT,
    BootstrapResult,
    BootstrapTestResult,
    bootstrap_auc_difference_test,
    bootstrap_ci,
    bootstrap_classification_metrics,
    bootstrap_metric,
    stratified_bootstrap_indices,
)
from .calibration import (
    HosmerLemeshowResult,
    LogisticCalibration,
    brier_score,
    calibration_curve,
    calibration_summary,
    hosmer_lemeshow,
    logistic_calibration,
    r_quantile_type7,
)
from .cohort_tests import TABLE1_COLUMNS, compare_categorical, compare_continuous, compare_groups
from .dca import DCA_COLUMNS, decision_curve, net_benefit, parse_threshold_spec, threshold_grid
from .delong import (
    AUCResult,
    ROCTestResult,
    delong_auc,
    delong_ovr_test,
    delong_placements,
    delong_roc_test,
    delong_roc_test_unpaired,
    roc_direction,
)
from .metrics import (
    BINARY_METRICS,
    binary_metrics,
    class_ranks,
    classification_metrics,
    confusion_matrix,
    roc_auc,
    roc_curve_points,
    top_k_accuracy,
)
from .paired import PairedResult, paired_tests

__all__ = [
    "StatsInputError", "SingleClassError", "MissingValueError", "json_safe",
    "DEFAULT_N_BOOT", "BootstrapResult", "BootstrapTestResult", "bootstrap_auc_difference_test",
    "bootstrap_ci", "bootstrap_classification_metrics", "bootstrap_metric",
    "stratified_bootstrap_indices",
    "HosmerLemeshowResult", "LogisticCalibration", "brier_score", "calibration_curve",
    "calibration_summary", "hosmer_lemeshow", "logistic_calibration", "r_quantile_type7",
    "TABLE1_COLUMNS", "compare_categorical", "compare_continuous", "compare_groups",
    "DCA_COLUMNS", "decision_curve", "net_benefit", "parse_threshold_spec", "threshold_grid",
    "AUCResult", "ROCTestResult", "delong_auc", "delong_ovr_test", "delong_placements",
    "delong_roc_test", "delong_roc_test_unpaired", "roc_direction",
    "BINARY_METRICS", "binary_metrics", "class_ranks", "classification_metrics", "confusion_matrix",
    "roc_auc", "roc_curve_points", "top_k_accuracy",
    "PairedResult", "paired_tests",
]
