"""Privacy: DICOM identifiers never travel from a series into volumes, written files or tables."""

import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

IDENTIFIERS = {
    "0010|0010": "Doe^Jane",          # PatientName
    "0010|0020": "HOSP123456",        # PatientID
    "0010|0030": "19600101",          # PatientBirthDate
    "0008|0050": "ACC998877",         # AccessionNumber
    "0008|0080": "St Example Hospital",  # InstitutionName
    "0008|0090": "Dr^Who",            # ReferringPhysicianName
}


def write_identified_series(folder: Path) -> None:
    """A 3-slice MR series carrying identifying tags in every file."""
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.99.2"
    for k in range(3):
        img = sitk.GetImageFromArray((np.arange(64, dtype=np.int16).reshape(8, 8) + 10 * k)[np.newaxis])[:, :, 0]
        tags = {**IDENTIFIERS, "0008|0060": "MR", "0020|000d": "1.2.826.0.1.3680043.2.1125.99.1",
                "0020|000e": series_uid, "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
                "0020|0032": f"0\\0\\{2.0 * k}", "0020|0037": "1\\0\\0\\0\\1\\0", "0018|0050": "2"}
        for key, value in tags.items():
            img.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"s{k}.dcm"))
        writer.Execute(img)


class PrivacyTest(unittest.TestCase):
    def test_dicom_identifiers_do_not_reach_images_or_files(self):
        from SpineMetsCore import dataio

        with tempfile.TemporaryDirectory() as tmp:
            series = Path(tmp) / "series"
            write_identified_series(series)
            image = dataio.read_image(series)
            self.assertEqual(image.GetSize(), (8, 8, 3))
            carried = " ".join(image.GetMetaData(k) for k in image.GetMetaDataKeys())
            for value in IDENTIFIERS.values():
                self.assertNotIn(value, carried)
            out = Path(tmp) / "out.nrrd"
            dataio.write_image(image, out, compress=False)
            node = dataio.read_volume(series, name="dicom")
            dataio.write_volume(node, Path(tmp) / "node.nrrd", compress=False)
            for written in (out, Path(tmp) / "node.nrrd"):
                data = written.read_bytes()
                for value in IDENTIFIERS.values():
                    self.assertNotIn(value.encode(), data, f"{value} leaked into {written.name}")


if __name__ == "__main__":
    unittest.main()
