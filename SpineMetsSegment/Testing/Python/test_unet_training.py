"""U-Net training on tiny phantom cases: package written and loadable, determinism, 2-D, CLI.

Tiny networks and 2-3 coarse cases keep each run to a few seconds; the shipped
demo model is never trained here (see Resources/Scripts/train_demo_unet.py).
"""

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

TINY = {"channels": (4, 8, 16), "patch_size": (24, 24, 8), "batch_size": 2, "samples_per_case": 1, "epochs": 2}


class UNetTrainingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch

        from SpineMetsPhantom import PhantomConfig, write_cohort

        torch.set_num_threads(2)
        cls.tmp = Path(tempfile.mkdtemp(prefix="unet_train_"))
        cls.manifest = write_cohort(cls.tmp / "cohort", 3, seed=5, config=PhantomConfig(size=(48, 64, 10)))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, out, **overrides):
        from SpineMetsSegmentLib.unet import TrainingConfig, train_model

        settings = {**TINY, "sequences": ("T1", "STIR"), "seed": 0, "val_fraction": 0.34, **overrides}
        return train_model(self.manifest, self.tmp / out, TrainingConfig(**settings))

    def test_training_writes_a_verified_package_and_is_deterministic(self):
        import torch
        from SpineMetsSegmentLib.unet import load_model_package

        progress = []
        from SpineMetsSegmentLib.unet import TrainingConfig, train_model

        first = train_model(
            self.manifest, self.tmp / "a", TrainingConfig(**TINY, sequences=("T1", "STIR"), seed=0, val_fraction=0.34),
            progress=lambda d, t: progress.append((d, t)),
        )
        self.assertEqual(progress, [(1, 2), (2, 2)])
        card = json.loads((self.tmp / "a" / "model.json").read_text())
        weights = (self.tmp / "a" / "weights.safetensors").read_bytes()
        self.assertEqual(card["payload"]["sha256"], hashlib.sha256(weights).hexdigest())
        self.assertTrue(card["synthetic_training_data"])  # phantom manifest: detected
        self.assertEqual(card["input_sequences"], ["T1", "STIR"])
        self.assertEqual(card["seed"], 0)
        self.assertEqual(len(card["training_data"]["train_cases"]), 2)
        self.assertEqual(len(card["training_data"]["validation_cases"]), 1)
        self.assertFalse(set(card["training_data"]["train_cases"]) & set(card["training_data"]["validation_cases"]))
        dice = card["validation_metrics"]["mean_dice"]
        self.assertTrue(0.0 <= dice <= 1.0)
        self.assertAlmostEqual(dice, round(first.best_val_dice, 4), places=3)
        self.assertEqual([h["epoch"] for h in card["training"]["history"]], [1, 2])
        np.testing.assert_allclose(card["spacing"], [110.4 / 48, 147.2 / 64, 4.9], rtol=1e-6)

        second = self.train("b")
        other_seed = self.train("c", seed=1)
        a, b, c = (load_model_package(r.out).state_dict for r in (first, second, other_seed))
        self.assertEqual(a.keys(), b.keys())
        for name in a:
            self.assertTrue(torch.equal(a[name], b[name]), f"same seed, different {name}")
        self.assertTrue(any(not torch.equal(a[n], c[n]) for n in a if a[n].is_floating_point()))
        self.assertEqual(first.card["payload"]["sha256"], second.card["payload"]["sha256"])

    def test_slice_wise_2d_model_segments_on_the_input_grid(self):
        from SpineMetsSegmentLib.unet import load_model_package, segment_images

        from SpineMetsCore import dataio
        from SpineMetsCore.manifest import read_manifest

        result = self.train("two_d", dim=2, patch_size=(32, 32, 1), epochs=1, batch_size=8)
        again = self.train("two_d_again", dim=2, patch_size=(32, 32, 1), epochs=1, batch_size=8)
        # lesion slices drawn by a seeded sampler: the same seed gives the same weights
        self.assertEqual(result.card["payload"]["sha256"], again.card["payload"]["sha256"])
        pkg = load_model_package(result.out)
        self.assertEqual(pkg.spatial_dims, 2)
        self.assertEqual(pkg.patch_size, [32, 32, 1])
        self.assertIsNone(pkg.spacing[2])  # slice spacing kept per case
        row = read_manifest(self.manifest)[0]
        images = {s: dataio.read_image(row.images[s]) for s in ("T1", "STIR")}
        labelmap = segment_images(images, pkg, force_cpu=True)
        self.assertEqual(labelmap.GetSize(), images["T1"].GetSize())
        self.assertEqual(labelmap.GetOrigin(), images["T1"].GetOrigin())
        self.assertEqual(labelmap.GetPixelID(), sitk.sitkUInt8)

    def test_bad_input_names_the_problem_and_writes_nothing(self):
        from SpineMetsCore.errors import InputError

        with self.assertRaisesRegex(InputError, r"manifest\.csv: is missing column\(s\) \['FLAIR'\]"):
            self.train("bad1", sequences=("T1", "FLAIR"))
        with self.assertRaisesRegex(InputError, "a 2-D .* needs k = 1"):
            self.train("bad2", dim=2, patch_size=(32, 32, 4))
        self.assertFalse((self.tmp / "bad1").exists())
        self.assertFalse((self.tmp / "bad2").exists())

    def test_cli_train_seg_prints_json_summary(self):
        from SpineMetsApp.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main([
                "train-seg", "--manifest", str(self.manifest), "--sequences", "T2,STIR", "--out", str(self.tmp / "cli"),
                "--epochs", "1", "--patch", "24,24,8", "--channels", "4,8", "--dim", "3", "--seed", "3",
                "--val-fraction", "0.34", "--force-cpu", "--spacing", "3,3,keep",
            ])
        self.assertEqual(code, 0)
        summary = json.loads(out.getvalue())
        self.assertEqual(summary["input_sequences"], ["T2", "STIR"])
        self.assertEqual(summary["validation_cases"], 1)
        self.assertTrue(0.0 <= summary["best_validation_dice"] <= 1.0)
        self.assertEqual(summary["device"], "cpu")
        card = json.loads((self.tmp / "cli" / "model.json").read_text())
        self.assertEqual(card["spacing"], [3.0, 3.0, None])
        self.assertEqual(summary["weights_sha256"], card["payload"]["sha256"])

        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["train-seg", "--manifest", str(self.tmp / "missing.csv"), "--sequences", "T1", "--out", str(self.tmp / "x")])
        self.assertEqual(code, 2)
        self.assertIn("missing.csv: manifest does not exist", err.getvalue())

    def test_cli_train_seg_passes_the_loss_and_sampling_flags_to_the_card(self):
        from SpineMetsApp.cli import main

        base = ["train-seg", "--manifest", str(self.manifest), "--sequences", "T1", "--epochs", "1", "--dim", "2",
                "--patch", "24,24,1", "--channels", "4,8", "--val-fraction", "0.34", "--force-cpu"]
        runs = {
            "flags_off": ["--no-balance-slices", "--dice-include-background", "--no-dice-batch"],
            "flags_on": ["--balance-slices", "--no-dice-include-background", "--dice-batch"],
            "flags_default": [],
        }
        cards = {}
        for name, flags in runs.items():
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(main([*base, "--out", str(self.tmp / name), *flags]), 0, name)
            cards[name] = json.loads((self.tmp / name / "model.json").read_text())["training"]
        options = ("balance_slices", "dice_include_background", "dice_batch")
        self.assertEqual([cards["flags_off"]["config"][o] for o in options], [False, True, False])
        self.assertEqual([cards["flags_on"]["config"][o] for o in options], [True, False, True])
        self.assertEqual([cards["flags_default"]["config"][o] for o in options], [True, False, True])
        self.assertIn("include_background=True, batch=False", cards["flags_off"]["loss"])
        self.assertIn("include_background=False, batch=True", cards["flags_default"]["loss"])
        # the flags reach the training itself: same seed, other sampling and loss, other weights
        sha = {n: json.loads((self.tmp / n / "model.json").read_text())["payload"]["sha256"] for n in runs}
        self.assertEqual(sha["flags_on"], sha["flags_default"])
        self.assertNotEqual(sha["flags_off"], sha["flags_default"])


def write_small_foreground_cohort(folder: Path, n_cases: int, seed: int = 0, size=(40, 40, 10)) -> Path:
    """Cases whose lesions cover ~0.2 % of the voxels on 2 of 10 slices (like study D's fat metaplasia).

    A marrow square brighter on T1 and STIR holds two 4x4-voxel lesions that are brighter on T1 and
    darker on STIR, so one threshold pair separates them: the data is learnable by construction.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_i, n_j, n_k = size
    rows = ["case_id,T1,STIR,mask"]
    for n in range(n_cases):
        t1 = rng.normal(0.4, 0.08, (n_k, n_j, n_i)).astype(np.float32)
        stir = rng.normal(0.4, 0.08, (n_k, n_j, n_i)).astype(np.float32)
        t1[:, 8:32, 8:32] += 0.2
        stir[:, 8:32, 8:32] += 0.2
        mask = np.zeros((n_k, n_j, n_i), np.uint8)
        for _ in range(2):
            k, j, i = rng.integers(1, n_k - 1), rng.integers(10, 27), rng.integers(10, 27)
            mask[k, j:j + 4, i:i + 4] = 1
        t1[mask > 0] += 0.5
        stir[mask > 0] -= 0.35
        for name, array in (("T1", t1), ("STIR", stir), ("mask", mask)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((2.0, 2.0, 4.0))
            sitk.WriteImage(image, str(folder / f"c{n}_{name}.nii.gz"))
        rows.append(f"c{n},c{n}_T1.nii.gz,c{n}_STIR.nii.gz,c{n}_mask.nii.gz")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


class SmallForegroundTrainingTest(unittest.TestCase):
    """Sparse targets: balanced slice sampling + foreground batch Dice learn them; the old setup did not."""

    def test_sparse_lesions_are_learnt_with_balanced_sampling_and_foreground_dice(self):
        import torch
        from SpineMetsSegmentLib.unet import TrainingConfig, train_model
        from SpineMetsSegmentLib.unet.training import slice_sampling_weights

        torch.set_num_threads(2)
        with tempfile.TemporaryDirectory(prefix="unet_sparse_") as tmp:
            manifest = write_small_foreground_cohort(Path(tmp) / "cohort", 6)
            settings = {
                "sequences": ("T1", "STIR"), "dim": 2, "patch_size": (32, 32, 1), "channels": (4, 8, 16),
                "batch_size": 8, "epochs": 6, "val_interval": 3, "val_fraction": 0.34, "seed": 0,
                "learning_rate": 0.01, "augment": False,
            }
            new = train_model(manifest, Path(tmp) / "new", TrainingConfig(**settings))
            old = train_model(manifest, Path(tmp) / "old", TrainingConfig(
                **settings, balance_slices=False, dice_include_background=True, dice_batch=False,
            ))
        # 2 validation cases, 2 lesions of 16 voxels each: the old setup predicts (almost) nothing
        self.assertGreater(new.best_val_dice, 0.6)
        self.assertLess(old.best_val_dice, 0.1)
        self.assertIn("include_background=False, batch=True", new.card["training"]["loss"])

        items = [{"label": np.zeros((1, 4, 4))} for _ in range(6)] + [{"label": np.ones((1, 4, 4))} for _ in range(2)]
        weights = slice_sampling_weights(items, (2.0, 1.0))
        self.assertAlmostEqual(float(weights[6:].sum()), 2 / 3)  # lesion slices drawn 2:1 ...
        np.testing.assert_allclose(weights[6:], 1 / 3)  # ... each of the 2 with 1/3
        self.assertIsNone(slice_sampling_weights(items[:6], (2.0, 1.0)))  # no lesion slice: all alike


if __name__ == "__main__":
    unittest.main()
