"""The spinemets command: phantom cohorts, the end-to-end demo, argument conventions."""

import contextlib
import hashlib
import io
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def run_cli(*argv: str) -> tuple[int, str, str]:
    from SpineMetsApp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)

    def test_negative_coordinates_are_joined(self):
        from SpineMetsApp.cli import join_coordinate_values

        self.assertEqual(
            join_coordinate_values(["segment", "--seed-ras", "-12.5,3,40", "--roi-ras", "-1,-2,-3,4,5,6", "--x", "1"]),
            ["segment", "--seed-ras=-12.5,3,40", "--roi-ras=-1,-2,-3,4,5,6", "--x", "1"],
        )
        self.assertEqual(join_coordinate_values(["--seed-ras=-1,2,3"]), ["--seed-ras=-1,2,3"])

    def test_phantom_command_is_byte_reproducible(self):
        code, out, _ = run_cli("phantom", "--out", str(self.dir / "a"), "--cases", "2", "--seed", "11")
        self.assertEqual(code, 0)
        summary = json.loads(out)
        self.assertTrue(summary["synthetic_data"])
        manifest = Path(summary["manifest"])
        header = manifest.read_text().splitlines()[0].split(",")
        for column in ("case_id", "T1", "T2", "STIR", "T1CE", "mask"):
            self.assertIn(column, header)
        self.assertEqual(len(manifest.read_text().strip().splitlines()), 3)
        run_cli("phantom", "--out", str(self.dir / "b"), "--cases", "2", "--seed", "11")
        self.assertEqual(tree_digest(self.dir / "a"), tree_digest(self.dir / "b"))
        run_cli("phantom", "--out", str(self.dir / "c"), "--cases", "2", "--seed", "12")
        self.assertNotEqual(tree_digest(self.dir / "a"), tree_digest(self.dir / "c"))

    def test_phantom_bad_arguments(self):
        code, _, err = run_cli("phantom", "--out", str(self.dir / "x"), "--cases", "-1")
        self.assertEqual(code, 2)
        self.assertIn("error", err)
        self.assertIn("-1", err)
        self.assertFalse((self.dir / "x" / "manifest.csv").exists())

    def test_demo_writes_case_read_identically_by_simpleitk_and_mrml(self):
        from SpineMetsCore.dataio import read_segmentation, read_volume
        from SpineMetsCore.segmentations import segment_names, segmentation_to_labelmap
        from SpineMetsCore.volumes import Geometry, volume_to_sitk

        code, out, _ = run_cli("demo", "--single-case", "--out", str(self.dir / "demo"), "--cases", "3", "--seed", "0")
        self.assertEqual(code, 0)
        summary = json.loads(out)
        self.assertTrue(summary["synthetic_data"])
        for name, info in summary["sequences"].items():
            self.assertTrue(info["mrml_matches_simpleitk"], name)
            self.assertTrue(info["same_grid_as_T1"], name)
        on_disk = json.loads((self.dir / "demo" / "demo_summary.json").read_text())
        self.assertEqual(on_disk["case_id"], summary["case_id"])

        t1_path = Path(summary["sequences"]["T1"]["path"])
        itk_t1 = sitk.ReadImage(str(t1_path))
        mrml_t1 = volume_to_sitk(read_volume(t1_path))
        self.assertTrue(Geometry.from_image(itk_t1).same_grid(Geometry.from_image(mrml_t1)))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(itk_t1), sitk.GetArrayViewFromImage(mrml_t1))

        seg_path = summary.get("segmentation")
        self.assertTrue(summary["segments"], "the demo must show a case with lesions")
        if summary["segments"]:
            self.assertIsNotNone(seg_path)
            for name, vols in summary["segments"].items():
                self.assertAlmostEqual(vols["volume_ml"], vols["truth_volume_ml"], places=3, msg=name)
            seg = read_segmentation(seg_path)
            self.assertEqual(sorted(segment_names(seg).values()), sorted(summary["segments"]))
            labelmap, _ = segmentation_to_labelmap(seg, itk_t1)
            from SpineMetsCore.manifest import read_manifest

            row = next(r for r in read_manifest(summary["manifest"]) if r.case_id == summary["case_id"])
            truth = sitk.ReadImage(str(row.mask))
            np.testing.assert_array_equal(sitk.GetArrayViewFromImage(labelmap) > 0, sitk.GetArrayViewFromImage(truth) > 0)
        # The automatic stage: region growing from one seed + ROI, and the shipped demo U-Net.
        auto = summary["automatic"]
        self.assertGreater(auto["region_growing"]["dice_vs_truth"], 0.7)
        self.assertGreater(auto["unet"]["dice_vs_truth"], 0.7)
        auto_seg = read_segmentation(auto["segmentation"])
        self.assertEqual(sorted(segment_names(auto_seg).values()), ["Region growing", "lesion"])


if __name__ == "__main__":
    unittest.main()
