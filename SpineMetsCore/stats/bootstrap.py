"""Stratified bootstrap confidence intervals and a bootstrap test of AUC differences.

Reference implementation: pROC ``ci.auc(method="bootstrap", boot.stratified=TRUE)``
and ``roc.test(method="bootstrap")``:

* stratified resampling: each class (for a binary problem: cases and
  controls) is resampled with replacement separately, so every replicate keeps
  the observed class counts and the AUC is always defined;
* percentile CI: ``quantile(replicates, c(a/2, 1-a/2))`` with R's default
  type 7 quantile (numpy ``method="linear"``);
* replicates that give NaN are dropped and counted (pROC warns "NA value(s)
  produced during bootstrap were ignored");
* bootstrap test: ``D = (auc1 - auc2) / sd(auc1* - auc2*)`` referred to the
  standard normal (pROC ``bootstrap.test``), with the percentile CI of the
  difference.

BCa (optional) follows Efron & Tibshirani (1993, ch. 14.3) as
``scipy.stats.bootstrap(method="BCa")``: bias correction
``z0 = Phi^-1((#{t* < t} + #{t* == t}/2) / B)`` and acceleration from the
leave-one-out jackknife over all observations.

The random stream is ``numpy.random.default_rng(seed)``; replicate b draws,
for each stratum in sorted order, ``rng.integers(0, n_stratum, n_stratum)``.
Same seed, same data -> identical intervals.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from ._common import (
    IntervalResult,
    StatsInputError,
    as_binary_truth,
    as_score_array,
    check_alternative,
    check_conf_level,
    check_same_length,
    require_both_classes,
)
from .metrics import (
    BINARY_METRICS,
    _binary_from_arrays,
    _codes_metrics,
    _positive_index,
    encode_truth,
    validate_probabilities,
)

__all__ = [
    "DEFAULT_N_BOOT",
    "BootstrapResult",
    "BootstrapTestResult",
    "stratified_bootstrap_indices",
    "bootstrap_ci",
    "bootstrap_metric",
    "bootstrap_classification_metrics",
    "bootstrap_auc_difference_test",
]

logger = logging.getLogger(__name__)

DEFAULT_N_BOOT = 1000
CI_METHODS = ("percentile", "bca")


@dataclass(frozen=True)
class BootstrapResult(IntervalResult):
    """Point estimate and bootstrap CI of one statistic."""

    estimate: float
    ci_low: float
    ci_high: float
    conf_level: float
    method: str
    n_boot: int
    n_valid: int
    seed: int | None
    stratified: bool



@dataclass(frozen=True)
class BootstrapTestResult:
    """pROC-style bootstrap test of the difference of two statistics."""

    estimate1: float
    estimate2: float
    difference: float
    sd: float
    statistic: float
    p_value: float
    alternative: str
    ci_low: float
    ci_high: float
    conf_level: float
    n_boot: int
    n_valid: int
    seed: int | None
    method: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = [self.ci_low, self.ci_high]
        return d


def _check_n_boot(n_boot: int) -> int:
    try:
        nb = int(n_boot)
    except (TypeError, ValueError):
        raise StatsInputError("n_boot", f"must be an integer, got {n_boot!r}") from None
    if nb < 2:
        raise StatsInputError("n_boot", f"must be >= 2, got {n_boot!r}")
    return nb


def stratified_bootstrap_indices(strata: Any, n_boot: int = DEFAULT_N_BOOT, seed: int | None = 0,
                                 stratified: bool = True) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` index vectors; with ``stratified`` each stratum keeps its size.

    Stratified resampling as pROC ``boot.stratified = TRUE`` (cases and
    controls -- or every class -- resampled separately).

    Indices of a replicate are grouped by stratum (stratum order = sorted
    unique values), which does not matter for any statistic of the rows.
    """
    nb = _check_n_boot(n_boot)
    labels = np.asarray(strata)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    if stratified:
        _, inverse = np.unique(labels, return_inverse=True)
        groups = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    else:
        groups = [np.arange(n)]
    for _ in range(nb):
        yield np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])


def _as_mapping(value: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    return {"value": float(value)}


def _percentile(reps: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1 - level
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2], method="linear")
    return float(lo), float(hi)


def _bca(reps: np.ndarray, estimate: float, jack: np.ndarray, level: float) -> tuple[float, float]:
    b = reps.size
    prop = (np.sum(reps < estimate) + 0.5 * np.sum(reps == estimate)) / b
    if prop <= 0.0 or prop >= 1.0:
        return float("nan"), float("nan")
    z0 = sps.norm.ppf(prop)
    jack = jack[np.isfinite(jack)]
    diff = jack.mean() - jack
    den = 6.0 * (np.sum(diff ** 2) ** 1.5)
    a = float(np.sum(diff ** 3) / den) if den > 0 else 0.0
    alpha = 1 - level
    za = sps.norm.ppf([alpha / 2, 1 - alpha / 2])
    adj = sps.norm.cdf(z0 + (z0 + za) / (1 - a * (z0 + za)))
    if not np.all(np.isfinite(adj)):
        return float("nan"), float("nan")
    lo, hi = np.quantile(reps, adj, method="linear")
    return float(lo), float(hi)


def bootstrap_ci(statistic: Callable[[np.ndarray], Mapping[str, float] | float], strata: Any, *,
                 n_boot: int = DEFAULT_N_BOOT, seed: int | None = 0, conf_level: float = 0.95,
                 method: str = "percentile", stratified: bool = True
                 ) -> dict[str, BootstrapResult]:
    """Bootstrap CIs for every value returned by ``statistic(indices)``.

    ``statistic`` receives an index vector into the data (``arange(n)`` for the
    point estimate) and returns a float or a mapping name -> float; the result
    maps each name (``"value"`` for a float) to a :class:`BootstrapResult`.
    ``strata`` (usually the truth labels) defines the stratified resampling.
    Metrics whose point estimate is NaN get a NaN CI; a CI is NaN when fewer
    than 2 replicates are finite or the BCa correction is undefined (warned).
    """
    level = check_conf_level(conf_level)
    nb = _check_n_boot(n_boot)
    method = str(method).lower()
    if method not in CI_METHODS:
        raise StatsInputError("method", f"must be one of {CI_METHODS}, got {method!r}")
    labels = np.asarray(strata)
    n = labels.shape[0]
    if n < 2:
        raise StatsInputError("strata", "need at least two observations")
    point = _as_mapping(statistic(np.arange(n)))
    keys = list(point)
    reps = np.full((nb, len(keys)), np.nan)
    for b, idx in enumerate(stratified_bootstrap_indices(labels, nb, seed, stratified)):
        val = _as_mapping(statistic(idx))
        reps[b] = [val.get(k, np.nan) for k in keys]

    jack = None
    if method == "bca":
        jack = np.full((n, len(keys)), np.nan)
        for i in range(n):
            keep = np.r_[0:i, i + 1:n]
            try:
                val = _as_mapping(statistic(keep))
            except (ValueError, ZeroDivisionError):
                continue
            jack[i] = [val.get(k, np.nan) for k in keys]

    out: dict[str, BootstrapResult] = {}
    bad: list[str] = []
    for j, key in enumerate(keys):
        col = reps[:, j]
        valid = col[np.isfinite(col)]
        est = point[key]
        if not np.isfinite(est) or valid.size < 2:
            lo = hi = float("nan")
        elif method == "percentile":
            lo, hi = _percentile(valid, level)
        else:
            lo, hi = _bca(valid, est, jack[:, j], level)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                bad.append(key)
        if np.isfinite(est) and valid.size < nb:
            logger.info("%s: %d of %d bootstrap replicates were NaN and ignored", key, nb - valid.size, nb)
        out[key] = BootstrapResult(float(est), lo, hi, level, method, nb, int(valid.size), seed, stratified)
    if bad:
        msg = f"BCa interval undefined (all replicates on one side of the estimate) for: {', '.join(bad)}"
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return out


def bootstrap_metric(y_true: Any, score: Any, metric: str = "auc", *, positive: Hashable | None = None,
                     threshold: float = 0.5, direction: str = "<", n_boot: int = DEFAULT_N_BOOT,
                     seed: int | None = 0, conf_level: float = 0.95, method: str = "percentile",
                     score_name: str = "score", truth_name: str = "y_true") -> BootstrapResult:
    """Stratified-bootstrap CI of one binary metric of a score (pROC ``ci.auc`` style).

    Metrics: ``auc``, ``accuracy``, ``sensitivity``/``recall``, ``specificity``,
    ``precision``/``ppv``, ``npv``, ``f1``, ``brier``; test-positive when
    ``score >= threshold`` (see :func:`metrics.binary_metrics`).  The direction
    (``"auto"`` = pROC median rule) is fixed on the full data and kept in every
    replicate, as pROC does.
    """
    metric = str(metric).lower()
    if metric not in BINARY_METRICS:
        raise StatsInputError("metric", f"unknown metric {metric!r}; choose from {BINARY_METRICS}")
    y = as_binary_truth(y_true, truth_name, positive)
    s = as_score_array(score, score_name, allow_inf=metric == "auc")
    check_same_length(**{truth_name: y, score_name: s})
    require_both_classes(y, truth_name)
    if metric == "brier" and ((s < 0) | (s > 1)).any():
        raise StatsInputError(score_name, "Brier score needs probabilities in [0, 1]")
    if direction == "auto":
        from .delong import roc_direction

        direction = roc_direction(s[y], s[~y])
    if direction not in ("<", ">"):
        raise StatsInputError("direction", f"must be 'auto', '<' or '>', got {direction!r}")
    thr = float(threshold)

    def stat(idx: np.ndarray) -> float:
        return _binary_from_arrays(y[idx], s[idx], metric, thr, direction)

    return bootstrap_ci(stat, y, n_boot=n_boot, seed=seed, conf_level=conf_level,
                        method=method)["value"]


def bootstrap_classification_metrics(y_true: Any, proba: Any, classes: Sequence[Hashable], *,
                                     topk: int = 3, positive: Hashable | None = None,
                                     n_boot: int = DEFAULT_N_BOOT, seed: int | None = 0,
                                     conf_level: float = 0.95, method: str = "percentile",
                                     truth_name: str = "y_true") -> dict[str, BootstrapResult]:
    """CIs of every :func:`metrics.classification_metrics` value by a class-stratified bootstrap."""
    codes = encode_truth(y_true, classes, truth_name)
    p = validate_probabilities(proba, codes.size, classes)
    if np.unique(codes).size < 2:
        from ._common import SingleClassError

        raise SingleClassError(truth_name, "only one class present")
    pos = _positive_index(classes, positive)
    k = int(topk)

    def stat(idx: np.ndarray) -> dict[str, float]:
        return _codes_metrics(codes[idx], p[idx], classes, k, pos)

    return bootstrap_ci(stat, codes, n_boot=n_boot, seed=seed, conf_level=conf_level, method=method)


def bootstrap_auc_difference_test(y_true: Any, proba1: Any, proba2: Any,
                                  classes: Sequence[Hashable], *, average: str = "macro",
                                  alternative: str = "two-sided", n_boot: int = DEFAULT_N_BOOT,
                                  seed: int | None = 0, conf_level: float = 0.95,
                                  truth_name: str = "y_true") -> BootstrapTestResult:
    """Paired stratified-bootstrap test of the difference in (macro one-vs-rest) AUC.

    Follows pROC ``roc.test(method="bootstrap", paired=TRUE)``: the same
    resampled rows are used for both models, ``D = diff / sd(diff*)`` is
    compared to N(0, 1); the CI of the difference is the percentile interval.
    ``average``: ``"macro"`` (unweighted OvR mean, sklearn) or ``"weighted"``.
    For two classes the OvR macro AUC equals the binary AUC when each row's
    probabilities sum to 1.
    """
    alternative = check_alternative(alternative)
    level = check_conf_level(conf_level)
    if average not in ("macro", "weighted"):
        raise StatsInputError("average", f"must be 'macro' or 'weighted', got {average!r}")
    codes = encode_truth(y_true, classes, truth_name)
    p1 = validate_probabilities(proba1, codes.size, classes, name="proba1")
    p2 = validate_probabilities(proba2, codes.size, classes, name="proba2")
    key = f"auc_{average}_ovr"

    def stat(idx: np.ndarray) -> dict[str, float]:
        a = _codes_metrics(codes[idx], p1[idx], classes, 0, None)[key]
        b = _codes_metrics(codes[idx], p2[idx], classes, 0, None)[key]
        return {"a": a, "b": b, "diff": a - b}

    point = stat(np.arange(codes.size))
    if not np.isfinite(point["diff"]):
        from ._common import SingleClassError

        raise SingleClassError(truth_name, "AUC undefined: a class is absent from the truth")
    nb = _check_n_boot(n_boot)
    diffs = np.array([stat(idx)["diff"] for idx in stratified_bootstrap_indices(codes, nb, seed)])
    diffs = diffs[np.isfinite(diffs)]
    sd = float(np.std(diffs, ddof=1))
    d = point["diff"]
    if sd == 0.0:
        z = 0.0 if d == 0.0 else float(np.sign(d) * np.inf)
    else:
        z = d / sd
    if alternative == "two-sided":
        pval = float(2 * sps.norm.sf(abs(z)))
    elif alternative == "greater":
        pval = float(sps.norm.sf(z))
    else:
        pval = float(sps.norm.cdf(z))
    lo, hi = _percentile(diffs, level)
    return BootstrapTestResult(point["a"], point["b"], d, sd, float(z), pval, alternative, lo, hi,
                               level, nb, int(diffs.size), seed,
                               f"stratified bootstrap test of {average} OvR AUC difference (pROC style)")
