"""Stratified bootstrap CIs: reproducibility, stratification, percentile definition, BCa, tests."""

import inspect
import unittest
import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from SpineMetsCore.stats import (
    DEFAULT_N_BOOT,
    SingleClassError,
    StatsInputError,
    bootstrap_auc_difference_test,
    bootstrap_ci,
    bootstrap_classification_metrics,
    bootstrap_metric,
    classification_metrics,
    stratified_bootstrap_indices,
)


def binary_data(seed=0, n=120):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.35
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 0.5)))
    return y, s


class TestDefaults(unittest.TestCase):
    def test_default_is_1000_replicates(self):
        self.assertEqual(DEFAULT_N_BOOT, 1000)
        for fn in (bootstrap_ci, bootstrap_metric, bootstrap_classification_metrics,
                   bootstrap_auc_difference_test, stratified_bootstrap_indices):
            default = inspect.signature(fn).parameters["n_boot"].default
            self.assertEqual(default, 1000, fn.__name__)


class TestResampling(unittest.TestCase):
    def test_stratified_keeps_class_counts(self):
        strata = np.array(["a"] * 7 + ["b"] * 3 + ["c"] * 5)
        for idx in stratified_bootstrap_indices(strata, 50, seed=3):
            self.assertEqual(idx.size, strata.size)
            counts = {c: int((strata[idx] == c).sum()) for c in "abc"}
            self.assertEqual(counts, {"a": 7, "b": 3, "c": 5})

    def test_same_seed_same_result_other_seed_differs(self):
        y, s = binary_data()
        r1 = bootstrap_metric(y, s, "auc", n_boot=200, seed=42)
        r2 = bootstrap_metric(y, s, "auc", n_boot=200, seed=42)
        r3 = bootstrap_metric(y, s, "auc", n_boot=200, seed=43)
        self.assertEqual(r1.ci, r2.ci)
        self.assertNotEqual(r1.ci, r3.ci)
        self.assertEqual((r1.n_boot, r1.seed, r1.method, r1.stratified), (200, 42, "percentile", True))

    def test_percentile_ci_is_type7_quantile_of_replicates(self):
        y, s = binary_data(1)
        res = bootstrap_metric(y, s, "auc", n_boot=200, seed=7, conf_level=0.9)
        reps = [roc_auc_score(y[i], s[i]) for i in stratified_bootstrap_indices(y, 200, seed=7)]
        lo, hi = np.percentile(reps, [5, 95])  # numpy default "linear" = R type 7
        self.assertAlmostEqual(res.ci_low, lo, places=12)
        self.assertAlmostEqual(res.ci_high, hi, places=12)
        self.assertAlmostEqual(res.estimate, roc_auc_score(y, s), places=12)
        self.assertLessEqual(res.ci_low, res.estimate)
        self.assertGreaterEqual(res.ci_high, res.estimate)

    def test_threshold_metrics(self):
        y, s = binary_data(2)
        res = bootstrap_metric(y, s, "sensitivity", threshold=0.5, n_boot=200)
        self.assertAlmostEqual(res.estimate, np.mean(s[y] >= 0.5), places=12)
        self.assertLessEqual(res.ci_low, res.ci_high)
        with self.assertRaises(StatsInputError):
            bootstrap_metric(y, s, "kappa", n_boot=10)
        with self.assertRaises(StatsInputError):
            bootstrap_metric(y, s, n_boot=1)
        with self.assertRaises(SingleClassError):
            bootstrap_metric(np.ones_like(y), s, n_boot=10)


class TestBCa(unittest.TestCase):
    def test_bca_close_to_scipy_for_a_mean(self):
        rng = np.random.default_rng(0)
        x = rng.exponential(size=60)
        ours = bootstrap_ci(lambda i: float(x[i].mean()), np.zeros(60), n_boot=2000, seed=1,
                            method="bca", stratified=False)["value"]
        try:
            ref = stats.bootstrap((x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(1))
        except TypeError:  # scipy < 1.15
            ref = stats.bootstrap((x,), np.mean, n_resamples=2000, method="BCa",
                                  random_state=np.random.default_rng(1))
        # different random streams: agree to Monte Carlo precision
        self.assertAlmostEqual(ours.ci_low, ref.confidence_interval.low, delta=0.05)
        self.assertAlmostEqual(ours.ci_high, ref.confidence_interval.high, delta=0.05)
        self.assertEqual(ours.method, "bca")

    def test_bca_undefined_warns(self):
        # statistic that is 1 on the original sample and 0 on (almost) every replicate:
        # all replicates lie below the estimate, so the bias correction z0 is infinite
        def distinct(i):
            return float(np.unique(i).size == i.size)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = bootstrap_ci(distinct, np.zeros(30), n_boot=20, method="bca", stratified=False)["value"]
        self.assertTrue(np.isnan(res.ci_low))
        self.assertTrue(any("BCa" in str(w.message) for w in caught))


class TestMulticlass(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(5)
        n = 150
        self.classes = ["a", "b", "c"]
        self.y = np.array(self.classes)[rng.integers(0, 3, n)]
        logits = rng.normal(size=(n, 3)) + 1.5 * (self.y[:, None] == np.array(self.classes))
        self.p1 = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        noisy = logits + rng.normal(size=logits.shape) * 1.5
        self.p2 = np.exp(noisy) / np.exp(noisy).sum(1, keepdims=True)

    def test_all_metrics_get_cis(self):
        res = bootstrap_classification_metrics(self.y, self.p1, self.classes, n_boot=200, seed=0)
        point = classification_metrics(self.y, self.p1, self.classes)
        self.assertEqual(set(res), set(point))
        for k, r in res.items():
            self.assertAlmostEqual(r.estimate, point[k], places=12, msg=k)
            self.assertTrue(r.ci_low <= r.estimate + 1e-12 and r.estimate - 1e-12 <= r.ci_high, k)

    def test_macro_auc_difference_test(self):
        res = bootstrap_auc_difference_test(self.y, self.p1, self.p2, self.classes, n_boot=200, seed=0)
        p1 = classification_metrics(self.y, self.p1, self.classes)["auc_macro_ovr"]
        p2 = classification_metrics(self.y, self.p2, self.classes)["auc_macro_ovr"]
        self.assertAlmostEqual(res.difference, p1 - p2, places=12)
        self.assertAlmostEqual(res.p_value, 2 * stats.norm.sf(abs(res.difference / res.sd)), places=12)
        self.assertLess(res.ci_low, res.difference)
        same = bootstrap_auc_difference_test(self.y, self.p1, self.p1, self.classes, n_boot=50)
        self.assertEqual((same.difference, same.statistic, same.p_value), (0.0, 0.0, 1.0))


if __name__ == "__main__":
    unittest.main()
