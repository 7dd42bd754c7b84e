"""One home for the domain vocabulary: SpineMetsCore.conventions and its shipped JSON files."""

import json
import unittest

import numpy as np


class ConventionsTest(unittest.TestCase):
    def test_edf_items_are_the_schema_items(self):
        from SpineMetsClassifierLib.features.edf import load_schema

        from SpineMetsCore.conventions import EDF_CATEGORIES, EDF_ITEMS

        schema = load_schema()
        self.assertEqual(EDF_ITEMS, schema.names)
        self.assertEqual(len(EDF_ITEMS), 16)
        for name, allowed in EDF_CATEGORIES.items():
            self.assertEqual(allowed, schema.item(name).allowed, name)

    def test_phantom_and_feature_sets_use_the_same_items(self):
        import pandas as pd
        from SpineMetsClassifierLib.models.feature_sets import select_features

        from SpineMetsCore.conventions import EDF_ITEMS
        from SpineMetsPhantom import EDF_ITEMS as PHANTOM_ITEMS
        from SpineMetsPhantom import INFORMATIVE_EDF, NOISE_EDF, RECORD_COLUMNS, sample_records

        self.assertIs(PHANTOM_ITEMS, EDF_ITEMS)
        self.assertEqual(sorted(INFORMATIVE_EDF + NOISE_EDF), sorted(EDF_ITEMS))
        self.assertLessEqual(set(EDF_ITEMS), set(RECORD_COLUMNS))
        frame = pd.DataFrame(sample_records(5, seed=1))
        chosen = select_features("edf", frame.columns, exclude=("case_id", "site"))
        # the contrast and extension items are no longer dropped from `edf`
        self.assertEqual(sorted(chosen), sorted(EDF_ITEMS))
        self.assertIn("t1ce_signal", chosen)
        self.assertIn("extension_type", chosen)
        self.assertEqual(select_features("edf+-t1ce_signal", frame.columns, exclude=("case_id",)),
                         [c for c in chosen if c != "t1ce_signal"])

    def test_missing_values_one_vocabulary(self):
        import pandas as pd
        from SpineMetsClassifierLib.features.edf import load_schema
        from SpineMetsClassifierLib.models.schema import NA_VALUES

        from SpineMetsCore.conventions import MISSING_VALUES, is_missing, pandas_na_values

        for token in ("", "NA", "n/a", "NaN", "null", "NULL", "Not recorded", " na "):
            self.assertTrue(is_missing(token), token)
        for token in ("none", "None", "0", "no"):  # 'none' is the lesion-free EDF category
            self.assertFalse(is_missing(token), token)
        self.assertTrue(is_missing(None))
        self.assertTrue(is_missing(float("nan")))
        self.assertEqual(load_schema().missing, MISSING_VALUES)
        self.assertEqual(tuple(pandas_na_values()), NA_VALUES)
        import io

        frame = pd.read_csv(io.StringIO("a,b\nNA,none\nnull,x\nNot recorded,y\n"), keep_default_na=False,
                            na_values=NA_VALUES)
        self.assertEqual(frame["a"].isna().tolist(), [True, True, True])
        self.assertEqual(frame["b"].tolist(), ["none", "x", "y"])

    def test_signal_classes_and_anatomy_labels(self):
        from SpineMetsClassifierLib.features.quantitative import default_anatomy_labels

        import SpineMetsPhantom as phantom
        from SpineMetsCore.conventions import ANATOMY_LABELS, SIGNAL_THRESHOLDS, signal_class

        self.assertEqual(SIGNAL_THRESHOLDS, (0.85, 1.15))
        self.assertEqual([signal_class(r) for r in (0.5, 0.85, 1.0, 1.15, 1.2)], ["hypo", "iso", "iso", "iso", "hyper"])
        self.assertEqual(signal_class(np.nan), "")
        self.assertEqual(ANATOMY_LABELS[phantom.NORMAL_MARROW], "normal_marrow")
        self.assertEqual(ANATOMY_LABELS[phantom.MUSCLE], "muscle")
        self.assertEqual(default_anatomy_labels(), {name: v for v, name in ANATOMY_LABELS.items() if v})

    def test_shipped_files_are_plain_json(self):
        """Desktop Slicer has no PyYAML: the conventions must load with the standard library."""
        from SpineMetsCore.conventions import CONVENTIONS_FILE, EDF_SCHEMA_FILE

        for path in (CONVENTIONS_FILE, EDF_SCHEMA_FILE):
            self.assertIsInstance(json.loads(path.read_text(encoding="utf-8")), dict)


if __name__ == "__main__":
    unittest.main()
