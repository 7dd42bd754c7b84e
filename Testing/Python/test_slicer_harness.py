"""Both modules as desktop Slicer loads them, and the U-Net worker as PythonSlicer runs it.

Runs the shared slicer-harness (``../shared/slicer-harness`` beside the repository,
as on the developers' machines and in CI; or ``SLICER_HARNESS=/path/to/run``):

1. load (third-party packages that Slicer does not bundle blocked), parameters
   and ``.ui`` bindings of both module files;
2. ``--test``: each module's ``<Name>Test`` (every action end to end);
3. ``--pythonslicer`` with only torch, MONAI and safetensors allowed: the U-Net
   background worker on the phantom sample, whose labelmap must match the
   phantom's lesion (Dice > 0.8).

Without the harness the tests skip and say where it was looked for.
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(os.environ.get("SLICER_HARNESS", REPO.parent / "shared" / "slicer-harness" / "run"))
PYTHON = os.environ.get("SLICER_HARNESS_PYTHON", sys.executable)
"""The interpreter the harness runs (``make harness312 UNET=1``: a Python 3.12 venv pinned like Slicer 5.10)."""
MODULES = ["SpineMetsSegment/SpineMetsSegment.py", "SpineMetsClassifier/SpineMetsClassifier.py"]
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed", re.MULTILINE)


def harness(*args, timeout=900):
    proc = subprocess.run([str(HARNESS), "--python", PYTHON, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg"})
    return proc.returncode, proc.stdout + proc.stderr


@unittest.skipUnless(HARNESS.is_file(), f"slicer-harness not found at {HARNESS} (set SLICER_HARNESS)")
class SlicerHarnessTest(unittest.TestCase):
    def check_summary(self, output, expected_passed):
        found = SUMMARY.findall(output)
        self.assertTrue(found, output[-3000:])
        passed, failed = (int(n) for n in found[-1])
        print(f"slicer-harness: {passed} passed, {failed} failed")
        self.assertEqual(failed, 0, output[-6000:])
        self.assertGreaterEqual(passed, expected_passed, output[-6000:])

    def test_modules_load_as_in_a_fresh_slicer(self):
        code, output = harness(*MODULES)
        self.assertEqual(code, 0, output[-6000:])
        self.check_summary(output, 6)  # load + parameters + ui, per module
        self.assertNotIn("load+deps", output, "a module imports a non-bundled package at load time")

    def test_module_test_classes(self):
        code, output = harness("--test", *MODULES, timeout=1500)
        self.assertEqual(code, 0, output[-6000:])
        self.check_summary(output, 6 + 5 + 5)  # 6 checks + the 5 test methods of each Test class
        for name in ("test_unetInBackgroundProcess", "test_regionGrowingWithMarkupsSeedAndRoi",
                     "test_trainPredictExplainEvaluate", "test_extractCohortWithProgressAndCancel"):
            self.assertRegex(output, rf"PASS {name}\b")

    def test_unet_worker_in_pythonslicer(self):
        import SimpleITK as sitk

        sample = REPO / "SpineMetsSegment" / "Resources" / "SampleData"
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "labelmap.nii.gz"
            images = [f"--image={seq}={sample / f'SpineMetsPhantom_{seq}.nrrd'}" for seq in ("T1", "T2", "STIR", "T1CE")]
            code, output = harness("--pythonslicer", "--allow", "torch,monai,safetensors", "--",
                                   "-m", "SpineMetsSegmentLib.unet.worker", *images,
                                   "--model", str(REPO / "SpineMetsSegment" / "Resources" / "Models"),
                                   "--out", str(out), "--force-cpu")
            self.assertEqual(code, 0, output[-4000:])
            self.assertIn('"event": "done"', output)
            labelmap = sitk.ReadImage(str(out))
            stored = sitk.ReadImage(str(sample / "SpineMetsPhantom_lesions.seg.nrrd"))  # may be cropped to the lesion
            truth = sitk.Resample(sitk.Cast(stored > 0, sitk.sitkUInt8), labelmap, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
            overlap = sitk.LabelOverlapMeasuresImageFilter()
            overlap.Execute(truth, sitk.Cast(labelmap == 1, sitk.sitkUInt8))
            print(f"slicer-harness --pythonslicer: U-Net worker Dice {overlap.GetDiceCoefficient():.3f}")
            self.assertGreater(overlap.GetDiceCoefficient(), 0.8)


if __name__ == "__main__":
    unittest.main()
