"""ROC AUC with DeLong variance, DeLong CIs and DeLong tests of two ROC curves.

Reference implementation: R package pROC (Robin et al. 2011), functions
``roc`` (direction), ``auc``, ``ci.auc(method="delong")`` and
``roc.test(method="delong")``.  The structural components ("placements") are
computed with the fast midrank algorithm of Sun & Xu (2014, IEEE Signal
Processing Letters 21:1389), which gives exactly the values of DeLong,
DeLong & Clarke-Pearson (1988, Biometrics 44:837) and of pROC's
``delongPlacementsCpp``:

* case placement      V10_i = (#controls < x_i + 0.5 #controls == x_i) / n
* control placement   V01_j = (#cases > y_j + 0.5 #cases == y_j) / m
* AUC = mean(V10) = mean(V01)
* Var(AUC) = var(V10)/m + var(V01)/n  (sample variances, denominator m-1 / n-1)

Conventions copied from pROC (checked against its source and its unit tests on
the aSAH data set):

* direction ``"auto"``: ``"<"`` (controls < cases: higher score = case) when
  ``median(controls) <= median(cases)``, else ``">"``.  ``">"`` is computed by
  negating the scores.  Each curve of a comparison gets its own direction, as
  when pROC's ``roc.test`` builds two ``roc`` objects; a direction mismatch
  only warns (pROC: "DeLong's test should not be applied to ROC curves with a
  different direction").
* ``ci.auc``: normal CI ``auc +- z * se`` truncated to [0, 1].
* paired test: ``Z = (auc1 - auc2) / sqrt(L S L')``; when both the difference
  and its standard error are 0, ``Z = 0`` (p = 1).  CI of the difference:
  ``d +- z * se`` (pROC >= 1.16).
* unpaired test: ``D = (auc1 - auc2) / sqrt(S1 + S2)`` referred to a Student t
  with Welch-Satterthwaite df ``(S1+S2)^2 / (S1^2/(N1-1) + S2^2/(N2-1))`` where
  N is the total number of observations of each curve.
* p-values: two-sided ``2 P(T > |t|)``; ``"greater"`` (auc1 > auc2) is
  ``P(T > t)``; ``"less"`` is ``P(T < t)``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from ._common import (
    IntervalResult,
    SingleClassError,
    StatsInputError,
    as_binary_truth,
    as_label_array,
    as_score_array,
    check_alternative,
    check_conf_level,
    check_same_length,
    require_both_classes,
)

__all__ = [
    "AUCResult",
    "ROCTestResult",
    "roc_direction",
    "delong_placements",
    "delong_auc",
    "delong_roc_test",
    "delong_roc_test_unpaired",
    "delong_ovr_test",
]

logger = logging.getLogger(__name__)

DIRECTIONS = ("auto", "<", ">")


@dataclass(frozen=True)
class AUCResult(IntervalResult):
    """AUC with its DeLong standard error and confidence interval (pROC ci.auc)."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    conf_level: float
    direction: str
    n_cases: int
    n_controls: int

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["method"] = "DeLong"
        return d


@dataclass(frozen=True)
class ROCTestResult(IntervalResult):
    """Result of a DeLong comparison of two ROC curves (pROC roc.test htest fields)."""

    method: str
    paired: bool
    auc1: float
    auc2: float
    difference: float
    se: float
    statistic: float
    statistic_name: str
    df: float | None
    p_value: float
    alternative: str
    ci_low: float
    ci_high: float
    conf_level: float
    direction1: str
    direction2: str
    n_cases: tuple[int, int]
    n_controls: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["n_cases"] = list(self.n_cases)
        d["n_controls"] = list(self.n_controls)
        return d


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise StatsInputError("direction", f"must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def roc_direction(cases: np.ndarray, controls: np.ndarray) -> str:
    """pROC ``roc(direction="auto")``: ``"<"`` if median(controls) <= median(cases), else ``">"``.

    Note this is pROC's rule (medians), not "the direction that maximises the AUC":
    with skewed data the chosen curve can still have AUC < 0.5.
    """
    return "<" if np.median(controls) <= np.median(cases) else ">"


def _split(y: np.ndarray, score: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray, str]:
    cases, controls = score[y], score[~y]
    if direction == "auto":
        direction = roc_direction(cases, controls)
    if direction == ">":
        cases, controls = -cases, -controls
    return cases, controls, direction


def delong_placements(cases: np.ndarray, controls: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong structural components by the Sun & Xu (2014) midrank algorithm.

    Returns ``(theta, V10, V01)`` exactly as pROC's ``delongPlacements``
    (``theta``, ``X``, ``Y``) for direction ``"<"``.  O((m+n) log(m+n)).
    """
    cases = np.asarray(cases, dtype=float)
    controls = np.asarray(controls, dtype=float)
    m, n = cases.size, controls.size
    if m == 0 or n == 0:
        raise SingleClassError("y_true", f"needs cases and controls; got {m} case(s), {n} control(s)")
    tz = sps.rankdata(np.concatenate([cases, controls]), method="average")
    tx = sps.rankdata(cases, method="average")
    ty = sps.rankdata(controls, method="average")
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    theta = float(v10.mean())
    return theta, v10, v01


def _prepare(y_true: Any, score: Any, positive: Hashable | None, score_name: str,
             truth_name: str) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary_truth(y_true, truth_name, positive)
    s = as_score_array(score, score_name, allow_inf=True)
    check_same_length(**{truth_name: y, score_name: s})
    return y, s


def delong_auc(y_true: Any, score: Any, *, positive: Hashable | None = None,
               direction: str = "auto", conf_level: float = 0.95,
               score_name: str = "score", truth_name: str = "y_true") -> AUCResult:
    """AUC with DeLong SE and CI, following pROC ``ci.auc(roc, method="delong")``.

    The CI is ``qnorm(c(a/2, 1-a/2), auc, se)`` truncated to [0, 1].  Needs at
    least 2 cases and 2 controls (pROC returns NA below that; we raise).
    Constant scores give AUC 0.5 with SE 0 and a degenerate CI (warned).
    """
    direction = _check_direction(direction)
    level = check_conf_level(conf_level)
    y, s = _prepare(y_true, score, positive, score_name, truth_name)
    m, n = require_both_classes(y, truth_name, minimum=2)
    cases, controls, used = _split(y, s, direction)
    theta, v10, v01 = delong_placements(cases, controls)
    var = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    se = float(np.sqrt(var))
    if se == 0.0:
        msg = f"{score_name}: DeLong variance is 0 (constant or perfectly separating scores); CI is degenerate"
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    z = sps.norm.ppf(1 - (1 - level) / 2)
    lo = float(min(max(theta - z * se, 0.0), 1.0))
    hi = float(min(max(theta + z * se, 0.0), 1.0))
    return AUCResult(theta, se, lo, hi, level, used, m, n)


def _p_value(stat: float, alternative: str, df: float | None = None) -> float:
    dist = sps.norm if df is None else sps.t(df)
    if alternative == "two-sided":
        return float(2 * dist.sf(abs(stat)))
    if alternative == "greater":
        return float(dist.sf(stat))
    return float(dist.cdf(stat))


def _warn_directions(d1: str, d2: str) -> None:
    if d1 != d2:
        msg = (f"the two ROC curves have different directions ({d1!r} vs {d2!r}); "
               "DeLong's test should not be applied to ROC curves with a different direction (pROC)")
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def delong_roc_test(y_true: Any, score1: Any, score2: Any, *, positive: Hashable | None = None,
                    direction: str | Sequence[str] = "auto", alternative: str = "two-sided",
                    conf_level: float = 0.95, names: Sequence[str] = ("score1", "score2"),
                    truth_name: str = "y_true") -> ROCTestResult:
    """Paired DeLong test of two correlated ROC curves on the same cases.

    Follows pROC ``roc.test(roc1, roc2, method="delong", paired=TRUE)``:
    Z statistic, normal p-value and the CI of ``auc1 - auc2`` (pROC
    ``ci_delong_paired``).  ``direction`` may be one value for both curves or
    a pair; ``"auto"`` chooses each curve's direction separately as pROC does.
    Missing scores raise; drop incomplete rows beforehand (pROC's
    ``na.rm=TRUE`` drops rows with any NA in response or either predictor).
    """
    alternative = check_alternative(alternative)
    level = check_conf_level(conf_level)
    dirs = (direction, direction) if isinstance(direction, str) else tuple(direction)
    if len(dirs) != 2:
        raise StatsInputError("direction", "must be one direction or a pair of directions")
    for d in dirs:
        _check_direction(d)
    y = as_binary_truth(y_true, truth_name, positive)
    s1 = as_score_array(score1, names[0], allow_inf=True)
    s2 = as_score_array(score2, names[1], allow_inf=True)
    check_same_length(**{truth_name: y, names[0]: s1, names[1]: s2})
    m, n = require_both_classes(y, truth_name, minimum=2)

    c1, k1, d1 = _split(y, s1, dirs[0])
    c2, k2, d2 = _split(y, s2, dirs[1])
    _warn_directions(d1, d2)
    t1, x1, y1 = delong_placements(c1, k1)
    t2, x2, y2 = delong_placements(c2, k2)
    sx = np.cov(np.vstack([x1, x2]), ddof=1)
    sy = np.cov(np.vstack([y1, y2]), ddof=1)
    s = sx / m + sy / n
    lvec = np.array([1.0, -1.0])
    var = float(lvec @ s @ lvec)
    sig = float(np.sqrt(max(var, 0.0)))
    d = t1 - t2
    if sig == 0.0:
        if d == 0.0:
            z = 0.0  # pROC special case: no difference between thetas
        else:
            z = float(np.sign(d) * np.inf)
            msg = "paired DeLong: standard error of the AUC difference is 0 with a non-zero difference"
            logger.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
    else:
        z = float(d / sig)
    p = _p_value(z, alternative)
    crit = float(sps.norm.ppf(1 - (1 - level) / 2))
    return ROCTestResult(
        method="DeLong's test for two correlated ROC curves", paired=True,
        auc1=t1, auc2=t2, difference=d, se=sig, statistic=z, statistic_name="Z", df=None,
        p_value=p, alternative=alternative, ci_low=d - crit * sig, ci_high=d + crit * sig,
        conf_level=level, direction1=d1, direction2=d2, n_cases=(m, m), n_controls=(n, n),
    )


def delong_roc_test_unpaired(y_true1: Any, score1: Any, y_true2: Any, score2: Any, *,
                             positive: Hashable | None = None,
                             direction: str | Sequence[str] = "auto",
                             alternative: str = "two-sided", conf_level: float = 0.95,
                             names: Sequence[str] = ("score1", "score2"),
                             truth_names: Sequence[str] = ("y_true1", "y_true2")) -> ROCTestResult:
    """Unpaired DeLong test of two ROC curves on different cases.

    Follows pROC ``roc.test(..., method="delong", paired=FALSE)``: statistic
    ``D`` with a Student t reference distribution and Welch-Satterthwaite df.
    pROC reports no CI for the unpaired difference; we give
    ``d +- qt(1 - a/2, df) * se``, consistent with the test (it excludes 0
    exactly when the two-sided p < 1 - conf_level).
    """
    alternative = check_alternative(alternative)
    level = check_conf_level(conf_level)
    dirs = (direction, direction) if isinstance(direction, str) else tuple(direction)
    if len(dirs) != 2:
        raise StatsInputError("direction", "must be one direction or a pair of directions")
    for dd in dirs:
        _check_direction(dd)
    ya, sa = _prepare(y_true1, score1, positive, names[0], truth_names[0])
    yb, sb = _prepare(y_true2, score2, positive, names[1], truth_names[1])
    ma, na_ = require_both_classes(ya, truth_names[0], minimum=2)
    mb, nb = require_both_classes(yb, truth_names[1], minimum=2)
    ca, ka, d1 = _split(ya, sa, dirs[0])
    cb, kb, d2 = _split(yb, sb, dirs[1])
    _warn_directions(d1, d2)
    t1, x1, y1 = delong_placements(ca, ka)
    t2, x2, y2 = delong_placements(cb, kb)
    sr = x1.var(ddof=1) / ma + y1.var(ddof=1) / na_
    ss = x2.var(ddof=1) / mb + y2.var(ddof=1) / nb
    d = t1 - t2
    se = float(np.sqrt(sr + ss))
    if se == 0.0:
        raise StatsInputError(
            f"{names[0]}/{names[1]}",
            "unpaired DeLong: both curves have zero variance (constant or perfectly separating scores)",
        )
    stat = float(d / se)
    df = (sr + ss) ** 2 / (sr ** 2 / (ma + na_ - 1) + ss ** 2 / (mb + nb - 1))
    p = _p_value(stat, alternative, df)
    crit = float(sps.t.ppf(1 - (1 - level) / 2, df))
    return ROCTestResult(
        method="DeLong's test for two ROC curves", paired=False,
        auc1=t1, auc2=t2, difference=d, se=se, statistic=stat, statistic_name="D", df=float(df),
        p_value=p, alternative=alternative, ci_low=d - crit * se, ci_high=d + crit * se,
        conf_level=level, direction1=d1, direction2=d2, n_cases=(ma, mb), n_controls=(na_, nb),
    )


def delong_ovr_test(y_true: Any, proba1: Any, proba2: Any, classes: Sequence[Hashable], *,
                    alternative: str = "two-sided", conf_level: float = 0.95,
                    truth_name: str = "y_true") -> dict[Hashable, ROCTestResult]:
    """Per-class one-vs-rest paired DeLong tests for two multi-class models.

    For class k the curve is "k vs all other classes" on column k of each
    probability matrix (sklearn ``roc_auc_score(multi_class="ovr")`` binarisation).
    The direction is fixed to ``"<"`` (higher probability = class k): a
    probability has a known orientation, unlike pROC's auto rule for arbitrary
    markers.  No multiplicity correction is applied.
    """
    labels = as_label_array(y_true, truth_name)
    p1 = np.asarray(proba1, dtype=float)
    p2 = np.asarray(proba2, dtype=float)
    k = len(classes)
    for nm, p in (("proba1", p1), ("proba2", p2)):
        if p.ndim != 2 or p.shape != (labels.size, k):
            raise StatsInputError(nm, f"must have shape ({labels.size}, {k}), got {p.shape}")
    out: dict[Hashable, ROCTestResult] = {}
    for j, cls in enumerate(classes):
        y = as_binary_truth(labels, truth_name, positive=cls)
        out[cls] = delong_roc_test(y, p1[:, j], p2[:, j], direction="<", alternative=alternative,
                                   conf_level=conf_level,
                                   names=(f"proba1[{cls}]", f"proba2[{cls}]"), truth_name=truth_name)
    return out
