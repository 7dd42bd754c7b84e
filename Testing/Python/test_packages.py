"""The one model-package format (SpineMetsCore.packages): checksums, card schema, zip rules, versions.

Payloads here are hand-made safetensors bytes (a JSON header and raw little-endian
floats), so these tests need neither torch nor scikit-learn; the Lib tests cover
the real U-Net and skops payloads.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import unittest
import zipfile
from pathlib import Path

from SpineMetsCore.errors import InputError, SpineMetsError
from SpineMetsCore.packages import (
    CARD_NAME,
    CHECKSUMS_NAME,
    FORMAT_VERSION,
    ModelPackageError,
    card_schema,
    open_package,
    read_card,
    schema_errors,
    upgrade_package,
    write_package,
)


def run_cli(*argv):
    from SpineMetsApp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def safetensors_bytes(values=(1.0, 2.0, 3.0)):
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, 4 * len(values)]}}).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack(f"<{len(values)}f", *values)


def unet_card(**changes):
    card = {
        "kind": "unet-segmentation",
        "name": "core test model",
        "version": "0.0.1",
        "task": "test",
        "labels": [{"value": 1, "name": "lesion", "color": [230, 51, 51]}],
        "input_sequences": ["T1"],
        "spacing": [1.0, 1.0, None],
        "patch_size": [8, 8, 4],
        "normalisation": {"method": "zscore"},
        "network": {"class": "monai.networks.nets.UNet", "args": {}},
        "training_data": {},
        "validation_metrics": {},
        "synthetic_training_data": True,
        "payload": {"format": "safetensors", "file": "weights.safetensors"},
    }
    card.update(changes)
    return card


def rezip(src, dst, extra=(), drop=()):
    """Copy a zip package, dropping names and adding (ZipInfo or name, bytes) entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name not in drop:
                zout.writestr(name, zin.read(name))
        for info, data in extra:
            zout.writestr(info, data)
    return dst


class PackageFormatTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="spinemets_packages_"))
        self.weights = safetensors_bytes()
        self.members = {"weights.safetensors": self.weights, "labels.txt": b"lesion\n"}
        self.folder = write_package(self.tmp / "model", unet_card(), self.members)
        self.zip = write_package(self.tmp / "model.zip", unet_card(), self.members)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_round_trip_folder_and_zip(self):
        for path in (self.folder, self.zip):
            package = open_package(path, kind="unet-segmentation")
            self.assertEqual(package.payload_bytes(), self.weights)
            self.assertEqual(package.read_bytes("labels.txt"), b"lesion\n")
            self.assertEqual(package.members(), ["labels.txt", CARD_NAME, "weights.safetensors"])
            self.assertEqual(package.card["format_version"], FORMAT_VERSION)
            self.assertEqual(package.card["payload"], {"format": "safetensors", "file": "weights.safetensors",
                                                       "sha256": hashlib.sha256(self.weights).hexdigest(),
                                                       "bytes": len(self.weights)})
            self.assertIn("Research use only", package.intended_use)
            self.assertEqual(package.sha256("labels.txt"), hashlib.sha256(b"lesion\n").hexdigest())
        self.assertEqual(open_package(self.folder).digest, hashlib.sha256((self.folder / CHECKSUMS_NAME).read_bytes()).hexdigest())
        with zipfile.ZipFile(self.zip) as zf:
            self.assertEqual(zf.namelist()[:2], [CARD_NAME, CHECKSUMS_NAME])
        sums = json.loads((self.folder / CHECKSUMS_NAME).read_text())
        self.assertEqual(sorted(sums["members"]), ["labels.txt", CARD_NAME, "weights.safetensors"])
        self.assertEqual(hashlib.sha256((self.folder / CARD_NAME).read_bytes()).hexdigest(), sums["members"][CARD_NAME]["sha256"])
        self.assertEqual(read_card(self.zip)["name"], "core test model")
        with self.assertRaisesRegex(ModelPackageError, "is a 'unet-segmentation' model package, not a 'sklearn-classifier' one"):
            open_package(self.folder, kind="sklearn-classifier")

    def test_one_error_class(self):
        self.assertTrue(issubclass(ModelPackageError, SpineMetsError))
        self.assertTrue(issubclass(ModelPackageError, InputError))

    def test_edited_card_refused(self):
        card = json.loads((self.folder / CARD_NAME).read_text())
        card["synthetic_training_data"] = False
        (self.folder / CARD_NAME).write_text(json.dumps(card, indent=2))
        with self.assertRaisesRegex(ModelPackageError, r"model/model\.json: SHA-256 checksum mismatch .*the card was edited"):
            open_package(self.folder)
        edited = json.loads(zipfile.ZipFile(self.zip).read(CARD_NAME))
        edited["intended_use"] = "clinical use"
        bad = rezip(self.zip, self.tmp / "edited.zip", extra=[(CARD_NAME, json.dumps(edited))], drop=(CARD_NAME,))
        with self.assertRaisesRegex(ModelPackageError, r"edited\.zip!model\.json: SHA-256 checksum mismatch"):
            open_package(bad)

    def test_tampered_member_and_missing_checksums_refused(self):
        data = bytearray(self.weights)
        data[-1] ^= 0x01
        (self.folder / "weights.safetensors").write_bytes(bytes(data))
        with self.assertRaisesRegex(ModelPackageError, r"weights\.safetensors: SHA-256 checksum mismatch .*the file was modified"):
            open_package(self.folder)
        (self.folder / "labels.txt").unlink()
        with self.assertRaisesRegex(ModelPackageError, r"labels\.txt: is listed in checksums\.json but missing"):
            open_package(self.folder)
        (self.folder / CHECKSUMS_NAME).unlink()
        with self.assertRaisesRegex(ModelPackageError, "has no checksums.json"):
            open_package(self.folder)

    def test_unlisted_file_is_not_readable(self):
        (self.folder / "notes.txt").write_text("added later")
        package = open_package(self.folder)
        with self.assertRaisesRegex(ModelPackageError, "notes.txt: is not a checksummed member"):
            package.read_bytes("notes.txt")

    def test_pickled_payload_refused(self):
        pickle_bytes = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."
        with self.assertRaisesRegex(ModelPackageError, r"evil/weights\.safetensors: is a Python pickle"):
            write_package(self.tmp / "evil", unet_card(), {"weights.safetensors": pickle_bytes})
        self.assertFalse((self.tmp / "evil").exists())
        with self.assertRaisesRegex(ModelPackageError, r"untrusted payload file type '\.pt'"):
            write_package(self.tmp / "evil", unet_card(payload={"format": "safetensors", "file": "weights.pt"}),
                          {"weights.pt": self.weights})
        with self.assertRaisesRegex(ModelPackageError, "torch archive"):
            write_package(self.tmp / "evil", unet_card(), {"weights.safetensors": b"PK\x03\x04" + b"\0" * 30})
        (self.tmp / "model.pt").write_bytes(pickle_bytes)
        with self.assertRaisesRegex(ModelPackageError, r"model\.pt: untrusted file type '\.pt'"):
            open_package(self.tmp / "model.pt")

    def test_zip_rules_name_the_entry(self):
        cases = {
            "../escape.txt": "contains a '..' component",
            "/etc/passwd": "is an absolute path",
            "C:/Windows/x.dll": "is an absolute path",
            "sub\\..\\x.txt": "contains a backslash",
        }
        for entry, problem in cases.items():
            bad = rezip(self.zip, self.tmp / "bad.zip", extra=[(entry, b"x")])
            with self.assertRaises(ModelPackageError) as ctx:
                open_package(bad)
            self.assertIn(f"bad.zip!{entry}: zip entry {problem}", str(ctx.exception))
        link = zipfile.ZipInfo("link")
        link.external_attr = 0o120777 << 16
        bad = rezip(self.zip, self.tmp / "bad.zip", extra=[(link, "/etc/passwd")])
        with self.assertRaisesRegex(ModelPackageError, r"bad\.zip!link: zip entry is a symbolic link"):
            open_package(bad)
        two = rezip(self.zip, self.tmp / "two.zip", extra=[("x/model.json", b"{}")])
        with self.assertRaisesRegex(ModelPackageError, "exactly one model.json"):
            open_package(two)
        # a zip of the package folder (as users make them) is fine
        nested = self.tmp / "nested.zip"
        with zipfile.ZipFile(nested, "w") as zf:
            for f in self.folder.iterdir():
                zf.write(f, f"mymodel/{f.name}")
        self.assertEqual(open_package(nested).payload_bytes(), self.weights)

    def test_size_limit_and_symlink_member(self):
        import SpineMetsCore.packages as packages

        old = packages.MAX_MEMBER_BYTES
        packages.MAX_MEMBER_BYTES = 100
        try:
            with self.assertRaisesRegex(ModelPackageError, r"model\.zip!model\.json: zip entry is \d+ bytes, over the 100-byte"):
                open_package(self.zip)
        finally:
            packages.MAX_MEMBER_BYTES = old
        if hasattr(os, "symlink"):
            (self.folder / "labels.txt").unlink()
            os.symlink(self.tmp / "model.zip", self.folder / "labels.txt")
            with self.assertRaisesRegex(ModelPackageError, r"labels\.txt: is a symbolic link"):
                open_package(self.folder)

    def test_format_version_and_schema(self):
        card = json.loads((self.folder / CARD_NAME).read_text())
        for change, message in (
            ({"format_version": FORMAT_VERSION + 1}, f"format_version {FORMAT_VERSION + 1} is newer than this SpineMets supports"),
            ({"format": "other"}, "is not a SpineMets model card"),
            ({"synthetic_training_data": "no"}, r"\$\.synthetic_training_data must be boolean"),
            ({"labels": [{"value": 300, "name": "x", "color": [1, 2, 3]}]}, r"\$\.labels\[0\]\.value must be <= 255"),
            ({"kind": "pickle-model"}, r"\$\.kind must be one of"),
            ({"intended_use": ""}, r"\$\.intended_use must not be empty"),
        ):
            edited = {**card, **change}
            data = json.dumps(edited).encode()
            (self.folder / CARD_NAME).write_bytes(data)
            sums = json.loads((self.folder / CHECKSUMS_NAME).read_text())
            sums["members"][CARD_NAME]["sha256"] = hashlib.sha256(data).hexdigest()
            (self.folder / CHECKSUMS_NAME).write_text(json.dumps(sums))
            with self.assertRaisesRegex(ModelPackageError, message):
                open_package(self.folder)
        missing = {k: v for k, v in unet_card().items() if k != "input_sequences"}
        with self.assertRaisesRegex(ModelPackageError, r"model card is missing key\(s\) \['input_sequences'\]"):
            write_package(self.tmp / "incomplete", missing, self.members)

    def test_schema_validator_subset(self):
        schema = {"type": "object", "required": ["a"], "properties": {
            "a": {"type": "array", "items": {"type": "integer", "minimum": 1}, "uniqueItems": True},
            "b": {"type": ["number", "null"], "exclusiveMinimum": 0}}, "additionalProperties": False}
        self.assertEqual(schema_errors({"a": [1, 2], "b": None}, schema), [])
        self.assertEqual(schema_errors({"a": [1, 1, 0], "b": 0, "c": 1}, schema), [
            "$.a items must be distinct, got [1, 1, 0]", "$.a[2] must be >= 1, got 0", "$.b must be > 0, got 0",
            "$ has an unknown key 'c'"])
        self.assertEqual(schema_errors({"a": [True]}, schema), ["$.a[0] must be integer, got True"])
        # every $ref in the shipped schema resolves, and every kind has a definition
        schema = card_schema()
        text = json.dumps(schema)
        for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
            self.assertIn(ref.rsplit("/", 1)[-1], schema["$defs"])
        for kind in schema["properties"]["kind"]["enum"]:
            self.assertIn(kind, schema["$defs"])

    def test_never_replaces_without_overwrite_or_a_non_package(self):
        with self.assertRaisesRegex(ModelPackageError, "already exists; pass overwrite=True"):
            write_package(self.folder, unet_card(), self.members)
        write_package(self.folder, unet_card(name="second"), self.members, overwrite=True)
        self.assertEqual(open_package(self.folder).name, "second")
        busy = self.tmp / "busy"
        busy.mkdir()
        (busy / "thesis.docx").write_text("keep me")
        with self.assertRaisesRegex(ModelPackageError, "is not a SpineMets model package; refusing to replace it"):
            write_package(busy, unet_card(), self.members, overwrite=True)
        self.assertEqual((busy / "thesis.docx").read_text(), "keep me")
        failed = self.tmp / "failed"

        def refuse(package):
            raise ModelPackageError(str(package.path), "payload check failed")

        with self.assertRaisesRegex(ModelPackageError, "payload check failed"):
            write_package(failed, unet_card(), self.members, verify=refuse)
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["busy", "model", "model.zip"])

    def test_synthetic_warning_comes_from_the_verified_flag(self):
        with self.assertLogs("SpineMetsCore.packages", "WARNING") as logs:
            package = open_package(self.folder)
        self.assertIn("trained on SYNTHETIC data only", "\n".join(logs.output))
        self.assertIn("not clinically valid", package.warning)
        real = write_package(self.tmp / "real", unet_card(synthetic_training_data=False), self.members)
        self.assertIsNone(open_package(real).warning)

    def test_legacy_unet_package_loads_and_upgrades(self):
        legacy = self.tmp / "legacy"
        legacy.mkdir()
        (legacy / "weights.safetensors").write_bytes(self.weights)
        card = {k: v for k, v in unet_card().items() if k not in ("kind", "payload")}
        card.update(format="spinemets-unet-model", format_version=1, created_utc="2026-01-01T00:00:00+00:00",
                    weights={"file": "weights.safetensors", "sha256": hashlib.sha256(self.weights).hexdigest()})
        (legacy / CARD_NAME).write_text(json.dumps(card))
        with self.assertWarnsRegex(DeprecationWarning, "spinemets upgrade-model"):
            package = open_package(legacy)
        self.assertTrue(package.legacy)
        self.assertEqual(package.kind, "unet-segmentation")
        self.assertEqual(package.payload_bytes(), self.weights)
        upgraded = upgrade_package(legacy, self.tmp / "upgraded.zip")
        new = open_package(upgraded)
        self.assertFalse(new.legacy)
        self.assertNotIn("legacy_format", new.card)
        self.assertEqual(new.card["created_utc"], "2026-01-01T00:00:00+00:00")
        # the command the deprecation warning names
        code, out, err = run_cli("upgrade-model", str(legacy), str(self.tmp / "by_cli"))
        self.assertEqual(code, 0, err)
        summary = json.loads(out)
        self.assertEqual((summary["kind"], summary["format_version"]), ("unet-segmentation", FORMAT_VERSION))
        self.assertEqual(summary["payload_sha256"], hashlib.sha256(self.weights).hexdigest())
        self.assertEqual(summary["package_digest"], open_package(self.tmp / "by_cli").digest)
        code, out, err = run_cli("upgrade-model", str(legacy), str(self.tmp / "by_cli"))
        self.assertEqual(code, 2)
        self.assertIn("spinemets upgrade-model: error:", err)
        self.assertIn("already exists; pass overwrite=True (--overwrite)", err)
        self.assertNotIn("Traceback", err)
        card["format_version"] = 7
        (legacy / CARD_NAME).write_text(json.dumps(card))
        with self.assertRaisesRegex(ModelPackageError, "format_version 7 is not supported; update SpineMets"):
            open_package(legacy)


if __name__ == "__main__":
    unittest.main()
