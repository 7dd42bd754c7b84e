"""Table-1 tests: the test chosen and its numbers vs direct scipy calls."""

import unittest

import numpy as np
import pandas as pd
from scipy import stats

from SpineMetsCore.stats import TABLE1_COLUMNS, StatsInputError, compare_categorical, compare_groups


def cohort(seed=0, n=80):
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.5, "lytic", "blastic")
    return pd.DataFrame({
        "group": group,
        "age": rng.normal(60, 10, n) + 3 * (group == "lytic"),
        "psa": rng.lognormal(1, 1.2, n),
        "sex": rng.choice(["F", "M"], n),
        "level": rng.choice(["C", "T", "L", "S"], n, p=[0.1, 0.5, 0.3, 0.1]),
    })


class TestCompareGroups(unittest.TestCase):
    def setUp(self):
        self.df = cohort()
        self.a = self.df["group"] == "blastic"  # groups sorted as text: blastic, lytic
        self.table = compare_groups(self.df, "group", continuous=["age", "psa"], categorical=["sex", "level"])

    def row(self, variable):
        return self.table.set_index("variable").loc[variable]

    def test_columns(self):
        self.assertEqual(list(self.table.columns), TABLE1_COLUMNS)
        self.assertEqual(self.table["variable"].tolist(), ["age", "psa", "sex", "level"])

    def test_normal_variable_uses_welch_t(self):
        x, y = self.df.age[self.a], self.df.age[~self.a]
        self.assertGreater(min(stats.shapiro(x).pvalue, stats.shapiro(y).pvalue), 0.05)
        ref = stats.ttest_ind(x, y, equal_var=False)
        r = self.row("age")
        self.assertEqual(r["test"], "Welch t-test")
        self.assertAlmostEqual(r["statistic"], ref.statistic, places=12)
        self.assertAlmostEqual(r["p"], ref.pvalue, places=12)
        student = compare_groups(self.df, "group", continuous=["age"], equal_var=True).iloc[0]
        self.assertEqual(student["test"], "Student t-test")
        self.assertAlmostEqual(student["p"], stats.ttest_ind(x, y).pvalue, places=12)

    def test_skewed_variable_uses_mann_whitney(self):
        x, y = self.df.psa[self.a], self.df.psa[~self.a]
        r = self.row("psa")
        self.assertEqual(r["test"], "Mann-Whitney U")
        method = "exact" if len(x) < 50 and len(y) < 50 else "asymptotic"
        ref = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
        self.assertAlmostEqual(r["statistic"], ref.statistic, places=12)
        self.assertAlmostEqual(r["p"], ref.pvalue, places=12)

    def test_categorical_chi_squared(self):
        tab = pd.crosstab(self.df.sex, self.df.group).to_numpy()
        ref = stats.chi2_contingency(tab, correction=True)
        r = self.row("sex")
        self.assertEqual(r["test"], "chi-squared (Yates)")
        self.assertAlmostEqual(r["statistic"], ref.statistic, places=12)
        self.assertAlmostEqual(r["p"], ref.pvalue, places=12)

    def test_small_2x2_uses_fisher(self):
        v = ["yes"] * 1 + ["no"] * 9 + ["yes"] * 6 + ["no"] * 4  # expected "yes" count 3.5 per group
        g = ["a"] * 10 + ["b"] * 10
        r = compare_categorical(v, g, variable="fracture")
        self.assertEqual(r["test"], "Fisher exact")
        tab = pd.crosstab(np.array(v), np.array(g)).to_numpy()
        self.assertAlmostEqual(r["p"], stats.fisher_exact(tab).pvalue, places=12)

    def test_small_larger_table_keeps_chi_squared_with_note_or_seeded_fisher(self):
        r = self.row("level")
        self.assertIn(r["test"], ("chi-squared",))
        self.assertIn("expected count < 5", r["note"])
        f1 = compare_categorical(self.df.level, self.df.group, rxc_fisher=True, seed=1, n_resamples=2000)
        f2 = compare_categorical(self.df.level, self.df.group, rxc_fisher=True, seed=1, n_resamples=2000)
        self.assertEqual(f1["test"], "Fisher-Freeman-Halton (Monte Carlo)")
        self.assertEqual(f1["p"], f2["p"])

    def test_three_groups_and_inference(self):
        df = self.df.copy()
        df["group"] = np.random.default_rng(2).choice(["x", "y", "z"], len(df))
        t = compare_groups(df, "group")
        self.assertEqual(set(t["variable"]), {"age", "psa", "sex", "level"})
        r = t.set_index("variable").loc["psa"]
        self.assertEqual(r["test"], "Kruskal-Wallis")
        samples = [df.psa[df.group == g] for g in "xyz"]
        self.assertAlmostEqual(r["p"], stats.kruskal(*samples).pvalue, places=12)

    def test_welch_anova_closed_form(self):
        from SpineMetsCore.stats.cohort_tests import _welch_anova_closed_form

        rng = np.random.default_rng(3)
        two = [rng.normal(0, 1, 12), rng.normal(0.8, 2.5, 20)]
        f, p = _welch_anova_closed_form(two)
        t = stats.ttest_ind(*two, equal_var=False)
        self.assertAlmostEqual(f, t.statistic ** 2, places=10)  # k = 2: Welch F = Welch t^2
        self.assertAlmostEqual(p, t.pvalue, places=10)
        three = two + [rng.normal(1.0, 0.5, 15)]
        try:
            ref = stats.f_oneway(*three, equal_var=False)
        except TypeError:
            self.skipTest("scipy without f_oneway(equal_var=False)")
        f, p = _welch_anova_closed_form(three)
        self.assertAlmostEqual(f, ref.statistic, places=10)
        self.assertAlmostEqual(p, ref.pvalue, places=10)

    def test_errors(self):
        with self.assertRaises(StatsInputError):
            compare_groups(self.df, "cohort")
        with self.assertRaises(StatsInputError):
            compare_groups(self.df, "group", continuous=["weight"])
        bad = self.df.astype({"age": object})
        bad.loc[0, "age"] = "sixty"
        with self.assertRaises(StatsInputError) as ctx:
            compare_groups(bad, "group", continuous=["age"])
        self.assertIn("age", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
