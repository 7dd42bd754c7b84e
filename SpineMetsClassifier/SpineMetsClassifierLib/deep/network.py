"""MONAI ResNet classifiers, built from a model card's ``network`` entry.

The card stores ``{"arch": "resnet50", "args": {...}}``; only the architectures
in :data:`ARCHITECTURES` are built (a card cannot make us import an arbitrary
object), with MONAI's own constructors. The penultimate-layer embedding (the
global average pool, the input of the final ``fc`` layer) is read with a
forward hook, so the network is MONAI's, unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError
from SpineMetsCore.packages import ModelPackageError

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = ("resnet10", "resnet18", "resnet34", "resnet50")
"""MONAI ResNets a card may name (study A used ResNet50; 18/34 suit small cohorts)."""

EMBEDDING_LAYER = "global average pool (input of the final fc layer)"


def network_spec(arch: str, dims: int, in_channels: int, num_classes: int, width: float = 1.0) -> dict[str, Any]:
    """Card ``network`` entry of a MONAI ResNet classifier.

    ``width`` is MONAI's ``widen_factor`` (block widths 64-512 times it): 1.0 is
    the published network; tests use 0.125. The first convolution has stride 2
    as in the standard ResNet.
    """
    if arch not in ARCHITECTURES:
        raise InputError("--arch", f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    if dims not in (2, 3):
        raise InputError("--dims", f"must be 2 or 3, got {dims}")
    if not width > 0:
        raise InputError("width", f"must be positive, got {width}")
    return {
        "arch": arch,
        "class": f"monai.networks.nets.{arch}",
        "args": {
            "spatial_dims": int(dims),
            "n_input_channels": int(in_channels),
            "num_classes": int(num_classes),
            "widen_factor": float(width),
            "conv1_t_stride": 2,
        },
    }


def build_network(spec: Mapping[str, Any], what: str = "network") -> Any:
    """The card's network with random weights; unknown architectures are refused."""
    from monai.networks import nets

    arch = spec.get("arch")
    if arch not in ARCHITECTURES:
        raise ModelPackageError(what, f"unknown network architecture {arch!r}; allowed: {list(ARCHITECTURES)}")
    args = dict(spec.get("args") or {})
    args.pop("pretrained", None)  # weights come from the package or a local file, never a download
    try:
        return getattr(nets, arch)(pretrained=False, **args)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelPackageError(what, f"cannot build {arch} from arguments {args}: {exc}") from exc



def embedding_size(net: Any) -> int:
    """Length of the penultimate-layer embedding (the fc layer's input)."""
    return int(net.fc.in_features)


def forward_with_embedding(net: Any, x: Any) -> tuple[Any, Any]:
    """Logits and the penultimate-layer embedding of a batch, in one forward pass."""
    captured: list[Any] = []
    handle = net.fc.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        logits = net(x)
    finally:
        handle.remove()
    return logits, captured[0]


def load_pretrained(net: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy matching tensors from a local weights file into ``net``; returns the card record.

    Accepted: ``.safetensors``, or a PyTorch checkpoint read with
    ``torch.load(weights_only=True)`` (tensors only, no code runs), e.g.
    MedicalNet's ``resnet_50_23dataset.pth``. A ``module.`` prefix (DataParallel)
    is stripped; tensors whose name or shape differ (the classifier head, a
    first convolution with another channel count) are skipped and counted.
    """
    import torch

    from SpineMetsCore.fileio import sha256_file

    p = Path(path)
    if not p.is_file():
        raise InputError("--pretrained", f"weights file {p} does not exist")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise assorted errors on bad files
        raise InputError(str(p), f"cannot be read as weights ({exc})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(str(p), "does not hold a state dict of tensors")
    own = net.state_dict()
    loaded, skipped = {}, []
    for key, value in state.items():
        name = str(key).removeprefix("module.")
        if name in own and hasattr(value, "shape") and tuple(value.shape) == tuple(own[name].shape):
            loaded[name] = value
        else:
            skipped.append(name)
    if not loaded:
        raise InputError(str(p), f"no tensor matches the network (e.g. {skipped[:3]}); is it a weights file of this architecture?")
    own.update(loaded)
    net.load_state_dict(own, strict=True)
    logger.info("pretrained weights %s: %d tensor(s) loaded, %d skipped", p.name, len(loaded), len(skipped))
    return {"file": p.name, "sha256": sha256_file(p), "tensors_loaded": len(loaded), "tensors_skipped": len(skipped),
            "skipped_examples": skipped[:10]}
