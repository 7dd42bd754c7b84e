"""Calibration: val.prob intercept/slope, citl, Hosmer-Lemeshow (hoslem.test), curve, Brier."""

import unittest
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import brier_score_loss

from SpineMetsCore.stats import (
    SingleClassError,
    StatsInputError,
    brier_score,
    calibration_curve,
    calibration_summary,
    hosmer_lemeshow,
    logistic_calibration,
    r_quantile_type7,
)


def simulated(seed=0, n=400, a=0.3, b=0.7):
    """Predictions p whose true risk is expit(a + b * logit(p)): val.prob should recover (a, b)."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(scale=1.5, size=n))
    y = rng.random(n) < expit(a + b * logit(p))
    return y, p


def negll(beta, x, y, offset):
    eta = offset + beta[0] + (beta[1] * x if len(beta) > 1 else 0.0)
    return np.sum(np.logaddexp(0, eta) - y * eta)


class TestLogisticCalibration(unittest.TestCase):
    def test_matches_direct_likelihood_maximisation(self):
        y, p = simulated()
        res = logistic_calibration(y, p)
        lp = logit(p)
        fit = optimize.minimize(negll, x0=[0.0, 1.0], args=(lp, y, 0.0), method="BFGS",
                                options={"gtol": 1e-10})
        self.assertAlmostEqual(res.intercept, fit.x[0], places=5)
        self.assertAlmostEqual(res.slope, fit.x[1], places=5)
        citl = optimize.minimize_scalar(lambda a: negll([a], lp, y, lp)).x
        self.assertAlmostEqual(res.citl, citl, places=5)
        self.assertAlmostEqual(res.observed_minus_expected, y.mean() - p.mean(), places=12)
        # Wald CI from the observed information X'WX
        x = np.c_[np.ones_like(lp), lp]
        mu = expit(x @ np.array([res.intercept, res.slope]))
        se = np.sqrt(np.diag(np.linalg.inv(x.T @ (x * (mu * (1 - mu))[:, None]))))
        z = stats.norm.ppf(0.975)
        self.assertAlmostEqual(res.slope_ci[0], res.slope - z * se[1], places=6)
        self.assertAlmostEqual(res.intercept_ci[1], res.intercept + z * se[0], places=6)

    def test_recovers_miscalibration_and_perfect_calibration(self):
        y, p = simulated(0, n=4000, a=0.3, b=0.7)
        res = logistic_calibration(y, p)
        self.assertTrue(res.slope_ci[0] < 0.7 < res.slope_ci[1])
        self.assertTrue(res.intercept_ci[0] < 0.3 < res.intercept_ci[1])
        y, p = simulated(2, n=4000, a=0.0, b=1.0)
        res = logistic_calibration(y, p)
        self.assertTrue(res.slope_ci[0] < 1.0 < res.slope_ci[1])
        self.assertTrue(res.citl_ci[0] < 0.0 < res.citl_ci[1])

    def test_probabilities_0_and_1_excluded_like_val_prob(self):
        y, p = simulated(3, n=100)
        p = p.copy()
        p[:3] = [0.0, 1.0, 0.0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = logistic_calibration(y, p)
        self.assertEqual(res.n_excluded, 3)
        ref = logistic_calibration(y[3:], p[3:])
        self.assertAlmostEqual(res.slope, ref.slope, places=10)
        self.assertAlmostEqual(res.observed_minus_expected, y.mean() - p.mean(), places=12)
        self.assertTrue(any("excluded" in str(w.message) for w in caught))

    def test_constant_predictions_follow_val_prob(self):
        y = np.array([1, 0, 0, 1, 0, 0, 0, 1], bool)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            res = logistic_calibration(y, np.full(8, 0.2))
        self.assertEqual(res.slope, 0.0)
        self.assertAlmostEqual(res.intercept, logit(3 / 8), places=10)
        self.assertAlmostEqual(res.citl, logit(3 / 8) - logit(0.2), places=8)

    def test_separation_raises(self):
        y = np.array([0, 0, 0, 1, 1, 1], bool)
        p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
        with self.assertRaises(StatsInputError) as ctx:
            logistic_calibration(y, p, proba_name="prob_met")
        self.assertIn("prob_met", str(ctx.exception))

    def test_input_errors(self):
        with self.assertRaises(StatsInputError):
            logistic_calibration([1, 0, 1], [0.2, 1.2, 0.5])
        with self.assertRaises(SingleClassError):
            logistic_calibration([1, 1, 1], [0.2, 0.3, 0.5])
        with self.assertRaises(StatsInputError):
            brier_score([1, 0, 1], [0.2, np.nan, 0.5])


class TestHosmerLemeshow(unittest.TestCase):
    def test_hand_worked_example(self):
        # quantiles type 7 of 0.1..0.6 at 0, 1/3, 2/3, 1: 0.1, 0.2667, 0.4333, 0.6
        # groups {0.1, 0.2}, {0.3, 0.4}, {0.5, 0.6}; O1 = 0, 1, 2; E1 = 0.3, 0.7, 1.1
        p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
        y = np.array([0, 0, 1, 0, 1, 1])
        chi2 = (0.3 + 0.3 ** 2 / 0.7 + 0.9 ** 2 / 1.1 + 0.3 ** 2 / 1.7 + 0.3 ** 2 / 1.3 + 0.9 ** 2 / 0.9)
        res = hosmer_lemeshow(y, p, g=3)
        self.assertAlmostEqual(res.statistic, chi2, places=12)
        self.assertEqual(res.df, 1)
        self.assertAlmostEqual(res.p_value, stats.chi2.sf(chi2, 1), places=12)
        self.assertEqual(res.table["n"].tolist(), [2, 2, 2])

    def test_matches_pandas_cut_reference(self):
        rng = np.random.default_rng(0)
        p = rng.beta(2, 5, 300)
        y = rng.random(300) < p
        res = hosmer_lemeshow(y, p, g=10)
        breaks = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
        grp = pd.cut(p, breaks, include_lowest=True, right=True)
        df = pd.DataFrame({"g": grp, "y": y.astype(float), "p": p}).groupby("g", observed=True).agg(
            o1=("y", "sum"), e1=("p", "sum"), n=("y", "size"))
        chi2 = (((df.o1 - df.e1) ** 2 / df.e1) + ((df.n - df.o1 - (df.n - df.e1)) ** 2 / (df.n - df.e1))).sum()
        self.assertAlmostEqual(res.statistic, chi2, places=9)
        self.assertEqual(res.df, 8)
        self.assertAlmostEqual(res.p_value, stats.chi2.sf(chi2, 8), places=12)

    def test_type7_quantile(self):
        x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
        probs = np.linspace(0, 1, 7)
        np.testing.assert_allclose(r_quantile_type7(x, probs), np.quantile(x, probs), rtol=0, atol=1e-14)

    def test_duplicate_breaks_reduce_groups_and_df(self):
        p = np.r_[np.full(60, 0.1), np.linspace(0.2, 0.9, 40)]
        y = np.random.default_rng(1).random(100) < p
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = hosmer_lemeshow(y, p, g=10)
        self.assertLess(res.groups_used, 10)
        self.assertEqual(res.df, res.groups_used - 2)
        self.assertTrue(any("did not allow" in str(w.message) for w in caught))

    def test_degenerate_inputs_raise(self):
        with self.assertRaises(StatsInputError):
            hosmer_lemeshow([0, 1, 0, 1], [0.3] * 4)
        with self.assertRaises(StatsInputError):  # empty groups: n <= g
            hosmer_lemeshow([0, 1, 0, 1, 1], [0.1, 0.2, 0.5, 0.7, 0.9], g=10)
        with self.assertRaises(StatsInputError):
            hosmer_lemeshow([0, 1, 0], [0.1, 0.2, 0.5], g=1)


class TestCurveAndBrier(unittest.TestCase):
    def test_calibration_curve_matches_sklearn(self):
        y, p = simulated(4, n=300)
        for strategy in ("uniform", "quantile"):
            ours = calibration_curve(y, p, n_bins=8, strategy=strategy)
            prob_true, prob_pred = sk_calibration_curve(y, p, n_bins=8, strategy=strategy)
            np.testing.assert_allclose(ours["fraction_positive"], prob_true, atol=1e-12)
            np.testing.assert_allclose(ours["mean_predicted"], prob_pred, atol=1e-12)
            self.assertEqual(int(ours["n"].sum()), 300)

    def test_brier_matches_sklearn(self):
        y, p = simulated(5, n=50)
        self.assertAlmostEqual(brier_score(y, p), brier_score_loss(y, p), places=12)

    def test_summary_keys(self):
        y, p = simulated(6, n=200)
        out = calibration_summary(y, p)
        for key in ("brier", "slope", "intercept", "citl", "hl_chi2", "hl_df", "hl_p"):
            self.assertIn(key, out)
            self.assertIsNotNone(out[key])
        self.assertEqual(out["errors"], {})


if __name__ == "__main__":
    unittest.main()
