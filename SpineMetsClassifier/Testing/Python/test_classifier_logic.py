"""CohortLogic.checkManifest: per-case problems reported, table node with provenance."""

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.testing import random_image


class ManifestCheckTest(unittest.TestCase):
    def test_per_case_problems_and_table_provenance(self):
        from SpineMetsClassifierLib.logic.cohort import CohortLogic

        from SpineMetsCore.tables import PROVENANCE_ATTRIBUTE, table_node_to_dataframe

        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            good = random_image(seed=1)
            shifted = random_image(seed=2, origin=(0.0, 0.0, 0.0))
            mask = sitk.Cast(good > 50, sitk.sitkUInt8)
            for name, image in {"g_T1": good, "g_T2": good, "b_T1": good, "b_T2": shifted, "mask": mask}.items():
                sitk.WriteImage(image, str(d / f"{name}.nrrd"))
            (d / "manifest.csv").write_text(
                "case_id,T1,T2,mask\n"
                "good,g_T1.nrrd,g_T2.nrrd,mask.nrrd\n"
                "bad,b_T1.nrrd,b_T2.nrrd,mask.nrrd\n"
            )
            logic = CohortLogic()
            frame = logic.checkManifest(d / "manifest.csv")
            self.assertEqual(list(frame["case_id"]), ["good", "bad"])
            self.assertEqual(frame.loc[0, "problem"], "")
            self.assertIn("T2 is not on the mask's grid", frame.loc[1, "problem"])
            self.assertEqual(int(frame.loc[0, "lesion_voxels"]), int(np.count_nonzero(sitk.GetArrayViewFromImage(mask))))
            node = logic.checkManifestToTable(d / "manifest.csv")
            self.assertEqual(node.GetNumberOfRows(), 2)
            back = table_node_to_dataframe(node)
            self.assertEqual(list(back["case_id"]), ["good", "bad"])
            prov = json.loads(node.GetAttribute(PROVENANCE_ATTRIBUTE))
            self.assertEqual(prov["manifest"], str(d / "manifest.csv"))
            self.assertIn("slicer-core", prov["versions"])


if __name__ == "__main__":
    unittest.main()
