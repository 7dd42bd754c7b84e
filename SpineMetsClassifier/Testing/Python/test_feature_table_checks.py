"""Feature tables: failed rows never enter training; infinite values are named by column and row."""

import logging
import unittest

import numpy as np
import pandas as pd


def table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b"] * (n // 2))
    frame = pd.DataFrame({
        "case_id": [f"c{i:03d}" for i in range(n)],
        "error": [""] * n,
        "qc_flags": [""] * n,
        "site": y,
        "f1": rng.normal(size=n) + (y == "b") * 1.5,
        "f2": rng.normal(size=n),
    })
    return frame


class FeatureTableChecksTest(unittest.TestCase):
    def test_failed_rows_are_excluded_from_training_and_named(self):
        from SpineMetsClassifierLib.models.training import TrainConfig, train_model

        frame = table()
        frame.loc[[3, 7], "error"] = "case 'c003': lesion mask m.nrrd: has no labelled voxel"
        frame.loc[[3, 7], ["f1", "f2"]] = np.nan
        frame.loc[5, "qc_flags"] = "mask_resampled: lesion mask m.nrrd"
        config = TrainConfig(label="site", feature_set="all", cv_folds=3, inner_folds=2, grid="small", seed=0,
                             background_size=5)
        with self.assertLogs("SpineMetsClassifierLib.models.schema", logging.WARNING) as logs:
            result = train_model(frame, config)
        self.assertIn("2 row(s) excluded", logs.output[0])
        self.assertIn("c003", logs.output[0])
        self.assertIn("c007", logs.output[0])
        self.assertEqual(len(result.cv_predictions), 38)
        self.assertNotIn("c003", set(result.cv_predictions["case_id"]))
        self.assertEqual([f["name"] for f in result.card["features"]], ["f1", "f2"])  # never error/qc_flags

    def test_every_row_failed_is_an_error(self):
        from SpineMetsClassifierLib.models.schema import exclude_failed_rows

        from SpineMetsCore.errors import InputError

        frame = table(6)
        frame["error"] = "boom"
        with self.assertRaisesRegex(InputError, "every row failed"):
            exclude_failed_rows(frame, "features.csv")

    def test_infinite_values_name_column_and_rows(self):
        from SpineMetsClassifierLib.models.schema import FeatureMismatchError, FeatureSchema

        frame = table(10)
        frame.loc[[2, 6], "f2"] = np.inf
        schema = FeatureSchema.infer(frame, ["f1", "f2"])
        with self.assertRaises(FeatureMismatchError) as ctx:
            schema.coerce(frame, ignore_extra=True)
        message = str(ctx.exception)
        self.assertIn("column 'f2' has infinite value(s)", message)
        self.assertIn("row 3 (case_id c002)", message)
        self.assertIn("row 7 (case_id c006)", message)

    def test_infinite_values_from_csv(self):
        import tempfile
        from pathlib import Path

        from SpineMetsClassifierLib.models.schema import FeatureMismatchError, FeatureSchema, read_feature_table

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "f.csv"
            frame = table(10)
            frame.to_csv(path, index=False)
            text = path.read_text().splitlines()
            cells = text[4].split(",")
            cells[-1] = "inf"
            text[4] = ",".join(cells)
            path.write_text("\n".join(text) + "\n")
            read = read_feature_table(path, text_columns=("case_id", "site"))
            schema = FeatureSchema.infer(read, ["f1", "f2"])
            with self.assertRaisesRegex(FeatureMismatchError, r"'f2' has infinite value\(s\) in row 4 \(case_id c003\)"):
                schema.coerce(read, ignore_extra=True)


if __name__ == "__main__":
    unittest.main()
