"""Networks a model card may name: MONAI's own classes, used as they are.

The card stores ``{"class": "monai.networks.nets.UNet", "args": {...}}``; only
classes in :data:`ALLOWED_NETWORKS` are built (a card cannot make us import an
arbitrary object). ``spatial_dims`` 3 gives a volumetric U-Net; 2 gives a
slice-wise U-Net applied to each slice of a thick-slice stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from SpineMetsCore.packages import ModelPackageError

UNET_CLASS = "monai.networks.nets.UNet"


def _monai_unet() -> Any:
    from monai.networks.nets import UNet

    return UNet


def _monai_basic_unet() -> Any:
    from monai.networks.nets import BasicUNet

    return BasicUNet


ALLOWED_NETWORKS = {
    UNET_CLASS: _monai_unet,
    "monai.networks.nets.BasicUNet": _monai_basic_unet,
}


def unet_spec(
    dim: int,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int] = (8, 16, 32, 64),
    strides: Sequence[int | Sequence[int]] | None = None,
    num_res_units: int = 1,
    dropout: float = 0.0,
    norm: str = "instance",
) -> dict[str, Any]:
    """Card ``network`` entry of a MONAI UNet (3-D volumetric or 2-D slice-wise).

    ``strides`` defaults to 2 between every level. Per-axis strides are MONAI
    arguments and so follow the tensor axes (k, j, i): for a thick-slice stack
    ``[[1, 2, 2], [2, 2, 2], [2, 2, 2]]`` keeps the few slices from being
    pooled away at the first level.
    """
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    strides = [2] * (len(channels) - 1) if strides is None else [list(s) if isinstance(s, Sequence) else int(s) for s in strides]
    if len(strides) != len(channels) - 1:
        raise ValueError(f"need {len(channels) - 1} strides for channels {list(channels)}, got {strides}")
    return {
        "class": UNET_CLASS,
        "args": {
            "spatial_dims": dim,
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "channels": [int(c) for c in channels],
            "strides": strides,
            "num_res_units": int(num_res_units),
            "dropout": float(dropout),
            "norm": norm,
        },
    }


def build_network(spec: Mapping[str, Any], what: str = "network") -> Any:
    """Instantiate the card's network (weights random); refuses unknown classes."""
    cls_name = spec.get("class")
    if cls_name not in ALLOWED_NETWORKS:
        raise ModelPackageError(what, f"unknown network class {cls_name!r}; allowed: {sorted(ALLOWED_NETWORKS)}")
    cls = ALLOWED_NETWORKS[cls_name]()
    args = dict(spec.get("args", {}))
    try:
        return cls(**args)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelPackageError(what, f"cannot build {cls_name} from arguments {args}: {exc}") from exc

