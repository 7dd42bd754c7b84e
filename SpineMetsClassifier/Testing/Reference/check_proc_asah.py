"""Published pROC results on its aSAH example data set (Turck et al. 2010, shipped with pROC).

The data set is not part of this repository (GPL data of another project).
Export it once with R ``write.csv(pROC::aSAH, "aSAH.csv", row.names = FALSE)``
and run ``SPINEMETS_ASAH_CSV=aSAH.csv python -m pytest check_proc_asah.py``.
This is a manual conformance check, not part of the CTest suite (which checks the
same statistics against independent implementations written in the tests).
The expected numbers are the ones asserted in pROC's own test-suite
(tests/testthat/test-roc.test.R, test-ci.auc.R, test-auc.R).
"""

import contextlib
import io
import json
import os
import unittest

import pandas as pd

from SpineMetsApp.cli import main as spinemets_main
from SpineMetsCore.stats import delong_auc, delong_roc_test, delong_roc_test_unpaired

ASAH = os.environ.get("SPINEMETS_ASAH_CSV", "")


class TestProcASAH(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (ASAH and os.path.isfile(ASAH)):
            raise RuntimeError("set SPINEMETS_ASAH_CSV to pROC's aSAH data as CSV")
        cls.d = pd.read_csv(ASAH)
        cls.y = cls.d["outcome"].astype(str).str.strip() == "Poor"

    def test_auc_and_delong_ci(self):
        d, y = self.d, self.y
        self.assertAlmostEqual(delong_auc(y, d.wfns).auc, 0.823678861788618, places=12)
        ndka = delong_auc(y, d.ndka)
        self.assertAlmostEqual(ndka.auc, 0.611957994579946, places=12)
        self.assertAlmostEqual(ndka.ci_low, 0.501244999271703, places=12)
        self.assertAlmostEqual(ndka.ci_high, 0.722670989888189, places=12)
        flipped = delong_auc(y, -d.ndka)  # auto direction ">"
        self.assertEqual(flipped.direction, ">")
        self.assertAlmostEqual(flipped.ci_low, 0.501244999271703, places=12)
        female = (d.gender == "Female").to_numpy()
        sub = delong_auc(y[female], d.ndka[female])
        self.assertAlmostEqual(sub.ci_low, 0.5261398281, places=9)
        self.assertAlmostEqual(sub.auc, 0.6671428571, places=9)
        self.assertAlmostEqual(sub.ci_high, 0.8081458862, places=9)

    def test_paired_roc_test(self):
        d, y = self.d, self.y
        expected = [
            ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
            ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
            ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
        ]
        for a, b, z, p, lo, hi in expected:
            res = delong_roc_test(y, d[a], d[b])
            self.assertAlmostEqual(res.statistic, z, places=11)
            self.assertAlmostEqual(res.p_value, p, places=12)
            self.assertAlmostEqual(res.ci_low, lo, places=12)
            self.assertAlmostEqual(res.ci_high, hi, places=12)
        self.assertAlmostEqual(delong_roc_test(y, d.wfns, d.s100b, alternative="greater").p_value,
                               0.0135878911145941, places=12)
        self.assertAlmostEqual(delong_roc_test(y, d.wfns, d.s100b, alternative="less").p_value,
                               0.986412108885406, places=12)

    def test_unpaired_roc_test(self):
        d, y = self.d, self.y
        expected = [("wfns", "s100b", 1.43490640926908, 0.152825378808796),
                    ("wfns", "ndka", 3.10125096778969, 0.00220950791756457),
                    ("ndka", "s100b", -1.55995743389685, 0.120192832430845)]
        for a, b, stat, p in expected:
            res = delong_roc_test_unpaired(y, d[a], y, d[b])
            self.assertAlmostEqual(res.statistic, stat, places=11)
            self.assertAlmostEqual(res.p_value, p, places=12)
        self.assertAlmostEqual(delong_roc_test_unpaired(y, d.wfns, y, d.s100b, alternative="greater").p_value,
                               0.076412689404398, places=12)

    def test_cli_route(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = spinemets_main(["stats", "delong", "--csv", ASAH, "--truth", "outcome", "--positive", "Poor",
                                   "--score", "wfns", "--score", "s100b"])
        self.assertEqual(code, 0)
        res = json.loads(out.getvalue())
        self.assertAlmostEqual(res["z"], 2.20898359144091, places=11)
        self.assertAlmostEqual(res["p"], 0.0271757822291882, places=12)
        self.assertAlmostEqual(res["auc_ci"]["s100b"][0], 0.6301, places=4)  # pROC docs: 0.6301-0.8326
        self.assertAlmostEqual(res["auc_ci"]["s100b"][1], 0.8326, places=4)


if __name__ == "__main__":
    unittest.main()
