"""Readers and writers: NRRD, NIfTI, DICOM series, .seg.nrrd; physical positions; bad input."""

import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.testing import assert_same_physical_values, oblique_direction, random_image


class DataIOTest(unittest.TestCase):
    def setUp(self):
        from SpineMetsCore.runtime import get_runtime

        self.scene = get_runtime().scene
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)

    def test_oblique_left_handed_nifti_keeps_physical_positions(self):
        from SpineMetsCore.dataio import read_volume, write_volume
        from SpineMetsCore.volumes import volume_to_sitk

        image = random_image(direction=oblique_direction(left_handed=True))
        self.assertLess(np.linalg.det(np.reshape(image.GetDirection(), (3, 3))), 0)
        src = self.dir / "lh.nii.gz"
        sitk.WriteImage(image, str(src))
        node = read_volume(src)
        loaded = volume_to_sitk(node)
        # MRML reads a left-handed NIfTI with K flipped: raw arrays differ, physical values agree.
        assert_same_physical_values(self, image, loaded)
        for ext in (".nii.gz", ".nii", ".nrrd"):
            with self.subTest(ext=ext):
                out = self.dir / f"out{ext}"
                write_volume(node, out)
                assert_same_physical_values(self, image, sitk.ReadImage(str(out)))
                assert_same_physical_values(self, image, volume_to_sitk(read_volume(out)))

    def test_dicom_series_round_trip(self):
        from SpineMetsCore.dataio import read_image, read_volume, write_dicom_series
        from SpineMetsCore.volumes import volume_to_sitk

        image = random_image(direction=oblique_direction(False), size_kji=(5, 8, 7))
        folder = self.dir / "dicom"
        write_dicom_series(image, folder)
        self.assertEqual(len(list(folder.glob("*.dcm"))), 5)
        back = read_image(folder)
        assert_same_physical_values(self, image, back, tol=0.02)  # int16 storage with rescale
        assert_same_physical_values(self, image, volume_to_sitk(read_volume(folder)), tol=0.02)
        integer = sitk.Cast(random_image(size_kji=(3, 4, 5)) , sitk.sitkInt16)
        write_dicom_series(integer, self.dir / "dicom_int")
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(read_image(self.dir / "dicom_int")), sitk.GetArrayFromImage(integer)
        )

    def test_dicom_writer_leaves_the_process_locale_alone(self):
        """GDCM's writer put the process in the "C" locale: Python's locale encoding became ASCII,
        and every later text pipe or open() without an encoding failed on non-ASCII text."""
        import locale
        import subprocess
        import sys

        from SpineMetsCore.dataio import write_dicom_series

        before = (locale.setlocale(locale.LC_ALL, None), locale.getpreferredencoding(False))
        self.assertEqual(before[1].lower().replace("-", ""), "utf8", "the test needs a UTF-8 locale to start from")
        write_dicom_series(random_image(size_kji=(2, 4, 4)), self.dir / "dicom_locale")
        self.assertEqual((locale.setlocale(locale.LC_ALL, None), locale.getpreferredencoding(False)), before)
        child = subprocess.run([sys.executable, "-c", "print('L\\u00e4sion 3 mm\\u00b3')"], capture_output=True,
                               text=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=60)
        self.assertEqual(child.stdout, "L\u00e4sion 3 mm\u00b3\n")

    def test_errors_name_the_file(self):
        from SpineMetsCore.dataio import read_image, read_segmentation, read_volume, write_volume
        from SpineMetsCore.errors import InputError, UnsupportedFormatError

        missing = self.dir / "nothere.nrrd"
        with self.assertRaisesRegex(InputError, "nothere.nrrd: does not exist"):
            read_volume(missing)
        corrupt = self.dir / "corrupt.nii.gz"
        corrupt.write_bytes(b"this is not a nifti file")
        with self.assertRaisesRegex(InputError, "corrupt.nii.gz"):
            read_volume(corrupt)
        with self.assertRaisesRegex(InputError, "corrupt.nii.gz"):
            read_image(corrupt)
        flat = self.dir / "flat.nrrd"
        sitk.WriteImage(sitk.Image(5, 6, sitk.sitkFloat32), str(flat))
        with self.assertRaisesRegex(InputError, "flat.nrrd.*3-D"):
            read_image(flat)
        weird = self.dir / "image.xyz"
        weird.write_text("x")
        with self.assertRaisesRegex(UnsupportedFormatError, "image.xyz.*extension"):
            read_volume(weird)
        with self.assertRaisesRegex(UnsupportedFormatError, "extension"):
            read_segmentation(weird)
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
        with self.assertRaisesRegex(UnsupportedFormatError, "out.jpg2"):
            write_volume(node, self.dir / "out.jpg2")
        empty_dir = self.dir / "empty"
        empty_dir.mkdir()
        with self.assertRaisesRegex(InputError, "empty"):
            read_image(empty_dir)
        before = self.scene.GetNumberOfNodes()
        with self.assertRaises(InputError):
            read_volume(corrupt)
        self.assertEqual(self.scene.GetNumberOfNodes(), before, "a failed read leaves no node behind")

    def test_failed_write_leaves_previous_file_intact(self):
        from SpineMetsCore.dataio import write_image
        from SpineMetsCore.fileio import atomic_path

        target = self.dir / "keep.nrrd"
        write_image(random_image(seed=3), target)
        original = target.read_bytes()
        with self.assertRaises(RuntimeError):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"partial")
                raise RuntimeError("writer crashed")
        self.assertEqual(target.read_bytes(), original)
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), ["keep.nrrd"])
        with mock.patch("SimpleITK.WriteImage", side_effect=RuntimeError("disk full")):
            with self.assertRaises(RuntimeError):
                write_image(random_image(seed=4), self.dir / "new.nii.gz")
        self.assertFalse((self.dir / "new.nii.gz").exists())
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), ["keep.nrrd"])

    def test_atomic_outputs_get_normal_permissions(self):
        from SpineMetsCore.fileio import atomic_dir, write_text_atomic

        old = os.umask(0o022)
        try:
            path = write_text_atomic(self.dir / "out.json", "{}")
            self.assertEqual(path.stat().st_mode & 0o777, 0o644)
            with atomic_dir(self.dir / "pkg") as tmp:
                (tmp / "a.txt").write_text("x")
            self.assertEqual((self.dir / "pkg").stat().st_mode & 0o777, 0o755)
        finally:
            os.umask(old)

    def test_multiple_dicom_series_need_a_choice(self):
        from SpineMetsCore.dataio import read_dicom_series, write_dicom_series
        from SpineMetsCore.errors import InputError

        a = self.dir / "a"
        b = self.dir / "b"
        write_dicom_series(random_image(size_kji=(3, 4, 4), seed=1), a)
        write_dicom_series(random_image(size_kji=(3, 4, 4), seed=2), b)
        both = self.dir / "both"
        both.mkdir()
        for folder in (a, b):
            for f in folder.iterdir():
                os.link(f, both / f"{folder.name}_{f.name}")
        with self.assertRaisesRegex(InputError, "2 DICOM series"):
            read_dicom_series(both)
        uid = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(a))[0]
        self.assertEqual(read_dicom_series(both, uid).GetSize(), (4, 4, 3))


if __name__ == "__main__":
    unittest.main()
