"""Manifest convention: relative paths, validation errors that name row and column."""

import tempfile
import unittest
from pathlib import Path

import SimpleITK as sitk

from SpineMetsCore.testing import random_image


class ManifestTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)
        (self.dir / "img").mkdir()
        for name in ("a_T1.nrrd", "a_T2.nrrd", "a_mask.nrrd"):
            sitk.WriteImage(random_image(), str(self.dir / "img" / name))

    def write(self, text: str) -> Path:
        path = self.dir / "manifest.csv"
        path.write_text(text)
        return path

    def test_relative_and_absolute_paths(self):
        from SpineMetsCore.manifest import read_manifest

        absolute = self.dir / "img" / "a_T2.nrrd"
        path = self.write(f"case_id,T1,T2,mask,site,age\na,img/a_T1.nrrd,{absolute},img/a_mask.nrrd,lung,61\n")
        (row,) = read_manifest(path, required_sequences=("T1",), require_mask=True)
        self.assertEqual(row.case_id, "a")
        self.assertEqual(row.images["T1"], self.dir / "img" / "a_T1.nrrd")
        self.assertEqual(row.images["T2"], absolute)
        self.assertEqual(row.mask, self.dir / "img" / "a_mask.nrrd")
        self.assertEqual(row.values, {"site": "lung", "age": "61"})

    def test_errors_name_line_case_and_column(self):
        from SpineMetsCore.errors import InputError
        from SpineMetsCore.manifest import read_manifest

        path = self.write("case_id,T1,mask\na,img/a_T1.nrrd,img/missing.nrrd\na,img/a_T1.nrrd,img/a_mask.nrrd\n,x,y\n")
        with self.assertRaises(InputError) as ctx:
            read_manifest(path, require_mask=True)
        message = str(ctx.exception)
        self.assertIn("line 2 (case 'a'), column 'mask'", message)
        self.assertIn("missing.nrrd does not exist", message)
        self.assertIn("line 3: duplicate case_id 'a'", message)
        self.assertIn("line 4: empty case_id", message)
        with self.assertRaisesRegex(InputError, r"missing column\(s\) \['T2'\]"):
            read_manifest(self.write("case_id,T1\na,img/a_T1.nrrd\n"), required_sequences=("T1", "T2"))
        with self.assertRaisesRegex(InputError, "no 'case_id' column"):
            read_manifest(self.write("id,T1\na,img/a_T1.nrrd\n"))
        with self.assertRaisesRegex(InputError, "manifest does not exist"):
            read_manifest(self.dir / "nope.csv")


if __name__ == "__main__":
    unittest.main()
