"""``stats`` CLI run in-process through ``main([...])`` with temporary CSVs."""

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import pandas as pd

from SpineMetsApp.cli import main as spinemets_main
from SpineMetsApp.commands import statistics as stats_cli
from SpineMetsCore.stats import (
    DCA_COLUMNS,
    bootstrap_metric,
    calibration_summary,
    decision_curve,
    delong_auc,
    delong_roc_test,
    delong_roc_test_unpaired,
)


def run(argv):
    """(exit code, stdout, stderr) of the CLI."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = spinemets_main(argv)
    return code, out.getvalue(), err.getvalue()


def strict_json(text):
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=reject)


class CLITestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="spinemets_stats_cli_")
        rng = np.random.default_rng(0)
        n = 120
        y = rng.random(n) < 0.4
        a = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 0.6)))
        b = 1 / (1 + np.exp(-(rng.normal(size=n) + 0.8 * y - 0.4)))
        cls.y, cls.a, cls.b = y, np.round(a, 4), np.round(b, 4)
        cls.df = pd.DataFrame({"outcome": np.where(y, "Poor", "Good"), "modelA": cls.a, "modelB": cls.b})
        cls.csv = os.path.join(cls.tmp, "scores.csv")
        cls.df.to_csv(cls.csv, index=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write(self, name, df):
        path = os.path.join(self.tmp, name)
        df.to_csv(path, index=False)
        return path


class TestDelongCommand(CLITestCase):
    def test_paired_output_matches_library(self):
        code, out, err = run(["stats", "delong", "--csv", self.csv, "--truth", "outcome", "--positive", "Poor",
                              "--score", "modelA", "--score", "modelB"])
        self.assertEqual(code, 0, err)
        res = strict_json(out)
        for key in ("auc", "auc_ci", "z", "p", "diff_ci"):
            self.assertIn(key, res)
        ref = delong_roc_test(self.y, self.a, self.b)
        self.assertAlmostEqual(res["z"], ref.statistic, places=12)
        self.assertAlmostEqual(res["p"], ref.p_value, places=12)
        self.assertAlmostEqual(res["auc"]["modelA"], ref.auc1, places=12)
        self.assertEqual(res["diff_ci"], list(ref.ci))
        self.assertEqual(res["auc_ci"]["modelB"], list(delong_auc(self.y, self.b).ci))
        self.assertTrue(res["paired"])

    def test_alternative(self):
        code, out, _ = run(["stats", "delong", "--csv", self.csv, "--truth", "outcome", "--positive", "Poor",
                            "--score", "modelA", "--score", "modelB", "--alternative", "greater"])
        self.assertEqual(code, 0)
        ref = delong_roc_test(self.y, self.a, self.b, alternative="greater")
        self.assertAlmostEqual(strict_json(out)["p"], ref.p_value, places=12)

    def test_unpaired_uses_non_empty_rows_of_each_score(self):
        df = self.df.copy().astype(object)
        df.loc[:59, "modelB"] = ""
        df.loc[60:, "modelA"] = ""
        path = self.write("unpaired.csv", df)
        code, out, err = run(["stats", "delong", "--csv", path, "--truth", "outcome", "--positive", "Poor",
                              "--score", "modelA", "--score", "modelB", "--unpaired"])
        self.assertEqual(code, 0, err)
        res = strict_json(out)
        ref = delong_roc_test_unpaired(self.y[:60], self.a[:60], self.y[60:], self.b[60:])
        self.assertAlmostEqual(res["z"], ref.statistic, places=12)
        self.assertAlmostEqual(res["p"], ref.p_value, places=12)
        self.assertAlmostEqual(res["df"], ref.df, places=10)
        self.assertEqual(res["n_cases"]["modelA"] + res["n_controls"]["modelA"], 60)
        self.assertFalse(res["paired"])

    def test_missing_scores_error_or_dropna(self):
        df = self.df.copy().astype(object)
        df.loc[5, "modelB"] = ""
        path = self.write("missing.csv", df)
        args = ["stats", "delong", "--csv", path, "--truth", "outcome", "--positive", "Poor",
                "--score", "modelA", "--score", "modelB"]
        code, out, err = run(args)
        self.assertEqual(code, 2)
        self.assertIn("modelB", err)
        self.assertEqual(out, "")
        code, out, err = run(args + ["--dropna"])
        self.assertEqual(code, 0, err)
        keep = np.arange(len(self.y)) != 5
        ref = delong_roc_test(self.y[keep], self.a[keep], self.b[keep])
        self.assertAlmostEqual(strict_json(out)["z"], ref.statistic, places=12)

    def test_bad_inputs_exit_2_naming_the_problem(self):
        base = ["stats", "delong", "--csv", self.csv, "--positive", "Poor"]
        cases = [
            (base + ["--truth", "status", "--score", "modelA", "--score", "modelB"], "status"),
            (base + ["--truth", "outcome", "--score", "modelA", "--score", "modelC"], "modelC"),
            (["stats", "delong", "--csv", self.csv, "--truth", "outcome", "--positive", "Dead",
              "--score", "modelA", "--score", "modelB"], "Dead"),
            (base + ["--truth", "outcome", "--score", "modelA"], "--score"),
            (["stats", "delong", "--csv", os.path.join(self.tmp, "nope.csv"), "--truth", "outcome",
              "--positive", "Poor", "--score", "modelA", "--score", "modelB"], "nope.csv"),
        ]
        for argv, needle in cases:
            code, out, err = run(argv)
            self.assertEqual(code, 2, argv)
            self.assertIn(needle, err, argv)
        df = self.df.copy().astype(object)
        df.loc[3, "modelA"] = "high"
        path = self.write("text.csv", df)
        code, _, err = run(["stats", "delong", "--csv", path, "--truth", "outcome", "--positive", "Poor",
                            "--score", "modelA", "--score", "modelB"])
        self.assertEqual(code, 2)
        self.assertIn("modelA", err)
        self.assertIn("high", err)


class TestOtherCommands(CLITestCase):
    def test_bootstrap(self):
        code, out, err = run(["stats", "bootstrap", "--csv", self.csv, "--truth", "outcome", "--score", "modelA",
                              "--n", "200", "--seed", "3"])
        self.assertEqual(code, 0, err)
        res = strict_json(out)
        for key in ("estimate", "ci", "n", "seed", "method"):
            self.assertIn(key, res)
        ref = bootstrap_metric(self.y, self.a, "auc", n_boot=200, seed=3)
        self.assertEqual(res["ci"], list(ref.ci))
        self.assertEqual((res["n"], res["seed"], res["method"], res["positive"]), (200, 3, "percentile", "Poor"))
        self.assertEqual(run(["stats", "bootstrap", "--csv", self.csv, "--truth", "outcome", "--score", "modelA",
                              "--n", "200", "--seed", "3"])[1], out)
        code, out, _ = run(["stats", "bootstrap", "--csv", self.csv, "--truth", "outcome", "--score", "modelA",
                            "--metric", "accuracy", "--positive", "Poor"])
        res = strict_json(out)
        self.assertEqual(res["n"], 1000)
        self.assertAlmostEqual(res["estimate"], np.mean((self.a >= 0.5) == self.y), places=12)

    def test_calibration(self):
        code, out, err = run(["stats", "calibration", "--csv", self.csv, "--truth", "outcome", "--positive", "Poor",
                              "--score", "modelA", "--groups", "8"])
        self.assertEqual(code, 0, err)
        res = strict_json(out)
        ref = calibration_summary(self.y, self.a, g=8)
        for key in ("brier", "slope", "intercept", "citl", "hl_chi2", "hl_df", "hl_p"):
            self.assertIn(key, res)
            self.assertAlmostEqual(res[key], ref[key], places=12)
        self.assertEqual(res["hl_df"], 6)

    def test_calibration_rejects_non_probabilities(self):
        df = self.df.copy()
        df["logit"] = np.log(self.a / (1 - self.a))
        path = self.write("logit.csv", df)
        code, _, err = run(["stats", "calibration", "--csv", path, "--truth", "outcome", "--positive", "Poor",
                            "--score", "logit"])
        self.assertEqual(code, 2)
        self.assertIn("logit", err)

    def test_dca_stdout_and_file(self):
        argv = ["stats", "dca", "--csv", self.csv, "--truth", "outcome", "--positive", "Poor", "--score", "modelA"]
        code, out, err = run(argv)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[0], ",".join(DCA_COLUMNS))
        table = pd.read_csv(io.StringIO(out))
        self.assertEqual(len(table), 99)
        ref = decision_curve(self.y, self.a)
        np.testing.assert_allclose(table["net_benefit_model"], ref["net_benefit_model"], atol=1e-12)
        target = os.path.join(self.tmp, "sub", "dca.csv")
        code, out, _ = run(argv + ["--thresholds", "0.05:0.5:0.05", "--prevalence", "0.2", "--out", target])
        self.assertEqual((code, out), (0, ""))
        table = pd.read_csv(target)
        self.assertEqual(list(table.columns), DCA_COLUMNS)
        np.testing.assert_allclose(table["threshold"], np.arange(1, 11) * 0.05)
        ref = decision_curve(self.y, self.a, thresholds=table["threshold"], prevalence=0.2)
        np.testing.assert_allclose(table["net_interventions_avoided"], ref["net_interventions_avoided"], atol=1e-12)
        code, _, err = run(argv + ["--thresholds", "0:2:0.5"])
        self.assertEqual(code, 2)
        self.assertIn("thresholds", err)


class TestEvaluateCommand(CLITestCase):
    def test_evaluate_writes_outputs(self):
        rng = np.random.default_rng(1)
        n = 90
        truth = np.array(["lytic", "blastic", "mixed"])[rng.integers(0, 3, n)]
        logits = rng.normal(size=(n, 3)) + 1.2 * (truth[:, None] == np.array(["lytic", "blastic", "mixed"]))
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        df = pd.DataFrame({"label": truth, "p_lytic": p[:, 0], "p_blastic": p[:, 1], "p_mixed": p[:, 2]})
        path = self.write("pred.csv", df)
        out_dir = os.path.join(self.tmp, "eval")
        code, out, err = run(["stats", "evaluate", "--predictions", path, "--truth", "label", "--out", out_dir,
                              "--prob-prefix", "p_", "--n-boot", "200", "--topk", "2"])
        self.assertEqual(code, 0, err)
        summary = strict_json(out)
        self.assertEqual(summary["metrics_json"], os.path.join(out_dir, "metrics.json"))
        with open(os.path.join(out_dir, "metrics.json"), encoding="utf-8") as fh:
            metrics = strict_json(fh.read())
        self.assertEqual(metrics["classes"], ["lytic", "blastic", "mixed"])
        self.assertIn("top2_accuracy", metrics["metrics"])
        self.assertNotIn("top3_accuracy", metrics["metrics"])
        acc = metrics["metrics"]["accuracy"]
        self.assertAlmostEqual(acc["estimate"], np.mean(p.argmax(1) == np.array([["lytic", "blastic", "mixed"].index(t)
                                                                                  for t in truth])))
        self.assertEqual(len(acc["ci"]), 2)
        for name in ("roc.png", "confusion_matrix.png", "calibration.png", "topk.png", "report.html",
                     "metrics.csv"):
            self.assertTrue(os.path.getsize(os.path.join(out_dir, name)) > 0, name)
        with open(os.path.join(out_dir, "report.html"), encoding="utf-8") as fh:
            self.assertIn("data:image/png;base64,", fh.read())

    def test_evaluate_errors(self):
        df = pd.DataFrame({"label": ["a", "b", "c", "a"], "prob_a": [0.5, 0.2, 0.1, 0.7],
                           "prob_b": [0.5, 0.8, 0.9, 0.3]})
        path = self.write("bad_label.csv", df)
        code, _, err = run(["stats", "evaluate", "--predictions", path, "--truth", "label", "--out",
                            os.path.join(self.tmp, "bad1"), "--n-boot", "20"])
        self.assertEqual(code, 2)
        self.assertIn("'c'", err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad1")))
        df = pd.DataFrame({"label": ["a", "b", "b", "a"], "prob_a": [0.5, "", 0.1, 0.7],
                           "prob_b": [0.5, 0.8, 0.9, 0.3]})
        path = self.write("bad_prob.csv", df)
        code, _, err = run(["stats", "evaluate", "--predictions", path, "--truth", "label", "--out",
                            os.path.join(self.tmp, "bad2"), "--n-boot", "20"])
        self.assertEqual(code, 2)
        self.assertIn("prob_a", err)


class TestRegister(unittest.TestCase):
    def test_register_on_host_parser(self):
        parser = argparse.ArgumentParser(prog="spinemets")
        sub = parser.add_subparsers(dest="command")
        sub.add_parser("segment")
        stats_cli.register(sub)
        args = parser.parse_args(["stats", "dca", "--csv", "x.csv", "--truth", "t", "--positive", "1",
                                  "--score", "s"])
        self.assertTrue(callable(args.func))
        self.assertEqual(args.thresholds, "0.01:0.99:0.01")
        self.assertEqual(args.stats_command, "dca")
        for argv in (["stats"], ["stats", "delong", "--csv", "x.csv"], ["stats", "bootstrap", "--csv", "x",
                                                                        "--truth", "t", "--score", "s",
                                                                        "--metric", "kappa"]):
            with contextlib.redirect_stderr(io.StringIO()):
                with self.assertRaises(SystemExit) as ctx:
                    parser.parse_args(argv)
            self.assertEqual(ctx.exception.code, 2)


if __name__ == "__main__":
    unittest.main()
