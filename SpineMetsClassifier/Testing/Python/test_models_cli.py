"""``spinemets train / predict / explain`` in-process: outputs, predictions CSV contract, clear errors."""

import contextlib
import io
import json
import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pandas as pd

from SpineMetsPhantom import EDF_ITEMS, PhantomConfig, sample_records, write_cohort


def run_cli(argv):
    from SpineMetsApp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


class ModelCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="spinemets_modelcli_"))
        frame = pd.DataFrame(sample_records(180, seed=41, config=PhantomConfig(primary_bone_fraction=0.0)))
        frame["centre_split"] = np.where(frame["centre"] == "C2", "external", "internal")
        cls.features = cls.tmp / "features.csv"
        frame.to_csv(cls.features, index=False)
        cls.rows = cls.tmp / "rows.csv"
        frame[["case_id", *EDF_ITEMS]].iloc[:5].to_csv(cls.rows, index=False)
        cls.model = cls.tmp / "model"
        code, out, err = run_cli(["train", "--features", str(cls.features), "--label", "site", "--feature-set", "edf",
                                  "--classifier", "lr", "--out", str(cls.model), "--split-column", "centre_split",
                                  "--test-value", "external", "--cv-folds", "3", "--inner-folds", "2",
                                  "--grid", "small"])
        if code != 0:
            raise AssertionError(f"train failed: {err}")
        cls.train_summary = json.loads(out)
        cls.frame = frame

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_train_outputs(self):
        summary = self.train_summary
        self.assertEqual(summary["model"], str(self.model))
        self.assertTrue(summary["synthetic_training_data"])
        card = json.loads((self.model / "model.json").read_text())
        self.assertEqual(summary["sha256"], card["payload"]["sha256"])
        self.assertEqual(card["training"]["split"]["column"], "centre_split")
        n_external = int((self.frame["centre"] == "C2").sum())
        self.assertEqual(card["training"]["n_test_cases"], n_external)
        self.assertEqual(card["training"]["n_cases"], len(self.frame) - n_external)
        self.assertNotIn("centre_split", card["feature_names"])
        test = pd.read_csv(self.model / "test_predictions.csv")
        self.assertEqual(len(test), n_external)
        self.assertAlmostEqual(summary["test"]["top3_accuracy"], float((test.apply(
            lambda r: r["site"] in (r["top1"], r["top2"], r["top3"]), axis=1)).mean()), places=12)

    def test_predict_csv_contract(self):
        code, out, err = run_cli(["predict", "--model", str(self.model), "--features", str(self.rows)])
        self.assertEqual(code, 0, err)
        table = pd.read_csv(io.StringIO(out))
        classes = json.loads((self.model / "model.json").read_text())["classes"]
        self.assertEqual(list(table.columns),
                         ["case_id", *[f"prob_{c}" for c in classes], "top1", "top2", "top3", "predicted"])
        self.assertEqual(list(table["case_id"]), list(self.frame["case_id"].iloc[:5]))
        np.testing.assert_allclose(table[[f"prob_{c}" for c in classes]].sum(axis=1), 1.0, atol=1e-9)
        for _, row in table.iterrows():
            probs = {c: row[f"prob_{c}"] for c in classes}
            self.assertEqual(row["top1"], max(probs, key=probs.get))
            self.assertEqual(row["predicted"], row["top1"])
            self.assertGreaterEqual(probs[row["top2"]], probs[row["top3"]])
        self.assertIn("SYNTHETIC", err)
        # --out writes the CSV with provenance, and `stats evaluate` reads the training predictions
        out_csv = self.tmp / "pred.csv"
        code, out, err = run_cli(["predict", "--model", str(self.model), "--features", str(self.features),
                                  "--ignore-extra-columns", "--out", str(out_csv)])
        self.assertEqual(code, 0, err)
        self.assertEqual(len(pd.read_csv(out_csv)), len(self.frame))
        prov = json.loads((self.tmp / "pred.provenance.json").read_text())
        self.assertEqual(prov["model_sha256"], self.train_summary["sha256"])
        code, out, err = run_cli(["stats", "evaluate", "--predictions", str(self.model / "test_predictions.csv"),
                                  "--truth", "site", "--out", str(self.tmp / "eval"), "--n-boot", "50",
                                  "--no-figures"])
        self.assertEqual(code, 0, err)
        metrics = json.loads((self.tmp / "eval" / "metrics.json").read_text())
        self.assertIn("top3_accuracy", json.dumps(metrics))

    def test_predict_errors_name_the_columns(self):
        code, out, err = run_cli(["predict", "--model", str(self.model), "--features", str(self.features)])
        self.assertEqual(code, 2)
        self.assertIn("spinemets predict: error", err)
        self.assertIn("'phantom_version'", err)
        bad = self.tmp / "bad.csv"
        pd.read_csv(self.rows).drop(columns=["fracture"]).to_csv(bad, index=False)
        code, out, err = run_cli(["predict", "--model", str(self.model), "--features", str(bad)])
        self.assertEqual(code, 2)
        self.assertIn("'fracture'", err)
        code, out, err = run_cli(["predict", "--model", str(self.tmp / "missing_model"), "--features", str(self.rows)])
        self.assertEqual(code, 2)
        self.assertIn("missing_model", err)

    def test_predict_from_manifest(self):
        """Features computed on the fly (features package) from a manifest with EDF columns."""
        manifest = write_cohort(self.tmp / "cohort", n_cases=2, seed=5)
        out_csv = self.tmp / "manifest_pred.csv"
        code, out, err = run_cli(["predict", "--model", str(self.model), "--manifest", str(manifest),
                                  "--out", str(out_csv)])
        self.assertEqual(code, 0, err)
        table = pd.read_csv(out_csv, keep_default_na=False)
        self.assertEqual(list(table["case_id"]), ["case0000", "case0001"])
        self.assertEqual(list(table["error"]), ["", ""])
        records = pd.DataFrame(sample_records(2, seed=5))
        from SpineMetsClassifierLib.models.inference import predict_proba
        from SpineMetsClassifierLib.models.package import load_package

        package = load_package(self.model)
        expected = predict_proba(package, records, ignore_extra=True)
        np.testing.assert_allclose(table[[f"prob_{c}" for c in package.classes]].to_numpy(), expected, atol=1e-12)

    def test_explain_cli(self):
        out_dir = self.tmp / "shap"
        case = str(self.frame["case_id"].iloc[3])
        code, out, err = run_cli(["explain", "--model", str(self.model), "--features", str(self.features),
                                  "--ignore-extra-columns", "--out", str(out_dir), "--max-cases", "40",
                                  "--case", case])
        self.assertEqual(code, 0, err)
        summary = json.loads(out)
        self.assertEqual(summary["explainer"], "linear")
        self.assertEqual(summary["cases"], 40)
        self.assertTrue((out_dir / f"shap_waterfall_{case}.png").is_file())
        self.assertTrue((out_dir / "shap_summary.png").is_file())
        ranking = pd.read_csv(out_dir / "shap_global.csv")
        self.assertEqual(sorted(ranking["feature"]), sorted(EDF_ITEMS))

    def test_single_class_label_refused(self):
        out_dir = self.tmp / "all"
        code, out, err = run_cli(["train", "--features", str(self.features), "--label", "tumour_class",
                                  "--feature-set", "edf", "--classifier", "all", "--out", str(out_dir),
                                  "--cv-folds", "2", "--inner-folds", "2", "--grid", "none"])
        # every phantom case here is a metastasis: one class only
        self.assertEqual(code, 2)
        self.assertIn("tumour_class", err)
        self.assertIn("two classes", err)
        self.assertFalse(out_dir.exists())


if __name__ == "__main__":
    unittest.main()
