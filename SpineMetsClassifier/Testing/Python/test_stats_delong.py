"""DeLong AUC variance, CI and tests vs an independent O(n^2) implementation and published values."""

import unittest
import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from SpineMetsCore.stats import (
    MissingValueError,
    SingleClassError,
    StatsInputError,
    delong_auc,
    delong_ovr_test,
    delong_placements,
    delong_roc_test,
    delong_roc_test_unpaired,
    roc_auc,
    roc_direction,
)


def naive_components(cases, controls):
    """DeLong et al. (1988) structural components by the double loop over (case, control) pairs."""
    psi = np.array([[1.0 if x > y else 0.5 if x == y else 0.0 for y in controls] for x in cases])
    return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)


def naive_paired(y, s1, s2):
    """Paired DeLong Z, SE and AUCs from the naive components (DeLong 1988, eq. for L = (1, -1))."""
    comps = [naive_components(s[y], s[~y]) for s in (s1, s2)]
    m, n = y.sum(), (~y).sum()
    v10 = np.vstack([c[1] for c in comps])
    v01 = np.vstack([c[2] for c in comps])
    s10 = np.cov(v10)
    s01 = np.cov(v01)
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    d = comps[0][0] - comps[1][0]
    return d / np.sqrt(var), np.sqrt(var), comps[0][0], comps[1][0]


def make_data(seed, n=80, ties=True):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    y[:2], y[2:4] = True, False
    s1 = rng.normal(size=n) + 1.0 * y
    s2 = 0.6 * s1 + rng.normal(size=n) * 0.8 + 0.3 * y
    if ties:
        s1, s2 = np.round(s1, 1), np.round(s2, 1)
    return y, s1, s2


class TestPlacements(unittest.TestCase):
    def test_fast_midrank_equals_naive_components(self):
        for seed in range(5):
            y, s1, _ = make_data(seed)
            theta, v10, v01 = delong_placements(s1[y], s1[~y])
            t_ref, v10_ref, v01_ref = naive_components(s1[y], s1[~y])
            self.assertAlmostEqual(theta, t_ref, places=12)
            np.testing.assert_allclose(v10, v10_ref, atol=1e-12)
            np.testing.assert_allclose(v01, v01_ref, atol=1e-12)

    def test_auc_equals_sklearn_and_mann_whitney(self):
        y, s1, _ = make_data(3)
        auc = roc_auc(y, s1)
        self.assertAlmostEqual(auc, roc_auc_score(y, s1), places=12)
        u = stats.mannwhitneyu(s1[y], s1[~y]).statistic
        self.assertAlmostEqual(auc, u / (y.sum() * (~y).sum()), places=12)

    def test_hanley_mcneil_1982_rating_example(self):
        # Hanley & McNeil (1982) Radiology 143:29, Table 1: CT ratings 1..5 of
        # 58 normal and 51 abnormal patients; published area 0.893.
        normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
        abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
        y = np.r_[np.zeros(58, bool), np.ones(51, bool)]
        res = delong_auc(y, np.r_[normal, abnormal])
        self.assertAlmostEqual(res.auc, 0.893, places=3)


class TestDelongAUC(unittest.TestCase):
    def test_se_and_ci_match_naive(self):
        y, s1, _ = make_data(7)
        res = delong_auc(y, s1, conf_level=0.9)
        theta, v10, v01 = naive_components(s1[y], s1[~y])
        se = np.sqrt(v10.var(ddof=1) / y.sum() + v01.var(ddof=1) / (~y).sum())
        z = stats.norm.ppf(0.95)
        self.assertAlmostEqual(res.auc, theta, places=12)
        self.assertAlmostEqual(res.se, se, places=12)
        self.assertAlmostEqual(res.ci_low, theta - z * se, places=12)
        self.assertAlmostEqual(res.ci_high, theta + z * se, places=12)
        self.assertEqual(res.direction, "<")

    def test_ci_truncated_to_unit_interval(self):
        y = np.r_[np.ones(5, bool), np.zeros(5, bool)]
        s = np.r_[5, 6, 7, 8, 1.5, 1, 2, 3, 4, 1.6]
        res = delong_auc(y, s)
        self.assertLessEqual(res.ci_high, 1.0)
        self.assertGreaterEqual(res.ci_low, 0.0)

    def test_auto_direction_uses_medians_like_proc(self):
        y = np.r_[np.ones(6, bool), np.zeros(6, bool)]
        s = np.r_[1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9.0]  # cases lower
        self.assertEqual(roc_direction(s[y], s[~y]), ">")
        res = delong_auc(y, s)
        self.assertEqual(res.direction, ">")
        self.assertAlmostEqual(res.auc, 1 - roc_auc_score(y, s), places=12)
        self.assertGreaterEqual(res.auc, 0.5)
        # equal medians -> "<" (pROC: median(controls) <= median(cases))
        self.assertEqual(roc_direction(np.array([1.0, 3.0]), np.array([2.0, 2.0])), "<")
        # explicit direction is kept even when AUC < 0.5
        self.assertLess(delong_auc(y, s, direction="<").auc, 0.5)

    def test_positive_label(self):
        labels = np.array(["bad", "good"] * 10)
        s = np.arange(20.0) + (labels == "bad") * 3
        a = delong_auc(labels, s, positive="bad").auc
        self.assertAlmostEqual(a, roc_auc_score(labels == "bad", s), places=12)

    def test_errors(self):
        with self.assertRaises(SingleClassError):
            delong_auc(np.ones(5, bool), np.arange(5.0))
        with self.assertRaises(SingleClassError):  # one control is too few for the variance
            delong_auc(np.array([1, 1, 1, 0]), np.arange(4.0))
        with self.assertRaises(MissingValueError) as ctx:
            delong_auc(np.array([1, 0, 1, 0]), [0.1, np.nan, 0.3, 0.2], score_name="s100b")
        self.assertIn("s100b", str(ctx.exception))
        self.assertIsInstance(ctx.exception, ValueError)
        with self.assertRaises(StatsInputError):
            delong_auc(np.array([1, 0, 2, 0]), np.arange(4.0))  # labels not 0/1 without positive
        with self.assertRaises(StatsInputError):
            delong_auc(np.array([1, 0, 1, 0]), np.arange(3.0))
        with self.assertRaises(StatsInputError):
            delong_auc(np.array([1, 0, 1, 0]), np.arange(4.0), direction="up")

    def test_constant_scores_warn_and_give_half(self):
        y = np.array([1, 1, 0, 0, 1, 0], bool)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = delong_auc(y, np.full(6, 0.3))
        self.assertEqual(res.auc, 0.5)
        self.assertEqual(res.se, 0.0)
        self.assertTrue(any("variance is 0" in str(w.message) for w in caught))


class TestPairedTest(unittest.TestCase):
    def test_matches_naive_implementation(self):
        for seed in range(4):
            y, s1, s2 = make_data(seed)
            z_ref, se_ref, a1, a2 = naive_paired(y, s1, s2)
            res = delong_roc_test(y, s1, s2, direction="<")
            self.assertAlmostEqual(res.statistic, z_ref, places=10)
            self.assertAlmostEqual(res.se, se_ref, places=12)
            self.assertAlmostEqual(res.auc1, a1, places=12)
            self.assertAlmostEqual(res.auc2, a2, places=12)
            self.assertAlmostEqual(res.p_value, 2 * stats.norm.sf(abs(z_ref)), places=12)
            z = stats.norm.ppf(0.975)
            self.assertAlmostEqual(res.ci_low, (a1 - a2) - z * se_ref, places=12)
            self.assertAlmostEqual(res.ci_high, (a1 - a2) + z * se_ref, places=12)
            self.assertEqual(res.statistic_name, "Z")
            self.assertTrue(res.paired)

    def test_one_sided_p_values(self):
        y, s1, s2 = make_data(11)
        two = delong_roc_test(y, s1, s2)
        gt = delong_roc_test(y, s1, s2, alternative="greater")
        lt = delong_roc_test(y, s1, s2, alternative="less")
        self.assertAlmostEqual(gt.p_value, stats.norm.sf(two.statistic), places=14)
        self.assertAlmostEqual(gt.p_value + lt.p_value, 1.0, places=14)
        self.assertEqual(delong_roc_test(y, s1, s2, alternative="two.sided").alternative, "two-sided")
        # swapping the curves flips the sign, keeps the two-sided p
        sw = delong_roc_test(y, s2, s1)
        self.assertAlmostEqual(sw.statistic, -two.statistic, places=12)
        self.assertAlmostEqual(sw.p_value, two.p_value, places=12)

    def test_identical_curves(self):
        y, s1, _ = make_data(2)
        res = delong_roc_test(y, s1, s1)
        self.assertEqual(res.statistic, 0.0)
        self.assertEqual(res.p_value, 1.0)

    def test_per_curve_auto_direction_and_warning(self):
        y, s1, _ = make_data(5, ties=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = delong_roc_test(y, s1, -s1)
        self.assertEqual((res.direction1, res.direction2), ("<", ">"))
        self.assertAlmostEqual(res.auc1, res.auc2, places=12)
        self.assertTrue(any("different direction" in str(w.message) for w in caught))

    def test_missing_scores_raise_with_name(self):
        y, s1, s2 = make_data(1)
        s2 = s2.copy()
        s2[3] = np.nan
        with self.assertRaises(MissingValueError) as ctx:
            delong_roc_test(y, s1, s2, names=("wfns", "s100b"))
        self.assertIn("s100b", str(ctx.exception))


class TestUnpairedTest(unittest.TestCase):
    def test_matches_naive_welch_formula(self):
        ya, sa, _ = make_data(21, n=70)
        yb, _, sb = make_data(22, n=90)
        res = delong_roc_test_unpaired(ya, sa, yb, sb)
        parts = []
        for y, s in ((ya, sa), (yb, sb)):
            theta, v10, v01 = naive_components(s[y], s[~y])
            parts.append((theta, v10.var(ddof=1) / y.sum() + v01.var(ddof=1) / (~y).sum(), y.size))
        (t1, v1, n1), (t2, v2, n2) = parts
        d = (t1 - t2) / np.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
        self.assertAlmostEqual(res.statistic, d, places=10)
        self.assertAlmostEqual(res.df, df, places=8)
        self.assertAlmostEqual(res.p_value, 2 * stats.t.sf(abs(d), df), places=12)
        crit = stats.t.ppf(0.975, df)
        self.assertAlmostEqual(res.ci_low, t1 - t2 - crit * np.sqrt(v1 + v2), places=12)
        self.assertEqual(res.statistic_name, "D")
        self.assertFalse(res.paired)
        gt = delong_roc_test_unpaired(ya, sa, yb, sb, alternative="greater")
        self.assertAlmostEqual(gt.p_value, stats.t.sf(d, df), places=12)


class TestOvR(unittest.TestCase):
    def test_per_class_equals_binary_tests(self):
        rng = np.random.default_rng(0)
        n, k = 120, 3
        labels = np.array(["a", "b", "c"])[rng.integers(0, k, n)]
        p1 = rng.dirichlet(np.ones(k), n)
        p2 = rng.dirichlet(np.ones(k), n)
        out = delong_ovr_test(labels, p1, p2, ["a", "b", "c"])
        self.assertEqual(list(out), ["a", "b", "c"])
        for j, c in enumerate("abc"):
            ref = delong_roc_test(labels == c, p1[:, j], p2[:, j], direction="<")
            self.assertAlmostEqual(out[c].statistic, ref.statistic, places=12)
            self.assertAlmostEqual(out[c].auc1, roc_auc_score(labels == c, p1[:, j]), places=12)


if __name__ == "__main__":
    unittest.main()
