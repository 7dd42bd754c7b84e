"""Deep-learning classifier packages: a JSON card plus safetensors weights, checked before use.

Members: ``model.json`` (the card), ``weights.safetensors`` and optional reports
(``history.csv``, ``validation_predictions.csv``, ...). ``SHA256SUMS`` lists the
SHA-256 of every member, the card included, and the card repeats the weights'
checksum. Loading verifies every listed member before anything is parsed,
accepts safetensors only (a pickle can run code when loaded), builds the
network from an allow-listed MONAI architecture and loads the weights
strictly, so a package that loads is usable and a modified one is refused.

:func:`_write_members` / :func:`_read_members` are the one adapter between this
module and the storage format; they are what moves to Core's package format.
"""

from __future__ import annotations

import copy
import json
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import atomic_dir, atomic_path, sha256_bytes
from SpineMetsCore.tables import library_versions

from .inputs import InputSpec
from .network import DeepPackageError, build_network, load_weights

FORMAT = "spinemets-deep-classifier"
FORMAT_VERSION = 1
CARD_NAME = "model.json"
WEIGHTS_NAME = "weights.safetensors"
SUMS_NAME = "SHA256SUMS"
REQUIRED_KEYS = ("format", "name", "task", "classes", "inputs", "network", "synthetic_training_data", "weights")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class DeepPackage:
    """A verified deep-learning classifier package: card, weights and report members."""

    source: Path
    card: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)
    members: dict[str, bytes] = field(repr=False, default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.card["classes"]]

    @property
    def label(self) -> str:
        return str(self.card["task"]["label"])

    @property
    def inputs(self) -> InputSpec:
        return InputSpec.from_json(self.card["inputs"])

    @property
    def synthetic(self) -> bool:
        return bool(self.card["synthetic_training_data"])

    @property
    def sha256(self) -> str:
        return str(self.card["weights"]["sha256"])

    def build_network(self, device: Any = "cpu") -> Any:
        """The network with these weights, in eval mode on ``device``."""
        net = build_network(self.card["network"], what=str(self.source))
        load_weights(net, self.state_dict, what=str(self.source))
        return net.to(device).eval()


# ----------------------------------------------------------------------------- storage adapter
def _sums_text(members: Mapping[str, bytes]) -> bytes:
    return "".join(f"{sha256_bytes(data)}  {name}\n" for name, data in sorted(members.items())).encode("utf-8")


def _write_members(out: Path, members: Mapping[str, bytes]) -> None:
    """Write members plus ``SHA256SUMS`` atomically: a folder, or a .zip when ``out`` ends in .zip."""
    everything = {**members, SUMS_NAME: _sums_text(members)}
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in everything.items():
                    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, data)
            _read_members(tmp)
    else:
        with atomic_dir(out) as tmp:
            for name, data in everything.items():
                (tmp / name).write_bytes(data)
            _read_members(tmp)


def _raw_members(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file() and not p.name.startswith(".")}
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/") and "/" not in n}
    if path.is_file():
        raise DeepPackageError(str(path), f"is not a deep model package (a folder or .zip with {CARD_NAME})")
    raise DeepPackageError(str(path), "deep model package does not exist")


def _read_members(path: Path) -> dict[str, bytes]:
    """Members whose SHA-256 matches ``SHA256SUMS`` (every listed one must be present and match)."""
    raw = _raw_members(path)
    if SUMS_NAME not in raw or CARD_NAME not in raw:
        raise DeepPackageError(str(path), f"is not a deep model package: needs {CARD_NAME} and {SUMS_NAME} (found {sorted(raw)[:10]})")
    listed: dict[str, str] = {}
    for line in raw[SUMS_NAME].decode("utf-8", errors="replace").splitlines():
        m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line.strip())
        if not m or not _SAFE_NAME.match(m.group(2)):
            raise DeepPackageError(f"{path}/{SUMS_NAME}", f"malformed line {line!r}")
        listed[m.group(2)] = m.group(1)
    if CARD_NAME not in listed:
        raise DeepPackageError(f"{path}/{SUMS_NAME}", f"does not list {CARD_NAME}")
    out = {}
    for name, expected in listed.items():
        if name not in raw:
            raise DeepPackageError(f"{path}/{name}", f"listed in {SUMS_NAME} but missing")
        actual = sha256_bytes(raw[name])
        if actual != expected:
            raise DeepPackageError(f"{path}/{name}", f"SHA-256 checksum mismatch ({SUMS_NAME} records {expected[:12]}..., "
                                   f"the file has {actual[:12]}...): it was modified or corrupted; refusing to load it")
        out[name] = raw[name]
    return out


# ----------------------------------------------------------------------------- card
def validate_card(card: Any, where: str) -> dict[str, Any]:
    """Check the card's structure; every problem names the card and the key."""
    if not isinstance(card, dict):
        raise DeepPackageError(where, "model card must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise DeepPackageError(where, f"model card is missing key(s) {missing}")
    if card["format"] != FORMAT:
        raise DeepPackageError(where, f"is a {card['format']!r} card, not a {FORMAT!r} one")
    if int(card.get("format_version", 0)) > FORMAT_VERSION:
        raise DeepPackageError(where, f"format version {card.get('format_version')} is newer than this SpineMets supports ({FORMAT_VERSION})")
    classes = card["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
        raise DeepPackageError(where, f"'classes' must list at least two distinct classes, got {classes!r}")
    task = card["task"]
    if not isinstance(task, dict) or not isinstance(task.get("label"), str) or task.get("classes", classes) != classes:
        raise DeepPackageError(where, "'task' must name the label column and the same classes as 'classes'")
    try:
        spec = InputSpec.from_json(card["inputs"])
    except (InputError, TypeError) as exc:
        raise DeepPackageError(where, f"'inputs' is not a valid input specification ({exc})") from None
    net = card["network"]
    args = net.get("args") if isinstance(net, dict) else None
    if not isinstance(args, dict):
        raise DeepPackageError(where, f"'network' must be {{'arch': name, 'args': {{...}}}}, got {net!r}")
    if args.get("n_input_channels") != len(spec.sequences) or args.get("spatial_dims") != spec.dims:
        raise DeepPackageError(where, f"network ({args.get('spatial_dims')}-D, {args.get('n_input_channels')} channels) does not match "
                               f"the inputs ({spec.dims}-D, sequences {list(spec.sequences)})")
    if args.get("num_classes") != len(classes):
        raise DeepPackageError(where, f"network num_classes={args.get('num_classes')} but {len(classes)} classes")
    if not isinstance(card["synthetic_training_data"], bool):
        raise DeepPackageError(where, "'synthetic_training_data' must be true or false")
    weights = card["weights"]
    if not isinstance(weights, dict) or weights.get("file") != WEIGHTS_NAME or not re.fullmatch(r"[0-9a-f]{64}", str(weights.get("sha256"))):
        raise DeepPackageError(where, f"'weights' must be {{'file': '{WEIGHTS_NAME}', 'sha256': hex}}, got {weights!r}")
    return card


def _check_safetensors(data: bytes, what: str) -> None:
    """Refuse bytes that are not a safetensors container (e.g. a renamed pickle)."""
    if data[:2] == b"PK" or data[:1] == b"\x80":
        raise DeepPackageError(what, "is a pickle or torch archive, not safetensors; refused")
    header = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
    if header <= 0 or 8 + header > len(data) or data[8:9] != b"{":
        raise DeepPackageError(what, "is not a safetensors file (bad header); refused")


def load_deep_package(path: str | os.PathLike[str]) -> DeepPackage:
    """Verify checksums, card and weights, then return the package (see module docstring)."""
    src = Path(path)
    members = _read_members(src)
    where = f"{src}/{CARD_NAME}"
    try:
        card = json.loads(members[CARD_NAME].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeepPackageError(where, f"model card is not valid JSON ({exc})") from None
    card = validate_card(card, where)
    what = f"{src}/{WEIGHTS_NAME}"
    data = members.get(WEIGHTS_NAME)
    if data is None:
        raise DeepPackageError(what, f"weights are not listed in {SUMS_NAME}")
    if sha256_bytes(data) != card["weights"]["sha256"]:
        raise DeepPackageError(what, "SHA-256 differs from the model card's; refusing to load it")
    _check_safetensors(data, what)
    from safetensors.torch import load as load_safetensors

    try:
        state = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise DeepPackageError(what, f"cannot be read as safetensors ({exc})") from None
    pkg = DeepPackage(src, card, state, {k: v for k, v in members.items() if k not in (CARD_NAME, WEIGHTS_NAME)})
    pkg.build_network()  # unknown architecture or mismatched weights fail here
    return pkg


def _check_target(out: Path) -> None:
    """Never replace a folder that is not a deep model package (the atomic swap would delete it)."""
    if out.suffix.lower() == ".zip":
        if out.is_dir():
            raise InputError(str(out), "is a folder; a .zip package path must be a file")
        return
    if out.is_file():
        raise InputError(str(out), "exists and is a file; give a folder or a .zip path")
    if out.is_dir() and any(out.iterdir()) and not (out / CARD_NAME).is_file():
        raise InputError(str(out), "exists, is not empty and is not a model package; refusing to replace it")


def save_deep_package(
    out: str | os.PathLike[str],
    card: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    extra_files: Mapping[str, bytes | str] | None = None,
) -> Path:
    """Write the package atomically and return its path; the checksums come from the bytes written."""
    from safetensors.torch import save

    out = Path(out)
    _check_target(out)
    weights = save({k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()})
    full = copy.deepcopy(dict(card))
    full.setdefault("format", FORMAT)
    full.setdefault("format_version", FORMAT_VERSION)
    full.setdefault("versions", library_versions())
    full["weights"] = {"file": WEIGHTS_NAME, "format": "safetensors", "sha256": sha256_bytes(weights), "bytes": len(weights)}
    validate_card(full, f"model card for {out}")
    members: dict[str, bytes] = {CARD_NAME: (json.dumps(full, indent=2, default=str) + "\n").encode("utf-8"), WEIGHTS_NAME: weights}
    for name, content in (extra_files or {}).items():
        if name in members or name == SUMS_NAME or not _SAFE_NAME.match(name):
            raise InputError(name, "is not a valid extra file name for a model package")
        members[name] = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    _write_members(out, members)
    load_deep_package(out)
    return out


def read_deep_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified card of a package (checksums checked, weights not parsed)."""
    src = Path(path)
    members = _read_members(src)
    try:
        card = json.loads(members[CARD_NAME].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeepPackageError(f"{src}/{CARD_NAME}", f"model card is not valid JSON ({exc})") from None
    return validate_card(card, f"{src}/{CARD_NAME}")
