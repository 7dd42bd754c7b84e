"""Core paired tests (reader studies): t interval, paired t and Wilcoxon against hand/R values."""

import math
import unittest

import numpy as np


class PairedTestsTest(unittest.TestCase):
    def test_values_match_the_formulas_and_scipy(self):
        from scipy import stats

        from SpineMetsCore.stats import paired_tests

        before = np.array([0.71, 0.80, 0.65, 0.90, 0.77, 0.68, 0.83, 0.74])
        after = np.array([0.79, 0.84, 0.70, 0.91, 0.86, 0.70, 0.86, 0.80])  # differences all > 0, no ties
        r = paired_tests(before, after)
        diff = after - before
        self.assertEqual(r.n, 8)
        self.assertAlmostEqual(r.mean_difference, 0.0475, places=12)
        se = diff.std(ddof=1) / math.sqrt(8)
        half = stats.t.ppf(0.975, 7) * se
        self.assertAlmostEqual(r.ci_low, 0.0475 - half, places=12)
        self.assertAlmostEqual(r.ci_high, 0.0475 + half, places=12)
        # paired t: t = mean / se on 7 df, two-sided
        self.assertAlmostEqual(r.ttest_p, 2 * stats.t.sf(0.0475 / se, 7), places=12)
        # exact signed-rank: all 8 differences positive -> V = 36, the largest of 2^8 sign patterns
        self.assertAlmostEqual(r.wilcoxon_p, 2 / 2**8, places=12)
        self.assertLess(r.ci_low, r.mean_difference)

    def test_degenerate_inputs(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.stats import paired_tests

        same = paired_tests([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
        self.assertEqual((same.ci_low, same.ci_high, same.ttest_p, same.wilcoxon_p), (0.0, 0.0, 1.0, 1.0))
        one = paired_tests([0.5], [0.6])
        self.assertTrue(math.isnan(one.ttest_p))
        self.assertAlmostEqual(one.mean_difference, 0.1)
        empty = paired_tests([], [])
        self.assertEqual(empty.n, 0)
        with self.assertRaises(InputError) as ctx:
            paired_tests([0.1, 0.2], [0.1], first_name="unassisted", second_name="assisted")
        self.assertIn("unassisted", str(ctx.exception))

    def test_reader_study_uses_it(self):
        import pandas as pd
        from SpineMetsSegmentLib.reader_study import paired_comparison

        per_case = pd.DataFrame({
            "case_id": [f"c{i}" for i in range(6)] * 2,
            "reader": ["r1"] * 12,
            "condition": ["unassisted"] * 6 + ["assisted"] * 6,
            "dice": [0.6, 0.7, 0.65, 0.8, 0.75, 0.7, 0.7, 0.75, 0.72, 0.82, 0.8, 0.71],
        })
        row = paired_comparison(per_case, metrics=("dice",)).iloc[0]
        from SpineMetsCore.stats import paired_tests

        expected = paired_tests(per_case["dice"][:6].to_numpy(), per_case["dice"][6:].to_numpy())
        self.assertAlmostEqual(row["mean_difference"], expected.mean_difference)
        self.assertAlmostEqual(row["ci95_low"], expected.ci_low)
        self.assertAlmostEqual(row["wilcoxon_p"], expected.wilcoxon_p)
        self.assertAlmostEqual(row["ttest_p"], expected.ttest_p)


if __name__ == "__main__":
    unittest.main()
