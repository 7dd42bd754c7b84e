"""Calibration of predicted probabilities: curve, Brier, logistic recalibration, Hosmer-Lemeshow.

References and the exact conventions followed:

* Calibration curve: sklearn ``calibration.calibration_curve`` (``strategy``
  "uniform": equal-width bins on [0, 1]; "quantile": edges at the quantiles
  of the predictions; a prediction on an inner edge belongs to the lower bin;
  empty bins are dropped).
* Brier score: ``mean((p - y)^2)`` (sklearn ``brier_score_loss``, rms
  ``val.prob`` "Brier").
* Logistic calibration, R ``rms::val.prob``: its "Intercept" and "Slope" are
  BOTH coefficients of the single recalibration fit
  ``lrm(y ~ logit(p))`` -- the intercept is *not* calibration-in-the-large.
  We return them as ``intercept`` and ``slope``.  Observations with p = 0 or 1
  (infinite logit) are dropped from this fit, as val.prob does (with a
  warning).  With constant predictions val.prob returns
  ``Intercept = logit(mean(y))`` and ``Slope = 0``; so do we (warned).
* Calibration-in-the-large ``citl``: intercept of ``glm(y ~ offset(logit(p)),
  binomial)`` (logit scale; Steyerberg, "Clinical Prediction Models";
  Van Calster et al. 2016; what CalibrationCurves::val.prob.ci.2 prints as
  "Intercept").  Also returned on the probability scale as
  ``observed_minus_expected = mean(y) - mean(p)``.
* Hosmer-Lemeshow: R ``ResourceSelection::hoslem.test`` (>= 0.3-6):
  ``breaks = unique(quantile(p, seq(0, 1, 1/g)))`` (type 7),
  ``cut(p, breaks, include.lowest = TRUE)`` (right-closed intervals),
  ``chi2 = sum over groups and both outcomes of (O - E)^2 / E``,
  ``df = G - 2`` with G the number of non-empty groups (older releases used
  g - 2 even when duplicate breaks were merged), ``p = 1 - pchisq(chi2, df)``.
  When ties merge breaks, fewer groups are used (warned, as hoslem.test does);
  G < 3 (df < 1), an empty group (n <= g) or a zero expected count raise a
  :class:`StatsInputError` instead of returning NaN/Inf.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit, logit

from ._common import (
    StatsInputError,
    as_binary_truth,
    as_probability_array,
    check_same_length,
    require_both_classes,
)

__all__ = [
    "calibration_curve",
    "brier_score",
    "LogisticCalibration",
    "logistic_calibration",
    "HosmerLemeshowResult",
    "hosmer_lemeshow",
    "r_quantile_type7",
    "calibration_summary",
]

logger = logging.getLogger(__name__)


def _inputs(y_true: Any, proba: Any, positive: Hashable | None, truth_name: str,
            proba_name: str) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary_truth(y_true, truth_name, positive)
    p = as_probability_array(proba, proba_name)
    check_same_length(**{truth_name: y, proba_name: p})
    return y, p


def calibration_curve(y_true: Any, proba: Any, *, n_bins: int = 10, strategy: str = "uniform",
                      positive: Hashable | None = None, truth_name: str = "y_true",
                      proba_name: str = "proba") -> pd.DataFrame:
    """Binned reliability curve (sklearn ``calibration_curve`` conventions).

    Returns one row per non-empty bin: ``bin_lower``, ``bin_upper``, ``n``,
    ``mean_predicted``, ``fraction_positive`` (same values as sklearn's
    ``prob_pred`` / ``prob_true``).
    """
    y, p = _inputs(y_true, proba, positive, truth_name, proba_name)
    if int(n_bins) < 1:
        raise StatsInputError("n_bins", f"must be >= 1, got {n_bins}")
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 100, int(n_bins) + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    else:
        raise StatsInputError("strategy", f"must be 'uniform' or 'quantile', got {strategy!r}")
    ids = np.searchsorted(edges[1:-1], p)
    rows = []
    for b in range(len(edges) - 1):
        mask = ids == b
        if mask.any():
            rows.append({"bin_lower": float(edges[b]), "bin_upper": float(edges[b + 1]),
                         "n": int(mask.sum()), "mean_predicted": float(p[mask].mean()),
                         "fraction_positive": float(y[mask].mean())})
    return pd.DataFrame(rows, columns=["bin_lower", "bin_upper", "n", "mean_predicted",
                                       "fraction_positive"])


def brier_score(y_true: Any, proba: Any, *, positive: Hashable | None = None,
                truth_name: str = "y_true", proba_name: str = "proba") -> float:
    """Brier score ``mean((p - y)^2)`` (sklearn ``brier_score_loss``; rms val.prob "Brier")."""
    y, p = _inputs(y_true, proba, positive, truth_name, proba_name)
    return float(np.mean((p - y) ** 2))


def _loglik(eta: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _fit_logistic(x: np.ndarray | None, y: np.ndarray, offset: np.ndarray, name: str,
                  max_iter: int = 100, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression by Newton-Raphson with step halving.

    Same estimates as R ``glm(family = binomial)`` / rms ``lrm.fit``.  Returns
    coefficients and their covariance (inverse observed information).
    """
    yf = y.astype(float)
    cols = [np.ones_like(offset)] if x is None else [np.ones_like(offset), x]
    design = np.column_stack(cols)
    beta = np.zeros(design.shape[1])
    ll = _loglik(offset + design @ beta, yf)
    converged = False
    for _ in range(max_iter):
        eta = offset + design @ beta
        mu = expit(eta)
        w = mu * (1 - mu)
        grad = design.T @ (yf - mu)
        hess = design.T @ (design * w[:, None])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            raise StatsInputError(name, "logistic recalibration failed: singular information matrix") from None
        t = 1.0
        while True:
            new = beta + t * step
            ll_new = _loglik(offset + design @ new, yf)
            if ll_new >= ll - 1e-12 or t < 1e-10:
                break
            t /= 2
        beta, ll_old, ll = new, ll, ll_new
        if abs(ll - ll_old) < tol * (abs(ll) + tol) and np.max(np.abs(t * step)) < 1e-7:
            converged = True
            break
    if not converged or not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 50:
        raise StatsInputError(
            name, "logistic recalibration did not converge (complete separation of outcomes by the "
                  "predictions?)")
    mu = expit(offset + design @ beta)
    hess = design.T @ (design * (mu * (1 - mu))[:, None])
    cov = np.linalg.inv(hess)
    return beta, cov


@dataclass(frozen=True)
class LogisticCalibration:
    """rms val.prob Intercept/Slope plus calibration-in-the-large, with Wald CIs."""

    intercept: float
    slope: float
    citl: float
    observed_minus_expected: float
    intercept_ci: tuple[float, float]
    slope_ci: tuple[float, float]
    citl_ci: tuple[float, float]
    n: int
    n_excluded: int
    conf_level: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("intercept_ci", "slope_ci", "citl_ci"):
            d[k] = list(d[k])
        return d


def logistic_calibration(y_true: Any, proba: Any, *, positive: Hashable | None = None,
                         conf_level: float = 0.95, truth_name: str = "y_true",
                         proba_name: str = "proba") -> LogisticCalibration:
    """Calibration intercept/slope as rms ``val.prob`` and calibration-in-the-large.

    * ``intercept``, ``slope``: coefficients of ``glm(y ~ logit(p))`` (val.prob
      "Intercept" and "Slope"; ideal 0 and 1).
    * ``citl``: intercept of ``glm(y ~ offset(logit(p)))`` (ideal 0).
    * ``observed_minus_expected``: ``mean(y) - mean(p)`` over all rows.
    * CIs: Wald, ``coef +- z * se`` (R ``confint.default``).
    """
    y, p = _inputs(y_true, proba, positive, truth_name, proba_name)
    require_both_classes(y, truth_name)
    z = float(sps.norm.ppf(1 - (1 - conf_level) / 2))
    notes: list[str] = []
    finite = (p > 0) & (p < 1)
    n_excl = int((~finite).sum())
    if n_excl:
        notes.append(f"{n_excl} observation(s) with probability 0 or 1 excluded from the logistic "
                     "calibration (rms val.prob)")
    yy, lp = y[finite], logit(p[finite])
    if yy.size < 2 or yy.all() or not yy.any():
        raise StatsInputError(proba_name, "too few observations with 0 < p < 1 in both outcome groups "
                              "for logistic calibration")
    oe = float(y.mean() - p.mean())
    beta0, cov0 = _fit_logistic(None, yy, lp, proba_name)
    citl = float(beta0[0])
    se0 = float(np.sqrt(cov0[0, 0]))
    if np.ptp(lp) == 0.0:
        notes.append("constant predictions: slope set to 0 and intercept to logit(mean(y)) (rms val.prob)")
        inter = float(logit(yy.mean()))
        se_i = float(np.sqrt(1.0 / (yy.size * yy.mean() * (1 - yy.mean()))))
        res = LogisticCalibration(inter, 0.0, citl, oe, (inter - z * se_i, inter + z * se_i),
                                  (float("nan"), float("nan")), (citl - z * se0, citl + z * se0),
                                  int(y.size), n_excl, conf_level, notes)
    else:
        beta, cov = _fit_logistic(lp, yy, np.zeros_like(lp), proba_name)
        se = np.sqrt(np.diag(cov))
        res = LogisticCalibration(
            float(beta[0]), float(beta[1]), citl, oe,
            (float(beta[0] - z * se[0]), float(beta[0] + z * se[0])),
            (float(beta[1] - z * se[1]), float(beta[1] + z * se[1])),
            (citl - z * se0, citl + z * se0), int(y.size), n_excl, conf_level, notes)
    for msg in notes:
        logger.warning("%s: %s", proba_name, msg)
        warnings.warn(f"{proba_name}: {msg}", RuntimeWarning, stacklevel=2)
    return res


def r_quantile_type7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R ``quantile(x, probs, type = 7)``: ``(1 - h) x[lo] + h x[hi]`` at index ``1 + (n - 1) p``."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = xs.size
    index = (n - 1) * np.asarray(probs, dtype=float)
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    qs = xs[lo].copy()
    h = index - lo
    sel = (index > lo) & (xs[hi] != qs)
    qs[sel] = (1 - h[sel]) * qs[sel] + h[sel] * xs[hi[sel]]
    return qs


@dataclass(frozen=True)
class HosmerLemeshowResult:
    """Hosmer-Lemeshow statistic with the group table (ResourceSelection::hoslem.test)."""

    statistic: float
    df: int
    p_value: float
    g: int
    groups_used: int
    table: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "df": self.df, "p_value": self.p_value, "g": self.g,
                "groups_used": self.groups_used, "table": self.table.to_dict(orient="records")}


def hosmer_lemeshow(y_true: Any, proba: Any, *, g: int = 10, positive: Hashable | None = None,
                    truth_name: str = "y_true", proba_name: str = "proba") -> HosmerLemeshowResult:
    """Hosmer-Lemeshow goodness-of-fit test exactly as ``ResourceSelection::hoslem.test(y, p, g)``.

    Groups from ``cut(p, unique(quantile(p, seq(0, 1, 1/g))), include.lowest=TRUE)``;
    statistic summed over both outcome columns; ``df = G - 2`` (non-empty groups).
    """
    y, p = _inputs(y_true, proba, positive, truth_name, proba_name)
    g = int(g)
    if g < 2:
        raise StatsInputError("g", f"must be at least 2, got {g}")
    probs = np.arange(g + 1) * (1.0 / g)  # R seq(0, 1, 1/g) = from + (0:n) * by
    probs[-1] = min(probs[-1], 1.0)
    breaks = np.unique(r_quantile_type7(p, probs))
    if breaks.size < 2:
        raise StatsInputError(proba_name, "all predictions are identical: Hosmer-Lemeshow needs at least "
                              "3 groups (df = G - 2 >= 1)")
    # cut(..., right = TRUE, include.lowest = TRUE): (b0, b1] with b0 included in the first
    grp = np.clip(np.searchsorted(breaks, p, side="left"), 1, breaks.size - 1) - 1
    n_int = breaks.size - 1
    counts = np.bincount(grp, minlength=n_int)
    if (counts == 0).any():
        raise StatsInputError(proba_name, f"{int((counts == 0).sum())} empty Hosmer-Lemeshow group(s) "
                              f"(n = {p.size} is too small for g = {g})")
    obs1 = np.bincount(grp, weights=y.astype(float), minlength=n_int)
    exp1 = np.bincount(grp, weights=p, minlength=n_int)
    obs0 = counts - obs1
    exp0 = counts - exp1
    if (exp1 <= 0).any() or (exp0 <= 0).any():
        raise StatsInputError(proba_name, "a Hosmer-Lemeshow group has an expected count of 0 "
                              "(predictions of exactly 0 or 1); the statistic is infinite")
    chi2 = float(np.sum((obs1 - exp1) ** 2 / exp1) + np.sum((obs0 - exp0) ** 2 / exp0))
    n_groups = int(n_int)
    if n_groups < 3:
        raise StatsInputError(proba_name, f"only {n_groups} distinct quantile group(s): df = G - 2 < 1")
    if n_groups < g:
        msg = f"{proba_name}: the data did not allow for the requested number of bins ({n_groups} < {g})"
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    df = n_groups - 2
    pval = float(sps.chi2.sf(chi2, df))
    labels = [("[" if i == 0 else "(") + f"{breaks[i]:.6g},{breaks[i + 1]:.6g}]" for i in range(n_int)]
    table = pd.DataFrame({"group": labels, "n": counts.astype(int), "observed_1": obs1,
                          "expected_1": exp1, "observed_0": obs0, "expected_0": exp0})
    return HosmerLemeshowResult(chi2, df, pval, g, n_groups, table)


def calibration_summary(y_true: Any, proba: Any, *, positive: Hashable | None = None, g: int = 10,
                        n_bins: int = 10, strategy: str = "quantile", conf_level: float = 0.95,
                        truth_name: str = "y_true", proba_name: str = "proba") -> dict[str, Any]:
    """Everything the ``stats calibration`` command reports, as a JSON-ready dict.

    Keys ``brier``, ``intercept``, ``slope``, ``citl``, ``hl_chi2``, ``hl_df``,
    ``hl_p`` plus CIs, the HL table and the binned curve.  A component that
    cannot be computed is ``None`` with its reason under ``errors``.
    """
    y, p = _inputs(y_true, proba, positive, truth_name, proba_name)
    require_both_classes(y, truth_name)
    out: dict[str, Any] = {"n": int(y.size), "n_events": int(y.sum()),
                           "brier": float(np.mean((p - y) ** 2)), "errors": {}, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lc = logistic_calibration(y, p, conf_level=conf_level, proba_name=proba_name)
            out.update({"intercept": lc.intercept, "slope": lc.slope, "citl": lc.citl,
                        "observed_minus_expected": lc.observed_minus_expected,
                        "intercept_ci": list(lc.intercept_ci), "slope_ci": list(lc.slope_ci),
                        "citl_ci": list(lc.citl_ci), "n_excluded_logistic": lc.n_excluded})
        except StatsInputError as exc:
            out.update({"intercept": None, "slope": None, "citl": None,
                        "observed_minus_expected": float(y.mean() - p.mean())})
            out["errors"]["logistic_calibration"] = str(exc)
        try:
            hl = hosmer_lemeshow(y, p, g=g, proba_name=proba_name)
            out.update({"hl_chi2": hl.statistic, "hl_df": hl.df, "hl_p": hl.p_value,
                        "hl_groups": hl.table.to_dict(orient="records")})
        except StatsInputError as exc:
            out.update({"hl_chi2": None, "hl_df": None, "hl_p": None})
            out["errors"]["hosmer_lemeshow"] = str(exc)
        curve = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
        out["curve"] = curve.to_dict(orient="records")
        out["curve_strategy"] = strategy
    out["warnings"] = [str(w.message) for w in caught]
    out["conventions"] = {
        "intercept/slope": "rms::val.prob Intercept and Slope: glm(y ~ logit(p))",
        "citl": "intercept of glm(y ~ offset(logit(p)), binomial) (logit scale)",
        "observed_minus_expected": "mean(y) - mean(p)",
        "hosmer_lemeshow": "ResourceSelection::hoslem.test: unique type-7 quantile breaks, df = G - 2",
    }
    return out
