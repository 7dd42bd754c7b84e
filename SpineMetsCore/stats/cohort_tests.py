"""Cohort "Table 1" group-comparison tests.

Test choice (documented so the table can be reproduced):

Continuous variables
  Shapiro-Wilk (``scipy.stats.shapiro``, R ``shapiro.test``) in every group;
  the variable is treated as normal when every group has n >= 3 and
  p >= ``alpha`` (default 0.05).
  * two groups, normal: Welch's t-test by default (``equal_var=False``; R's
    ``t.test`` default); ``equal_var=True`` gives Student's t-test.
  * two groups, not normal: Mann-Whitney U / Wilcoxon rank-sum, two-sided,
    continuity correction, exact p-value when both groups have < 50
    observations and there are no ties, otherwise the normal approximation --
    the defaults of R ``wilcox.test``.  The statistic is U of the first group
    (R's W).
  * three or more groups: one-way ANOVA (Welch's ANOVA when
    ``equal_var=False``, R ``oneway.test``) when normal, else Kruskal-Wallis.
Categorical variables (contingency table variable x group, missing dropped)
  * Pearson chi-squared (``scipy.stats.chi2_contingency``; Yates' continuity
    correction for 2x2 tables, as R ``chisq.test(correct = TRUE)``);
  * Fisher's exact test (two-sided) instead, for a 2x2 table with any
    expected count < 5; the statistic is scipy's sample odds ratio (R's
    ``fisher.test`` reports the conditional MLE; the p-values agree);
  * larger tables with expected counts < 5 keep the chi-squared test and say
    so in ``note``.  With ``rxc_fisher=True`` they get the Fisher-Freeman-
    Halton test with a seeded Monte Carlo p-value (R ``fisher.test(...,
    simulate.p.value = TRUE)``), because scipy has no exact r x c algorithm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ._common import StatsInputError

__all__ = ["TABLE1_COLUMNS", "compare_groups", "compare_continuous", "compare_categorical", "welch_anova"]

logger = logging.getLogger(__name__)

TABLE1_COLUMNS = ["variable", "test", "statistic", "p", "n", "normality_p_min", "note"]


def _row(variable: str, test: str, statistic: float, p: float, n: int,
         normality: float | None = None, note: str = "") -> dict[str, Any]:
    return {"variable": variable, "test": test, "statistic": float(statistic), "p": float(p), "n": int(n),
            "normality_p_min": np.nan if normality is None else float(normality), "note": note}


def compare_continuous(values: Any, groups: Any, *, variable: str = "value", alpha: float = 0.05,
                       equal_var: bool = False) -> dict[str, Any]:
    """Normality-driven choice of t / Mann-Whitney (2 groups) or ANOVA / Kruskal-Wallis.

    scipy ``shapiro``, ``ttest_ind``, ``mannwhitneyu``, ``f_oneway`` and
    ``kruskal`` with the R defaults described in the module docstring.
    """
    x = pd.to_numeric(pd.Series(values), errors="coerce")
    bad = pd.Series(values).notna() & x.isna()
    if bad.any():
        first = pd.Series(values)[bad].iloc[0]
        raise StatsInputError(variable, f"non-numeric value {first!r} in a continuous variable")
    g = pd.Series(groups)
    ok = x.notna().to_numpy() & g.notna().to_numpy()
    xs, gs = x.to_numpy(dtype=float)[ok], g.to_numpy()[ok]
    levels = sorted(pd.unique(gs), key=str)
    samples = [xs[gs == lv] for lv in levels]
    if len(samples) < 2:
        raise StatsInputError("group", f"{variable}: needs at least two groups with data")
    if any(s.size == 0 for s in samples):
        raise StatsInputError(variable, "a group has no non-missing values")
    sw = []
    notes = []
    for lv, s in zip(levels, samples, strict=False):
        if s.size < 3:
            sw.append(np.nan)
            notes.append(f"group {lv!r} has n < 3: Shapiro-Wilk not possible, treated as non-normal")
        elif np.ptp(s) == 0:
            sw.append(np.nan)
            notes.append(f"group {lv!r} is constant: treated as non-normal")
        else:
            sw.append(float(sps.shapiro(s).pvalue))
    normal = all(np.isfinite(p) and p >= alpha for p in sw)
    sw_min = float(np.nanmin(sw)) if np.isfinite(sw).any() else None
    n = int(xs.size)
    if len(samples) == 2:
        a, b = samples
        if normal:
            res = sps.ttest_ind(a, b, equal_var=equal_var)
            name = "Student t-test" if equal_var else "Welch t-test"
            return _row(variable, name, res.statistic, res.pvalue, n, sw_min, "; ".join(notes))
        ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
        exact = a.size < 50 and b.size < 50 and not ties
        res = sps.mannwhitneyu(a, b, alternative="two-sided", use_continuity=True,
                               method="exact" if exact else "asymptotic")
        notes.append("exact p" if exact else "normal approximation with continuity correction")
        return _row(variable, "Mann-Whitney U", res.statistic, res.pvalue, n, sw_min, "; ".join(notes))
    if normal:
        if equal_var:
            res = sps.f_oneway(*samples)
            return _row(variable, "one-way ANOVA", res.statistic, res.pvalue, n, sw_min, "; ".join(notes))
        stat, pval = welch_anova(samples)
        return _row(variable, "Welch ANOVA", stat, pval, n, sw_min, "; ".join(notes))
    res = sps.kruskal(*samples)
    return _row(variable, "Kruskal-Wallis", res.statistic, res.pvalue, n, sw_min, "; ".join(notes))


def welch_anova(samples: Sequence[np.ndarray]) -> tuple[float, float]:
    """Welch's heteroscedastic one-way ANOVA, R ``oneway.test(var.equal = FALSE)``.

    Uses ``scipy.stats.f_oneway(..., equal_var=False)`` when the installed scipy
    has it (>= 1.16) and the same closed form (Welch 1951) otherwise.
    """
    try:
        res = sps.f_oneway(*samples, equal_var=False)
        return float(res.statistic), float(res.pvalue)
    except TypeError:
        return _welch_anova_closed_form(samples)


def _welch_anova_closed_form(samples: Sequence[np.ndarray]) -> tuple[float, float]:
    """Welch (1951) F statistic and p-value, as R ``oneway.test(var.equal = FALSE)``."""
    k = len(samples)
    n = np.array([s.size for s in samples], dtype=float)
    means = np.array([s.mean() for s in samples])
    w = n / np.array([s.var(ddof=1) for s in samples])
    grand = np.sum(w * means) / w.sum()
    a = np.sum(w * (means - grand) ** 2) / (k - 1)
    tmp = np.sum((1 - w / w.sum()) ** 2 / (n - 1))
    stat = a / (1 + 2 * (k - 2) / (k ** 2 - 1) * tmp)
    df2 = (k ** 2 - 1) / (3 * tmp)
    return float(stat), float(sps.f.sf(stat, k - 1, df2))


def compare_categorical(values: Any, groups: Any, *, variable: str = "value", rxc_fisher: bool = False,
                        seed: int = 0, n_resamples: int = 10000) -> dict[str, Any]:
    """Chi-squared (Yates for 2x2) or Fisher exact (2x2 with an expected count < 5).

    scipy ``chi2_contingency(correction=True)`` (= R ``chisq.test``) and
    ``fisher_exact`` (two-sided p as R ``fisher.test``).
    """
    v, g = pd.Series(values), pd.Series(groups)
    ok = v.notna().to_numpy() & g.notna().to_numpy()
    table = pd.crosstab(v[ok].astype(str).to_numpy(), g[ok].astype(str).to_numpy())
    n = int(table.to_numpy().sum())
    if table.shape[0] < 2 or table.shape[1] < 2:
        raise StatsInputError(variable, f"needs at least 2 categories and 2 groups, got table {table.shape}")
    obs = table.to_numpy()
    chi = sps.chi2_contingency(obs, correction=True)
    small = bool((chi.expected_freq < 5).any())
    if obs.shape == (2, 2):
        if small:
            res = sps.fisher_exact(obs, alternative="two-sided")
            return _row(variable, "Fisher exact", res.statistic, res.pvalue, n,
                        note="2x2 table with expected count < 5; statistic = sample odds ratio")
        return _row(variable, "chi-squared (Yates)", chi.statistic, chi.pvalue, n)
    if small and rxc_fisher:
        try:
            method = sps.MonteCarloMethod(n_resamples=int(n_resamples), rng=np.random.default_rng(seed))
        except TypeError:  # scipy < 1.15 spells it random_state
            method = sps.MonteCarloMethod(n_resamples=int(n_resamples), random_state=np.random.default_rng(seed))
        res = sps.fisher_exact(obs, method=method)
        return _row(variable, "Fisher-Freeman-Halton (Monte Carlo)", res.statistic, res.pvalue, n,
                    note=f"{n_resamples} simulated tables, seed {seed}")
    note = ("expected count < 5 in a table larger than 2x2: chi-squared approximation may be "
            "inaccurate (use rxc_fisher=True for a simulated Fisher test)") if small else ""
    return _row(variable, "chi-squared", chi.statistic, chi.pvalue, n, note=note)


def compare_groups(data: pd.DataFrame, group: str, *, continuous: Sequence[str] | None = None,
                   categorical: Sequence[str] | None = None, alpha: float = 0.05,
                   equal_var: bool = False, rxc_fisher: bool = False, seed: int = 0,
                   max_categories: int = 5) -> pd.DataFrame:
    """Table-1 tests for every variable; DataFrame with columns :data:`TABLE1_COLUMNS`.

    When neither list is given, numeric columns with more than
    ``max_categories`` distinct values are continuous and all other columns
    categorical.  Missing values are dropped per variable (``n`` is the count used).
    """
    if group not in data.columns:
        raise StatsInputError(group, "group column not found")
    if continuous is None and categorical is None:
        continuous, categorical = [], []
        for col in data.columns:
            if col == group:
                continue
            s = data[col]
            if pd.api.types.is_numeric_dtype(s) and s.nunique(dropna=True) > max_categories:
                continuous.append(col)
            else:
                categorical.append(col)
    continuous = list(continuous or [])
    categorical = list(categorical or [])
    for col in continuous + categorical:
        if col not in data.columns:
            raise StatsInputError(col, "column not found")
    rows = [compare_continuous(data[c], data[group], variable=c, alpha=alpha, equal_var=equal_var)
            for c in continuous]
    rows += [compare_categorical(data[c], data[group], variable=c, rxc_fisher=rxc_fisher, seed=seed)
             for c in categorical]
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)
