"""Decision curve analysis: net benefit of a model, treat-all and treat-none.

Reference implementation: R package dcurves (Sjoberg, Vickers et al.;
``dca()``, ``net_intervention_avoided()``), checked against its source
(``test_consequences.R``).  Conventions:

* A patient is test-positive when ``risk > threshold`` (strictly greater), the
  convention the SpineMets specification fixes and what the ``spinemets stats
  dca`` contract promises.  NOTE: dcurves' current source counts
  ``risk >= threshold`` (R ``test_consequences.R``: ``risk >= .data$threshold``;
  the Python port likewise); ``strict=False`` (CLI ``--inclusive``) reproduces
  that exactly.  The two differ only for risks exactly equal to a threshold.
  dcurves also nudges risks of exactly 0 down by machine epsilon (never
  test-positive, even at threshold 0) and risks of exactly 1 up (always
  test-positive); we apply the same rule in both modes.
* ``pos_rate`` = observed prevalence, or ``prevalence`` for case-control
  data; ``tp_rate = mean(risk[cases] >= t) * pos_rate``;
  ``fp_rate = mean(risk[controls] >= t) * (1 - pos_rate)``;
  ``net_benefit = tp_rate - t / (1 - t) * fp_rate`` (with ``prevalence`` this
  is ``TPR * prev - FPR * (1 - prev) * t / (1 - t)``).
* Treat all: every patient test-positive; treat none: net benefit 0.
* ``net_interventions_avoided = (NB_model - NB_all) / (t / (1 - t)) * nper``
  with ``nper = 1`` by default, i.e. per patient as in dcurves
  ``net_intervention_avoided(nper = 1)``; use ``nper=100`` for "per 100
  patients".  It is NaN at t = 0 (division by zero).
* Thresholds must lie in [0, 1); the default grid is 0.01, 0.02, ..., 0.99.
  Grid values are rounded to 10 decimals so that 0.07 is the double nearest
  0.07 (R's ``seq(0.01, 0.99, by = 0.01)`` can differ in the last bit).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._common import (
    StatsInputError,
    as_binary_truth,
    as_probability_array,
    check_same_length,
    require_both_classes,
)

__all__ = ["DCA_COLUMNS", "threshold_grid", "parse_threshold_spec", "decision_curve", "net_benefit"]

DCA_COLUMNS = ["threshold", "net_benefit_model", "net_benefit_all", "net_benefit_none",
               "net_interventions_avoided"]


def threshold_grid(start: float = 0.01, stop: float = 0.99, step: float = 0.01) -> np.ndarray:
    """Inclusive grid ``start, start + step, ..., <= stop`` (R ``seq(start, stop, by = step)``)."""
    if step <= 0:
        raise StatsInputError("thresholds", f"step must be > 0, got {step}")
    if stop < start:
        raise StatsInputError("thresholds", f"stop ({stop}) is below start ({start})")
    n = int(np.floor((stop - start) / step + 1e-10))
    grid = np.round(start + np.arange(n + 1) * step, 10)
    return _check_thresholds(grid)


def parse_threshold_spec(spec: str) -> np.ndarray:
    """Parse ``"start:stop:step"`` (e.g. ``0.01:0.99:0.01``) or a comma list ``0.1,0.2``."""
    text = str(spec).strip()
    try:
        if ":" in text:
            parts = [float(x) for x in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            return threshold_grid(*parts)
        return _check_thresholds(np.array([float(x) for x in text.split(",") if x.strip()]))
    except ValueError:
        raise StatsInputError("thresholds", f"expected 'start:stop:step' or a comma list, got {spec!r}") from None


def _check_thresholds(t: Any) -> np.ndarray:
    arr = np.asarray(t, dtype=float).ravel()
    if arr.size == 0:
        raise StatsInputError("thresholds", "no thresholds given")
    if np.isnan(arr).any() or (arr < 0).any() or (arr >= 1).any():
        raise StatsInputError("thresholds", "every threshold must lie in [0, 1)")
    return arr


def _positive_mask(risk: np.ndarray, t: float, strict: bool) -> np.ndarray:
    # dcurves: risk 0 -> 0 - eps (never positive), risk 1 -> 1 + eps (always positive)
    eps = np.finfo(float).eps
    r = np.where(risk == 0, -eps, np.where(risk == 1, 1 + eps, risk))
    return r > t if strict else r >= t


def net_benefit(y_true: Any, risk: Any, threshold: float, *, positive: Hashable | None = None,
                prevalence: float | None = None, strict: bool = True) -> float:
    """Net benefit of one model at one threshold (dcurves ``dca()`` ``net_benefit``)."""
    df = decision_curve(y_true, risk, thresholds=[threshold], positive=positive,
                        prevalence=prevalence, strict=strict)
    return float(df["net_benefit_model"].iloc[0])


def decision_curve(y_true: Any, risk: Any, *, thresholds: Sequence[float] | np.ndarray | None = None,
                   positive: Hashable | None = None, prevalence: float | None = None,
                   nper: float = 1.0, strict: bool = True, truth_name: str = "y_true",
                   risk_name: str = "risk") -> pd.DataFrame:
    """Decision curve table with columns :data:`DCA_COLUMNS` (dcurves ``dca`` conventions).

    ``prevalence`` (case-control designs) replaces the observed prevalence as in
    dcurves.  ``strict=True`` (default) counts a patient test-positive only
    when ``risk > threshold``; ``strict=False`` uses dcurves' ``>=``.
    """
    y = as_binary_truth(y_true, truth_name, positive)
    r = as_probability_array(risk, risk_name)
    check_same_length(**{truth_name: y, risk_name: r})
    require_both_classes(y, truth_name)
    t = threshold_grid() if thresholds is None else _check_thresholds(thresholds)
    if prevalence is None:
        prev = float(y.mean())
    else:
        prev = float(prevalence)
        if not 0.0 < prev < 1.0:
            raise StatsInputError("prevalence", f"must lie in (0, 1), got {prevalence!r}")
    if not np.isfinite(float(nper)) or float(nper) <= 0:
        raise StatsInputError("nper", f"must be a positive number, got {nper!r}")
    cases, controls = r[y], r[~y]
    nb_model = np.empty(t.size)
    nb_all = np.empty(t.size)
    for i, ti in enumerate(t):
        odds = ti / (1.0 - ti)
        tpr = _positive_mask(cases, ti, strict).mean()
        fpr = _positive_mask(controls, ti, strict).mean()
        nb_model[i] = tpr * prev - odds * fpr * (1.0 - prev)
        nb_all[i] = prev - odds * (1.0 - prev)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = t / (1.0 - t)
        nia = np.where(t > 0, (nb_model - nb_all) / np.where(t > 0, odds, 1.0) * float(nper), np.nan)
    return pd.DataFrame({
        "threshold": t,
        "net_benefit_model": nb_model,
        "net_benefit_all": nb_all,
        "net_benefit_none": np.zeros(t.size),
        "net_interventions_avoided": nia,
    }, columns=DCA_COLUMNS)
