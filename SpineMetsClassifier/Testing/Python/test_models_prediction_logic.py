"""PredictionLogic on real MRML nodes: ranked table, bar plot, SHAP table; nodes untouched on error."""

import json
import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pandas as pd

from SpineMetsPhantom import EDF_ITEMS, PhantomConfig, sample_records


class PredictionLogicTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

        cls.tmp = Path(tempfile.mkdtemp(prefix="spinemets_predlogic_"))
        frame = pd.DataFrame(sample_records(150, seed=31, config=PhantomConfig(primary_bone_fraction=0.0)))
        cls.model = save_training(train_model(frame, TrainConfig(label="site", feature_set="edf", classifier="lr",
                                                                 cv_folds=3, inner_folds=2, grid="none")),
                                  cls.tmp / "model.zip")
        cls.row = pd.DataFrame(sample_records(1, seed=777, config=PhantomConfig(primary_bone_fraction=0.0))).iloc[0].to_dict()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        from SpineMetsClassifierLib.logic.prediction import PredictionLogic

        self.logic = PredictionLogic()
        self.scene = self.logic.runtime.scene

    def test_predict_to_table_and_bar_plot(self):
        from SpineMetsClassifierLib.models.inference import predict_proba
        from SpineMetsClassifierLib.models.package import load_package

        from SpineMetsCore.tables import PROVENANCE_ATTRIBUTE, table_node_to_dataframe

        node = self.logic.predictToTable(self.model, self.row)
        self.assertEqual(node.GetClassName(), "vtkMRMLTableNode")
        table = table_node_to_dataframe(node)
        self.assertEqual(list(table.columns), ["rank", "class", "probability", "top3"])
        self.assertEqual(len(table), 7)
        self.assertAlmostEqual(float(table["probability"].sum()), 1.0, places=9)
        self.assertTrue((np.diff(table["probability"].to_numpy()) <= 0).all())
        self.assertEqual(list(table["rank"]), list(range(1, 8)))
        self.assertEqual(list(table["top3"]), [1, 1, 1, 0, 0, 0, 0])
        package = load_package(self.model)
        proba = predict_proba(package, pd.DataFrame([self.row]), ignore_extra=True)[0]
        self.assertEqual(table.loc[0, "class"], package.classes[int(np.argmax(proba))])
        self.assertAlmostEqual(float(table.loc[0, "probability"]), float(proba.max()), places=12)
        self.assertEqual(node.GetAttribute("SpineMets.PredictedClass"), table.loc[0, "class"])
        self.assertEqual(node.GetAttribute("SpineMets.SyntheticTrainingData"), "true")
        prov = json.loads(node.GetAttribute(PROVENANCE_ATTRIBUTE))
        self.assertEqual(prov["model_sha256"], package.sha256)
        self.assertEqual(prov["features"]["sex"], self.row["sex"])

        chart = self.logic.probabilityBarPlot(node)
        self.assertEqual(chart.GetClassName(), "vtkMRMLPlotChartNode")
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 1)
        series = chart.GetNthPlotSeriesNode(0)
        self.assertEqual(series.GetClassName(), "vtkMRMLPlotSeriesNode")
        self.assertEqual(series.GetTableNodeID(), node.GetID())
        self.assertEqual(series.GetPlotType(), series.PlotTypeBar)
        self.assertEqual(series.GetYColumnName(), "probability")
        self.assertEqual(series.GetLabelColumnName(), "class")
        self.assertIs(self.scene.GetNodeByID(series.GetID()), series)
        # a second prediction into the same table and chart reuses both
        again = self.logic.predictToTable(self.model, self.row, tableNode=node)
        self.assertIs(again, node)
        self.assertIs(self.logic.probabilityBarPlot(node, chart), chart)
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 1)

    def test_feature_mismatch_leaves_node_unchanged(self):
        from SpineMetsClassifierLib.models.schema import FeatureMismatchError

        from SpineMetsCore.tables import table_node_to_dataframe

        node = self.logic.predictToTable(self.model, self.row)
        before = table_node_to_dataframe(node)
        attributes = node.GetAttribute("SpineMets.PredictedClass")
        broken = {k: v for k, v in self.row.items() if k not in ("age", "pattern")}
        with self.assertRaises(FeatureMismatchError) as ctx:
            self.logic.predictToTable(self.model, broken, tableNode=node)
        self.assertIn("'age'", str(ctx.exception))
        self.assertIn("'pattern'", str(ctx.exception))
        pd.testing.assert_frame_equal(table_node_to_dataframe(node), before)
        self.assertEqual(node.GetAttribute("SpineMets.PredictedClass"), attributes)

    def test_explain_to_table(self):
        from SpineMetsCore.tables import table_node_to_dataframe

        node, png = self.logic.explainToTable(self.model, self.row, outputDir=self.tmp / "shap")
        table = table_node_to_dataframe(node)
        self.assertEqual(list(table.columns), ["feature", "value", "shap", "abs_shap"])
        self.assertEqual(len(table), len(EDF_ITEMS))  # one row per EDF item of the schema
        self.assertTrue((np.diff(table["abs_shap"].to_numpy()) <= 1e-15).all())
        self.assertEqual(node.GetAttribute("SpineMets.ExplainedClass"), node.GetAttribute("SpineMets.PredictedClass"))
        self.assertEqual(table.set_index("feature").loc["sex", "value"], self.row["sex"])
        self.assertTrue(Path(png).is_file())
        self.assertEqual(Path(png).read_bytes()[:4], b"\x89PNG")
        self.assertEqual(node.GetAttribute("SpineMets.ShapFigure"), str(png))


if __name__ == "__main__":
    unittest.main()
