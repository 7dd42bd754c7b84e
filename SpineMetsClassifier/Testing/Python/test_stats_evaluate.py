"""evaluate_predictions: consistency with the metric functions, model comparisons, atomic output."""

import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pandas as pd
from SpineMetsClassifierLib.evaluation import evaluate_predictions, write_evaluation_dir

from SpineMetsCore.stats import (
    MissingValueError,
    StatsInputError,
    bootstrap_classification_metrics,
    classification_metrics,
    decision_curve,
    delong_auc,
    delong_ovr_test,
    delong_roc_test,
)

CLASSES = ["lung", "breast", "prostate"]


def predictions(seed=0, n=120, noise=0.0, classes=CLASSES):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(classes), n)
    logits = rng.normal(size=(n, len(classes))) + 1.3 * np.eye(len(classes))[y]
    logits = logits + noise * np.random.default_rng(seed + 100).normal(size=logits.shape)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    df = pd.DataFrame({"case": [f"c{i:03d}" for i in range(n)], "truth": np.array(classes)[y]})
    for j, c in enumerate(classes):
        df[f"prob_{c}"] = p[:, j]
    return df, p


class TestSingleModel(unittest.TestCase):
    def test_numbers_equal_metric_functions(self):
        df, p = predictions()
        res = evaluate_predictions(df, "truth", n_boot=200, seed=4)
        point = classification_metrics(df.truth, p, CLASSES)
        boot = bootstrap_classification_metrics(df.truth, p, CLASSES, n_boot=200, seed=4)
        self.assertEqual(set(res["metrics"]), set(point))
        for k, v in res["metrics"].items():
            if np.isfinite(point[k]):
                self.assertAlmostEqual(v["estimate"], point[k], places=12, msg=k)
                self.assertEqual(v["ci"], [boot[k].ci_low, boot[k].ci_high], k)
        for j, c in enumerate(CLASSES):
            ref = delong_auc(df.truth == c, p[:, j], direction="<")
            self.assertAlmostEqual(res["auc_delong"][c]["auc"], ref.auc, places=12)
            self.assertEqual(res["auc_delong"][c]["ci"], list(ref.ci))
        self.assertEqual(res["settings"]["n_boot"], 200)
        self.assertEqual(sum(map(sum, res["confusion_matrix"]["matrix"])), len(df))
        self.assertEqual(set(res["calibration"]), set(CLASSES))

    def test_binary_has_decision_curve(self):
        df, p = predictions(classes=["benign", "malignant"], n=100)
        res = evaluate_predictions(df, "truth", n_boot=50)
        self.assertEqual(res["positive_class"], "malignant")
        ref = decision_curve(df.truth == "malignant", p[:, 1])
        got = pd.DataFrame(res["decision_curve"])
        np.testing.assert_allclose(got["net_benefit_model"], ref["net_benefit_model"], atol=1e-12)
        self.assertIn("auc", res["metrics"])
        res2 = evaluate_predictions(df, "truth", n_boot=50, positive="benign")
        self.assertAlmostEqual(res2["metrics"]["sensitivity"]["estimate"], res["metrics"]["specificity"]["estimate"])

    def test_input_errors(self):
        df, _ = predictions(n=30)
        with self.assertRaises(StatsInputError):
            evaluate_predictions(df, "diagnosis", n_boot=20)
        with self.assertRaises(StatsInputError):
            evaluate_predictions(df, "truth", prob_prefix="score_", n_boot=20)
        bad = df.copy()
        bad.loc[4, "prob_breast"] = np.nan
        with self.assertRaises(MissingValueError) as ctx:
            evaluate_predictions(bad, "truth", n_boot=20)
        self.assertIn("prob_breast", str(ctx.exception))
        bad = df.copy()
        bad.loc[2, "truth"] = ""
        with self.assertRaises(MissingValueError):
            evaluate_predictions(bad.astype(str), "truth", n_boot=20)


class TestModelComparison(unittest.TestCase):
    def test_paired_by_id_even_when_shuffled(self):
        a, pa = predictions(seed=1)
        b, pb = predictions(seed=1, noise=1.0)
        a["model"], b["model"] = "A", "B"
        long = pd.concat([a, b]).sample(frac=1.0, random_state=3).reset_index(drop=True)
        res = evaluate_predictions(long, "truth", model_column="model", id_column="case", reference_model="A",
                                   n_boot=100, seed=0)
        self.assertEqual(list(res["models"]), ["A", "B"])
        comp = res["comparisons"][0]
        self.assertTrue(comp["paired"])
        self.assertEqual(comp["pairing"], "paired by id")
        # same numbers as the per-class DeLong on aligned rows (order does not matter for DeLong)
        ref = delong_ovr_test(a.truth, pa, pb, CLASSES)
        for c in CLASSES:
            self.assertAlmostEqual(comp["delong"][c]["statistic"], ref[c].statistic, places=10)
            self.assertAlmostEqual(comp["delong"][c]["p_value"], ref[c].p_value, places=10)
        self.assertIn("macro_auc_bootstrap_test", comp)

    def test_unpaired_when_cases_differ(self):
        a, _ = predictions(seed=2, n=80, classes=["no", "yes"])
        b, pb = predictions(seed=3, n=90, classes=["no", "yes"])
        a["model"], b["model"] = "A", "B"
        res = evaluate_predictions(pd.concat([a, b]), "truth", model_column="model", n_boot=50)
        comp = res["comparisons"][0]
        self.assertFalse(comp["paired"])
        self.assertEqual(comp["delong"]["yes"]["statistic_name"], "D")
        self.assertNotIn("macro_auc_bootstrap_test", comp)

    def test_paired_by_row_order(self):
        a, pa = predictions(seed=4, n=60, classes=["no", "yes"])
        b, pb = predictions(seed=4, n=60, noise=0.5, classes=["no", "yes"])
        a["model"], b["model"] = "A", "B"
        res = evaluate_predictions(pd.concat([a, b]), "truth", model_column="model", n_boot=50)
        comp = res["comparisons"][0]
        self.assertTrue(comp["paired"])
        ref = delong_roc_test(a.truth == "yes", pa[:, 1], pb[:, 1], direction="<")
        self.assertAlmostEqual(comp["delong"]["yes"]["p_value"], ref.p_value, places=12)


class TestOutputs(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="spinemets_stats_eval_"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_files_and_strict_json(self):
        df, _ = predictions(n=60, classes=["no", "yes"])
        out = self.tmp / "run"
        evaluate_predictions(df, "truth", n_boot=50, out_dir=out)
        names = {p.name for p in out.iterdir()}
        self.assertTrue({"metrics.json", "metrics.csv", "dca.csv", "roc.png", "confusion_matrix.png",
                         "calibration.png", "decision_curve.png", "topk.png", "report.html"} <= names)
        text = (out / "metrics.json").read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        self.assertIn("report", data["figures"])
        self.assertEqual([p.name for p in self.tmp.iterdir()], ["run"])  # no staging leftovers
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o777 & ~_umask())

    def test_existing_directory_is_updated_file_by_file(self):
        out = self.tmp / "run"
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
        df, _ = predictions(n=60)
        evaluate_predictions(df, "truth", n_boot=20, out_dir=out, figures=False)
        self.assertEqual((out / "notes.txt").read_text(), "keep me")
        self.assertTrue((out / "metrics.json").is_file())
        self.assertFalse((out / "roc.png").exists())

    def test_failure_leaves_target_untouched(self):
        out = self.tmp / "run"
        out.mkdir()
        (out / "metrics.json").write_text("{}")

        def writer(d):
            (d / "metrics.json").write_text('{"partial": true}')
            raise RuntimeError("disk full")

        with self.assertRaises(RuntimeError):
            write_evaluation_dir(out, writer)
        self.assertEqual((out / "metrics.json").read_text(), "{}")
        self.assertEqual([p.name for p in self.tmp.iterdir()], ["run"])


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


if __name__ == "__main__":
    unittest.main()
