"""The phantom sample data: checksummed files, and what is registered with Slicer's Sample Data module."""

import hashlib
import shutil
import sys
import tempfile
import types
import unittest
import urllib.request
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from SpineMetsSegmentLib import sample_data

from SpineMetsCore.errors import InputError


class SampleDataTest(unittest.TestCase):
    def test_index_lists_every_file_with_its_sha256(self):
        paths = sample_data.verify_sample()
        self.assertEqual(sorted(paths), ["STIR", "T1", "T1CE", "T2", "anatomy", "lesions"])
        files, description = sample_data.read_index()
        self.assertTrue(description["synthetic"])
        self.assertEqual(description["phantom_seed"], 7)
        for entry in files:
            self.assertEqual(hashlib.sha256(paths[entry.role].read_bytes()).hexdigest(), entry.sha256)
        t1 = sitk.ReadImage(str(paths["T1"]))
        self.assertEqual(t1.GetPixelID(), sitk.sitkInt16)
        self.assertEqual(t1.GetSize(), (96, 128, 14))
        for seq in ("T2", "STIR", "T1CE"):
            other = sitk.ReadImage(str(paths[seq]))
            self.assertEqual(other.GetSize(), t1.GetSize())
            np.testing.assert_allclose(other.GetOrigin(), t1.GetOrigin())

    def test_damaged_or_missing_file_is_named(self):
        with tempfile.TemporaryDirectory() as tmp:
            for path in sample_data.SAMPLE_DIR.iterdir():
                shutil.copy(path, tmp)
            (Path(tmp) / "SpineMetsPhantom_T2.nrrd").write_bytes(b"not an image")
            with self.assertRaisesRegex(InputError, "SpineMetsPhantom_T2.nrrd: SHA-256 .* does not match"):
                sample_data.verify_sample(tmp)
            (Path(tmp) / "SpineMetsPhantom_T2.nrrd").unlink()
            with self.assertRaisesRegex(InputError, "SpineMetsPhantom_T2.nrrd: sample data file is missing"):
                sample_data.verify_sample(tmp)

    def test_registration_with_the_sample_data_module(self):
        """What SampleData receives: file:// URIs urllib can fetch, matching SHA256 checksums, load types."""
        import slicer

        calls = []
        fake = types.ModuleType("SampleData")
        fake.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=lambda **kw: calls.append(kw))
        self.assertFalse(sample_data.register_sample_data(), "outside the application nothing is registered")
        sys.modules["SampleData"] = fake
        slicer.app = object()
        try:
            self.assertTrue(sample_data.register_sample_data())
        finally:
            del slicer.app
            del sys.modules["SampleData"]
        (kw,) = calls
        self.assertEqual((kw["category"], kw["sampleName"]), ("SpineMets", "SpineMetsPhantom"))
        self.assertEqual(kw["loadFileTypes"], ["VolumeFile"] * 4 + ["SegmentationFile"] * 2)
        self.assertTrue(Path(kw["thumbnailFileName"]).is_file())
        with tempfile.TemporaryDirectory() as tmp:
            for uri, name, checksum in zip(kw["uris"], kw["fileNames"], kw["checksums"], strict=True):
                self.assertTrue(uri.startswith("file://"))
                target = Path(tmp) / name
                urllib.request.urlretrieve(uri, target)  # what SampleDataLogic.downloadFile does
                algo, digest = checksum.split(":")
                self.assertEqual(algo, "SHA256")
                self.assertEqual(hashlib.sha256(target.read_bytes()).hexdigest(), digest)


if __name__ == "__main__":
    unittest.main()
