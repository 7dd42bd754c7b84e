"""Classifier packages (Core format, skops payload): round trip, checksums, trusted types, legacy, feature mismatch."""

import hashlib
import json
import os
import shutil
import tempfile
import unittest
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from SpineMetsPhantom import EDF_ITEMS, PhantomConfig, sample_records


def resign(folder, *names):
    """Re-sign members in checksums.json, as a forger would."""
    sums = json.loads((folder / "checksums.json").read_text())
    for name in names:
        sums["members"][name] = {"sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
    (folder / "checksums.json").write_text(json.dumps(sums))


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

        cls.tmp = Path(tempfile.mkdtemp(prefix="spinemets_pkg_"))
        cls.frame = pd.DataFrame(sample_records(160, seed=13, config=PhantomConfig(primary_bone_fraction=0.0)))
        cls.result = train_model(cls.frame, TrainConfig(label="site", feature_set="edf", classifier="lr",
                                                        cv_folds=3, inner_folds=2, grid="none", seed=0))
        cls.folder = save_training(cls.result, cls.tmp / "model")
        cls.zip = save_training(cls.result, cls.tmp / "model.zip")
        cls.rows = cls.frame[["case_id", *EDF_ITEMS]].iloc[:20].reset_index(drop=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def _copy(self, name):
        target = self.tmp / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.folder, target)
        return target

    def test_round_trip_identical_probabilities(self):
        from SpineMetsClassifierLib.models.inference import predict_proba
        from SpineMetsClassifierLib.models.package import load_package, sha256_bytes

        X = self.rows
        expected = self.result.pipeline.predict_proba(
            load_package(self.folder).schema.coerce(X, allowed_extra={"case_id"}))
        for path in (self.folder, self.zip):
            package = load_package(path)
            np.testing.assert_array_equal(predict_proba(package, X), expected)
            self.assertEqual(package.classes, self.result.card["classes"])
        self.assertEqual(load_package(self.folder).sha256, sha256_bytes((self.folder / "model.skops").read_bytes()))
        with zipfile.ZipFile(self.zip) as zf:
            self.assertEqual(load_package(self.zip).sha256, sha256_bytes(zf.read("model.skops")))
        with zipfile.ZipFile(self.zip) as zf:
            self.assertTrue({"model.json", "model.skops", "background.csv", "cv_predictions.csv"} <= set(zf.namelist()))
        # the card names everything the issue asks for
        card = load_package(self.folder).card
        for key in ("task", "classes", "feature_names", "preprocessing", "classifier", "training", "cv_metrics",
                    "library_versions", "seed", "synthetic_training_data", "intended_use", "payload", "trusted_types"):
            self.assertIn(key, card)
        self.assertEqual((card["kind"], card["payload"]["format"]), ("sklearn-classifier", "skops"))
        self.assertEqual(len(card["payload"]["sha256"]), 64)
        sums = json.loads((self.folder / "checksums.json").read_text())["members"]
        self.assertEqual(set(sums), {"model.json", "model.skops", "background.csv", "cv_predictions.csv", "cv_folds.csv",
                                     "metrics.json"})
        self.assertEqual(sums["model.json"]["sha256"], sha256_bytes((self.folder / "model.json").read_bytes()))
        self.assertIn("hyper_parameters", card["classifier"])
        self.assertEqual(sum(card["training"]["label_counts"].values()), 160)
        self.assertNotIn(b"pickle", (self.folder / "model.json").read_bytes())

    def test_tampered_model_file_refused(self):
        from SpineMetsClassifierLib.models.package import ModelPackageError, load_package

        target = self._copy("tampered")
        data = bytearray((target / "model.skops").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (target / "model.skops").write_bytes(bytes(data))
        with self.assertRaises(ModelPackageError) as ctx:
            load_package(target)
        self.assertIn("model.skops", str(ctx.exception))
        self.assertIn("SHA-256", str(ctx.exception))
        with self.assertRaisesRegex(ModelPackageError, "is not the expected 0000"):
            load_package(self.folder, expected_sha256="0" * 64)

    def test_untrusted_type_refused_even_with_matching_checksum(self):
        import skops.io as sio
        from sklearn.preprocessing import FunctionTransformer
        from SpineMetsClassifierLib.models.package import ModelPackageError, load_package, save_package, sha256_bytes

        evil = sio.dumps(FunctionTransformer(func=os.system))
        self.assertTrue(sio.get_untrusted_types(data=evil))
        target = self._copy("evil")
        (target / "model.skops").write_bytes(evil)
        card = json.loads((target / "model.json").read_text())
        card["payload"]["sha256"] = sha256_bytes(evil)  # an attacker can fix every checksum too
        (target / "model.json").write_text(json.dumps(card))
        resign(target, "model.skops", "model.json")
        with self.assertRaises(ModelPackageError) as ctx:
            load_package(target)
        self.assertIn("system", str(ctx.exception))
        self.assertIn("untrusted type", str(ctx.exception))
        # a pickle in place of the skops file is refused before any parser sees it
        (target / "model.skops").write_bytes(b"\x80\x04K\x01.")
        card["payload"]["sha256"] = sha256_bytes(b"\x80\x04K\x01.")
        (target / "model.json").write_text(json.dumps(card))
        resign(target, "model.skops", "model.json")
        with self.assertRaisesRegex(ModelPackageError, r"evil/model\.skops: is a Python pickle"):
            load_package(target)
        # and we never write a package we would refuse to load
        with self.assertRaises(ModelPackageError):
            save_package(self.tmp / "never", FunctionTransformer(func=os.system), self.result.card, self.result.background)
        self.assertFalse((self.tmp / "never").exists())

    def test_feature_mismatch_named(self):
        from SpineMetsClassifierLib.models.inference import predict_proba
        from SpineMetsClassifierLib.models.package import load_package
        from SpineMetsClassifierLib.models.schema import FeatureMismatchError

        package = load_package(self.folder)
        missing = self.rows.drop(columns=["age", "t1_signal"])
        with self.assertRaises(FeatureMismatchError) as ctx:
            predict_proba(package, missing)
        self.assertIn("'age'", str(ctx.exception))
        self.assertIn("'t1_signal'", str(ctx.exception))
        extra = self.rows.assign(scanner_serial="X1", t1ce_signal="hyper")
        with self.assertRaises(FeatureMismatchError) as ctx:
            predict_proba(package, extra)
        self.assertIn("'scanner_serial'", str(ctx.exception))
        self.assertIn("'t1ce_signal'", str(ctx.exception))
        self.assertEqual(predict_proba(package, extra, ignore_extra=True).shape, (20, 7))
        wrong = self.rows.astype({"age": object})
        wrong.loc[3, "age"] = "sixty"
        with self.assertRaises(FeatureMismatchError) as ctx:
            predict_proba(package, wrong)
        self.assertIn("'age' expects numbers", str(ctx.exception))
        self.assertIn("'sixty'", str(ctx.exception))
        unseen = self.rows.copy()
        unseen.loc[0, "t1_signal"] = "bright"
        with self.assertRaises(FeatureMismatchError) as ctx:
            predict_proba(package, unseen, strict_categories=True)
        self.assertIn("'bright'", str(ctx.exception))
        with self.assertLogs("SpineMetsClassifierLib.models.schema", "WARNING"):
            predict_proba(package, unseen)

    def test_failed_extraction_rows_not_predicted(self):
        from SpineMetsClassifierLib.models.inference import predict_table
        from SpineMetsClassifierLib.models.package import load_package

        package = load_package(self.zip)
        rows = self.rows.iloc[:3].copy()
        rows["error"] = ["", "case0001_T1.nii.gz: does not exist", ""]
        rows.loc[1, ["age", "sex"]] = [np.nan, np.nan]
        table = predict_table(package, rows)
        self.assertEqual(list(table["error"]), list(rows["error"]))
        self.assertTrue(table.filter(like="prob_").iloc[1].isna().all())
        self.assertEqual(table.loc[1, "top1"], "")
        alone = predict_table(package, self.rows.iloc[[0, 2]])
        np.testing.assert_array_equal(table.filter(like="prob_").iloc[[0, 2]].to_numpy(),
                                      alone.filter(like="prob_").to_numpy())

    def test_edited_card_refused_synthetic_warning_on_load(self):
        from SpineMetsClassifierLib.models.package import ModelPackageError, load_package

        self.assertTrue(self.result.card["synthetic_training_data"])
        with self.assertLogs("SpineMetsCore.packages", "WARNING") as logs:
            package = load_package(self.zip)
        self.assertIn("trained on SYNTHETIC data", "\n".join(logs.output))
        self.assertTrue(package.synthetic_training_data)
        target = self._copy("edited")
        card = json.loads((target / "model.json").read_text())
        card["synthetic_training_data"] = False
        (target / "model.json").write_text(json.dumps(card, indent=2))
        with self.assertRaisesRegex(ModelPackageError, r"edited/model\.json: SHA-256 checksum mismatch .*the card was edited"):
            load_package(target)

    def test_legacy_package_loads_with_deprecation_warning(self):
        from SpineMetsClassifierLib.models.inference import predict_proba
        from SpineMetsClassifierLib.models.package import load_package

        legacy = self._copy("legacy")
        (legacy / "checksums.json").unlink()
        card = json.loads((legacy / "model.json").read_text())
        payload, background = card.pop("payload"), card.pop("background")
        card.pop("kind")
        card.update(format="spinemets-model", format_version=1, versions=card.pop("library_versions"),
                    model_file={"name": "model.skops", "format": "skops", "sha256": payload["sha256"]},
                    background_file={"name": "background.csv", "n_rows": background["n_rows"],
                                     "sha256": hashlib.sha256((legacy / "background.csv").read_bytes()).hexdigest()})
        (legacy / "model.json").write_text(json.dumps(card))
        with self.assertWarns(DeprecationWarning):
            package = load_package(legacy)
        np.testing.assert_array_equal(predict_proba(package, self.rows), predict_proba(load_package(self.folder), self.rows))
        self.assertEqual(package.sha256, payload["sha256"])
        self.assertEqual(len(package.background), background["n_rows"])

    def test_not_a_package(self):
        from SpineMetsClassifierLib.models.package import ModelPackageError, load_package, save_package

        from SpineMetsCore.errors import InputError

        with self.assertRaises(ModelPackageError) as ctx:
            load_package(self.tmp / "nowhere")
        self.assertIn("nowhere", str(ctx.exception))
        busy = self.tmp / "busy"
        busy.mkdir(exist_ok=True)
        (busy / "notes.txt").write_text("keep me")
        with self.assertRaisesRegex(InputError, "not a SpineMets model package; refusing to replace it"):
            save_package(busy, self.result.pipeline, self.result.card, self.result.background)
        self.assertEqual((busy / "notes.txt").read_text(), "keep me")


if __name__ == "__main__":
    unittest.main()
