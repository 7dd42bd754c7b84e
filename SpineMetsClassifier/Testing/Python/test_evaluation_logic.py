"""EvaluationLogic: the stats evaluation as MRML table nodes with provenance, figures on disk."""

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pandas as pd


class EvaluationLogicTest(unittest.TestCase):
    def test_metrics_table_matches_stats_and_figures_exist(self):
        from SpineMetsClassifierLib.logic.evaluation import EvaluationLogic

        from SpineMetsCore.stats import classification_metrics
        from SpineMetsCore.tables import PROVENANCE_ATTRIBUTE, table_node_to_dataframe

        rng = np.random.default_rng(4)
        classes = ["breast", "kidney", "lung"]
        truth = rng.choice(classes, size=90)
        logits = rng.normal(size=(90, 3)) + 1.5 * (truth[:, None] == np.array(classes)[None, :])
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frame = pd.DataFrame({"truth": truth, **{f"prob_{c}": proba[:, i] for i, c in enumerate(classes)}})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pred.csv"
            frame.to_csv(path, index=False)
            res = EvaluationLogic().evaluateToTables(path, "truth", Path(tmp) / "eval", nBoot=200, seed=1)
            table = table_node_to_dataframe(res.metricsTable).set_index("metric")
            expected = classification_metrics(truth, proba, classes, topk=3)
            for key in ("accuracy", "top2_accuracy", "top3_accuracy", "auc_macro_ovr"):
                self.assertAlmostEqual(float(table.loc[key, "estimate"]), float(expected[key]), places=10)
                self.assertLessEqual(float(table.loc[key, "ci_low"]), float(table.loc[key, "estimate"]) + 1e-12)
            self.assertEqual(float(table.loc["top3_accuracy", "estimate"]), 1.0)
            prov = json.loads(res.metricsTable.GetAttribute(PROVENANCE_ATTRIBUTE))
            self.assertEqual(prov["n_boot"], 200)
            self.assertTrue(res.figures, "figures must be written")
            self.assertTrue((Path(tmp) / "eval" / "metrics.json").is_file())


if __name__ == "__main__":
    unittest.main()
