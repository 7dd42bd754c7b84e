"""The bad-input corpus (Testing/Python/badinputs.py) driven through the CLI and the Logic.

Every broken input must end in a non-zero exit with one clear message naming the
input, no traceback, no raw VTK/ITK output, and no change to any existing output
(or a new output appearing). The corpus is generated at test time from a tiny
phantom; the CLI calls run in one driver process (one interpreter start-up for
~70 invocations), plus a few real ``python -m SpineMetsApp.cli`` processes for
what only a real process shows (C++ stderr, exit status).
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("badinputs", HERE / "badinputs.py")
badinputs = sys.modules.setdefault("badinputs", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(badinputs)
Invocation = badinputs.Invocation

RAW_NATIVE = ("ERR|", "\x1b[", "M_ReadElementsData", "vtkMRML", "itk::ExceptionObject")


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "MPLBACKEND": "Agg"}


class BadInputCorpusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.root = Path(cls.tmp.name)
        manifest = cls.manifest = badinputs.make_cohort(root / "cohort")
        columns, rows = badinputs.absolute_rows(manifest)
        cls.rows = rows
        good = rows[0]
        cls.images = badinputs.bad_images(root / "images", Path(good["T2"]))
        cls.masks = badinputs.bad_masks(root / "masks", Path(good["mask"]))
        cls.manifests = badinputs.bad_manifests(root / "manifests", manifest)
        cls.tables = badinputs.feature_tables(root / "tables")
        cls.invocations = cls.build_invocations(columns, rows)
        batch_in, batch_out = root / "batch_in.json", root / "batch_out.json"
        batch_in.write_text(json.dumps(badinputs.invocation_dicts(cls.invocations)))
        done = subprocess.run([sys.executable, str(HERE / "badinputs.py"), "batch", str(batch_in), str(batch_out)],
                              capture_output=True, text=True, env=cli_env(), timeout=900)
        if done.returncode != 0:
            current = batch_out.with_suffix(".current")
            crashed = current.read_text() if current.exists() else "?"
            raise AssertionError(f"corpus driver died (exit {done.returncode}) during '{crashed}':\n{done.stderr[-4000:]}")
        cls.results = {r["name"]: r for r in json.loads(batch_out.read_text())}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    # ------------------------------------------------------------------ corpus
    @classmethod
    def build_invocations(cls, columns, rows):
        root = cls.root
        good = rows[0]
        inv: list[Invocation] = []
        new = root / "new"
        new.mkdir()
        seed = "--seed-ras=0,0,0"

        # 1. every broken image through `segment` (region growing) and one through the U-Net
        for kind, (path, phrase) in cls.images.items():
            out = new / f"seg_{kind}.seg.nrrd"
            inv.append(Invocation(f"segment/{kind}", ["segment", "--method", "regiongrow", "--image", f"T2={path}", seed,
                                                      "--out", str(out)], [str(path), phrase], guarded=[str(out)]))
        from SpineMetsSegmentLib.unet import demo_model_path

        out = new / "unet_2d.seg.nrrd"
        flat = cls.images["single_slice"][0]
        inv.append(Invocation("segment-unet/single_slice", [
            "segment", "--method", "unet", "--model", str(demo_model_path()), "--force-cpu", "--image", f"T1={flat}",
            "--image", f"T2={good['T2']}", "--image", f"STIR={good['STIR']}", "--out", str(out)],
            [str(flat), "2-D"], guarded=[str(out)]))

        # 2. every broken image and mask as a case of one features run (BOM + CRLF manifest: accepted)
        feature_rows = [dict(good, case_id="good")]
        for kind, (path, _) in cls.images.items():
            feature_rows.append(dict(good, case_id=f"img_{kind}", T2=str(path)))
        for kind, (path, _) in cls.masks.items():
            feature_rows.append(dict(good, case_id=f"mask_{kind}", mask=str(path)))
        feature_rows.append(dict(good, case_id="t2_is_a_mask", T2=good["mask"]))
        cls.feature_manifest = badinputs.write_manifest(root / "bad_cases.csv", columns, feature_rows, bom=True, crlf=True)
        cls.features_out = new / "bad_cases_features.csv"
        inv.append(Invocation("features/bad-cases", ["features", "--manifest", str(cls.feature_manifest), "--out",
                                                      str(cls.features_out), "--no-progress"],
                              ["img_truncated_nii_gz", "mask_mask_full"], exit_codes=(1,)))

        # 3. manifest accidents through `features`
        for kind, (path, phrase) in cls.manifests.items():
            out = new / f"features_{kind}.csv"
            argv = ["features", "--manifest", str(path), "--out", str(out), "--no-cache", "--no-progress"]
            if kind == "missing_image":  # a per-case failure: the table says which file (exit 1, partial)
                inv.append(Invocation(f"features-manifest/{kind}", argv, [phrase], exit_codes=(1,)))
            else:
                inv.append(Invocation(f"features-manifest/{kind}", argv, [str(path), phrase], guarded=[str(out)]))

        # 4. feature-table accidents through `train`
        for kind, (path, phrase) in cls.tables.items():
            if kind == "good":
                continue
            out = new / f"model_{kind}"
            inv.append(Invocation(f"train-table/{kind}", ["train", "--features", str(path), "--label", "site",
                                                          "--classifier", "lr", "--out", str(out)],
                                  [phrase], guarded=[str(out)]))

        # 5. more: segmentation files, parameters, statistics tables, arguments
        inv += cls.more_invocations(new, good)

        # 6. output policy: existing outputs are never replaced without --overwrite ...
        existing = root / "existing"
        existing.mkdir()
        full_dir = existing / "full_dir"
        full_dir.mkdir()
        (full_dir / "keep.txt").write_text("earlier results\n")
        existing_csv = existing / "earlier.csv"
        existing_csv.write_text("case_id,x\na,1\n")
        preds = root / "preds.csv"
        preds.write_text("y,s\n" + "".join(f"{i % 2},{(i % 2) * 0.5 + i / 40}\n" for i in range(20)))
        table = str(cls.tables["good"][0])
        writers = {
            "features": ["features", "--manifest", str(cls.manifest), "--out", "{csv}"],
            "predict": ["predict", "--model", str(root / "no_model"), "--features", table, "--out", "{csv}"],
            "train": ["train", "--features", table, "--label", "site", "--classifier", "lr", "--out", "{dir}"],
            "stats-evaluate": ["stats", "evaluate", "--predictions", str(preds), "--truth", "y", "--out", "{dir}"],
            "stats-dca": ["stats", "dca", "--csv", str(preds), "--truth", "y", "--positive", "1", "--score", "s",
                          "--out", "{csv}"],
            "seg-metrics": ["seg-metrics", "--reference", good["mask"], "--test", good["mask"], "--out", "{csv}"],
            "phantom": ["phantom", "--out", "{dir}", "--cases", "1"],
            "train-seg": ["train-seg", "--manifest", str(cls.manifest), "--sequences", "T1", "--out", "{dir}"],
            "explain": ["explain", "--model", str(root / "no_model"), "--features", table, "--out", "{dir}"],
            "segment": ["segment", "--method", "regiongrow", "--image", f"T2={good['T2']}", seed, "--out", "{seg}"],
            "train-dl": ["train-dl", "--manifest", str(cls.manifest), "--label", "site", "--out", "{dir}"],
            "predict-dl": ["predict-dl", "--model", str(root / "no_model"), "--manifest", str(cls.manifest),
                           "--out", "{csv}"],
            "deep-features": ["deep-features", "--model", str(root / "no_model"), "--manifest", str(cls.manifest),
                              "--out", "{csv}"],
        }
        for name, argv in writers.items():
            if name != "segment":  # segment adds to an existing file (documented); its policy is writability
                target = str(existing_csv) if "{csv}" in argv else str(full_dir)
                filled = [a.replace("{csv}", target).replace("{dir}", target) for a in argv]
                inv.append(Invocation(f"exists/{name}", filled, [target, "already exists", "--overwrite"],
                                      guarded=[str(existing_csv), str(full_dir)]))
        # ... and an unwritable output fails before any work (a file where a folder must be)
        blocker = root / "blocker"
        blocker.write_text("a file, not a folder\n")
        for name, argv in writers.items():
            target = str(blocker / ("out.seg.nrrd" if name == "segment" else "out.csv" if "{csv}" in argv else "out"))
            filled = [a.replace("{csv}", target).replace("{dir}", target).replace("{seg}", target) for a in argv]
            inv.append(Invocation(f"unwritable/{name}", filled, [target, "not a folder"], guarded=[str(blocker)]))
        return inv

    @classmethod
    def more_invocations(cls, new, good):
        root = cls.root
        inv: list[Invocation] = []
        garbage_seg = root / "garbage.seg.nrrd"
        garbage_seg.write_bytes(b"NRRD0004\nnot really\n\n" + bytes(100))
        truncated_seg = badinputs._truncate(Path(cls.images["truncated_nrrd_gzip"][0]).with_name("full.nrrd"),
                                            root / "truncated.seg.nrrd")
        for name, seg in (("garbage", garbage_seg), ("truncated", truncated_seg)):
            out = new / f"metrics_{name}.csv"
            inv.append(Invocation(f"seg-metrics/{name}-seg", ["seg-metrics", "--reference", str(seg), "--test",
                                                              good["mask"], "--out", str(out)],
                                  [str(seg)], guarded=[str(out)]))
        out = new / "metrics_other_grid.csv"
        inv.append(Invocation("seg-metrics/other-grid", ["seg-metrics", "--reference", good["mask"], "--test",
                                                         str(cls.masks["mask_other_grid"][0]), "--out", str(out)],
                              [str(cls.masks["mask_other_grid"][0])], guarded=[str(out)]))
        params = root / "bad_params.yaml"
        params.write_text("setting: {binWidth: [unclosed\n")
        for name, argv, phrase in (
            ("missing-params", ["--params", str(root / "nope.yaml")], "nope.yaml"),
            ("malformed-params", ["--params", str(params)], str(params)),
            ("zero-workers", ["--workers", "0"], "--workers"),
            ("unknown-sequence", ["--sequences", "T1,FLAIR"], "FLAIR"),
        ):
            out = new / f"features_{name}.csv"
            inv.append(Invocation(f"features-args/{name}", ["features", "--manifest", str(cls.manifest), "--out", str(out),
                                                             "--no-cache", "--no-progress", *argv],
                                  [phrase], guarded=[str(out)]))
        seed_outside = new / "seed_outside.seg.nrrd"
        inv.append(Invocation("segment/seed-outside", ["segment", "--method", "regiongrow", "--image", f"T2={good['T2']}",
                                                       "--seed-ras=9000,9000,9000", "--out", str(seed_outside)],
                              ["9000"], guarded=[str(seed_outside)]))
        inv.append(Invocation("segment/bad-seed", ["segment", "--method", "regiongrow", "--image", f"T2={good['T2']}",
                                                   "--seed-ras=1,2", "--out", str(seed_outside)],
                              ["--seed-ras"], guarded=[str(seed_outside)]))
        one_class = root / "one_class.csv"
        one_class.write_text("case_id,site,f1\n" + "".join(f"c{i},lung,{i * 0.1}\n" for i in range(12)))
        inv.append(Invocation("train-table/one-class", ["train", "--features", str(one_class), "--label", "site",
                                                        "--classifier", "lr", "--out", str(new / "m1")],
                              ["site"], guarded=[str(new / "m1")]))
        scores = root / "scores.csv"
        scores.write_text("y,a,b\n" + "".join(f"{i % 2},{i / 10},{'inf' if i == 3 else i / 7}\n" for i in range(10)))
        inv.append(Invocation("stats/missing-column", ["stats", "delong", "--csv", str(scores), "--truth", "y",
                                                       "--positive", "1", "--score", "a", "--score", "c"],
                              ["c: column not found"]))
        inv.append(Invocation("stats/inf-risk", ["stats", "calibration", "--csv", str(scores), "--truth", "y",
                                                 "--positive", "1", "--score", "b"], ["b"]))
        return inv

    # ------------------------------------------------------------------ checks
    def test_corpus_size(self):
        self.assertGreaterEqual(len(self.results), 70)
        self.assertGreaterEqual(len(self.images) + len(self.masks) + len(self.manifests) + len(self.tables) - 1, 40)

    def test_every_invocation_fails_cleanly(self):
        for name, r in self.results.items():
            with self.subTest(name):
                text = r["stdout"] + r["stderr"]
                self.assertIn(r["code"], r["exit_codes"], f"exit {r['code']}\n{r['stderr'][-2000:]}")
                self.assertNotIn(badinputs.TRACEBACK, text)
                self.assertNotIn("internal error", r["stderr"])
                for raw in RAW_NATIVE:
                    self.assertNotIn(raw, r["stderr"], f"raw native output {raw!r} on stderr")
                for phrase in r["expect_in_stderr"]:
                    self.assertIn(phrase, r["stderr"] if r["code"] == 2 else text)
                self.assertEqual(r["changed"], [], "an existing output changed or a new one appeared")

    def test_features_table_names_every_bad_case(self):
        import pandas as pd

        frame = pd.read_csv(self.features_out, keep_default_na=False).set_index("case_id")
        self.assertEqual(frame.loc["good", "error"], "")
        self.assertGreater(float(frame.loc["good", "T2_original_firstorder_Mean"]), 0)
        for kind, (path, phrase) in {**self.images, **self.masks}.items():
            case = f"img_{kind}" if kind in self.images else f"mask_{kind}"
            with self.subTest(case):
                error = frame.loc[case, "error"]
                self.assertIn(str(path), error)
                self.assertIn(phrase, error)
                self.assertNotIn(badinputs.TRACEBACK, error)
                self.assertNotIn("PyRadiomics failed", error)
        # a sequence column pointing at a mask: not an error, but flagged in the table
        self.assertIn("image_looks_like_mask", frame.loc["t2_is_a_mask", "qc_flags"])
        summary = json.loads(self.results["features/bad-cases"]["stdout"])
        self.assertEqual(len(summary["failed"]), len(self.images) + len(self.masks))
        self.assertIn("image_looks_like_mask", summary["qc_flagged"]["t2_is_a_mask"])

    def test_logic_refuses_bad_images_and_leaves_the_scene_unchanged(self):
        from SpineMetsSegmentLib.logic import LesionSegmentationLogic

        from SpineMetsCore.errors import InputError
        from SpineMetsCore.runtime import get_runtime

        scene = get_runtime().scene
        logic = LesionSegmentationLogic()
        for kind, (path, phrase) in self.images.items():
            with self.subTest(kind):
                before = scene.GetNumberOfNodes()
                with self.assertRaises(InputError) as ctx:
                    logic.loadSequences({"T1": self.rows[0]["T1"], "T2": path})
                self.assertIn(str(path), str(ctx.exception))
                self.assertIn(phrase, str(ctx.exception))
                self.assertEqual(scene.GetNumberOfNodes(), before)

    def test_real_processes(self):
        """What only a real process shows: C++ stderr and the exit status of the interpreter."""
        env = cli_env()
        truncated = self.images["truncated_mha"][0]
        out = self.root / "new" / "real.seg.nrrd"
        done = subprocess.run([sys.executable, "-m", "SpineMetsApp.cli", "segment", "--method", "regiongrow",
                               "--image", f"T2={truncated}", "--seed-ras=0,0,0", "--out", str(out)],
                              capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn(str(truncated), done.stderr)
        for raw in RAW_NATIVE:
            self.assertNotIn(raw, done.stderr)
        self.assertNotIn(badinputs.TRACEBACK, done.stderr)
        self.assertFalse(out.exists())
        blocked = self.root / "blocker" / "model"
        done = subprocess.run([sys.executable, "-m", "SpineMetsApp.cli", "train", "--features",
                               str(self.tables["good"][0]), "--label", "site", "--classifier", "lr", "--out",
                               str(blocked)], capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("not a folder", done.stderr)
        self.assertNotIn(badinputs.TRACEBACK, done.stderr)


if __name__ == "__main__":
    unittest.main()
