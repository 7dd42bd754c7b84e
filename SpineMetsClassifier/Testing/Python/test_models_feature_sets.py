"""Feature sets by name, the feature schema, and the selection steps of the pipeline."""

import tempfile
import unittest
from pathlib import Path

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError

COLUMNS = [
    "case_id", "site", "age", "sex", "t1_signal", "pattern", "t1ce_signal", "edf_custom_item",
    "T1_original_firstorder_Mean", "T2_original_glcm_Idmn", "STIR_wavelet-LLH_glszm_ZoneEntropy",
    "T2_log-sigma-2-0-mm-3D_firstorder_Median", "T1CE_original_firstorder_Mean", "T1-peri5mm_original_gldm_DependenceEntropy",
    "shape_VoxelVolume", "q_t1_ratio", "seg_lesion_volume_ml", "deep_0001", "prov_image_sha256",
    "diagnostics_Mask-original_VoxelNum", "error", "clinical_ecog",
]


class FeatureSetTest(unittest.TestCase):
    def select(self, spec, exclude=("case_id", "site")):
        from SpineMetsClassifierLib.models.feature_sets import select_features

        return select_features(spec, COLUMNS, exclude=exclude)

    def test_groups(self):
        # `edf` = the items of the shipped EDF schema (t1ce_signal included) and edf_* columns
        self.assertEqual(self.select("edf"), ["age", "sex", "t1_signal", "pattern", "t1ce_signal", "edf_custom_item"])
        self.assertEqual(self.select("clinical"), ["age", "sex", "clinical_ecog"])
        self.assertEqual(self.select("radiomics"), [
            "T1_original_firstorder_Mean", "T2_original_glcm_Idmn", "STIR_wavelet-LLH_glszm_ZoneEntropy",
            "T2_log-sigma-2-0-mm-3D_firstorder_Median", "T1CE_original_firstorder_Mean",
            "T1-peri5mm_original_gldm_DependenceEntropy", "shape_VoxelVolume"])
        self.assertEqual(self.select("quantitative+segmentation+deep"), ["q_t1_ratio", "seg_lesion_volume_ml", "deep_0001"])
        everything = self.select("all")
        for never in ("case_id", "site", "prov_image_sha256", "diagnostics_Mask-original_VoxelNum", "error"):
            self.assertNotIn(never, everything)
        self.assertIn("t1ce_signal", everything)

    def test_unions_patterns_and_exclusions(self):
        # CRad-M: radiomics plus age, in table order
        self.assertEqual(self.select("radiomics+age")[0], "age")
        self.assertEqual(len(self.select("radiomics+age")), 8)
        self.assertEqual(self.select("edf+-t1ce_signal"), ["age", "sex", "t1_signal", "pattern", "edf_custom_item"])
        self.assertEqual(self.select("T2_*"), ["T2_original_glcm_Idmn", "T2_log-sigma-2-0-mm-3D_firstorder_Median"])
        self.assertEqual(self.select("radiomics+-T1CE_*+-shape_*"), [
            "T1_original_firstorder_Mean", "T2_original_glcm_Idmn", "STIR_wavelet-LLH_glszm_ZoneEntropy",
            "T2_log-sigma-2-0-mm-3D_firstorder_Median", "T1-peri5mm_original_gldm_DependenceEntropy"])
        self.assertEqual(self.select(r"re:^T\d_original_"), ["T1_original_firstorder_Mean", "T2_original_glcm_Idmn"])
        self.assertEqual(self.select("age, sex"), ["age", "sex"])
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "list.txt"
            listing.write_text("# CRad-M\nage\nT2_*  # texture\n")
            self.assertEqual(self.select(f"@{listing}"), ["age", "T2_original_glcm_Idmn", "T2_log-sigma-2-0-mm-3D_firstorder_Median"])

    def test_errors_name_the_terms(self):
        with self.assertRaises(InputError) as ctx:
            self.select("edf+agee")
        self.assertIn("'agee'", str(ctx.exception))
        with self.assertRaises(InputError) as ctx:
            self.select("site")  # the label is never a feature
        self.assertIn("'site'", str(ctx.exception))
        with self.assertRaises(InputError):
            self.select("age+-age")
        with self.assertRaises(InputError):
            self.select("re:[unclosed")


class SchemaTest(unittest.TestCase):
    def test_infer_and_coerce(self):
        from SpineMetsClassifierLib.models.schema import FeatureMismatchError, FeatureSchema, read_feature_table

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "f.csv"
            path.write_text("case_id,age,level,grade,t1_signal\n001,61,L3,1,none\n002,,T12,2,hypo\n003,70.5,L1,1.0,NA\n")
            frame = read_feature_table(path, text_columns=["case_id"])
            self.assertEqual(list(frame["case_id"]), ["001", "002", "003"])
            schema = FeatureSchema.infer(frame, ["age", "level", "grade", "t1_signal"])
            self.assertEqual(schema.numeric, ["age", "grade"])
            self.assertEqual(schema.spec("t1_signal").categories, ("hypo", "none"))  # 'none' is a category, NA is missing
            again = FeatureSchema.from_json(schema.to_json())
            self.assertEqual(again, schema)
            X = schema.coerce(frame, allowed_extra={"case_id"})
            self.assertTrue(np.isnan(X.loc[1, "age"]))
            self.assertTrue(pd.isna(X.loc[2, "t1_signal"]))
            # text cells that are numbers are fine for numeric features; words are not
            as_text = frame.astype(str).replace("nan", "")
            np.testing.assert_array_equal(schema.coerce(as_text, allowed_extra={"case_id"})["grade"], [1.0, 2.0, 1.0])
            with self.assertRaises(FeatureMismatchError) as ctx:
                schema.coerce(frame.assign(grade=["1", "two", "x"]), allowed_extra={"case_id"})
            self.assertIn("'grade' expects numbers, got 'two' (row 2 and 1 more)", str(ctx.exception))


class SelectionTest(unittest.TestCase):
    def test_selectors_keep_the_signal(self):
        from SpineMetsClassifierLib.models.pipeline import (
            SelectionConfig,
            build_pipeline,
            feature_origins,
            model_input_names,
        )
        from SpineMetsClassifierLib.models.schema import FeatureSchema
        from SpineMetsClassifierLib.models.selectors import CorrelationFilter, L1Selector, MRMRSelector

        rng = np.random.default_rng(0)
        n = 300
        y = rng.integers(0, 2, n)
        signal = y + rng.normal(0, 0.7, n)
        frame = pd.DataFrame({
            "T2_original_firstorder_Mean": signal,
            "T2_wavelet-LLH_firstorder_Mean": signal * 2.0 + rng.normal(0, 0.01, n),  # near duplicate
            "STIR_original_firstorder_Mean": y + rng.normal(0, 0.7, n),  # a second, independent view
            **{f"T1_original_glcm_Noise{i}": rng.normal(size=n) for i in range(20)},
            "sex": rng.choice(["F", "M"], n),
        })
        numeric = frame.drop(columns=["sex"]).to_numpy()
        corr = CorrelationFilter(0.95).fit(numeric)
        self.assertTrue(corr.get_support()[0])
        self.assertFalse(corr.get_support()[1])
        self.assertEqual(int(corr.get_support().sum()), 22)
        self.assertEqual(int(L1Selector(C=1e-6).fit(numeric, y).get_support().sum()), 1)  # never empty
        self.assertTrue(L1Selector(C=1.0).fit(numeric, y).get_support()[2])
        mrmr = MRMRSelector(2).fit(numeric, y)
        self.assertIn(int(mrmr.ranking_[0]), (0, 1))
        self.assertEqual(int(mrmr.ranking_[1]), 2)  # the independent view beats the duplicate

        schema = FeatureSchema.infer(frame, list(frame.columns))
        for selection in (SelectionConfig(univariate_k=3), SelectionConfig(l1_C=0.05), SelectionConfig(mrmr_k=2)):
            pipe = build_pipeline(schema, "lr", selection, seed=0).fit(frame, y)
            names = model_input_names(pipe)
            self.assertIn("T2_original_firstorder_Mean", names, selection)
            self.assertIn("STIR_original_firstorder_Mean", names, selection)
            self.assertNotIn("T2_wavelet-LLH_firstorder_Mean", names)
            self.assertLessEqual(len(names), 3 if selection.univariate_k else 10)
            self.assertEqual(len(feature_origins(pipe)), pipe.named_steps["clf"].coef_.shape[1])


if __name__ == "__main__":
    unittest.main()
