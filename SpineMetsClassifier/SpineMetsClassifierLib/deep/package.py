"""Deep-learning classifier packages: the Core package format with a safetensors payload.

The format (card schema, checksums of every member and of the card, zip rules,
versions) lives in :mod:`SpineMetsCore.packages`; this module adds what is
specific to a deep classifier (card kind ``deep-classifier``): the input
specification and the network must agree with the classes and sequences, the
network is rebuilt from an allow-listed MONAI ResNet and the weights are loaded
strictly, so a package that loads is usable and a modified one is refused.

Members: ``model.json`` (the card), ``weights.safetensors`` (the payload),
``history.csv``, ``validation_predictions.csv`` / ``test_predictions.csv`` when
there were such cases, and Core's ``checksums.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpineMetsCore import packages as core
from SpineMetsCore.errors import InputError
from SpineMetsCore.packages import ModelPackageError, load_weights

from .inputs import InputSpec
from .network import build_network

KIND = "deep-classifier"
WEIGHTS_NAME = "weights.safetensors"
DeepPackageError = ModelPackageError
"""The one package error of Core (kept under this name for callers of the deep API)."""


@dataclass
class DeepPackage(core.CardFields):
    """A verified deep-learning classifier package: card, weight tensors and report members."""

    source: Path
    card: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)
    members: dict[str, bytes] = field(repr=False, default_factory=dict)
    digest: str = ""
    """SHA-256 of the package's checksums.json (identifies the whole package)."""

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
    def sha256(self) -> str:
        """SHA-256 of the weights (the card's payload digest)."""
        return str(self.card["payload"]["sha256"])

    def build_network(self, device: Any = "cpu") -> Any:
        """The network with these weights, in eval mode on ``device``."""
        net = build_network(self.card["network"], what=str(self.source))
        load_weights(net, self.state_dict, what=str(self.source))
        return net.to(device).eval()


def check_card(card: Mapping[str, Any], where: str) -> None:
    """What the Core schema cannot say: inputs, network, classes and task agree."""
    classes = card["classes"]
    if card["task"].get("classes", classes) != classes:
        raise ModelPackageError(where, "'task.classes' differs from 'classes'")
    try:
        spec = InputSpec.from_json(card["inputs"])
    except (InputError, TypeError) as exc:
        raise ModelPackageError(where, f"'inputs' is not a valid input specification ({exc})") from None
    args = card["network"]["args"]
    if args.get("n_input_channels") != len(spec.sequences) or args.get("spatial_dims") != spec.dims:
        raise ModelPackageError(where, f"network ({args.get('spatial_dims')}-D, {args.get('n_input_channels')} channels) "
                                f"does not match the inputs ({spec.dims}-D, sequences {list(spec.sequences)})")
    if args.get("num_classes") != len(classes):
        raise ModelPackageError(where, f"network num_classes={args.get('num_classes')} but {len(classes)} classes")


def _from_package(package: core.Package) -> DeepPackage:
    """Parse a verified Core package: card checks, safetensors, network rebuilt with the weights."""
    card = package.card
    check_card(card, package.where(core.CARD_NAME))
    from safetensors.torch import load as load_safetensors

    try:
        state = load_safetensors(package.payload_bytes())
    except Exception as exc:  # safetensors raises its own error types
        raise ModelPackageError(package.where(package.payload_name), f"cannot be read as safetensors ({exc})") from None
    members = {n: package.read_bytes(n) for n in package.members() if n not in (core.CARD_NAME, package.payload_name)}
    pkg = DeepPackage(package.path, card, state, members, package.digest)
    pkg.build_network()  # an unknown architecture or mismatched weights fail here
    return pkg


def load_deep_package(path: str | os.PathLike[str]) -> DeepPackage:
    """Verify (checksums of every member and the card, schema, payload type) and load a package."""
    return _from_package(core.open_package(path, kind=KIND))


def save_deep_package(
    out: str | os.PathLike[str],
    card: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    extra_files: Mapping[str, bytes | str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the package atomically (re-opened and rebuilt before it replaces anything)."""
    from safetensors.torch import save

    weights = save({k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()})
    full = {**dict(card), "kind": KIND, "payload": {"format": "safetensors", "file": WEIGHTS_NAME}}
    members: dict[str, bytes] = {WEIGHTS_NAME: weights}
    for name, content in (extra_files or {}).items():
        if name in members:
            raise InputError(name, "is not a valid extra file name for a model package")
        members[name] = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    return core.write_package(out, full, members, overwrite=overwrite, verify=_from_package)


def read_deep_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified card of a deep classifier package (weights hashed, not parsed)."""
    card = core.read_card(path)
    if card.get("kind") != KIND:
        raise ModelPackageError(str(path), f"is a '{card.get('kind')}' model package, not a '{KIND}' one")
    return card
