"""Model packages: a JSON model card plus safetensors weights, checked before use.

A package is a folder (or a .zip of one) holding ``model.json`` and the weights
file the card names. Loading hashes the weights bytes and compares them with the
card's SHA-256 *before* anything parses them, and only safetensors is accepted:
a pickle (``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) can run code when loaded, so a
downloaded model must never be one. Nothing is extracted from a zip; members are
read into memory.
"""

from __future__ import annotations

import copy
import datetime as _dt
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

CARD_NAME = "model.json"
WEIGHTS_NAME = "weights.safetensors"
FORMAT = "spinemets-unet-model"
FORMAT_VERSION = 1

REQUIRED_KEYS: tuple[str, ...] = (
    "name",
    "version",
    "task",
    "labels",
    "input_sequences",
    "spacing",
    "patch_size",
    "normalisation",
    "network",
    "training_data",
    "validation_metrics",
    "synthetic_training_data",
    "weights",
)
"""Keys every model card must have (the issue's list); a card missing one is refused."""

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib", ".npy", ".npz")
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class ModelPackageError(InputError):
    """A model package is missing, malformed, tampered with or of an untrusted type."""


@dataclass
class ModelPackage:
    """A verified model package: the card and the (checksum-verified) weight tensors."""

    source: Path
    card: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def input_sequences(self) -> list[str]:
        return list(self.card["input_sequences"])

    @property
    def labels(self) -> list[dict[str, Any]]:
        """Foreground labels ``{value, name, color}``; network channel ``c`` is ``labels[c-1]``."""
        return copy.deepcopy(self.card["labels"])

    @property
    def synthetic_training_data(self) -> bool:
        return bool(self.card["synthetic_training_data"])

    @property
    def spatial_dims(self) -> int:
        return int(self.card["network"]["args"]["spatial_dims"])

    @property
    def spacing(self) -> list[float | None]:
        """Working spacing (mm) along image axes i, j, k; ``None`` keeps the input's spacing."""
        return [None if s is None else float(s) for s in self.card["spacing"]]

    @property
    def patch_size(self) -> list[int]:
        """Sliding-window size in voxels along image axes i, j, k (k = 1 for slice-wise 2D)."""
        return [int(p) for p in self.card["patch_size"]]

    @property
    def weights_sha256(self) -> str:
        return str(self.card["weights"]["sha256"])

    def build_network(self, device: Any = "cpu") -> Any:
        """The network with these weights, in eval mode on ``device``."""
        from .network import build_network, load_weights

        net = build_network(self.card["network"], what=self._what())
        load_weights(net, self.state_dict, what=self._what())
        return net.to(device).eval()

    def _what(self) -> str:
        return f"model package {self.source}"


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

def _read_members(path: Path) -> tuple[bytes, dict[str, bytes] | Path, str]:
    """Card bytes, and a way to read other members: a folder path or zip member bytes.

    Returns ``(card_bytes, container, where)``, ``where`` naming the card for messages.
    """
    if path.is_dir():
        card = path / CARD_NAME
        if not card.is_file():
            present = sorted(p.name for p in path.iterdir())[:10]
            raise ModelPackageError(str(path), f"is not a model package: no {CARD_NAME} (found {present})")
        return card.read_bytes(), path, str(card)
    if path.is_file() and zipfile.is_zipfile(path):
        members: dict[str, bytes] = {}
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            cards = [n for n in names if n.rsplit("/", 1)[-1] == CARD_NAME and n.count("/") <= 1]
            if len(cards) != 1:
                raise ModelPackageError(str(path), f"zip must hold exactly one {CARD_NAME} at its top level or in one folder, found {cards}")
            prefix = cards[0][: -len(CARD_NAME)]
            for name in names:
                if name.startswith(prefix) and "/" not in name[len(prefix):]:
                    members[name[len(prefix):]] = zf.read(name)
        return members[CARD_NAME], members, f"{path}!{cards[0]}"
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise ModelPackageError(str(path), f"untrusted file type '{suffix}' (pickle-based formats are refused); a model package is a folder or .zip with {CARD_NAME} and .safetensors weights")
        raise ModelPackageError(str(path), f"is not a model package (expected a folder or .zip containing {CARD_NAME})")
    raise ModelPackageError(str(path), "model package does not exist")


def validate_card(card: Any, where: str) -> dict[str, Any]:
    """Check the card's structure; every problem names the card file and the key."""
    if not isinstance(card, dict):
        raise ModelPackageError(where, "model card must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise ModelPackageError(where, f"model card is missing key(s) {missing}")
    seqs = card["input_sequences"]
    if not isinstance(seqs, list) or not seqs or not all(isinstance(s, str) and s for s in seqs) or len(set(seqs)) != len(seqs):
        raise ModelPackageError(where, f"'input_sequences' must be a non-empty list of distinct names, got {seqs!r}")
    labels = card["labels"]
    if not isinstance(labels, list) or not labels:
        raise ModelPackageError(where, f"'labels' must be a non-empty list of {{value, name, color}}, got {labels!r}")
    values = []
    for lab in labels:
        ok = (
            isinstance(lab, dict)
            and isinstance(lab.get("value"), int)
            and 1 <= lab["value"] <= 255
            and isinstance(lab.get("name"), str)
            and lab["name"]
            and isinstance(lab.get("color"), list)
            and len(lab["color"]) == 3
            and all(isinstance(c, (int, float)) for c in lab["color"])
        )
        if not ok:
            raise ModelPackageError(where, f"label {lab!r} needs an integer 'value' in 1..255, a 'name' and a 3-component 'color'")
        values.append(lab["value"])
    if len(set(values)) != len(values):
        raise ModelPackageError(where, f"label values must be distinct, got {values}")
    for key in ("spacing", "patch_size"):
        v = card[key]
        if not isinstance(v, list) or len(v) != 3:
            raise ModelPackageError(where, f"'{key}' must be a list of 3 values (image axes i, j, k), got {v!r}")
    if not all(s is None or (isinstance(s, (int, float)) and s > 0) for s in card["spacing"]):
        raise ModelPackageError(where, f"'spacing' values must be positive numbers or null, got {card['spacing']!r}")
    if not all(isinstance(p, int) and p >= 1 for p in card["patch_size"]):
        raise ModelPackageError(where, f"'patch_size' values must be positive integers, got {card['patch_size']!r}")
    net = card["network"]
    if not isinstance(net, dict) or not isinstance(net.get("class"), str) or not isinstance(net.get("args"), dict):
        raise ModelPackageError(where, f"'network' must be {{'class': str, 'args': {{...}}}}, got {net!r}")
    if not isinstance(card["synthetic_training_data"], bool):
        raise ModelPackageError(where, "'synthetic_training_data' must be true or false")
    weights = card["weights"]
    if not isinstance(weights, dict) or not isinstance(weights.get("file"), str) or not isinstance(weights.get("sha256"), str):
        raise ModelPackageError(where, f"'weights' must be {{'file': name, 'sha256': hex}}, got {weights!r}")
    if not _SAFE_FILE_NAME.match(weights["file"]) or weights["file"] in (".", ".."):
        raise ModelPackageError(where, f"weights file name {weights['file']!r} must be a plain file name inside the package")
    if not re.fullmatch(r"[0-9a-f]{64}", weights["sha256"]):
        raise ModelPackageError(where, f"weights 'sha256' must be 64 lower-case hex digits, got {weights['sha256']!r}")
    if not isinstance(card["normalisation"], dict) or "method" not in card["normalisation"]:
        raise ModelPackageError(where, f"'normalisation' must be an object with a 'method', got {card['normalisation']!r}")
    from .preprocessing import NORMALISATIONS, TENSOR_AXES

    if card.get("tensor_axes", TENSOR_AXES) != TENSOR_AXES:
        raise ModelPackageError(where, f"'tensor_axes' {card['tensor_axes']!r} is not supported; SpineMets networks see ({', '.join(TENSOR_AXES)}) tensors")
    if card["normalisation"]["method"] not in NORMALISATIONS:
        raise ModelPackageError(where, f"unknown normalisation method {card['normalisation']['method']!r}; known: {sorted(NORMALISATIONS)}")
    return card


def _check_safetensors_bytes(data: bytes, what: str) -> None:
    """Refuse bytes that are not a safetensors container (e.g. a renamed pickle)."""
    if data[:2] == b"PK":
        raise ModelPackageError(what, "is a zip/torch archive (pickle-based), not safetensors; refused")
    if data[:1] == b"\x80":
        raise ModelPackageError(what, "is a Python pickle, not safetensors; refused")
    if len(data) < 10:
        raise ModelPackageError(what, "is too short to be a safetensors file")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or 8 + header_len > len(data) or data[8:9] != b"{":
        raise ModelPackageError(what, "is not a safetensors file (bad header); refused")


def load_model_package(path: str | os.PathLike[str]) -> ModelPackage:
    """Load and verify a model package (folder or .zip).

    The weights' SHA-256 is checked against the card before the bytes are
    parsed; the network class and arguments are checked by building the
    network and loading the weights strictly, so a package that loads is
    usable.
    """
    src = Path(path)
    card_bytes, container, where = _read_members(src)
    try:
        card = json.loads(card_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(where, f"model card is not valid JSON ({exc})") from exc
    card = validate_card(card, where)
    weights_name = card["weights"]["file"]
    what = f"{src}/{weights_name}" if isinstance(container, Path) else f"{src}!{weights_name}"
    suffix = Path(weights_name).suffix.lower()
    if suffix != ".safetensors":
        raise ModelPackageError(what, f"untrusted weights file type '{suffix}': only .safetensors is accepted (pickles can run code)")
    if isinstance(container, Path):
        weights_path = container / weights_name
        if not weights_path.is_file():
            raise ModelPackageError(what, "weights file named in the model card does not exist")
        data = weights_path.read_bytes()
    else:
        if weights_name not in container:
            raise ModelPackageError(what, "weights file named in the model card is not in the zip")
        data = container[weights_name]
    actual = sha256_bytes(data)
    if actual != card["weights"]["sha256"]:
        raise ModelPackageError(
            what, f"SHA-256 checksum mismatch (card {card['weights']['sha256'][:12]}..., file {actual[:12]}...): the weights were modified or corrupted"
        )
    _check_safetensors_bytes(data, what)
    from safetensors.torch import load as load_safetensors

    try:
        state = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelPackageError(what, f"cannot be read as safetensors ({exc})") from exc
    pkg = ModelPackage(source=src, card=card, state_dict=state)
    _check_consistency(pkg, where)
    pkg.build_network()  # raises ModelPackageError on an unknown class or mismatched weights
    return pkg


def _check_consistency(pkg: ModelPackage, where: str) -> None:
    args = pkg.card["network"]["args"]
    dims = args.get("spatial_dims")
    if dims not in (2, 3):
        raise ModelPackageError(where, f"network 'spatial_dims' must be 2 or 3, got {dims!r}")
    if args.get("in_channels") != len(pkg.input_sequences):
        raise ModelPackageError(where, f"network in_channels={args.get('in_channels')} but {len(pkg.input_sequences)} input sequences {pkg.input_sequences}")
    if args.get("out_channels") != len(pkg.labels) + 1:
        raise ModelPackageError(where, f"network out_channels={args.get('out_channels')} but {len(pkg.labels)} labels + background")
    if dims == 2 and pkg.patch_size[2] != 1:
        raise ModelPackageError(where, f"a 2-D (slice-wise) model needs patch_size k = 1, got {pkg.patch_size}")


def verify_model_package(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load fully and return the card (for ``spinemets`` checks and tests)."""
    return load_model_package(path).card


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _serialise_weights(state_dict: Mapping[str, Any]) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return save(tensors)


def finalise_card(card: Mapping[str, Any], weights_bytes: bytes) -> dict[str, Any]:
    """Card with format, weights checksum and (if absent) creation time and versions."""
    out = copy.deepcopy(dict(card))
    out.setdefault("format", FORMAT)
    out.setdefault("format_version", FORMAT_VERSION)
    out.setdefault("created_utc", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    out.setdefault("library_versions", library_versions())  # versions that can change the model's output
    out["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_bytes(weights_bytes), "bytes": len(weights_bytes)}
    return out


def write_model_package(out: str | os.PathLike[str], card: Mapping[str, Any], state_dict: Mapping[str, Any]) -> Path:
    """Write a package atomically: a folder, or a .zip when ``out`` ends with ``.zip``.

    The card is validated and the network rebuilt from it before anything is
    renamed into place, so a written package always loads.
    """
    out = Path(out)
    weights = _serialise_weights(state_dict)
    final = finalise_card(card, weights)
    validate_card(final, f"model card for {out}")
    card_text = json.dumps(final, indent=2, sort_keys=False) + "\n"
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(CARD_NAME, card_text)
                zf.writestr(WEIGHTS_NAME, weights)
            load_model_package(tmp)
    else:
        with atomic_dir(out) as tmp:
            (tmp / WEIGHTS_NAME).write_bytes(weights)
            (tmp / CARD_NAME).write_text(card_text, encoding="utf-8")
            load_model_package(tmp)
    return out


def update_card(path: str | os.PathLike[str], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into a package's card (weights verified first; checksum kept)."""
    pkg = load_model_package(path)
    card = copy.deepcopy(pkg.card)
    for key, value in updates.items():
        if key == "weights":
            raise ModelPackageError(str(path), "the weights entry is written by the package writer only")
        if isinstance(value, Mapping) and isinstance(card.get(key), dict):
            card[key].update(copy.deepcopy(dict(value)))
        else:
            card[key] = copy.deepcopy(value)
    write_model_package(path, card, pkg.state_dict)
    return load_model_package(path).card
