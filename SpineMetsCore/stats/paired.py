"""Paired comparison of two conditions on the same cases (e.g. reader assisted vs unassisted).

Mean difference with a Student-t confidence interval, the paired t test
(``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``, ``zero_method="wilcox"``: zero differences dropped, as R's
``wilcox.test(paired = TRUE)``). Differences are ``second - first``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from ._common import as_score_array, check_conf_level, check_same_length

__all__ = ["PairedResult", "paired_tests"]


@dataclass(frozen=True)
class PairedResult:
    """Paired tests of ``second`` against ``first``; NaN where fewer than two pairs."""

    n: int
    mean_first: float
    mean_second: float
    mean_difference: float
    ci_low: float
    ci_high: float
    conf_level: float
    ttest_p: float
    wilcoxon_p: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_tests(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray, conf_level: float = 0.95, first_name: str = "first",
                 second_name: str = "second") -> PairedResult:
    """Mean of ``second - first`` with its t interval, paired t and Wilcoxon signed-rank p-values.

    All differences zero: interval (0, 0) and p = 1 (the tests are undefined there, the
    conclusion is not). A constant non-zero difference: t p-value 0.
    """
    check_conf_level(conf_level)
    nan = math.nan
    if len(first) == 0 and len(second) == 0:  # type: ignore[arg-type]
        return PairedResult(0, nan, nan, nan, nan, nan, conf_level, nan, nan)
    a = as_score_array(first, first_name)
    b = as_score_array(second, second_name)
    n = check_same_length(**{first_name: a, second_name: b})
    diff = b - a
    result = dict(n=n, mean_first=float(np.mean(a)), mean_second=float(np.mean(b)), mean_difference=float(np.mean(diff)),
                  ci_low=nan, ci_high=nan, conf_level=conf_level, ttest_p=nan, wilcoxon_p=nan)
    if n < 2:
        return PairedResult(**result)
    if np.allclose(diff, 0.0):
        result.update(ci_low=0.0, ci_high=0.0, ttest_p=1.0, wilcoxon_p=1.0)
        return PairedResult(**result)
    sem = float(np.std(diff, ddof=1) / math.sqrt(n))
    half = float(sps.t.ppf(0.5 + conf_level / 2.0, n - 1)) * sem
    result.update(ci_low=result["mean_difference"] - half, ci_high=result["mean_difference"] + half)
    result["wilcoxon_p"] = float(sps.wilcoxon(b, a, zero_method="wilcox").pvalue)
    result["ttest_p"] = float(sps.ttest_rel(b, a).pvalue) if sem > 0 else 0.0
    return PairedResult(**result)
