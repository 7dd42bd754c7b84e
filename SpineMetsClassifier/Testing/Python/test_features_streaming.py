"""One volume at a time: extract_case looks each sequence up once, with the same row as from images in memory."""

import math
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SEQUENCES = ("T1", "T2", "STIR", "T1CE")


def same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class StreamingCaseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from SpineMetsPhantom import generate_case, write_case

        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.case = generate_case(5, case_id="stream")
        row = write_case(cls.case, root)
        cls.paths = {s: root / row[s] for s in SEQUENCES}
        cls.mask = root / row["mask"]
        cls.anatomy = root / row["anatomy"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_file_backed_images_give_the_in_memory_row_reading_each_file_once(self):
        from SpineMetsClassifierLib.features.case import CaseImageFiles, CaseSettings, extract_case, read_case_images

        settings = CaseSettings(shell_mm=3.0)
        eager, labelmap, anatomy = read_case_images(self.paths, self.mask, self.anatomy, None)
        self.assertIsInstance(eager, dict)
        expected = extract_case(eager, labelmap, anatomy, settings)

        lazy, labelmap, anatomy = read_case_images(self.paths, self.mask, self.anatomy, None, lazy=True)
        self.assertIsInstance(lazy, CaseImageFiles)
        reads: list[str] = []

        class Counting(CaseImageFiles):
            def __getitem__(self, sequence):
                reads.append(sequence)
                return super().__getitem__(sequence)

        got = extract_case(Counting(lazy.paths), labelmap, anatomy, settings)
        self.assertEqual(reads, list(SEQUENCES))  # one look-up (one read) per sequence
        self.assertEqual(list(got), list(expected))  # same columns, same order
        different = [k for k in expected if not same_value(got[k], expected[k])]
        self.assertEqual(different, [])
        self.assertGreater(len([k for k in got if k.startswith("T1CE-peri3mm_")]), 10)
        self.assertTrue(got["q_T1_signal"])

    def test_a_damaged_later_sequence_is_still_an_error_naming_its_file(self):
        from SpineMetsClassifierLib.features.case import CaseSettings, extract_case, read_case_images

        from SpineMetsCore.errors import InputError

        broken = dict(self.paths)
        bad = Path(self.tmp.name) / "blank_T1CE.nrrd"
        blank = sitk.Image(self.case.images["T1CE"].GetSize(), sitk.sitkFloat32)
        blank.CopyInformation(self.case.images["T1CE"])
        sitk.WriteImage(blank, str(bad))
        broken["T1CE"] = bad
        images, labelmap, anatomy = read_case_images(broken, self.mask, self.anatomy, None, lazy=True)
        with self.assertRaises(InputError) as ctx:
            extract_case(images, labelmap, anatomy, CaseSettings(radiomics=False), what="case 'x'",
                         sources={"T1CE": str(bad)})
        self.assertIn("blank_T1CE.nrrd", str(ctx.exception))
        self.assertIn("case 'x'", str(ctx.exception))


class SignalRatiosTest(unittest.TestCase):
    """The per-sequence accumulator against the all-images formulas, for every reference."""

    def test_equals_the_whole_image_formulas(self):
        from SpineMetsClassifierLib.features.quantitative import (
            SignalRatios,
            auto_marrow_region,
            default_anatomy_labels,
        )

        from SpineMetsPhantom import generate_case

        case = generate_case(7, case_id="ratios")
        lesion = sitk.Cast(case.lesion_mask == 1, sitk.sitkUInt8)
        labels = default_anatomy_labels()
        inside = sitk.GetArrayViewFromImage(lesion) != 0
        order = ("T2", "T1", "STIR")  # T1 not first: the auto reference still uses T1's bright ring half
        for reference in ("normal_marrow", "muscle", "auto"):
            with self.subTest(reference=reference):
                ratios = SignalRatios(lesion, reference, case.anatomy, labels)
                for sequence in order:
                    ratios.add(sequence, case.images[sequence])
                got = ratios.result()
                if reference == "auto":
                    region = auto_marrow_region(lesion, case.images["T1"])
                    statistic = np.median
                else:
                    region = (sitk.GetArrayViewFromImage(case.anatomy) == labels[reference]) & ~inside
                    statistic = np.mean
                self.assertEqual(list(got)[:2], ["q_reference", "q_T2_ratio"])
                for sequence in order:
                    values = sitk.GetArrayViewFromImage(case.images[sequence])
                    expected = float(values[inside].mean()) / float(statistic(values[region]))
                    self.assertEqual(got[f"q_{sequence}_ratio"], expected)


if __name__ == "__main__":
    unittest.main()
