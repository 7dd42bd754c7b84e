"""Input validation at the one reader, the QC checks and the manifest's spreadsheet tolerance."""

import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.testing import random_image


class ReaderIntegrityTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)
        self.image = random_image((12, 14, 10))

    def write(self, name, image=None, compress=True):
        path = self.dir / name
        sitk.WriteImage(image if image is not None else self.image, str(path), compress)
        return path

    def truncated(self, path, keep=0.6):
        data = path.read_bytes()
        bad = path.with_name("cut_" + path.name)
        bad.write_bytes(data[: int(len(data) * keep)])
        return bad

    def test_truncated_files_are_refused_by_both_readers(self):
        from SpineMetsCore import dataio
        from SpineMetsCore.errors import CorruptFileError

        for name, compress in (("a.nii.gz", True), ("b.nii", False), ("c.nrrd", True), ("d.nrrd", False), ("e.mha", False),
                               ("f.mha", True)):
            path = self.write(name, compress=compress)
            np.testing.assert_array_equal(sitk.GetArrayFromImage(dataio.read_image(path)),
                                          sitk.GetArrayFromImage(self.image))
            bad = self.truncated(path)
            for reader in (dataio.read_image, dataio.read_volume):
                with self.subTest(name=name, reader=reader.__name__):
                    with self.assertRaises(CorruptFileError) as ctx:
                        reader(bad)
                    self.assertIn(str(bad), str(ctx.exception))
                    self.assertNotIn("ERR|", str(ctx.exception))
                    self.assertNotIn("\x1b[", str(ctx.exception))

    def test_truncated_gzip_says_truncated(self):
        from SpineMetsCore import dataio
        from SpineMetsCore.errors import CorruptFileError

        bad = self.truncated(self.write("t.nii.gz"), keep=0.5)
        with self.assertRaisesRegex(CorruptFileError, "truncated"):
            dataio.read_image(bad)

    def test_complete_gzip_is_accepted_from_its_trailer(self):
        """A complete file is recognised from the gzip trailer (no second decompression); a cut one is not."""
        from unittest import mock

        from SpineMetsCore import dataio

        for name in ("g.nii.gz", "h.nrrd"):
            path = self.write(name)
            with self.subTest(name=name), mock.patch.object(dataio.gzip, "GzipFile", wraps=dataio.gzip.GzipFile) as gz:
                dataio.check_file_complete(path)
                # NIfTI reads its header through gzip once; the voxel count itself never decompresses
                self.assertLessEqual(gz.call_count, 1 if name.endswith(".nii.gz") else 0)
            cut = self.truncated(path, keep=0.9)
            with self.subTest(name="cut_" + name):
                with self.assertRaises(dataio.CorruptFileError):
                    dataio.check_file_complete(cut)

    def test_garbage_and_wrong_content(self):
        from SpineMetsCore import dataio
        from SpineMetsCore.errors import InputError

        for name, payload in (("g.nii.gz", b"not gzip at all" * 20), ("g.nrrd", b"hello" * 50), ("empty.nii", b"")):
            path = self.dir / name
            path.write_bytes(payload)
            for reader in (dataio.read_image, dataio.read_volume):
                with self.subTest(name=name, reader=reader.__name__), self.assertRaises(InputError) as ctx:
                    reader(path)
                self.assertIn(str(path), str(ctx.exception))

    def test_nan_and_inf_voxels_are_refused(self):
        from SpineMetsCore import dataio
        from SpineMetsCore.errors import ImageQualityError

        for value in (np.nan, np.inf, -np.inf):
            array = sitk.GetArrayFromImage(self.image)
            array[2, 3, 4] = value
            image = sitk.GetImageFromArray(array)
            image.CopyInformation(self.image)
            path = self.write(f"bad_{value}.nrrd", image)
            for reader in (dataio.read_image, dataio.read_volume):
                with self.subTest(value=value, reader=reader.__name__):
                    with self.assertRaisesRegex(ImageQualityError, "NaN or infinite"):
                        reader(path, sequence="T2")

    def test_native_errors_do_not_reach_stderr(self):
        import os
        import subprocess
        import sys

        bad = self.truncated(self.write("n.mha", compress=True))
        code = ("from SpineMetsCore import dataio\n"
                "for f in (dataio.read_image, dataio.read_volume):\n"
                f"    try:\n        f({str(bad)!r})\n    except Exception as e:\n        print(type(e).__name__)\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(done.stdout.split(), ["CorruptFileError", "CorruptFileError"])
        self.assertNotIn("ERR|", done.stderr)
        self.assertNotIn("M_ReadElementsData", done.stderr)


class QualityCheckTest(unittest.TestCase):
    def test_image_checks(self):
        from SpineMetsCore.errors import ImageQualityError
        from SpineMetsCore.qc import validate_image

        image = random_image((12, 14, 10))
        self.assertEqual(validate_image(image, role="image", sequence="T1", path="t1.nii.gz"), [])
        blank = sitk.Image(12, 14, 10, sitk.sitkInt16)
        with self.assertRaisesRegex(ImageQualityError, r"t1.nii.gz \(sequence T1\).*blank"):
            validate_image(blank, role="image", sequence="T1", path="t1.nii.gz")
        flat = sitk.Image(64, 64, 1, sitk.sitkFloat32)
        flat += 1.0
        flat[3, 3, 0] = 5.0
        with self.assertRaisesRegex(ImageQualityError, "2-D image of size 64x64x1"):
            validate_image(flat, role="image", sequence="T2")
        binary = sitk.Cast(random_image((12, 14, 10)) > 0, sitk.sitkUInt8)
        (flag,) = validate_image(binary, role="image", sequence="T2", path="t2.nrrd")
        self.assertEqual((flag.code, flag.severity), ("image_looks_like_mask", "warning"))
        flags = validate_image(blank, role="image", raise_on_error=False)
        self.assertEqual([f.code for f in flags], ["constant_image"])

    def test_mask_checks(self):
        from SpineMetsCore.errors import ImageQualityError
        from SpineMetsCore.qc import format_flags, validate_image

        image = random_image((12, 14, 10))
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
        with self.assertRaisesRegex(ImageQualityError, "lesion mask m.nrrd: has no labelled voxel"):
            validate_image(mask, role="mask", path="m.nrrd", reference=image)
        full = mask + 1
        with self.assertRaisesRegex(ImageQualityError, "inverted"):
            validate_image(full, role="mask", path="m.nrrd", reference=image)
        fractional = sitk.Cast(mask, sitk.sitkFloat32)
        fractional[2, 2, 2] = 0.5
        with self.assertRaisesRegex(ImageQualityError, "fractional"):
            validate_image(fractional, role="mask", path="m.nrrd")
        good = sitk.Image(mask)
        good[5:8, 5:8, 4:6] = 1
        self.assertEqual(validate_image(good, role="mask", path="m.nrrd", reference=image), [])
        far = sitk.Image(good)
        far.SetOrigin((5000.0, 0.0, 0.0))
        with self.assertRaisesRegex(ImageQualityError, "lesion mask m.nrrd: does not overlap the T1 image"):
            validate_image(far, role="mask", path="m.nrrd", reference=image, reference_sequence="T1")
        shifted = sitk.Image(good)
        shifted.SetOrigin(tuple(o + 0.3 for o in good.GetOrigin()))
        flags = validate_image(shifted, role="mask", path="m.nrrd", reference=image, reference_sequence="T1")
        self.assertEqual([f.code for f in flags], ["mask_resampled"])
        self.assertEqual(format_flags(flags), "mask_resampled: lesion mask m.nrrd")
        # an empty reference mask is allowed (a lesion-free reader study case); a full one is not
        self.assertEqual(validate_image(mask, role="reference_mask"), [])


class ManifestToleranceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)
        for name in ("a_T1.nrrd", "a_T2.nrrd", "a_STIR.nrrd", "a_mask.nrrd"):
            sitk.WriteImage(random_image(), str(self.dir / name))

    def write(self, text: str, encoding="utf-8", bom=False, crlf=False) -> Path:
        path = self.dir / "manifest.csv"
        if crlf:
            text = text.replace("\n", "\r\n")
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
        return path

    def test_excel_csv_utf8_with_bom_and_crlf(self):
        from SpineMetsCore.manifest import read_manifest

        path = self.write("case_id,T1,T2,STIR,mask,site\na,a_T1.nrrd,a_T2.nrrd,a_STIR.nrrd,a_mask.nrrd,lung\n\n",
                          bom=True, crlf=True)
        (row,) = read_manifest(path, optional_sequences=("T1CE",))
        self.assertEqual(row.case_id, "a")
        self.assertEqual(row.images["T1"], self.dir / "a_T1.nrrd")
        self.assertEqual(row.values, {"site": "lung"})

    def test_misspelled_sequence_column_is_named(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.manifest import read_manifest

        for header, wrong, right in (("t2", "t2", "T2"), ("T2W", "T2W", "T2"), ("Mask", "Mask", "mask")):
            path = self.write(f"case_id,T1,{header}\na,a_T1.nrrd,a_T2.nrrd\n")
            with self.subTest(header=header), self.assertRaises(InputError) as ctx:
                read_manifest(path)
            self.assertIn(f"column '{wrong}'", str(ctx.exception))
            self.assertIn(f"did you mean '{right}'", str(ctx.exception))

    def test_image_paths_in_an_unknown_column(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.manifest import read_manifest

        path = self.write("case_id,T1,flair\na,a_T1.nrrd,a_T2.nrrd\n")
        with self.assertRaisesRegex(InputError, "column 'flair' holds image paths"):
            read_manifest(path)
        # EDF signal columns are not mistaken for sequences
        path = self.write("case_id,T1,t1_signal,stir_signal\na,a_T1.nrrd,hypo,hyper\n")
        self.assertEqual(read_manifest(path)[0].values, {"t1_signal": "hypo", "stir_signal": "hyper"})

    def test_missing_sequence_unless_optional(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.manifest import read_manifest

        path = self.write("case_id,T2,STIR,mask\na,a_T2.nrrd,a_STIR.nrrd,a_mask.nrrd\n")
        with self.assertRaisesRegex(InputError, r"missing column\(s\) \['T1'\]"):
            read_manifest(path, optional_sequences=("T1CE",))
        self.assertEqual(len(read_manifest(path, optional_sequences=("T1", "T1CE"))), 1)
        self.assertEqual(len(read_manifest(path)), 1)  # no expectation given: legacy behaviour
        path = self.write("case_id,T1,T2,STIR\na,a_T1.nrrd,,a_STIR.nrrd\n")
        with self.assertRaisesRegex(InputError, r"case 'a'\), column 'T2': empty"):
            read_manifest(path, optional_sequences=("T1CE",))

    def test_other_spreadsheet_accidents(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.manifest import read_manifest

        cases = {
            "semicolon": ("case_id;T1\na;a_T1.nrrd\n", "semicolon-separated"),
            "duplicate case": ("case_id,T1\na,a_T1.nrrd\na,a_T1.nrrd\n", "duplicate case_id 'a'"),
            "duplicate column": ("case_id,T1,T1\na,a_T1.nrrd,a_T1.nrrd\n", "duplicate column"),
            "extra cells": ("case_id,T1\na,a_T1.nrrd,oops\n", "more cells than the header"),
            "no rows": ("case_id,T1\n", "no case rows"),
            "case id spelling": ("Case ID,T1\na,a_T1.nrrd\n", "did you mean 'case_id'"),
        }
        for name, (text, message) in cases.items():
            with self.subTest(name), self.assertRaisesRegex(InputError, message):
                read_manifest(self.write(text))
        latin = self.write("case_id,T1,site\na,a_T1.nrrd,Zürich\n", encoding="latin-1")
        with self.assertRaisesRegex(InputError, "not UTF-8"):
            read_manifest(latin)


if __name__ == "__main__":
    unittest.main()
