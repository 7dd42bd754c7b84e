"""Decision curve analysis vs brute-force net benefit (dcurves conventions)."""

import unittest

import numpy as np

from SpineMetsCore.stats import (
    DCA_COLUMNS,
    MissingValueError,
    SingleClassError,
    StatsInputError,
    decision_curve,
    net_benefit,
    parse_threshold_spec,
    threshold_grid,
)


def brute_force_nb(y, risk, t, strict=True):
    """Vickers & Elkin (2006): NB = TP/n - FP/n * t/(1-t), counting patients one by one."""
    n = len(y)
    tp = fp = 0
    for yi, ri in zip(y, risk, strict=False):
        positive = (ri > t) if strict else (ri >= t)
        if ri == 0.0:
            positive = False  # dcurves: risk 0 -> 0 - eps
        if ri == 1.0:
            positive = True  # dcurves: risk 1 -> 1 + eps
        if positive and yi:
            tp += 1
        elif positive:
            fp += 1
    return tp / n - fp / n * t / (1 - t)


class TestDecisionCurve(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(0)
        self.y = rng.random(150) < 0.3
        self.risk = np.round(np.clip(0.3 + 0.3 * (self.y - 0.3) + rng.normal(scale=0.2, size=150), 0, 1), 2)

    def test_columns_and_default_grid(self):
        df = decision_curve(self.y, self.risk)
        self.assertEqual(list(df.columns), DCA_COLUMNS)
        self.assertEqual(len(df), 99)
        self.assertAlmostEqual(df["threshold"].iloc[0], 0.01)
        self.assertAlmostEqual(df["threshold"].iloc[-1], 0.99)
        self.assertTrue((df["net_benefit_none"] == 0).all())

    def test_matches_brute_force(self):
        df = decision_curve(self.y, self.risk)
        prev = self.y.mean()
        for _, row in df.iterrows():
            t = row["threshold"]
            self.assertAlmostEqual(row["net_benefit_model"], brute_force_nb(self.y, self.risk, t), places=12)
            self.assertAlmostEqual(row["net_benefit_all"], prev - (1 - prev) * t / (1 - t), places=12)
            nia = (row["net_benefit_model"] - row["net_benefit_all"]) / (t / (1 - t))
            self.assertAlmostEqual(row["net_interventions_avoided"], nia, places=12)

    def test_strict_default_and_inclusive_option(self):
        # the grid value 0.3 equals risks of exactly 0.3: strictly greater (the default) does not
        # count them test-positive; dcurves' source (>=, strict=False) does
        self.assertTrue(np.any(self.risk == 0.3))
        t = threshold_grid(0.01, 0.99, 0.01)[29]
        self.assertEqual(t, 0.3)
        nb = net_benefit(self.y, self.risk, t)
        self.assertAlmostEqual(nb, brute_force_nb(self.y, self.risk, 0.3, strict=True), places=12)
        nb_inclusive = net_benefit(self.y, self.risk, t, strict=False)
        self.assertAlmostEqual(nb_inclusive, brute_force_nb(self.y, self.risk, 0.3, strict=False), places=12)
        self.assertNotAlmostEqual(nb, nb_inclusive, places=6)

    def test_risk_zero_and_one(self):
        y = np.array([1, 0, 1, 0], bool)
        risk = np.array([1.0, 0.0, 0.0, 1.0])
        df = decision_curve(y, risk, thresholds=[0.0, 0.5])
        # threshold 0: risk 0 is never positive, risk 1 always: TP = 1, FP = 1, odds 0 -> NB = 1/4
        self.assertAlmostEqual(df["net_benefit_model"].iloc[0], 0.25)
        self.assertTrue(np.isnan(df["net_interventions_avoided"].iloc[0]))
        self.assertAlmostEqual(df["net_benefit_model"].iloc[1], brute_force_nb(y, risk, 0.5))

    def test_prevalence_formula(self):
        prev = 0.1
        df = decision_curve(self.y, self.risk, prevalence=prev, thresholds=[0.05, 0.2])
        for _, row in df.iterrows():
            t = row["threshold"]
            tpr = np.mean(self.risk[self.y] > t)
            fpr = np.mean(self.risk[~self.y] > t)
            self.assertAlmostEqual(row["net_benefit_model"], tpr * prev - fpr * (1 - prev) * t / (1 - t), places=12)
            self.assertAlmostEqual(row["net_benefit_all"], prev - (1 - prev) * t / (1 - t), places=12)

    def test_nper(self):
        a = decision_curve(self.y, self.risk, thresholds=[0.2])
        b = decision_curve(self.y, self.risk, thresholds=[0.2], nper=100)
        self.assertAlmostEqual(b["net_interventions_avoided"].iloc[0], 100 * a["net_interventions_avoided"].iloc[0])

    def test_threshold_spec(self):
        np.testing.assert_allclose(parse_threshold_spec("0.1:0.3:0.1"), [0.1, 0.2, 0.3])
        np.testing.assert_allclose(parse_threshold_spec("0.05,0.5"), [0.05, 0.5])
        for bad in ("0.1:1.0:0.1", "a:b:c", "0.1:0.2", "0.5:0.1:0.1"):
            with self.assertRaises(StatsInputError, msg=bad):
                parse_threshold_spec(bad)

    def test_errors(self):
        with self.assertRaises(StatsInputError):
            decision_curve(self.y, self.risk, prevalence=1.5)
        with self.assertRaises(StatsInputError):
            decision_curve(self.y, self.risk, thresholds=[1.0])
        bad = self.risk.copy()
        bad[0] = np.nan
        with self.assertRaises(MissingValueError) as ctx:
            decision_curve(self.y, bad, risk_name="prob_met")
        self.assertIn("prob_met", str(ctx.exception))
        with self.assertRaises(StatsInputError):
            decision_curve(self.y, self.risk * 2)
        with self.assertRaises(SingleClassError):
            decision_curve(np.zeros(5, bool), np.linspace(0, 1, 5))


if __name__ == "__main__":
    unittest.main()
