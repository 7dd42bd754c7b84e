"""Deep classifiers end to end on tiny synthetic cohorts (CPU, tiny ResNets, seconds per model).

The cohort has an easy two-class signal: a lesion brighter ("bright") or darker
("dark") than the surrounding bone on T1, with a random gain per image (so only
the contrast, not the raw intensity, tells the classes apart); T2 carries no
signal. A third of the cases is a held-out test partition.
"""

import csv
import hashlib
import json
import shutil
import tempfile
import unittest
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

TINY = {"sequences": ("T1", "T2"), "arch": "resnet18", "width": 0.125, "size": (24, 24), "n_slices": 2,
        "batch_size": 4, "patience": 6}


LESION_SIGNAL = {"bright": {"T1": 170.0, "T2": 120.0}, "dark": {"T1": 45.0, "T2": 120.0}, "iso": {"T1": 100.0, "T2": 190.0}}


def write_blob_cohort(out, n, seed=0, size=(64, 64, 8), spacing=(1.0, 1.0, 3.0), test_every=3,
                      classes=("bright", "dark")):
    """Synthetic sagittal cases: files, masks and a manifest (label ``lesion_type``, ``partition``)."""
    from SpineMetsPhantom import SAGITTAL_DIRECTION

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = size[::-1]
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    rows = []
    for i in range(n):
        cls = classes[i % len(classes)]
        # lesion well inside the field of view, so every crop sees tissue, not the zero padding outside it
        c = [rng.uniform(3, shape[0] - 4), rng.uniform(22, shape[1] - 23), rng.uniform(22, shape[2] - 23)]
        r = rng.uniform(4.0, 7.0)
        d2 = ((kk - c[0]) * spacing[2]) ** 2 + ((jj - c[1]) * spacing[1]) ** 2 + ((ii - c[2]) * spacing[0]) ** 2
        lesion = d2 <= r * r
        row = {"case_id": f"b{i:03d}"}
        for seq in ("T1", "T2"):
            img = rng.normal(100.0, 12.0, shape)
            img[lesion] = rng.normal(LESION_SIGNAL[cls][seq], 12.0, int(lesion.sum()))
            img *= rng.uniform(0.7, 1.4)
            image = sitk.GetImageFromArray(img.astype(np.float32))
            image.SetSpacing(spacing)
            image.SetDirection(SAGITTAL_DIRECTION)
            image.SetOrigin((10.0, -20.0, 30.0))
            row[seq] = f"{row['case_id']}_{seq}.nii.gz"
            sitk.WriteImage(image, str(out / row[seq]))
        mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
        mask.CopyInformation(image)
        row["mask"] = f"{row['case_id']}_mask.nii.gz"
        sitk.WriteImage(mask, str(out / row["mask"]))
        row["lesion_type"] = cls
        row["partition"] = "test" if test_every and i % test_every == test_every - 1 else "dev"
        rows.append(row)
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out / "manifest.csv"


def contrast_table(manifest):
    """A radiomics-style table: lesion / background mean ratio on T1 and T2 (named like PyRadiomics columns)."""
    rows = []
    base = Path(manifest).parent
    for row in csv.DictReader(open(manifest)):
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(base / row["mask"]))) > 0
        values = {"case_id": row["case_id"], "lesion_type": row["lesion_type"], "partition": row["partition"]}
        for seq in ("T1", "T2"):
            img = sitk.GetArrayFromImage(sitk.ReadImage(str(base / row[seq])))
            values[f"{seq}_original_firstorder_Mean"] = float(img[mask].mean() / img[~mask].mean())
        rows.append(values)
    return pd.DataFrame(rows)


class DeepClassifierTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        from SpineMetsClassifierLib.deep import train_deep_classifier

        torch.set_num_threads(1)
        cls.tmp = Path(tempfile.mkdtemp(prefix="deep_"))
        cls.manifest = write_blob_cohort(cls.tmp / "cohort", 24, seed=1)
        cls.progress = []
        cls.result = train_deep_classifier(
            cls.manifest, "lesion_type", cls.tmp / "model", epochs=12, learning_rate=3e-3, seed=0, split_column="partition",
            val_fraction=0.25, progress=lambda d, t: cls.progress.append((d, t)), **TINY,
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_learns_the_easy_signal_on_held_out_cases(self):
        result = self.result
        test = result.test_predictions
        self.assertEqual(len(test), 8)
        accuracy = float((test["predicted"] == test["lesion_type"]).mean())
        self.assertGreaterEqual(accuracy, 0.75, test)  # chance: 0.5
        self.assertGreaterEqual(result.card["test_metrics"]["auc"], 0.85)
        card = result.card
        self.assertEqual(card["classes"], ["bright", "dark"])
        self.assertEqual(card["task"]["positive_class"], "dark")
        self.assertEqual(len(card["training"]["train_cases"]), 12)
        self.assertEqual(len(card["training"]["validation_cases"]), 4)
        self.assertFalse(set(card["training"]["train_cases"]) & set(card["training"]["test_cases"]))
        self.assertEqual(card["training"]["class_weights"], {"bright": 1.0, "dark": 1.0})
        self.assertFalse(card["synthetic_training_data"])
        self.assertIsNone(card["pretrained"]["file"])
        self.assertEqual(card["network"]["arch"], "resnet18")
        self.assertEqual(card["inputs"]["dims"], 2)
        weights = (result.out / "weights.safetensors").read_bytes()
        self.assertEqual(card["payload"]["sha256"], hashlib.sha256(weights).hexdigest())
        best = card["validation_metrics"]["best_epoch"]
        history = card["training"]["history"]
        self.assertEqual(min(history, key=lambda h: h["val_log_loss"])["epoch"], best)
        # progress: one step per case, then per epoch, ending at total
        total = 24 + 12
        self.assertEqual(self.progress[0], (1, total))
        self.assertEqual(self.progress[-1], (total, total))

    def test_class_weights_favour_rare_classes(self):
        from SpineMetsClassifierLib.deep.training import class_weights

        w = class_weights(np.array([0] * 8 + [1] * 2), 2, "balanced")
        np.testing.assert_allclose(w, [10 / 16, 10 / 4])
        np.testing.assert_allclose(class_weights(np.array([0, 1, 1]), 2, None), [1, 1])

    def test_same_seed_same_weights(self):
        import torch
        from SpineMetsClassifierLib.deep import load_deep_package, train_deep_classifier

        settings = {**TINY, "epochs": 2, "val_fraction": 0.25}
        a = train_deep_classifier(self.manifest, "lesion_type", self.tmp / "rep_a", seed=3, **settings)
        b = train_deep_classifier(self.manifest, "lesion_type", self.tmp / "rep_b", seed=3, **settings)
        c = train_deep_classifier(self.manifest, "lesion_type", self.tmp / "rep_c", seed=4, **settings)
        wa, wb, wc = (load_deep_package(r.out).state_dict for r in (a, b, c))
        self.assertEqual(wa.keys(), wb.keys())
        for name in wa:
            self.assertTrue(torch.equal(wa[name], wb[name]), name)
        self.assertEqual(a.card["payload"]["sha256"], b.card["payload"]["sha256"])
        self.assertTrue(any(not torch.equal(wa[n], wc[n]) for n in wa if wa[n].is_floating_point()))

    def test_tampered_package_is_refused(self):
        from SpineMetsClassifierLib.deep import DeepPackageError, load_deep_package, predict_deep

        def copy(name):
            target = self.tmp / name
            shutil.copytree(self.result.out, target)
            return target

        def rewrite_sums(folder):  # what a forger would do: make checksums.json match the edits
            path = folder / "checksums.json"
            doc = json.loads(path.read_text())
            doc["members"] = {p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
                              for p in sorted(folder.iterdir()) if p.name != "checksums.json"}
            path.write_text(json.dumps(doc))

        weights = copy("t_weights")
        data = bytearray((weights / "weights.safetensors").read_bytes())
        data[-5] ^= 0xFF
        (weights / "weights.safetensors").write_bytes(bytes(data))
        with self.assertRaises(DeepPackageError) as ctx:
            load_deep_package(weights)
        self.assertIn("checksum", str(ctx.exception))
        with self.assertRaises(DeepPackageError):
            predict_deep(weights, self.manifest, device="cpu")

        card_edit = copy("t_card")
        card = json.loads((card_edit / "model.json").read_text())
        card["classes"] = ["dark", "bright"]
        card["task"]["classes"] = ["dark", "bright"]
        (card_edit / "model.json").write_text(json.dumps(card))
        with self.assertRaises(DeepPackageError) as ctx:
            load_deep_package(card_edit)
        self.assertIn("model.json", str(ctx.exception))

        # even with checksums.json rewritten, weights that differ from the card's checksum are refused
        data_edit = copy("t_both")
        (data_edit / "weights.safetensors").write_bytes(bytes(data))
        rewrite_sums(data_edit)
        with self.assertRaises(DeepPackageError):
            load_deep_package(data_edit)

        # a pickle in place of the weights (card and sums made consistent) is refused unparsed
        pickled = copy("t_pickle")
        import torch

        buffer = pickled / "weights.safetensors"
        torch.save(load_deep_package(self.result.out).state_dict, buffer)
        card = json.loads((pickled / "model.json").read_text())
        card["payload"]["sha256"] = hashlib.sha256(buffer.read_bytes()).hexdigest()
        (pickled / "model.json").write_text(json.dumps(card))
        rewrite_sums(pickled)
        with self.assertRaises(DeepPackageError) as ctx:
            load_deep_package(pickled)
        self.assertIn("not safetensors", str(ctx.exception))

        # an architecture outside the allow-list is never built
        arch = copy("t_arch")
        card = json.loads((arch / "model.json").read_text())
        card["network"]["arch"] = "os.system"
        (arch / "model.json").write_text(json.dumps(card))
        rewrite_sums(arch)
        with self.assertRaises(DeepPackageError) as ctx:
            load_deep_package(arch)
        self.assertIn("allowed", str(ctx.exception))
        self.assertEqual(load_deep_package(self.result.out).classes, ["bright", "dark"])  # original intact

    def test_predictions_table_has_the_classical_format(self):
        from SpineMetsClassifierLib.deep import predict_deep
        from SpineMetsClassifierLib.models.inference import predictions_frame

        table = predict_deep(self.result.out, self.manifest, device="cpu")
        reference = predictions_frame(["x"], np.array([[0.3, 0.7]]), ["bright", "dark"], 3, truth=["dark"],
                                      truth_name="lesion_type")
        self.assertEqual(list(table.columns), list(reference.columns))
        self.assertEqual(list(table.columns), ["case_id", "lesion_type", "prob_bright", "prob_dark", "top1", "top2", "predicted"])
        self.assertEqual(len(table), 24)
        np.testing.assert_allclose(table[["prob_bright", "prob_dark"]].sum(axis=1), 1.0, atol=1e-6)
        # the stored test predictions are the same numbers
        test = self.result.test_predictions.set_index("case_id")
        mine = table.set_index("case_id").loc[test.index]
        np.testing.assert_allclose(mine["prob_dark"], test["prob_dark"], atol=1e-6)
        prov = table.attrs["provenance"]
        self.assertEqual(prov["model_weights_sha256"], self.result.card["payload"]["sha256"])
        named = predict_deep(self.result.out, self.manifest, device="cpu", model_name="DL")
        self.assertEqual(list(named.columns[:2]), ["case_id", "model"])

    def test_failed_case_keeps_its_row_with_an_error(self):
        from SpineMetsClassifierLib.deep import predict_deep

        folder = self.tmp / "cohort"
        empty = sitk.Image([64, 64, 8], sitk.sitkUInt8)
        sitk.WriteImage(empty, str(folder / "empty_mask.nii.gz"))
        frame = pd.read_csv(self.manifest)
        frame.loc[0, "mask"] = "empty_mask.nii.gz"
        broken = folder / "broken.csv"
        frame.to_csv(broken, index=False)
        table = predict_deep(self.result.out, broken, device="cpu")
        self.assertEqual(len(table), 24)
        self.assertIn("no lesion voxels", table.loc[0, "error"])
        self.assertTrue(np.isnan(table.loc[0, "prob_dark"]))
        self.assertEqual(table.loc[1:, "error"].tolist(), [""] * 23)

    def test_dl_and_classical_predictions_through_the_same_evaluation(self):
        """DeLong of a DL model vs a classical one on the same test cases, with the unchanged statistics code."""
        from SpineMetsClassifierLib.deep import predict_deep
        from SpineMetsClassifierLib.evaluation import evaluate_predictions
        from SpineMetsClassifierLib.models.inference import predict_table
        from SpineMetsClassifierLib.models.package import load_package
        from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

        from SpineMetsCore.stats import delong_auc

        features = contrast_table(self.manifest)
        config = TrainConfig(label="lesion_type", feature_set="radiomics", classifier="lr", split="column",
                             split_column="partition", test_values=("test",), cv_folds=3, inner_folds=2, grid="small")
        save_training(train_model(features, config), self.tmp / "classical")
        test_rows = features[features["partition"] == "test"]
        classical = predict_table(load_package(self.tmp / "classical"), test_rows, ignore_extra=True).assign(model="radiomics")
        dl = predict_deep(self.result.out, self.manifest, device="cpu", model_name="DL", case_ids=test_rows["case_id"])
        self.assertEqual(sorted(dl["case_id"]), sorted(test_rows["case_id"]))
        both = pd.concat([classical[dl.columns], dl], ignore_index=True)
        out = evaluate_predictions(both, "lesion_type", model_column="model", id_column="case_id",
                                   reference_model="radiomics", n_boot=50, figures=False)
        comparison = out["comparisons"][0]
        self.assertEqual((comparison["reference"], comparison["model"]), ("radiomics", "DL"))
        self.assertTrue(comparison["paired"])
        p = comparison["delong"]["dark"]["p_value"]
        self.assertTrue(0.0 <= p <= 1.0)
        with warnings.catch_warnings():  # a perfectly separating DL model has a degenerate DeLong variance
            warnings.simplefilter("ignore", RuntimeWarning)
            direct = delong_auc(dl["lesion_type"] == "dark", dl["prob_dark"], direction="<")
        self.assertAlmostEqual(out["models"]["DL"]["auc_delong"]["dark"]["auc"], direct.auc, places=12)

    def test_deep_features_train_a_fusion_model(self):
        from SpineMetsClassifierLib.deep import deep_features, merge_feature_tables, write_table
        from SpineMetsClassifierLib.models.training import TrainConfig, train_model

        deep = deep_features(self.result.out, self.manifest, device="cpu")
        width = self.result.card["embedding"]["size"]
        self.assertEqual(width, 64)  # ResNet18's 512 features x widen_factor 0.125
        self.assertEqual(list(deep.columns), ["case_id"] + [f"dl_{i:03d}" for i in range(width)])
        self.assertEqual(len(deep), 24)
        self.assertTrue(np.isfinite(deep.iloc[:, 1:].to_numpy()).all())
        self.assertGreater(float(deep.iloc[:, 1:].to_numpy().std()), 0.0)
        again = deep_features(self.result.out, self.manifest, device="cpu")
        pd.testing.assert_frame_equal(deep, again)
        path = write_table(deep, self.tmp / "deep.csv")
        prov = json.loads((self.tmp / "deep.provenance.json").read_text())
        self.assertEqual(prov["n_features"], width)
        self.assertEqual(prov["model_weights_sha256"], self.result.card["payload"]["sha256"])
        self.assertEqual(pd.read_csv(path).shape, (24, width + 1))

        fused = merge_feature_tables(contrast_table(self.manifest), deep)
        config = TrainConfig(label="lesion_type", feature_set="radiomics+deep", classifier="lr", split="column",
                             split_column="partition", test_values=("test",), cv_folds=3, inner_folds=2, grid="small")
        result = train_model(fused, config)
        names = result.card["feature_names"]
        self.assertIn("T1_original_firstorder_Mean", names)
        self.assertEqual(sum(n.startswith("dl_") for n in names), width)
        self.assertGreaterEqual(result.test_metrics["auc"], 0.75)

    def test_in_memory_prediction_for_the_slicer_logic(self):
        from SpineMetsClassifierLib.deep import predict_deep, predict_images

        folder = self.tmp / "cohort"
        images = {s: sitk.ReadImage(str(folder / f"b005_{s}.nii.gz")) for s in ("T1", "T2")}
        mask = sitk.ReadImage(str(folder / "b005_mask.nii.gz"))
        one = predict_images(self.result.out, images, mask, device="cpu")
        table = predict_deep(self.result.out, self.manifest, device="cpu").set_index("case_id")
        self.assertAlmostEqual(one["probabilities"]["dark"], table.loc["b005", "prob_dark"], places=6)
        self.assertEqual(one["predicted"], table.loc["b005", "predicted"])
        self.assertEqual(len(one["slices"]), 2)

    def test_slicer_logic_predicts_from_scene_nodes(self):
        from SpineMetsClassifierLib.deep import predict_images
        from SpineMetsClassifierLib.logic.deep import DeepPredictionLogic
        from SpineMetsClassifierLib.logic.prediction import PREDICTED_CLASS_ATTRIBUTE

        from SpineMetsCore.errors import InputError
        from SpineMetsCore.segmentations import labelmap_to_segmentation
        from SpineMetsCore.tables import table_node_to_dataframe
        from SpineMetsCore.volumes import sitk_to_volume

        folder = self.tmp / "cohort"
        images = {s: sitk.ReadImage(str(folder / f"b004_{s}.nii.gz")) for s in ("T1", "T2")}
        mask = sitk.ReadImage(str(folder / "b004_mask.nii.gz"))
        nodes = {s: sitk_to_volume(img, name=f"b004 {s}") for s, img in images.items()}
        segmentation, _ = labelmap_to_segmentation(mask, {1: "lesion"}, name="b004 lesion")
        logic = DeepPredictionLogic()
        table_node = logic.predictToTable(self.result.out, nodes, segmentation, device="cpu")
        table = table_node_to_dataframe(table_node)
        self.assertEqual(list(table.columns), ["rank", "class", "probability", "top3"])
        expected = predict_images(self.result.out, images, mask, device="cpu")["probabilities"]
        got = dict(zip(table["class"], table["probability"], strict=True))
        for cls, p in expected.items():
            self.assertAlmostEqual(got[cls], p, places=5)
        self.assertEqual(table_node.GetAttribute(PREDICTED_CLASS_ATTRIBUTE), table.loc[0, "class"])
        self.assertEqual(table_node.GetAttribute("SpineMets.ModelSHA256"), self.result.card["payload"]["sha256"])
        with self.assertRaises(InputError) as ctx:
            logic.predictToTable(self.result.out, {"T1": nodes["T1"]}, segmentation, device="cpu")
        self.assertIn("T2", str(ctx.exception))


class DeepVariantsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch

        torch.set_num_threads(1)
        cls.tmp = Path(tempfile.mkdtemp(prefix="deep3d_"))
        cls.manifest = write_blob_cohort(cls.tmp / "cohort", 8, seed=2, test_every=0)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_3d_model_and_local_pretrained_weights(self):
        import torch
        from SpineMetsClassifierLib.deep import deep_features, load_deep_package, predict_deep, train_deep_classifier

        settings = {**TINY, "dims": 3, "size": (16, 16, 16), "epochs": 2, "val_fraction": 0.0}
        first = train_deep_classifier(self.manifest, "lesion_type", self.tmp / "m3d", **settings)
        self.assertEqual(first.card["inputs"]["dims"], 3)
        self.assertEqual(first.card["network"]["args"]["spatial_dims"], 3)
        self.assertEqual(len(first.history), 2)  # no validation cases: every epoch, the last kept
        table = predict_deep(first.out, self.manifest, device="cpu")
        self.assertEqual(len(table), 8)
        np.testing.assert_allclose(table[["prob_bright", "prob_dark"]].sum(axis=1), 1.0, atol=1e-6)
        self.assertEqual(deep_features(first.out, self.manifest, device="cpu").shape, (8, 65))

        # start a new run from a local weights file (a tensors-only .pt here): its checksum is recorded
        state = load_deep_package(first.out).state_dict
        weights_file = self.tmp / "start.pt"
        torch.save({f"module.{k}": v for k, v in state.items()}, weights_file)
        second = train_deep_classifier(self.manifest, "lesion_type", self.tmp / "m3d_pre",
                                       **{**settings, "epochs": 1}, pretrained=str(weights_file))
        record = second.card["pretrained"]
        self.assertEqual(record["sha256"], hashlib.sha256(weights_file.read_bytes()).hexdigest())
        self.assertEqual(record["tensors_loaded"], len(state))
        self.assertEqual(record["tensors_skipped"], 0)

    def test_cli_train_predict_features(self):
        import contextlib
        import io

        from SpineMetsApp.cli import main

        def run(*argv):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
            return code, out.getvalue(), err.getvalue()

        model = self.tmp / "cli_model"
        code, out, err = run("train-dl", "--manifest", str(self.manifest), "--label", "lesion_type", "--out", str(model),
                             "--arch", "resnet18", "--dims", "2", "--sequences", "T1,T2", "--size", "24,24",
                             "--slices", "2", "--width", "0.125", "--epochs", "1", "--batch-size", "4",
                             "--seed", "0", "--device", "cpu", "--val-fraction", "0")
        self.assertEqual(code, 0, err)
        summary = json.loads(out)
        self.assertEqual((summary["arch"], summary["dims"], summary["epochs_run"]), ("resnet18", 2, 1))
        self.assertEqual(summary["device"], "cpu")
        code, _, err = run("train-dl", "--manifest", str(self.manifest), "--label", "lesion_type", "--out", str(model))
        self.assertEqual(code, 2)
        self.assertIn("--overwrite", err)

        predictions = self.tmp / "dl_predictions.csv"
        code, out, err = run("predict-dl", "--model", str(model), "--manifest", str(self.manifest), "--out",
                             str(predictions), "--device", "cpu", "--model-name", "DL")
        self.assertEqual(code, 0, err)
        table = pd.read_csv(predictions)
        self.assertEqual(list(table.columns), ["case_id", "model", "lesion_type", "prob_bright", "prob_dark", "top1",
                                               "top2", "predicted"])
        prov = json.loads((self.tmp / "dl_predictions.provenance.json").read_text())
        self.assertEqual(prov["operation"], "spinemets predict-dl")

        features = self.tmp / "dl_features.csv"
        code, out, err = run("deep-features", "--model", str(model), "--manifest", str(self.manifest), "--out",
                             str(features), "--force-cpu")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["n_features"], 64)
        self.assertEqual(pd.read_csv(features).shape, (8, 65))
        self.assertEqual(json.loads((self.tmp / "dl_features.provenance.json").read_text())["device"], "cpu")

        (model / "weights.safetensors").write_bytes(b"\x80\x04tampered")
        code, _, err = run("predict-dl", "--model", str(model), "--manifest", str(self.manifest), "--out",
                           str(self.tmp / "never.csv"))
        self.assertEqual(code, 2)
        self.assertIn("checksum", err)
        self.assertFalse((self.tmp / "never.csv").exists())

    def test_three_classes_rare_one_weighted(self):
        from SpineMetsClassifierLib.deep import predict_deep, train_deep_classifier

        manifest = write_blob_cohort(self.tmp / "three", 10, seed=3, test_every=0,
                                     classes=("bright", "dark", "bright", "dark", "iso"))
        result = train_deep_classifier(manifest, "lesion_type", self.tmp / "m3", epochs=1, val_fraction=0.0, **TINY)
        self.assertEqual(result.card["classes"], ["bright", "dark", "iso"])
        self.assertEqual(result.card["task"]["type"], "multiclass")
        weights = result.card["training"]["class_weights"]
        self.assertAlmostEqual(weights["iso"], 10 / (3 * 2), places=5)
        self.assertAlmostEqual(weights["bright"], 10 / (3 * 4), places=5)
        table = predict_deep(result.out, manifest, device="cpu")
        self.assertEqual(list(table.columns), ["case_id", "lesion_type", "prob_bright", "prob_dark", "prob_iso", "top1",
                                               "top2", "top3", "predicted"])
        self.assertTrue((table["top1"] == table["predicted"]).all())
        self.assertTrue(all(len({a, b, c}) == 3 for a, b, c in zip(table.top1, table.top2, table.top3, strict=True)))

    def test_settings_are_checked(self):
        from SpineMetsClassifierLib.deep import train_deep_classifier
        from SpineMetsClassifierLib.deep.inference import resolve_device

        from SpineMetsCore.errors import InputError

        for bad, words in (({"arch": "vgg16"}, "vgg16"), ({"dims": 4}, "dims"), ({"batch_size": 1}, "batch_size"),
                           ({"class_weight": "inverse"}, "class_weight"), ({"pretrained": "missing.pt"}, "missing.pt"),
                           ({"colour": 1}, "colour")):
            with self.assertRaises(InputError) as ctx:
                train_deep_classifier(self.manifest, "lesion_type", self.tmp / "never", **{**TINY, **bad})
            self.assertIn(words, str(ctx.exception))
        with self.assertRaises(InputError) as ctx:
            train_deep_classifier(self.manifest, "site", self.tmp / "never", **TINY)
        self.assertIn("site", str(ctx.exception))
        self.assertFalse((self.tmp / "never").exists())
        import torch

        if torch.cuda.is_available():
            self.assertEqual(resolve_device("auto").type, "cuda")
        else:
            self.assertEqual(resolve_device("auto").type, "cpu")
            with self.assertRaises(InputError):
                resolve_device("cuda")
        self.assertEqual(resolve_device("cpu").type, "cpu")


if __name__ == "__main__":
    unittest.main()
