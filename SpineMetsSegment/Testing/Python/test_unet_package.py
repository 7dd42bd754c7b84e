"""U-Net model packages (Core format, safetensors payload): checksums first, safetensors only, clear errors."""

import hashlib
import json
import pickle
import shutil
import tempfile
import unittest
import zipfile
from pathlib import Path


def tiny_card(dim=3, sequences=("T1", "T2")):
    from SpineMetsSegmentLib.unet.network import unet_spec

    return {
        "name": "tiny test model",
        "version": "0.0.1",
        "task": "test",
        "labels": [{"value": 1, "name": "lesion", "color": [230, 51, 51]}],
        "input_sequences": list(sequences),
        "spacing": [2.0, 2.0, 4.0],
        "patch_size": [16, 16, 8] if dim == 3 else [16, 16, 1],
        "normalisation": {"method": "zscore", "clip": 5.0},
        "network": unet_spec(dim, len(sequences), 2, channels=(4, 8), strides=(2,), num_res_units=0),
        "training_data": {"description": "none (random weights)"},
        "validation_metrics": {},
        "synthetic_training_data": True,
        "seed": 0,
    }


def tiny_state(card):
    import torch
    from SpineMetsSegmentLib.unet.network import build_network

    torch.manual_seed(0)
    return build_network(card["network"]).state_dict()


class ModelPackageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="unet_pkg_"))
        from SpineMetsSegmentLib.unet import write_model_package

        self.card = tiny_card()
        self.state = tiny_state(self.card)
        self.pkg_dir = write_model_package(self.tmp / "model", self.card, self.state)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def read_card(self, folder=None):
        return json.loads(((folder or self.pkg_dir) / "model.json").read_text())

    def write_card(self, card, folder=None):
        """Edit the card *and* re-sign checksums.json, as a forger would, to reach the checks behind the checksum."""
        folder = folder or self.pkg_dir
        data = json.dumps(card).encode()
        (folder / "model.json").write_bytes(data)
        sums = json.loads((folder / "checksums.json").read_text())
        sums["members"]["model.json"]["sha256"] = hashlib.sha256(data).hexdigest()
        (folder / "checksums.json").write_text(json.dumps(sums))

    def resign(self, name, folder=None):
        folder = folder or self.pkg_dir
        sums = json.loads((folder / "checksums.json").read_text())
        sums["members"][name] = {"sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
        (folder / "checksums.json").write_text(json.dumps(sums))

    def test_written_package_has_card_and_valid_checksum(self):
        import torch
        from SpineMetsSegmentLib.unet import REQUIRED_KEYS, load_model_package

        card = self.read_card()
        for key in REQUIRED_KEYS:
            self.assertIn(key, card)
        weights = self.pkg_dir / card["payload"]["file"]
        self.assertEqual(weights.name, "weights.safetensors")
        self.assertEqual(card["payload"]["sha256"], hashlib.sha256(weights.read_bytes()).hexdigest())
        self.assertEqual((card["format"], card["format_version"], card["kind"]), ("spinemets-model-package", 2, "unet-segmentation"))
        sums = json.loads((self.pkg_dir / "checksums.json").read_text())["members"]
        self.assertEqual(sums["model.json"]["sha256"], hashlib.sha256((self.pkg_dir / "model.json").read_bytes()).hexdigest())
        self.assertEqual(sums["weights.safetensors"]["sha256"], card["payload"]["sha256"])
        self.assertIn("torch", card["library_versions"])
        self.assertIn("created_utc", card)
        pkg = load_model_package(self.pkg_dir)
        self.assertEqual(pkg.input_sequences, ["T1", "T2"])
        self.assertEqual(pkg.labels, [{"value": 1, "name": "lesion", "color": [230, 51, 51]}])
        self.assertTrue(pkg.synthetic_training_data)
        for name, tensor in self.state.items():
            self.assertTrue(torch.equal(pkg.state_dict[name], tensor), name)
        net = pkg.build_network()
        self.assertFalse(net.training)

    def test_tampered_weights_fail_checksum_before_loading(self):
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package

        from SpineMetsCore.errors import InputError

        weights = self.pkg_dir / "weights.safetensors"
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF  # one flipped byte inside a tensor: still parseable safetensors
        weights.write_bytes(bytes(data))
        with self.assertRaises(ModelPackageError) as ctx:
            load_model_package(self.pkg_dir)
        self.assertIsInstance(ctx.exception, InputError)
        self.assertIn("checksum mismatch", str(ctx.exception))
        self.assertIn("weights.safetensors", str(ctx.exception))

    def test_pickle_weights_are_refused_even_with_matching_checksum(self):
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package

        payload = pickle.dumps({"w": [1, 2, 3]})
        # a pickle under the trusted name, with every checksum updated to match
        (self.pkg_dir / "weights.safetensors").write_bytes(payload)
        self.resign("weights.safetensors")
        card = self.read_card()
        card["payload"]["sha256"] = hashlib.sha256(payload).hexdigest()
        self.write_card(card)
        with self.assertRaisesRegex(ModelPackageError, r"weights\.safetensors: is a Python pickle"):
            load_model_package(self.pkg_dir)
        # a card naming a .pt file
        (self.pkg_dir / "weights.pt").write_bytes(payload)
        self.resign("weights.pt")
        card["payload"]["file"] = "weights.pt"
        self.write_card(card)
        with self.assertRaisesRegex(ModelPackageError, r"model\.json: untrusted payload file type '\.pt'"):
            load_model_package(self.pkg_dir)
        # a bare pickle file given as the package
        with self.assertRaisesRegex(ModelPackageError, "untrusted file type"):
            load_model_package(self.pkg_dir / "weights.pt")

    def test_card_problems_name_file_and_key(self):
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package

        card = self.read_card()
        del card["input_sequences"]
        self.write_card(card)
        with self.assertRaisesRegex(ModelPackageError, r"model\.json: model card is missing key\(s\) \['input_sequences'\]"):
            load_model_package(self.pkg_dir)

        card = self.read_card()
        card["input_sequences"] = ["T1", "T2"]
        card["network"]["class"] = "os.system"
        self.write_card(card)
        with self.assertRaisesRegex(ModelPackageError, "unknown network class 'os.system'"):
            load_model_package(self.pkg_dir)

        card["network"] = tiny_card()["network"]
        card["network"]["args"]["channels"] = [4, 16]  # weights no longer fit
        self.write_card(card)
        with self.assertRaisesRegex(ModelPackageError, "weights do not match the network"):
            load_model_package(self.pkg_dir)

        full = self.read_card()
        self.write_card({**full, "network": tiny_card()["network"], "input_sequences": ["T1"]})
        with self.assertRaisesRegex(ModelPackageError, "in_channels=2 but 1 input sequences"):
            load_model_package(self.pkg_dir)

        (self.pkg_dir / "model.json").write_text("{not json")
        self.resign("model.json")
        with self.assertRaisesRegex(ModelPackageError, "not valid JSON"):
            load_model_package(self.pkg_dir)
        (self.pkg_dir / "model.json").unlink()
        with self.assertRaisesRegex(ModelPackageError, "no model.json"):
            load_model_package(self.pkg_dir)
        with self.assertRaisesRegex(ModelPackageError, "does not exist"):
            load_model_package(self.tmp / "nowhere")

    def test_zip_package_round_trip_and_tamper(self):
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package, write_model_package

        zipped = write_model_package(self.tmp / "model.zip", self.card, self.state)
        self.assertEqual(load_model_package(zipped).weights_sha256, self.read_card()["payload"]["sha256"])
        # a zip of the folder (as users make them) also loads
        other = self.tmp / "folder.zip"
        with zipfile.ZipFile(other, "w") as zf:
            for f in self.pkg_dir.iterdir():
                zf.write(f, f"mymodel/{f.name}")
        self.assertEqual(load_model_package(other).input_sequences, ["T1", "T2"])
        tampered = self.tmp / "tampered.zip"
        with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(tampered, "w") as dst:
            for name in src.namelist():
                data = bytearray(src.read(name))
                if name == "weights.safetensors":
                    data[-1] ^= 0x01
                dst.writestr(name, bytes(data))
        with self.assertRaisesRegex(ModelPackageError, r"tampered\.zip!weights\.safetensors: SHA-256 checksum mismatch"):
            load_model_package(tampered)
        # a zip holding a classifier package is refused by kind, and a '../' entry by name
        evil = self.tmp / "evil.zip"
        with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(evil, "w") as dst:
            for name in src.namelist():
                dst.writestr(name, src.read(name))
            dst.writestr("../outside.txt", b"x")
        with self.assertRaisesRegex(ModelPackageError, r"evil\.zip!\.\./outside\.txt: zip entry contains a '\.\.' component"):
            load_model_package(evil)

    def test_update_card_keeps_checksum_and_write_is_atomic(self):
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package, update_card, write_model_package

        before = self.read_card()
        card = update_card(self.pkg_dir, {"validation_metrics": {"held_out": {"dice": 0.9}}})
        self.assertEqual(card["validation_metrics"]["held_out"]["dice"], 0.9)
        self.assertEqual(card["payload"]["sha256"], before["payload"]["sha256"])
        self.assertEqual(card["created_utc"], before["created_utc"])
        # a bad card is refused before anything replaces the existing package
        bad = dict(self.card, labels=[])
        with self.assertRaises(ModelPackageError):
            write_model_package(self.pkg_dir, bad, self.state)
        self.assertEqual(load_model_package(self.pkg_dir).card["validation_metrics"]["held_out"]["dice"], 0.9)
        with self.assertRaises(ModelPackageError):
            write_model_package(self.tmp / "new_model", bad, self.state)
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["model"])
        with self.assertRaisesRegex(ModelPackageError, "already exists; pass overwrite"):
            write_model_package(self.pkg_dir, self.card, self.state, overwrite=False)

    def test_edited_card_refused_and_synthetic_warning_kept(self):
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package

        with self.assertLogs("SpineMetsCore.packages", "WARNING") as logs:
            load_model_package(self.pkg_dir)
        self.assertIn("trained on SYNTHETIC data", "\n".join(logs.output))
        card = self.read_card()
        card["synthetic_training_data"] = False  # someone hides the synthetic origin
        (self.pkg_dir / "model.json").write_text(json.dumps(card, indent=2))
        with self.assertRaisesRegex(ModelPackageError, r"model\.json: SHA-256 checksum mismatch .*the card was edited"):
            load_model_package(self.pkg_dir)
        (self.pkg_dir / "checksums.json").unlink()  # ... and drops the checksum list
        with self.assertRaisesRegex(ModelPackageError, "has no checksums.json"):
            load_model_package(self.pkg_dir)

    def test_legacy_package_loads_with_deprecation_warning(self):
        import torch
        from SpineMetsSegmentLib.unet import ModelPackageError, load_model_package

        from SpineMetsCore.packages import upgrade_package

        legacy = self.tmp / "legacy"
        legacy.mkdir()
        weights = (self.pkg_dir / "weights.safetensors").read_bytes()
        (legacy / "weights.safetensors").write_bytes(weights)
        card = {k: v for k, v in self.read_card().items() if k not in ("payload", "kind", "intended_use")}
        card.update(format="spinemets-unet-model", format_version=1,
                    weights={"file": "weights.safetensors", "sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)})
        (legacy / "model.json").write_text(json.dumps(card))
        with self.assertWarns(DeprecationWarning), self.assertLogs("SpineMetsCore.packages", "WARNING") as logs:
            pkg = load_model_package(legacy)
        self.assertIn("spinemets upgrade-model", "\n".join(logs.output))
        self.assertTrue(pkg.synthetic_training_data)
        for name, tensor in self.state.items():
            self.assertTrue(torch.equal(pkg.state_dict[name], tensor), name)
        upgraded = upgrade_package(legacy, self.tmp / "upgraded")
        self.assertEqual(load_model_package(upgraded).weights_sha256, hashlib.sha256(weights).hexdigest())
        self.assertTrue((upgraded / "checksums.json").is_file())
        (legacy / "weights.safetensors").write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))
        with self.assertRaisesRegex(ModelPackageError, r"legacy/weights\.safetensors: SHA-256 checksum mismatch \(model\.json records"):
            load_model_package(legacy)


if __name__ == "__main__":
    unittest.main()
