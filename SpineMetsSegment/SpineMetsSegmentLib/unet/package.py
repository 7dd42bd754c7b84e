"""U-Net model packages: the Core package format with a safetensors payload.

The format (card schema, checksums of every member and of the card, zip rules,
versions, legacy reader) lives in :mod:`SpineMetsCore.packages`; this module adds
what is U-Net specific: the safetensors bytes are checked to be no pickle before
they are parsed, the card's network is rebuilt from MONAI's allow-listed classes
and the weights are loaded strictly, so a package that loads is usable.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpineMetsCore import packages as core
from SpineMetsCore.packages import CARD_NAME, ModelPackageError, load_weights

from .network import build_network

KIND = "unet-segmentation"
WEIGHTS_NAME = "weights.safetensors"
DEFAULT_INTENDED_USE = ("Research use only: lesion segmentation for studies. Not a medical device; "
                        "not validated for clinical decisions.")

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
    "intended_use",
    "payload",
)
"""Keys every U-Net card has (enforced by the Core schema's ``unet-segmentation`` entry)."""

__all__ = ["CARD_NAME", "KIND", "REQUIRED_KEYS", "WEIGHTS_NAME", "ModelPackage", "ModelPackageError",
           "load_model_package", "update_card", "verify_model_package", "write_model_package"]


@dataclass
class ModelPackage(core.CardFields):
    """A verified U-Net package: the card and the (checksum-verified) weight tensors."""

    path: Path
    card: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)
    digest: str = ""
    """SHA-256 of the package's checksums.json (identifies the whole package)."""

    @property
    def input_sequences(self) -> list[str]:
        return list(self.card["input_sequences"])

    @property
    def labels(self) -> list[dict[str, Any]]:
        """Foreground labels ``{value, name, color}``; network channel ``c`` is ``labels[c-1]``."""
        return copy.deepcopy(self.card["labels"])

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
        return str(self.card["payload"]["sha256"])

    _networks: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def build_network(self, device: Any = "cpu") -> Any:
        """A new network with these weights, in eval mode on ``device`` (for training or fine-tuning)."""
        net = build_network(self.card["network"], what=self._what())
        load_weights(net, self.state_dict, what=self._what())
        return net.to(device).eval()

    def network(self, device: Any = "cpu") -> Any:
        """The package's inference network on ``device``, built once and reused for every case.

        Callers must not train or modify it (use :meth:`build_network` for that).
        """
        key = str(device)
        if key not in self._networks:
            self._networks[key] = self.build_network(device)
        return self._networks[key]

    def _what(self) -> str:
        return f"model package {self.path}"


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

def check_card(card: dict[str, Any], where: str) -> dict[str, Any]:
    """What the Core schema cannot say: distinct label values, known normalisation and tensor axes."""
    from .preprocessing import NORMALISATIONS, TENSOR_AXES

    values = [lab["value"] for lab in card["labels"]]
    if len(set(values)) != len(values):
        raise ModelPackageError(where, f"label values must be distinct, got {values}")
    if card.get("tensor_axes", TENSOR_AXES) != TENSOR_AXES:
        raise ModelPackageError(where, f"'tensor_axes' {card['tensor_axes']!r} is not supported; SpineMets networks see ({', '.join(TENSOR_AXES)}) tensors")
    if card["normalisation"]["method"] not in NORMALISATIONS:
        raise ModelPackageError(where, f"unknown normalisation method {card['normalisation']['method']!r}; known: {sorted(NORMALISATIONS)}")
    args = card["network"]["args"]
    dims = args.get("spatial_dims")
    if dims not in (2, 3):
        raise ModelPackageError(where, f"network 'spatial_dims' must be 2 or 3, got {dims!r}")
    n_seq = len(card["input_sequences"])
    if args.get("in_channels") != n_seq:
        raise ModelPackageError(where, f"network in_channels={args.get('in_channels')} but {n_seq} input sequences {card['input_sequences']}")
    if args.get("out_channels") != len(card["labels"]) + 1:
        raise ModelPackageError(where, f"network out_channels={args.get('out_channels')} but {len(card['labels'])} labels + background")
    if dims == 2 and card["patch_size"][2] != 1:
        raise ModelPackageError(where, f"a 2-D (slice-wise) model needs patch_size k = 1, got {card['patch_size']}")
    return card


def _from_package(package: core.Package) -> ModelPackage:
    """Parse the verified safetensors payload and rebuild the network from the card."""
    where = package.where(CARD_NAME)
    check_card(package.card, where)
    what = package.where(package.payload_name)
    from safetensors.torch import load as load_safetensors

    try:
        state = load_safetensors(package.payload_bytes())
    except Exception as exc:  # safetensors raises its own error types
        raise ModelPackageError(what, f"cannot be read as safetensors ({exc})") from exc
    pkg = ModelPackage(path=package.path, card=package.card, state_dict=state, digest=package.digest)
    pkg.network("cpu")  # raises ModelPackageError on an unknown class or mismatched weights; kept for inference
    return pkg


_CACHE: dict[tuple[str, str], ModelPackage] = {}
_CACHE_SIZE = 4


def clear_package_cache() -> None:
    """Forget every cached package (tests; or to free the networks' memory)."""
    _CACHE.clear()


def load_model_package(path: str | os.PathLike[str]) -> ModelPackage:
    """Load and verify a U-Net package (folder or .zip).

    Core checks the zip rules and every member's SHA-256 (the card's included)
    before anything is parsed, and refuses a payload that is not safetensors;
    the network is then built and the weights loaded strictly, so a package
    that loads is usable.
    """
    package = core.open_package(path, kind=KIND)
    # Every member's checksum was verified above; the same path with the same
    # package digest is the same model, so its parsed weights and built network
    # are reused (batch and pipeline runs pay for them once per process).
    key = (str(Path(package.path).resolve()), package.digest)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _from_package(package)
    return _CACHE[key]


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


def write_model_package(out: str | os.PathLike[str], card: Mapping[str, Any], state_dict: Mapping[str, Any],
                        *, overwrite: bool = True) -> Path:
    """Write a U-Net package atomically: a folder, or a .zip when ``out`` ends with ``.zip``.

    The card gets its kind, payload entry and (if absent) intended use here; the
    network is rebuilt from it and the weights loaded before anything is renamed
    into place, so a written package always loads. ``overwrite`` replaces an
    existing package (never a folder that is not one).
    """
    full = {k: copy.deepcopy(v) for k, v in card.items() if k not in ("weights", "payload", "legacy_format")}
    full["kind"] = KIND
    full.setdefault("intended_use", DEFAULT_INTENDED_USE)
    full["payload"] = {"format": "safetensors", "file": WEIGHTS_NAME}
    weights = _serialise_weights(state_dict)
    return core.write_package(out, full, {WEIGHTS_NAME: weights}, overwrite=overwrite, verify=_from_package)


def update_card(path: str | os.PathLike[str], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into a package's card and re-save it (weights verified first, unchanged)."""
    pkg = load_model_package(path)
    card = copy.deepcopy(pkg.card)
    for key, value in updates.items():
        if key in ("payload", "weights", "format", "format_version", "kind"):
            raise ModelPackageError(str(path), f"the '{key}' entry is written by the package writer only")
        if isinstance(value, Mapping) and isinstance(card.get(key), dict):
            card[key].update(copy.deepcopy(dict(value)))
        else:
            card[key] = copy.deepcopy(value)
    write_model_package(path, card, pkg.state_dict, overwrite=True)
    return load_model_package(path).card
