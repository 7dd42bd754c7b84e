"""Property-based tests (hypothesis) of the study statistics.

* ROC AUC depends only on the ranking: any strictly increasing transform of the
  score leaves it (and its DeLong SE) unchanged; a decreasing one gives 1 - AUC.
* Paired DeLong is antisymmetric: swapping the two models negates the difference
  and the statistic and keeps the p-value and the CI width.
* The stratified bootstrap is a pure function of its seed.
"""

import unittest
import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def labelled_scores(draw, n_models=1):
    n = draw(st.integers(6, 40))
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    assume(2 <= y.sum() <= n - 2)
    # a small set of levels makes ties likely, which AUC must also handle
    levels = draw(st.sampled_from([5, 20, 1000]))
    scores = [np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), dtype=float) / levels
              for _ in range(n_models)]
    return (y, *scores)


MONOTONE = {
    "exp": np.exp,
    "cube": lambda s: (s - 0.3) ** 3,
    "logit-ish": lambda s: np.log1p(s) * 7.0 + 2.0,
    "affine": lambda s: 3.5 * s - 100.0,
}


class StatsProperties(unittest.TestCase):
    @SETTINGS
    @given(labelled_scores(), st.sampled_from(sorted(MONOTONE)))
    def test_auc_invariant_under_increasing_transforms(self, data, name):
        from SpineMetsCore.stats import delong_auc, roc_auc

        y, s = data
        t = MONOTONE[name](s)
        self.assertAlmostEqual(roc_auc(y, s), roc_auc(y, t), places=12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # degenerate (perfectly separating) examples
            a, b = delong_auc(y, s, direction="<"), delong_auc(y, t, direction="<")
        self.assertAlmostEqual(a.auc, b.auc, places=12)
        self.assertAlmostEqual(a.se, b.se, places=10)
        # a decreasing transform mirrors the AUC
        self.assertAlmostEqual(roc_auc(y, -t), 1.0 - roc_auc(y, s), places=12)

    @SETTINGS
    @given(labelled_scores(n_models=2))
    def test_delong_swap_models_is_antisymmetric(self, data):
        from SpineMetsCore.stats import delong_roc_test

        y, s1, s2 = data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ab = delong_roc_test(y, s1, s2, direction="<")
            ba = delong_roc_test(y, s2, s1, direction="<")
        self.assertAlmostEqual(ab.difference, -ba.difference, places=12)
        self.assertAlmostEqual(ab.auc1, ba.auc2, places=12)
        self.assertAlmostEqual(ab.se, ba.se, places=12)
        if np.isfinite(ab.statistic):
            self.assertAlmostEqual(ab.statistic, -ba.statistic, places=9)
        self.assertAlmostEqual(ab.p_value, ba.p_value, places=12)
        self.assertAlmostEqual(ab.ci_high - ab.ci_low, ba.ci_high - ba.ci_low, places=9)
        self.assertTrue(0.0 <= ab.p_value <= 1.0)

    @SETTINGS
    @given(labelled_scores(), st.integers(0, 2**31 - 1))
    def test_bootstrap_is_reproducible_with_a_seed(self, data, seed):
        from SpineMetsCore.stats import bootstrap_metric, stratified_bootstrap_indices

        y, s = data
        a = bootstrap_metric(y, s, "auc", n_boot=60, seed=seed)
        b = bootstrap_metric(y, s, "auc", n_boot=60, seed=seed)
        self.assertEqual(a.to_dict(), b.to_dict())
        self.assertLessEqual(a.ci_low, a.ci_high)
        idx1 = stratified_bootstrap_indices(y, n_boot=20, seed=seed)
        idx2 = stratified_bootstrap_indices(y, n_boot=20, seed=seed)
        np.testing.assert_array_equal(np.array(list(idx1)), np.array(list(idx2)))
        # stratified: every replicate keeps the number of cases
        for rep in stratified_bootstrap_indices(y, n_boot=20, seed=seed):
            self.assertEqual(int(y[rep].sum()), int(y.sum()))


if __name__ == "__main__":
    unittest.main()
