"""Cohort extraction: parallel = serial, resumable cache, per-case errors, atomic outputs, CLI."""

import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import pandas as pd

N_CASES = 4
SEQUENCES = ("T1", "T2")


class Interrupted(KeyboardInterrupt):
    """Stands in for Ctrl-C in the middle of a run."""


class CohortExtractionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from SpineMetsPhantom import PhantomConfig, write_cohort

        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        config = PhantomConfig(size=(64, 96, 10))
        cls.manifest = write_cohort(cls.dir / "cohort", n_cases=N_CASES, seed=21, config=config)
        cls.serial = cls.extract(workers=1)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def settings(cls):
        from SpineMetsClassifierLib.features.case import CaseSettings

        return CaseSettings(sequences=SEQUENCES)

    @classmethod
    def extract(cls, manifest=None, **kw):
        from SpineMetsClassifierLib.features.cohort import extract_cohort

        return extract_cohort(manifest or cls.manifest, cls.settings(), **kw)

    def test_two_workers_give_the_same_table_as_one(self):
        parallel = self.extract(workers=2)
        pd.testing.assert_frame_equal(parallel.frame, self.serial.frame, check_exact=True)
        frame = self.serial.frame
        self.assertEqual(list(frame["case_id"]), [f"case{i:04d}" for i in range(N_CASES)])
        self.assertEqual(list(frame["error"]), [""] * N_CASES)
        self.assertIn("T2_original_glcm_Idmn", frame.columns)
        self.assertIn("shape_Sphericity", frame.columns)
        self.assertIn("site", frame.columns)  # label and EDF columns of the manifest travel with the features
        self.assertEqual(list(frame["q_n_lesion_components"]), list(frame["n_lesions"]))

    def test_interrupted_run_resumes_from_the_cache(self):
        cache = self.dir / "resume_cache"
        calls = []

        def stop_after_two(done, total):
            calls.append(done)
            if done == 2:
                raise Interrupted()

        with self.assertRaises(Interrupted):
            self.extract(workers=1, cache_dir=cache, progress=stop_after_two)
        entries = sorted(cache.glob("*.json"))
        self.assertEqual(len(entries), 2)
        stamps = {p.name: p.stat().st_mtime_ns for p in entries}
        resumed = self.extract(workers=2, cache_dir=cache)
        self.assertEqual(resumed.cached, ["case0000", "case0001"])
        self.assertEqual(resumed.computed, ["case0002", "case0003"])
        self.assertEqual({p.name: p.stat().st_mtime_ns for p in entries}, stamps)  # not rewritten
        pd.testing.assert_frame_equal(resumed.frame, self.serial.frame, check_exact=True)
        again = self.extract(workers=1, cache_dir=cache)
        self.assertEqual((len(again.cached), again.computed), (N_CASES, []))

    def test_changed_input_or_parameters_invalidate_the_cache(self):
        from SpineMetsClassifierLib.features.case import CaseSettings
        from SpineMetsClassifierLib.features.cohort import extract_cohort
        from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS

        cohort = self.dir / "changed"
        shutil.copytree(self.manifest.parent, cohort)
        cache = self.dir / "changed_cache"
        extract_cohort(cohort / "manifest.csv", self.settings(), cache_dir=cache)
        t2 = next(cohort.glob("case0001_T2.*"))
        os.utime(t2, ns=(t2.stat().st_atime_ns, t2.stat().st_mtime_ns + 10**9))
        result = extract_cohort(cohort / "manifest.csv", self.settings(), cache_dir=cache)
        self.assertEqual(result.computed, ["case0001"])
        params = self.dir / "params_copy.yaml"
        params.write_text(DEFAULT_RADIOMICS_PARAMS.read_text().replace("binWidth: 5", "binWidth: 10"))
        changed = extract_cohort(cohort / "manifest.csv", CaseSettings(params_path=str(params), sequences=SEQUENCES),
                                 cache_dir=cache)
        self.assertEqual(len(changed.computed), N_CASES)
        self.assertNotEqual(changed.frame["T1_original_glcm_Contrast"].iloc[0], self.serial.frame["T1_original_glcm_Contrast"].iloc[0])
        self.assertEqual(changed.frame["shape_VoxelVolume"].iloc[0], self.serial.frame["shape_VoxelVolume"].iloc[0])

    def test_broken_case_is_reported_and_the_others_complete(self):
        from SpineMetsApp.cli import main

        cohort = self.dir / "broken"
        shutil.copytree(self.manifest.parent, cohort)
        bad = next(cohort.glob("case0002_T1.*"))
        bad.write_bytes(b"this is not an image")
        (cohort / "case0003_mask.nii.gz").unlink()
        out = self.dir / "broken_out" / "features.csv"
        code = main(["features", "--manifest", str(cohort / "manifest.csv"), "--out", str(out), "--workers", "2",
                     "--sequences", "T1,T2", "--no-cache", "--no-progress"])
        self.assertEqual(code, 1)
        frame = pd.read_csv(out, keep_default_na=False)
        errors = dict(zip(frame["case_id"], frame["error"], strict=True))
        self.assertIn(str(bad), errors["case0002"])
        self.assertIn("case0003_mask.nii.gz", errors["case0003"])
        self.assertEqual((errors["case0000"], errors["case0001"]), ("", ""))
        good = frame[frame["error"] == ""].reset_index(drop=True)
        expected = self.serial.frame.iloc[:2].reset_index(drop=True)
        self.assertEqual([float(v) for v in good["T2_original_firstorder_Mean"]], list(expected["T2_original_firstorder_Mean"]))
        self.assertEqual(frame.loc[2, "T1_original_firstorder_Mean"], "")  # no features for a failed case
        prov = json.loads(out.with_name("features.provenance.json").read_text())
        self.assertEqual(sorted(prov["failed"]), ["case0002", "case0003"])

    def test_cli_outputs_and_provenance(self):
        import hashlib

        from SpineMetsClassifierLib.features.resources import DEFAULT_RADIOMICS_PARAMS

        from SpineMetsApp.cli import main

        out = self.dir / "cli" / "features.csv"
        code = main(["features", "--manifest", str(self.manifest), "--params", str(DEFAULT_RADIOMICS_PARAMS),
                     "--out", str(out), "--workers", "1", "--sequences", "T1,T2", "--no-progress"])
        self.assertEqual(code, 0)
        frame = pd.read_csv(out)
        self.assertEqual(len(frame), N_CASES)
        self.assertAlmostEqual(frame["T1_original_firstorder_Median"].iloc[3],
                               self.serial.frame["T1_original_firstorder_Median"].iloc[3], places=12)
        prov = json.loads(out.with_name("features.provenance.json").read_text())
        self.assertEqual(prov["params_sha256"], hashlib.sha256(DEFAULT_RADIOMICS_PARAMS.read_bytes()).hexdigest())
        self.assertEqual(prov["manifest_sha256"], hashlib.sha256(self.manifest.read_bytes()).hexdigest())
        self.assertEqual(prov["settings"]["sequences"], list(SEQUENCES))
        self.assertTrue((out.parent / "features.cache").is_dir())  # default cache beside the output
        self.assertEqual(sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")), [])  # no temp files

    def test_interrupted_run_writes_no_output_and_bad_input_is_refused(self):
        from SpineMetsClassifierLib.features.cohort import extract_cohort, write_feature_table

        from SpineMetsApp.cli import main
        from SpineMetsCore.errors import InputError

        def interrupt(done, total):
            if done == 1:
                raise Interrupted()

        out = self.dir / "never" / "features.csv"
        with self.assertRaises(Interrupted):
            write_feature_table(extract_cohort(self.manifest, self.settings(), progress=interrupt), out)
        self.assertFalse(out.exists())
        edf = self.dir / "bad_edf.csv"
        edf.write_text("case_id,sex,fracture\ncase0000,F,no\ncase0001,X,maybe\n")
        code = main(["features", "--manifest", str(self.manifest), "--out", str(out), "--edf", str(edf), "--no-progress"])
        self.assertEqual(code, 2)
        self.assertFalse(out.exists())
        with self.assertRaises(InputError) as ctx:
            extract_cohort(self.manifest, self.settings(), edf_csv=edf)
        self.assertIn("row 2 (case 'case0001'), column 'fracture': value 'maybe'", str(ctx.exception))
        with self.assertRaises(InputError):
            extract_cohort(self.manifest, self.settings(), workers=0)


if __name__ == "__main__":
    unittest.main()
