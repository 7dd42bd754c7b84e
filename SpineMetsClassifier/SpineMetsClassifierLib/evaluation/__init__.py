"""Study evaluation of a predictions table: metrics with CIs, model comparisons, figures, report.

The statistics themselves are pure numpy/scipy and live in :mod:`SpineMetsCore.stats`;
this package assembles them into ``metrics.json``, figures and ``report.html``
(pandas, matplotlib).
"""

from .evaluate import DEFAULT_PROB_PREFIX, evaluate_predictions, probability_columns, read_table, write_evaluation_dir

__all__ = ["DEFAULT_PROB_PREFIX", "evaluate_predictions", "probability_columns", "read_table", "write_evaluation_dir"]
