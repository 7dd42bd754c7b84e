"""``spinemets run``: config validation, manifests, end-to-end values, broken cases, kill + resume, output policy.

One tiny phantom cohort (10 cases, 5 per class on a coarse grid, seeds as Slicer markups files) is
shared by the tests; the study config trains two small models without radiomics, so
the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
N_CASES = 10
CONFIG = {
    "name": "pipeline-test",
    "seed": 3,
    "segmentation": {"method": "region_growing"},
    "features": {"radiomics": False},
    "tasks": [{
        "name": "tumour",
        "label": "tumour_class",
        "feature_sets": {"quant": "quantitative+segmentation", "edf": "edf"},
        "classifiers": ["lr"],
        "cv_folds": 2, "inner_folds": 2, "grid": "none",
    }],
    "statistics": {"bootstrap": 50},
    "explain": {"max_cases": 10},
}
_COHORT: dict[str, Path] = {}


def setUpModule() -> None:  # noqa: N802 - unittest hook
    from SpineMetsApp.pipeline.democohort import write_demo_cohort

    tmp = tempfile.mkdtemp(prefix="spinemets-pipeline-")
    _COHORT["root"] = Path(tmp)
    _COHORT["manifest"] = write_demo_cohort(Path(tmp) / "cohort", cases=N_CASES, seed=0, size=(64, 80, 12),
                                            primary_bone_fraction=0.5)
    (Path(tmp) / "config.json").write_text(json.dumps(CONFIG))


def tearDownModule() -> None:  # noqa: N802
    import shutil

    shutil.rmtree(_COHORT["root"], ignore_errors=True)


def reference_run() -> Path:
    """One uninterrupted serial run of the shared cohort (made once; the kill test compares against it)."""
    from SpineMetsApp.pipeline import run_pipeline

    out = _COHORT["root"] / "reference"
    if not (out / "run.json").is_file() or json.loads((out / "run.json").read_text())["status"] != "complete":
        run_pipeline(_COHORT["manifest"], _COHORT["root"] / "config.json", out, workers=0)
    return out


def run_cli(*argv: str) -> tuple[int, str, str]:
    from SpineMetsApp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def comparable_files(out: Path) -> dict[str, bytes]:
    """Outputs that must be byte-identical between runs (model packages carry their creation time)."""
    names = ["features.csv", "segmentation.csv", "failures.csv", "segmented_manifest.csv",
             "tasks/tumour/predictions.csv", "tasks/tumour/comparison.csv", "tasks/tumour/table1.csv",
             "tasks/tumour/summary.json"]
    files = {n: (out / n).read_bytes() for n in names}
    for path in sorted((out / "cases").rglob("*")):
        if path.is_file():
            files[str(path.relative_to(out))] = path.read_bytes()
    return files


def temporaries(out: Path) -> list[str]:
    return [str(p) for p in out.rglob(".*") if ".part" in p.name or p.name.endswith(".old")]


class ConfigTest(unittest.TestCase):
    def test_unknown_key_is_named_with_a_suggestion(self):
        from SpineMetsApp.pipeline import ConfigError, load_config

        bad = copy.deepcopy(CONFIG)
        bad["tasks"][0]["clasifiers"] = ["lr"]
        with self.assertRaises(ConfigError) as ctx:
            load_config(bad)
        self.assertEqual(ctx.exception.what, "tasks[0].clasifiers")
        self.assertIn("did you mean 'classifiers'", str(ctx.exception))
        with self.assertRaises(ConfigError) as ctx:
            load_config({**CONFIG, "statistcs": {}})
        self.assertEqual(ctx.exception.what, "statistcs")

    def test_bad_values_name_their_key(self):
        from SpineMetsApp.pipeline import ConfigError, load_config

        cases = [
            ({"segmentation": {"method": "magic"}}, "segmentation.method"),
            ({"tasks": [{**CONFIG["tasks"][0], "split": {"method": "column"}}]}, "tasks[0].split.column"),
            ({"tasks": [{**CONFIG["tasks"][0], "classifiers": ["lr", "xgb"]}]}, "tasks[0].classifiers[1]"),
            ({"tasks": [{"name": "t"}]}, "tasks[0].label"),
            ({"seed": "zero"}, "seed"),
            ({"segmentation": {"region_growing": {"seed_radius": 3}}}, "segmentation.region_growing"),
            ({"statistics": {"calibration_bins": 1}}, "statistics.calibration_bins"),
        ]
        for patch, key in cases:
            with self.subTest(key=key):
                with self.assertRaises(ConfigError) as ctx:
                    load_config({**CONFIG, **patch})
                self.assertEqual(ctx.exception.what, key)

    def test_shipped_demo_config_and_defaults(self):
        from SpineMetsApp.pipeline.config import load_config, shipped_configs

        self.assertIn("demo", shipped_configs())
        demo = load_config("demo")
        self.assertEqual(demo.name, "demo")
        models = [m["name"] for m in demo["tasks"][0]["models"]]
        self.assertEqual(models, ["radiomics-lr", "radiomics-rf", "edf-lr", "edf-rf"])
        self.assertEqual(demo["statistics"]["conf_level"], 0.95)  # a default filled in
        self.assertNotEqual(load_config(CONFIG).digest(), load_config({**CONFIG, "seed": 4}).digest())

    def test_every_key_is_documented(self):
        """docs/pipeline.md lists the schema exactly as `spinemets run --help` does (generated from one place)."""
        from SpineMetsApp.pipeline.cases import MANIFEST_COLUMN_DOCS
        from SpineMetsApp.pipeline.config import describe_schema

        docs = (REPO / "docs" / "pipeline.md").read_text()
        for line in describe_schema(markdown=True):
            self.assertIn(line, docs)
        for column in MANIFEST_COLUMN_DOCS:
            self.assertIn(f"`{column}`", docs)

    def test_markups_files_in_lps_and_ras(self):
        from SpineMetsApp.pipeline.cases import read_markups, seeds_and_roi
        from SpineMetsApp.pipeline.democohort import markups_points_json, markups_roi_json

        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp))
        (tmp / "s.mrk.json").write_text(markups_points_json([[10.0, -20.0, 30.0], [1.0, 2.0, 3.0]]))
        seeds, roi = read_markups(tmp / "s.mrk.json", "x")
        np.testing.assert_allclose(seeds, [[-10.0, 20.0, 30.0], [-1.0, -2.0, 3.0]])  # LPS -> RAS
        self.assertIsNone(roi)
        doc = json.loads(markups_points_json([[10.0, -20.0, 30.0]]))
        doc["markups"][0]["coordinateSystem"] = "RAS"
        (tmp / "r.mrk.json").write_text(json.dumps(doc))
        np.testing.assert_allclose(read_markups(tmp / "r.mrk.json", "x")[0], [[10.0, -20.0, 30.0]])
        (tmp / "roi.mrk.json").write_text(markups_roi_json([4.0, 6.0, 8.0], [10.0, 20.0, 30.0]))
        seeds, roi = seeds_and_roi({"seed_ras": "-4,-6,8", "roi_file": "roi.mrk.json"}, tmp, "row")
        centre, axes, half = roi
        np.testing.assert_allclose(centre, [-4.0, -6.0, 8.0])
        np.testing.assert_allclose(np.abs(np.reshape(axes, (3, 3))), np.eye(3))
        np.testing.assert_allclose(half, [5.0, 10.0, 15.0])
        _, roi = seeds_and_roi({"seed_ras": "1,2,3;4,5,6", "roi_size_mm": "10"}, tmp, "row")
        np.testing.assert_allclose(roi[0], [2.5, 3.5, 4.5])
        with self.assertRaises(Exception) as ctx:
            seeds_and_roi({"seed_ras": "1,2"}, tmp, "line 7")
        self.assertIn("line 7, column 'seed_ras'", str(ctx.exception))


class PipelineTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="spinemets-run-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(self.tmp, ignore_errors=True))
        self.manifest = _COHORT["manifest"]
        self.config = _COHORT["root"] / "config.json"

    def _manifest_copy(self, edit=None) -> Path:
        frame = pd.read_csv(self.manifest, dtype=str, keep_default_na=False)
        base = self.manifest.parent
        for column in ("T1", "T2", "STIR", "T1CE", "mask", "anatomy", "seeds_file", "roi_file"):
            frame[column] = [str(base / v) if v else v for v in frame[column]]
        if edit is not None:
            edit(frame)
        path = self.tmp / "manifest.csv"
        frame.to_csv(path, index=False)
        return path

    def test_end_to_end_values_and_report(self):
        from SpineMetsApp.pipeline import run_pipeline

        out = _COHORT["root"] / "reference"  # kept for the kill test's comparison
        # First run through the headless-Slicer example script (the same API as the CLI).
        import importlib.util

        spec = importlib.util.spec_from_file_location("run_in_slicer", REPO / "SpineMetsApp/examples/run_in_slicer.py")
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            status = example.main(["--manifest", str(self.manifest), "--config", str(self.config), "--out", str(out)])
        self.assertEqual(status, 0)
        self.assertIn(str(out / "report.html"), printed.getvalue())
        seg = pd.read_csv(out / "segmentation.csv")
        self.assertEqual(len(seg), N_CASES)
        self.assertGreater(seg["dice"].median(), 0.75)  # region growing from the markups seeds
        self.assertTrue((seg["volume_ml"] > 0).all())
        features = pd.read_csv(out / "features.csv")
        self.assertEqual(len(features), N_CASES)
        prov = json.loads((out / "features.provenance.json").read_text())
        for column in ("case_id", "error", "tumour_class", "seeds_file", "roi_file"):
            self.assertNotIn(column, [c for c in features.columns if c.startswith(("q_", "seg_"))])
        self.assertIn("tumour_class", prov["non_feature_columns"])
        self.assertNotIn("seeds_file", features.columns)  # pipeline columns never enter the feature table
        predictions = pd.read_csv(out / "tasks/tumour/predictions.csv")
        self.assertEqual(sorted(predictions["model"].unique()), ["edf-lr", "quant-lr"])
        self.assertEqual(len(predictions), 2 * N_CASES)
        np.testing.assert_allclose(predictions[["prob_metastasis", "prob_primary_bone_tumour"]].sum(axis=1), 1.0)
        comparison = pd.read_csv(out / "tasks/tumour/comparison.csv")
        self.assertEqual(len(comparison), 2)
        self.assertTrue(((comparison["auc"] >= 0) & (comparison["auc"] <= 1)).all())
        self.assertTrue((comparison["auc_ci_low"] <= comparison["auc"]).all())
        self.assertTrue((comparison["auc"] <= comparison["auc_ci_high"]).all())
        other = comparison[comparison["model"] != comparison["reference"]]
        self.assertTrue(((other["p_vs_reference"] > 0) & (other["p_vs_reference"] <= 1)).all())
        # The models are trained on features only: no id, label, path or metadata column.
        card = json.loads((out / "tasks/tumour/models/quant-lr/model.json").read_text())
        for name in card["feature_names"]:
            self.assertTrue(name.startswith(("q_", "seg_")), name)
        edf_card = json.loads((out / "tasks/tumour/models/edf-lr/model.json").read_text())
        self.assertIn("age", edf_card["feature_names"])
        self.assertTrue(card["synthetic_training_data"])
        predicted = pd.read_csv(next((out / "tasks/tumour").glob("predict_*.csv")))
        self.assertEqual(len(predicted), N_CASES)
        html = (out / "report.html").read_text()
        for section in ("Synthetic data", "Segmentation", "Table 1", "Model comparison", "Per-class F1 and recall",
                        "SHAP", "Per-case predictions", "Provenance", "DeLong", "data:image/png;base64,"):
            self.assertIn(section, html)
        self.assertNotIn("Top-k", html)  # binary task: top-k is not shown (k would equal the classes)
        self.assertIn("is imprecise", html)  # calibration caveat for n < 100
        for figure in ("tumour_roc", "tumour_calibration", "tumour_dca", "segmentation_volumes"):
            self.assertTrue((out / "figures" / f"{figure}.png").is_file())
            self.assertTrue((out / "figures" / f"{figure}.svg").is_file())
        run = json.loads((out / "run.json").read_text())
        self.assertEqual(run["status"], "complete")
        # Hand-offs: the features table feeds `predict` directly (its provenance names the non-feature
        # columns), and the long predictions table feeds `stats delong`.
        code, stdout, stderr = run_cli("predict", "--model", str(out / "tasks/tumour/models/quant-lr"),
                                       "--features", str(out / "features.csv"))
        self.assertEqual(code, 0, stderr)
        self.assertEqual(len(pd.read_csv(io.StringIO(stdout))), N_CASES)
        reference = comparison["reference"][0]
        challenger = [m for m in comparison["model"] if m != reference][0]
        code, stdout, stderr = run_cli("stats", "delong", "--csv", str(out / "tasks/tumour/predictions.csv"),
                                       "--truth", "tumour_class", "--positive", "primary_bone_tumour",
                                       "--model-column", "model", "--score", "prob_primary_bone_tumour",
                                       "--score", reference, "--score", challenger, "--direction", "<")
        self.assertEqual(code, 0, stderr)
        delong = json.loads(stdout)
        expected = float(comparison.loc[comparison["model"] == challenger, "p_vs_reference"].iloc[0])
        self.assertAlmostEqual(delong["p"], expected, places=10)
        # Rerun: resumes, every case reused, same tables.
        before = comparable_files(out)
        again = run_pipeline(self.manifest, self.config, out, workers=0)
        self.assertTrue(again.resumed)
        self.assertEqual(len(again.cached), N_CASES)
        self.assertEqual(comparable_files(out), before)

    def test_existing_seg_nrrd_with_a_segment_name(self):
        """Method `mask`: a Slicer .seg.nrrd per case, one named segment used; Dice against the labelmap is 1."""
        import SimpleITK as sitk

        from SpineMetsApp.pipeline import run_pipeline
        from SpineMetsCore import dataio, segmentations

        def with_segmentations(frame: pd.DataFrame) -> None:
            frame.drop(index=frame.index[2:], inplace=True)
            paths = []
            for i, mask in enumerate(frame["mask"]):
                labelmap = sitk.Cast(sitk.ReadImage(mask), sitk.sitkUInt16)
                node, _ = segmentations.labelmap_to_segmentation(labelmap, {1: "index lesion", 2: "other", 3: "third"})
                paths.append(str(dataio.write_segmentation(node, self.tmp / f"case{i}.seg.nrrd")))
            frame["reference_mask"] = frame["mask"]  # the labelmap stays as the Dice reference
            frame["mask"] = paths
            frame["segment"] = "index lesion"

        manifest = self._manifest_copy(with_segmentations)
        config = {**CONFIG, "tasks": [], "segmentation": {"method": "mask", "reference_column": "reference_mask"}}
        result = run_pipeline(manifest, config, self.tmp / "out", workers=0)
        self.assertEqual(result.failed, {})
        seg = pd.read_csv(self.tmp / "out" / "segmentation.csv")
        np.testing.assert_allclose(seg["dice"], 1.0)  # exactly the reference's label-1 lesion
        np.testing.assert_allclose(seg["volume_ml"], seg["reference_volume_ml"])

    def test_broken_case_is_recorded_and_the_cohort_completes(self):
        def corrupt(frame: pd.DataFrame) -> None:
            bad = self.tmp / "broken_T2.nii.gz"
            bad.write_bytes(b"\x1f\x8b not really an image")
            frame.loc[2, "T2"] = str(bad)

        manifest = self._manifest_copy(corrupt)
        out = self.tmp / "out"
        config = self.tmp / "one_model.json"  # one model is enough here
        config.write_text(json.dumps({**CONFIG, "tasks": [{**CONFIG["tasks"][0], "feature_sets": {"edf": "edf"}}]}))
        code, stdout, stderr = run_cli("run", "--manifest", str(manifest), "--config", str(config),
                                       "--out", str(out), "--workers", "0")
        self.assertEqual(code, 1, stderr)
        summary = json.loads(stdout.strip().splitlines()[0])
        broken = pd.read_csv(manifest)["case_id"][2]
        self.assertEqual(list(summary["failed"]), [broken])
        failures = pd.read_csv(out / "failures.csv")
        self.assertEqual(failures["case_id"].tolist(), [broken])
        self.assertIn("broken_T2.nii.gz", failures["error"][0])
        predictions = pd.read_csv(out / "tasks/tumour/predictions.csv")
        self.assertEqual(len(predictions), N_CASES - 1)
        self.assertNotIn(broken, set(predictions["case_id"]))
        self.assertIn(broken, (out / "report.html").read_text())

    def test_bad_input_is_reported_before_any_work(self):
        from SpineMetsCore.errors import InputError

        def bad_seed(frame: pd.DataFrame) -> None:
            frame["seed_ras"] = ""
            frame.loc[3, "seed_ras"] = "1,2,x"

        manifest = self._manifest_copy(bad_seed)
        out = self.tmp / "out"
        code, _, stderr = run_cli("run", "--manifest", str(manifest), "--config", str(self.config), "--out", str(out))
        self.assertEqual(code, 2)
        self.assertIn("line 5", stderr)
        self.assertIn("seed_ras", stderr)
        self.assertNotIn("Traceback", stderr)
        self.assertFalse(out.exists())
        bad_config = self.tmp / "bad.yaml"
        bad_config.write_text("tasks:\n  - name: t\n    label: tumour_class\n    feature_set: {a: edf}\n")
        code, _, stderr = run_cli("run", "--manifest", str(self.manifest), "--config", str(bad_config), "--out", str(out))
        self.assertEqual(code, 2)
        self.assertIn("tasks[0].feature_set", stderr)
        self.assertFalse(out.exists())
        blocker = self.tmp / "a_file"
        blocker.write_text("x")
        from SpineMetsApp.pipeline import plan_run

        with self.assertRaises(InputError) as ctx:
            plan_run(self.manifest, self.config, blocker / "out")
        self.assertIn("a_file", str(ctx.exception))

    def test_output_folder_policy(self):
        from SpineMetsApp.pipeline import OutputFolderError, plan_run

        out = self.tmp / "out"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        with self.assertRaises(OutputFolderError) as ctx:
            plan_run(self.manifest, self.config, out, overwrite=True)
        self.assertIn("never overwritten", str(ctx.exception))
        (out / "notes.txt").unlink()
        plan = plan_run(self.manifest, self.config, out)
        self.assertFalse(plan.resumed)
        from SpineMetsApp.pipeline.runner import _write_run_file

        _write_run_file(plan, "running")
        self.assertTrue(plan_run(self.manifest, self.config, out).resumed)
        other = self.tmp / "other.json"
        other.write_text(json.dumps({**CONFIG, "seed": 9}))
        with self.assertRaises(OutputFolderError) as ctx:
            plan_run(self.manifest, other, out)
        self.assertIn("--overwrite", str(ctx.exception))
        self.assertIn("config", str(ctx.exception))
        replaced = plan_run(self.manifest, other, out, overwrite=True)
        self.assertFalse(replaced.resumed)
        self.assertFalse((out / "run.json").exists())


class SchedulerTest(unittest.TestCase):
    def test_existing_cluster_by_address(self):
        """--scheduler: the cases go to an existing Dask cluster (here an in-process one); no study tasks."""
        from distributed import LocalCluster

        from SpineMetsApp.pipeline import run_pipeline

        tmp = Path(tempfile.mkdtemp(prefix="spinemets-sched-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            result = run_pipeline(_COHORT["manifest"], {**CONFIG, "tasks": []}, tmp / "out",
                                  scheduler=cluster.scheduler_address)
        self.assertEqual(len(result.computed), N_CASES)
        seg = pd.read_csv(tmp / "out" / "segmentation.csv")
        self.assertGreater(seg["dice"].median(), 0.75)
        self.assertIn("Segmentation", (tmp / "out" / "report.html").read_text())


class WorkerPoolTest(unittest.TestCase):
    def test_one_long_lived_pool_serves_several_cohorts_with_the_serial_values(self):
        """One 2-worker pool (started once, its workers kept) runs two pipeline cohorts and a features
        cohort: values identical to the in-process path; no dashboard-port warning even with 8787 taken."""
        import socket
        import warnings

        from SpineMetsClassifierLib.features.case import CaseSettings as FeatureSettings
        from SpineMetsClassifierLib.features.cohort import extract_cohort

        from SpineMetsApp.pipeline.runner import WorkerPool, plan_run, run_cases

        tmp = Path(tempfile.mkdtemp(prefix="spinemets-pool-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        manifest = _COHORT["manifest"]
        config = {**CONFIG, "features": {"radiomics": True, "sequences": ["T1", "T2"]}, "tasks": []}
        plans = {name: plan_run(manifest, config, tmp / name) for name in ("serial", "pool1", "pool2")}
        serial = run_cases(plans["serial"].specs, plans["serial"].settings, tmp / "serial", workers=0)
        features = FeatureSettings(sequences=("T1", "STIR"))
        serial_table = extract_cohort(manifest, features, workers=1).frame
        busy = socket.socket()
        self.addCleanup(busy.close)
        with contextlib.suppress(OSError):  # already taken by someone else: just as good
            busy.bind(("127.0.0.1", 8787))
            busy.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with WorkerPool(2) as pool:
                workers = pool.client.run(os.getpid)
                pooled = [run_cases(plans[n].specs, plans[n].settings, tmp / n, pool=pool) for n in ("pool1", "pool2")]
                table = extract_cohort(manifest, features, executor=pool.executor()).frame
                self.assertEqual(pool.client.run(os.getpid), workers)  # the same two processes throughout
        self.assertEqual(len(workers), 2)
        self.assertEqual([str(w.message) for w in caught if "8787" in str(w.message) or "Port" in str(w.message)], [])

        def values(outcomes: list[dict]) -> list[str]:
            self.assertTrue(all(o["status"] == "ok" for o in outcomes), outcomes)
            return [json.dumps([o["case_id"], o["record"]["segmentation"], o["record"]["features"]], sort_keys=True)
                    for o in outcomes]

        self.assertIn("T2_original_glcm_Contrast", serial[0]["record"]["features"])  # radiomics on
        self.assertEqual(values(pooled[0]), values(serial))
        self.assertEqual(values(pooled[1]), values(serial))
        for name in ("pool1", "pool2"):
            self.assertEqual((tmp / name / "cases" / serial[0]["record"]["segmentation"]["file"].split("/")[1]
                              / "lesion.nrrd").read_bytes(),
                             (tmp / "serial" / serial[0]["record"]["segmentation"]["file"]).read_bytes())
        self.assertEqual(len(table), N_CASES)
        self.assertTrue((table["error"].fillna("") == "").all())
        pd.testing.assert_frame_equal(table, serial_table)


    def test_preparing_a_worker_never_raises(self):
        """A broken U-Net model must fail each case (recorded), not the pool's preparation (the whole run)."""
        from SpineMetsClassifierLib.features.case import CaseSettings as FeatureSettings

        from SpineMetsApp.pipeline import cases

        missing = str(Path(tempfile.gettempdir()) / "spinemets-no-such-model")
        settings = cases.CaseSettings(method="unet", seg_sequences=None, region_growing=(), unet_model=missing,
                                      feature_settings=FeatureSettings(radiomics=False))
        self.assertIsNone(cases.prepare_worker(settings))
        self.assertNotIn(("unet", missing), cases._CACHE)
        with self.assertRaises(Exception):  # noqa: B017 - whatever the loader raises, the case records it
            cases._unet_package(missing)


class LibraryHandOffTest(unittest.TestCase):
    def test_all_classifiers_adapt_to_a_tiny_cohort(self):
        """`train --classifier all` on 16 rows: k-NN's and the SVM's settings fit the folds, they train;
        on 8 rows the SVM cannot (one case of a class in a fold) and is reported, not fatal."""
        from SpineMetsClassifierLib.models.training import TrainConfig, train_all

        rng = np.random.default_rng(0)
        y = np.array(["a", "b"] * 8)
        frame = pd.DataFrame({"case_id": [f"c{i}" for i in range(16)], "label": y,
                              "x1": rng.normal(size=16) + (y == "b"), "x2": rng.normal(size=16),
                              "centre": ["C1", "C2"] * 8})
        config = TrainConfig(label="label", feature_set="all", cv_folds=2, inner_folds=2, grid="small",
                             metadata_columns=("centre",))
        results, table = train_all(frame, config, classifiers=("lr", "svm", "knn"))
        self.assertEqual(table.attrs["failures"], {})
        self.assertEqual(sorted(table["model"]), ["knn", "lr", "svm"])
        self.assertEqual(results["lr"].card["feature_names"], ["x1", "x2"])  # `all` skips the metadata column
        # final model: inner folds fit on 8 of the 16 rows, so k <= 8 (the small grid asks for 9 and 21)
        self.assertLessEqual(results["knn"].card["classifier"]["best_params"]["n_neighbors"], 8)
        out = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(out, ignore_errors=True))
        results, table = train_all(frame.iloc[:8], config, out=out / "cmp", classifiers=("lr", "svm"))
        self.assertEqual(list(table["model"]), ["lr"])
        self.assertIn("svm", table.attrs["failures"])
        self.assertFalse((out / "cmp" / "svm").exists())  # no partial package
        self.assertTrue((out / "cmp" / "lr" / "model.json").is_file())


class KillTest(unittest.TestCase):
    """SIGKILL of ``spinemets run --workers 2`` mid-run, then a rerun: identical outputs, no temp files, no orphans."""

    def test_kill_and_resume(self):
        import psutil

        from SpineMetsApp.pipeline import run_pipeline

        tmp = Path(tempfile.mkdtemp(prefix="spinemets-kill-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        manifest, config = _COHORT["manifest"], _COHORT["root"] / "config.json"
        reference = reference_run()

        out = tmp / "killed"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), str(REPO / "SpineMetsSegment"), str(REPO / "SpineMetsClassifier"), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-m", "SpineMetsApp.cli", "run", "--manifest", str(manifest),
                                 "--config", str(config), "--out", str(out), "--workers", "2"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 240
        children: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if len(list(out.glob("cases/*/result.json"))) >= 2:
                break
            time.sleep(0.2)
        self.assertIsNone(proc.poll(), "the run finished before it could be killed")
        with contextlib.suppress(psutil.Error):
            children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        self.assertGreaterEqual(len(children), 2, "expected Dask worker processes")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        alive: list[int] = []
        for _ in range(60):  # workers notice their parent's death within a second
            alive = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            if not alive:
                break
            time.sleep(0.25)
        self.assertEqual(alive, [], "orphan worker processes after SIGKILL")
        finished = len(list(out.glob("cases/*/result.json")))
        self.assertLess(finished, N_CASES)

        result = run_pipeline(manifest, config, out, workers=2)
        self.assertTrue(result.resumed)
        self.assertGreaterEqual(len(result.cached), finished)
        self.assertEqual(len(result.cached) + len(result.computed), N_CASES)
        self.assertEqual(temporaries(out), [])
        self.assertEqual(comparable_files(out), comparable_files(reference))


if __name__ == "__main__":
    unittest.main()
