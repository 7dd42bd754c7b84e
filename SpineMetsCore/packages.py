"""THE SpineMets model-package format: a validated card plus checksummed members, folder or zip.

Public API (all a Lib needs; the payload-specific parts stay in the Libs)::

    write_package(dest, card, members, *, overwrite=False, verify=None) -> Path
    open_package(path, *, kind=None) -> Package        # verified: .card, .payload_bytes(), .read_bytes(name),
                                                       #   .sha256(name), .digest, .synthetic_training_data
    read_card(path) -> dict                            # the card only, still checksum-verified
    upgrade_package(src, dest, *, overwrite=False)     # legacy (format_version 1) -> current format
    ModelPackageError                                  # the one error class (a SpineMetsError)

There is no ``member_path``: Libs parse the verified in-memory bytes, so a file
cannot change between the check and its use, and nothing is extracted from a zip.

A package is a folder, or a ``.zip`` of one, holding

* ``model.json``: the model card, validated against ``Resources/model_card.schema.json``
  (one schema for every kind of model);
* the payload (``card["payload"]["file"]``): ``safetensors`` (tensors only) or ``skops``
  (scikit-learn, loaded with an allow-list by the Classifier Lib); pickles are refused;
* any other file the model reads at prediction time (e.g. a SHAP background sample);
* ``checksums.json``: the SHA-256 and size of every member *including the card*.

Loading hashes every member (the card first) before anything parses it, so an edited
card (e.g. ``synthetic_training_data`` flipped to false) is refused like tampered
weights. Nothing is extracted from a zip: members are read into memory under one set
of rules (no absolute, ``..``, backslash, symlink or encrypted entries, size limits),
and a breach is refused naming the entry. When the card says the model was trained
on synthetic data, a warning is logged on every load; it comes from the verified
flag, not from editable text. Checksums prove integrity, not authorship: whoever can
rewrite both the card and ``checksums.json`` can forge a package, so pin
:attr:`Package.digest` from a trusted source when that matters.

Packages written before this format (``spinemets-unet-model`` and ``spinemets-model``,
format_version 1, only the weights checksummed) still load through a legacy reader,
with a deprecation warning telling how to re-save them.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import math
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InputError
from .fileio import atomic_dir, atomic_path, sha256_bytes

logger = logging.getLogger(__name__)

FORMAT = "spinemets-model-package"
FORMAT_VERSION = 2
CARD_NAME = "model.json"
CHECKSUMS_NAME = "checksums.json"
CHECKSUMS_FORMAT = "spinemets-model-package-checksums"
SCHEMA_PATH = Path(__file__).resolve().parent / "Resources" / "model_card.schema.json"

PAYLOAD_SUFFIXES: dict[str, str] = {"safetensors": ".safetensors", "skops": ".skops"}
"""Payload format -> the file suffix it must have."""
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib", ".npy", ".npz")
"""Suffixes of formats that can run code when loaded; never a payload, never a package."""

DEFAULT_INTENDED_USE = "Research use only. Not a medical device; not validated for clinical decisions."
SYNTHETIC_WARNING = "trained on SYNTHETIC data only: its outputs say nothing about patients and are not clinically valid"

MAX_MEMBER_BYTES = 2 << 30
"""Largest member (declared uncompressed size) a package may hold."""
MAX_TOTAL_BYTES = 4 << 30
MAX_ENTRIES = 256
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IGNORED_ZIP_ENTRIES = re.compile(r"^(__MACOSX/|(.*/)?\.DS_Store$)")
RESAVE_HINT = "re-save it in the current format with `spinemets upgrade-model OLD NEW`"


class ModelPackageError(InputError):
    """A model package is missing, malformed, tampered with, too new or of an untrusted type."""


def load_weights(net: Any, state_dict: Mapping[str, Any], what: str = "network") -> None:
    """Load a verified state dict strictly into a network built from the card (any ``torch.nn.Module``).

    A missing or mis-shaped tensor is a package error: the weights do not belong to that card.
    No torch import is needed here; the Libs build the network.
    """
    try:
        net.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelPackageError(what, f"weights do not match the network in the model card ({' '.join(first[:3])})") from exc


# --------------------------------------------------------------------------------------
# The package
# --------------------------------------------------------------------------------------
class CardFields:
    """The card fields every package kind shares, read from ``self.card`` (Core's and the Libs' package classes)."""

    card: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def kind(self) -> str:
        return str(self.card["kind"])

    @property
    def synthetic_training_data(self) -> bool:
        return bool(self.card["synthetic_training_data"])

    @property
    def intended_use(self) -> str:
        return str(self.card["intended_use"])


@dataclass(frozen=True)
class Package(CardFields):
    """A verified package: the card and the bytes of every member, all matching ``checksums.json``.

    Members are held in memory (they were hashed there), so what a Lib parses is
    exactly what was verified; nothing is read from disk a second time.
    """

    path: Path
    card: dict[str, Any]
    checksums: dict[str, str]
    digest: str
    """SHA-256 of ``checksums.json``: one value that identifies the whole package (pin it in a registry)."""
    legacy: bool = False
    _members: dict[str, bytes] = field(default_factory=dict, repr=False)


    @property
    def warning(self) -> str | None:
        """The synthetic-data warning, derived from the verified flag (``None`` for real data)."""
        return f"model '{self.name}' was {SYNTHETIC_WARNING}" if self.synthetic_training_data else None

    @property
    def payload_name(self) -> str:
        return str(self.card["payload"]["file"])

    def members(self) -> list[str]:
        """Names of the verified members (the card included, ``checksums.json`` excluded)."""
        return sorted(self._members)

    def read_bytes(self, name: str) -> bytes:
        """Verified bytes of a member; a name not covered by ``checksums.json`` is refused."""
        if name not in self._members:
            raise ModelPackageError(self.where(name), f"is not a checksummed member of the package (members: {self.members()})")
        return self._members[name]

    def payload_bytes(self) -> bytes:
        return self.read_bytes(self.payload_name)

    def sha256(self, name: str) -> str:
        self.read_bytes(name)
        return self.checksums[name]

    def where(self, name: str) -> str:
        """How messages name a member: ``folder/name`` or ``file.zip!name``."""
        return _where(self.path, name)


def _where(package: Path, name: str) -> str:
    return f"{package}/{name}" if package.is_dir() else f"{package}!{name}"


# --------------------------------------------------------------------------------------
# The card schema (a small validator for the subset of JSON Schema the schema uses)
# --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def card_schema() -> dict[str, Any]:
    """The one model-card schema (``Resources/model_card.schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def schema_errors(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None,
                  where: str = "$") -> list[str]:
    """Every way ``instance`` breaks ``schema``, each naming the JSON path (``$.labels[0].value``).

    Covers the keywords the card schema uses; desktop Slicer does not bundle
    ``jsonschema``, and a model must load there without installing anything.
    """
    root = schema if root is None else root
    errors: list[str] = []
    if "$ref" in schema:
        errors += schema_errors(instance, _resolve(schema["$ref"], root), root, where)
    for sub in schema.get("allOf", ()):
        errors += schema_errors(instance, sub, root, where)
    if "if" in schema and not schema_errors(instance, schema["if"], root, where):
        errors += schema_errors(instance, schema.get("then", {}), root, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](instance) for t in types):
            return errors + [f"{where} must be {' or '.join(types)}, got {instance!r:.80}"]
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{where} must be {schema['const']!r}, got {instance!r:.80}")
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where} must be one of {schema['enum']}, got {instance!r:.80}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{where} must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{where} {instance!r:.80} does not match {schema['pattern']}")
    if _TYPES["number"](instance):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{where} must be >= {schema['minimum']}, got {instance}")
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            errors.append(f"{where} must be > {schema['exclusiveMinimum']}, got {instance}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{where} must be <= {schema['maximum']}, got {instance}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{where} needs at least {schema['minItems']} item(s), got {len(instance)}")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            errors.append(f"{where} takes at most {schema['maxItems']} item(s), got {len(instance)}")
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in instance}) != len(instance):
            errors.append(f"{where} items must be distinct, got {instance!r:.80}")
        if "items" in schema:
            for i, item in enumerate(instance):
                errors += schema_errors(item, schema["items"], root, f"{where}[{i}]")
    if isinstance(instance, dict):
        missing = [k for k in schema.get("required", ()) if k not in instance]
        if missing:
            errors.append(f"{where} is missing key(s) {missing}" if where != "$" else f"model card is missing key(s) {missing}")
        props = schema.get("properties", {})
        for key, value in instance.items():
            if key in props:
                errors += schema_errors(value, props[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where} has an unknown key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(value, schema["additionalProperties"], root, f"{where}.{key}")
    return errors


def validate_card(card: Any, where: str) -> dict[str, Any]:
    """Check a card against the one schema (format version first, for a clear message)."""
    if not isinstance(card, dict):
        raise ModelPackageError(where, "model card must be a JSON object")
    if card.get("format") != FORMAT:
        raise ModelPackageError(where, f"is not a SpineMets model card (format {card.get('format')!r}, expected {FORMAT!r})")
    version = card.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelPackageError(where, f"format_version {version} is newer than this SpineMets supports "
                                f"({FORMAT_VERSION}); update SpineMets")
    errors = schema_errors(card, card_schema())
    if errors:
        shown = "; ".join(errors[:5]) + (f"; ... ({len(errors) - 5} more)" if len(errors) > 5 else "")
        raise ModelPackageError(where, shown)
    payload = card["payload"]
    suffix = Path(payload["file"]).suffix.lower()
    if suffix in PICKLE_SUFFIXES or suffix != PAYLOAD_SUFFIXES[payload["format"]]:
        raise ModelPackageError(where, f"untrusted payload file type '{suffix}' for format '{payload['format']}': "
                                f"only {PAYLOAD_SUFFIXES[payload['format']]} is accepted (pickles can run code)")
    return card


# --------------------------------------------------------------------------------------
# Reading members: one set of rules for folders and zips
# --------------------------------------------------------------------------------------
def _check_member_name(name: str, where: str) -> None:
    if name in (CARD_NAME, CHECKSUMS_NAME):
        return
    if not _MEMBER_NAME.match(name):
        raise ModelPackageError(where, f"member name {name!r} must be a plain file name inside the package")


def _zip_entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry is refused, or None: the one set of zip rules."""
    name = info.filename
    parts = name.split("/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if "\\" in name:
        return "contains a backslash (a Windows path could escape the package)"
    if ".." in parts:
        return "contains a '..' component (it would escape the package)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"is {info.file_size} bytes, over the {MAX_MEMBER_BYTES}-byte member limit"
    return None


def _read_zip(path: Path) -> dict[str, bytes]:
    """Members of a zip package (top level, or inside one folder), checked before any is read."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelPackageError(str(path), f"is not a readable zip file ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ModelPackageError(str(path), f"holds {len(infos)} entries, over the limit of {MAX_ENTRIES}")
        total = 0
        seen: set[str] = set()
        for info in infos:
            problem = _zip_entry_problem(info)
            if problem:
                raise ModelPackageError(f"{path}!{info.filename}", f"zip entry {problem}; refusing the package")
            if info.filename in seen:
                raise ModelPackageError(f"{path}!{info.filename}", "zip entry appears twice; refusing the package")
            seen.add(info.filename)
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ModelPackageError(str(path), f"unpacks to {total} bytes, over the {MAX_TOTAL_BYTES}-byte limit")
        files = [i for i in infos if not i.is_dir() and not _IGNORED_ZIP_ENTRIES.match(i.filename)]
        cards = [i.filename for i in files if i.filename.rsplit("/", 1)[-1] == CARD_NAME and i.filename.count("/") <= 1]
        if len(cards) != 1:
            raise ModelPackageError(str(path), f"zip must hold exactly one {CARD_NAME}, at its top level or in one "
                                    f"folder; found {cards}")
        prefix = cards[0][: -len(CARD_NAME)]
        members: dict[str, bytes] = {}
        for info in files:
            rest = info.filename[len(prefix):]
            if not info.filename.startswith(prefix) or "/" in rest:
                logger.warning("%s!%s: outside the package folder; ignored", path, info.filename)
                continue
            try:
                members[rest] = zf.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                raise ModelPackageError(f"{path}!{info.filename}", f"cannot be read ({exc})") from exc
        return members


def _read_folder(path: Path) -> dict[str, bytes]:
    """Members of a folder package: regular top-level files, no symlinks, size-limited."""
    members: dict[str, bytes] = {}
    total = 0
    for entry in sorted(path.iterdir()):
        if entry.is_symlink():
            raise ModelPackageError(str(entry), "is a symbolic link; a model package holds plain files only")
        if not entry.is_file():
            continue
        size = entry.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise ModelPackageError(str(entry), f"is {size} bytes, over the {MAX_MEMBER_BYTES}-byte member limit")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise ModelPackageError(str(path), f"holds over {MAX_TOTAL_BYTES} bytes")
        members[entry.name] = entry.read_bytes()
    if CARD_NAME not in members:
        present = sorted(members)[:10]
        raise ModelPackageError(str(path), f"is not a model package: no {CARD_NAME} (found {present})")
    return members


def _read_container(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise ModelPackageError(str(path), f"untrusted file type '{suffix}' (pickle-based formats are refused); "
                                    f"a model package is a folder or .zip with {CARD_NAME}")
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        raise ModelPackageError(str(path), f"is not a model package (expected a folder or .zip containing {CARD_NAME})")
    raise ModelPackageError(str(path), "model package does not exist")


def _parse_json(data: bytes, where: str, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(where, f"{what} is not valid JSON ({exc})") from exc


def _parse_checksums(data: bytes, where: str) -> dict[str, str]:
    doc = _parse_json(data, where, "the checksum list")
    if not isinstance(doc, dict) or doc.get("format") != CHECKSUMS_FORMAT or not isinstance(doc.get("members"), dict):
        raise ModelPackageError(where, f"is not a '{CHECKSUMS_FORMAT}' checksum list")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelPackageError(where, f"format_version {version!r} is not supported (this SpineMets reads up to "
                                f"{FORMAT_VERSION}); update SpineMets")
    out: dict[str, str] = {}
    for name, entry in doc["members"].items():
        _check_member_name(name, where)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ModelPackageError(where, f"entry {name!r} needs a 'sha256' of 64 lower-case hex digits")
        out[name] = digest
    if CARD_NAME not in out:
        raise ModelPackageError(where, f"does not cover {CARD_NAME}; the card could be edited unnoticed")
    return out


def _verify(path: Path, raw: Mapping[str, bytes], checksums: Mapping[str, str],
            recorded_in: str = CHECKSUMS_NAME) -> dict[str, bytes]:
    """The members named in ``checksums``, each hashed and compared (the card first)."""
    verified: dict[str, bytes] = {}
    for name in sorted(checksums, key=lambda n: (n != CARD_NAME, n)):
        if name not in raw:
            raise ModelPackageError(_where(path, name), f"is listed in {recorded_in} but missing from the package")
        actual = sha256_bytes(raw[name])
        if actual != checksums[name]:
            edited = "the card was edited" if name == CARD_NAME else "the file was modified"
            raise ModelPackageError(_where(path, name), f"SHA-256 checksum mismatch ({recorded_in} records "
                                    f"{checksums[name][:12]}..., the file has {actual[:12]}...): {edited} or "
                                    "corrupted after the package was written; refusing to load it")
        verified[name] = raw[name]
    extra = sorted(set(raw) - set(checksums) - {CHECKSUMS_NAME, CARD_NAME})
    if extra:
        logger.info("%s: file(s) %s not covered by the checksums; ignored", path, extra)
    return verified


def _open(src: Path) -> Package:
    """Read and verify without announcing anything (the writer re-opens what it wrote)."""
    raw = _read_container(src)
    card_where = _where(src, CARD_NAME)
    if CHECKSUMS_NAME not in raw:
        card = _parse_json(raw[CARD_NAME], card_where, "model card")
        if isinstance(card, dict) and card.get("format") in _LEGACY:
            return _open_legacy(src, card, raw, card_where)
        raise ModelPackageError(str(src), f"has no {CHECKSUMS_NAME}: its card and members cannot be verified")
    checksums_bytes = raw[CHECKSUMS_NAME]
    checksums = _parse_checksums(checksums_bytes, _where(src, CHECKSUMS_NAME))
    members = _verify(src, raw, checksums)
    card = validate_card(_parse_json(members[CARD_NAME], card_where, "model card"), card_where)
    payload = card["payload"]
    if payload["file"] not in checksums:
        raise ModelPackageError(card_where, f"payload {payload['file']!r} is not listed in {CHECKSUMS_NAME}")
    if payload["sha256"] != checksums[payload["file"]]:
        raise ModelPackageError(card_where, f"payload SHA-256 differs from {CHECKSUMS_NAME}; refusing to load it")
    _check_payload_bytes(payload["format"], members[payload["file"]], _where(src, payload["file"]))
    return Package(src, card, dict(checksums), sha256_bytes(checksums_bytes), False, members)


def _check_payload_bytes(fmt: str, data: bytes, where: str) -> None:
    """Refuse payload bytes that are not what the card says (e.g. a pickle renamed .safetensors)."""
    if data[:1] == b"\x80":
        raise ModelPackageError(where, "is a Python pickle, not a safe payload; refused")
    if fmt == "safetensors":
        if data[:2] == b"PK":
            raise ModelPackageError(where, "is a zip/torch archive (pickle-based), not safetensors; refused")
        header_len = int.from_bytes(data[:8], "little") if len(data) >= 10 else 0
        if header_len <= 0 or 8 + header_len > len(data) or data[8:9] != b"{":
            raise ModelPackageError(where, "is not a safetensors file (bad header); refused")
    elif fmt == "skops" and data[:2] != b"PK":
        raise ModelPackageError(where, "is not a skops file (not a zip archive); refused")


def open_package(path: str | os.PathLike[str], *, kind: str | None = None) -> Package:
    """Read and verify a package: zip rules, checksums (card first), format version, card schema.

    ``kind`` (e.g. ``"unet-segmentation"``) refuses a package of another kind.
    The payload is not parsed here: the Lib that owns its kind does that with
    :meth:`Package.payload_bytes`. Legacy packages load with a deprecation warning.
    """
    src = Path(path)
    package = _open(src)
    if package.legacy:
        message = (f"{src}: legacy model package (format '{package.card['legacy_format']}'): its card is not "
                   f"checksummed, so edits to it cannot be detected; {RESAVE_HINT}")
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        logger.warning(message)
    if kind is not None and package.kind != kind:
        raise ModelPackageError(str(src), f"is a '{package.kind}' model package, not a '{kind}' one")
    if package.warning:
        logger.warning("%s: %s", src, package.warning)
    return package


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified card of a package (a copy; the payload is hashed but not parsed)."""
    return copy.deepcopy(open_package(path).card)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _library_versions() -> dict[str, str]:
    from .tables import library_versions

    return library_versions()


def finalise_card(card: Mapping[str, Any], members: Mapping[str, bytes]) -> dict[str, Any]:
    """Card with format fields and the payload digest set from the bytes actually written."""
    rest = {k: copy.deepcopy(v) for k, v in card.items() if k not in ("format", "format_version", "legacy_format")}
    out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, **rest}
    out.setdefault("created_utc", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    out.setdefault("library_versions", _library_versions())
    out.setdefault("intended_use", DEFAULT_INTENDED_USE)
    payload = out.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("file"), str) and payload["file"] in members:
        data = members[payload["file"]]
        out["payload"] = {"format": payload.get("format"), "file": payload["file"],
                          "sha256": sha256_bytes(data), "bytes": len(data)}
    return out


def _checksums_bytes(members: Mapping[str, bytes]) -> bytes:
    doc = {
        "format": CHECKSUMS_FORMAT,
        "format_version": FORMAT_VERSION,
        "algorithm": "sha256",
        "members": {name: {"sha256": sha256_bytes(data), "bytes": len(data)} for name, data in sorted(members.items())},
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _check_destination(dest: Path, overwrite: bool) -> None:
    """Never replace an output without ``overwrite``, and never a folder that is not a package."""
    if dest.suffix.lower() == ".zip":
        if dest.is_dir():
            raise ModelPackageError(str(dest), "is a folder; a .zip package path must be a file")
    elif dest.is_file():
        raise ModelPackageError(str(dest), "exists and is a file; give a folder or a .zip path")
    if not dest.exists():
        return
    if dest.is_dir() and any(dest.iterdir()) and not (dest / CARD_NAME).is_file():
        raise ModelPackageError(str(dest), "exists, is not empty and is not a SpineMets model package; refusing to replace it")
    if not overwrite and (dest.is_file() or any(dest.iterdir())):
        raise ModelPackageError(str(dest), "already exists; pass overwrite=True (--overwrite) to replace it")


def write_package(
    dest: str | os.PathLike[str],
    card: Mapping[str, Any],
    members: Mapping[str, bytes | str | os.PathLike[str]],
    *,
    overwrite: bool = False,
    verify: Callable[[Package], None] | None = None,
) -> Path:
    """Write a package atomically: a folder, or a zip when ``dest`` ends with ``.zip``.

    ``members`` maps plain file names to bytes or to files to copy; it must hold
    the card's ``payload.file``. The card's format fields and payload digest are
    filled in from the bytes written; ``checksums.json`` covers every member and
    the card. The result is re-opened (and passed to ``verify``, where a Lib
    rebuilds its model) before it replaces anything, so a written package loads.
    """
    out = Path(dest)
    _check_destination(out, overwrite)
    data: dict[str, bytes] = {}
    for name, value in members.items():
        if name in (CARD_NAME, CHECKSUMS_NAME):
            raise ModelPackageError(name, "is written by the package writer; do not pass it as a member")
        _check_member_name(name, f"members of {out}")
        data[name] = value if isinstance(value, bytes) else Path(value).read_bytes()
    final = finalise_card(card, data)
    where = f"model card for {out}"
    validate_card(final, where)
    if final["payload"]["file"] not in data:
        raise ModelPackageError(where, f"payload file {final['payload']['file']!r} is not among the members {sorted(data)}")
    payload_where = f"{out}!{final['payload']['file']}" if out.suffix.lower() == ".zip" else f"{out}/{final['payload']['file']}"
    _check_payload_bytes(final["payload"]["format"], data[final["payload"]["file"]], payload_where)
    data[CARD_NAME] = (json.dumps(final, indent=2, default=str) + "\n").encode("utf-8")
    checksums = _checksums_bytes(data)
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, content in [(CARD_NAME, data[CARD_NAME]), (CHECKSUMS_NAME, checksums),
                                      *sorted((n, c) for n, c in data.items() if n != CARD_NAME)]:
                    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, content)
            _check_written(tmp, out, verify)
    else:
        with atomic_dir(out) as tmp:
            for name, content in data.items():
                (tmp / name).write_bytes(content)
            (tmp / CHECKSUMS_NAME).write_bytes(checksums)
            _check_written(tmp, out, verify)
    logger.info("wrote model package %s (payload sha256 %s)", out, final["payload"]["sha256"][:12])
    return out


def _check_written(tmp: Path, out: Path, verify: Callable[[Package], None] | None) -> None:
    """Re-open what was written (and let the Lib rebuild its model); errors name ``out``, not the temp path."""
    try:
        package = _open(tmp)
        if verify is not None:
            verify(package)
    except ModelPackageError as exc:
        raise ModelPackageError(exc.what.replace(str(tmp), str(out)), exc.problem.replace(str(tmp), str(out))) from None


def upgrade_package(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Re-save a package (e.g. a legacy one) in the current format; the payload bytes are unchanged."""
    package = _open(Path(src))
    card = {k: v for k, v in package.card.items() if k not in ("format", "format_version", "legacy_format")}
    members = {name: package.read_bytes(name) for name in package.members() if name != CARD_NAME}
    return write_package(dest, card, members, overwrite=overwrite)


# --------------------------------------------------------------------------------------
# Legacy reader (format_version 1: only the weights were checksummed, in the card itself)
# --------------------------------------------------------------------------------------
def _legacy_unet(card: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    weights = card.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("file"), str) or not isinstance(weights.get("sha256"), str):
        raise ModelPackageError(CARD_NAME, f"'weights' must be {{'file': name, 'sha256': hex}}, got {weights!r}")
    new = {k: v for k, v in card.items() if k not in ("weights", "format", "format_version")}
    new.update(kind="unet-segmentation", payload={"format": "safetensors", "file": weights["file"],
                                                  "sha256": weights["sha256"], "bytes": weights.get("bytes", 0)})
    new.setdefault("intended_use", new.get("disclaimer") or DEFAULT_INTENDED_USE)
    return new, {weights["file"]: weights["sha256"]}


def _legacy_classifier(card: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    model, background = card.get("model_file"), card.get("background_file")
    for key, entry in (("model_file", model), ("background_file", background)):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("sha256"), str):
            raise ModelPackageError(CARD_NAME, f"'{key}' must be {{'name': file, 'sha256': hex}}, got {entry!r}")
    model, background = dict(model or {}), dict(background or {})
    drop = ("model_file", "background_file", "format", "format_version", "versions", "warning")
    new = {k: v for k, v in card.items() if k not in drop}
    new.update(kind="sklearn-classifier", library_versions=card.get("versions", {}),
               payload={"format": "skops", "file": model["name"], "sha256": model["sha256"], "bytes": 0},
               background={"file": background["name"], "n_rows": int(background.get("n_rows", 0))})
    new.setdefault("version", "1")
    return new, {model["name"]: model["sha256"], background["name"]: background["sha256"]}


_LEGACY: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, str]]]] = {
    "spinemets-unet-model": _legacy_unet,
    "spinemets-model": _legacy_classifier,
}


def _open_legacy(src: Path, card: dict[str, Any], raw: Mapping[str, bytes], where: str) -> Package:
    """A format_version 1 package: verify what it checksummed, convert the card in memory, warn."""
    version = card.get("format_version", 1)
    if not isinstance(version, int) or version > 1:
        raise ModelPackageError(where, f"'{card['format']}' format_version {version!r} is not supported; update SpineMets")
    try:
        new, checksums = _LEGACY[card["format"]](card)
    except ModelPackageError as exc:
        raise ModelPackageError(where, exc.problem) from None
    new.update(format=FORMAT, format_version=FORMAT_VERSION, legacy_format=f"{card['format']} v{version}")
    new.setdefault("library_versions", {})
    new.setdefault("created_utc", "unknown")
    new.setdefault("synthetic_training_data", False)
    new.setdefault("intended_use", DEFAULT_INTENDED_USE)
    for name in checksums:
        _check_member_name(name, where)
    payload = new["payload"]
    if payload["file"] in raw:
        payload["bytes"] = len(raw[payload["file"]])
    validate_card(new, where)
    members = _verify(src, raw, checksums, recorded_in=CARD_NAME)
    members[CARD_NAME] = raw[CARD_NAME]
    _check_payload_bytes(payload["format"], members[payload["file"]], _where(src, payload["file"]))
    card_sha = sha256_bytes(raw[CARD_NAME])
    return Package(src, new, {**checksums, CARD_NAME: card_sha}, card_sha, True, members)
