"""U-Net inference: MONAI sliding windows with Gaussian blending, then a labelmap.

Steps: preprocessing (working grid, normalisation) -> ``sliding_window_inference``
(overlap and ``mode="gaussian"`` from the card) -> when the model's grid differs
from the first input's, softmax probabilities resampled linearly onto it (smooth
boundaries) -> argmax -> removal of connected components smaller than the card's
``postprocessing.min_component_ml`` -> UInt8 labelmap whose voxel values are the
card's label values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.progress import ProgressCallback
from SpineMetsCore.volumes import Geometry, voxel_volume_ml

from .package import ModelPackage
from .preprocessing import geometry_image, prepare_images

logger = logging.getLogger(__name__)

DEFAULT_OVERLAP = 0.5
DEFAULT_SW_BATCH = 4
DEFAULT_MIN_COMPONENT_ML = 0.0



def select_device(force_cpu: bool = False) -> Any:
    """CUDA when present (and not forced off), else CPU."""
    import torch

    if not force_cpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _n_windows(size: Sequence[int], roi: Sequence[int], overlap: float) -> int:
    """Number of windows MONAI's sliding_window_inference visits (for progress only)."""
    total = 1
    for s, r in zip(size, roi, strict=False):
        s = max(s, r)
        interval = r if s == r else max(int(r * (1 - overlap)), 1)
        total *= math.ceil((s - r) / interval) + 1 if s > r else 1
    return total


def sliding_window_logits(
    net: Any,
    array: np.ndarray,
    patch_size: Sequence[int],
    spatial_dims: int,
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = DEFAULT_SW_BATCH,
    device: Any = "cpu",
    progress: ProgressCallback | None = None,
) -> Any:
    """Blended logits ``(1, C_out, K, J, I)`` of a ``(C, K, J, I)`` array (torch tensor on CPU).

    ``patch_size`` is along image axes (i, j, k), as in the card. A 2-D model
    sees the stack as a batch of k-slices: MONAI's sliding window runs over
    every slice in one call (windows of several slices share a batch).
    """
    import torch
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(array))
    if spatial_dims == 2:
        x = x.permute(1, 0, 2, 3).contiguous()  # (K, C, J, I): a batch of slices
        roi = [int(patch_size[1]), int(patch_size[0])]
        total = x.shape[0] * _n_windows(x.shape[2:], roi, overlap)
    else:
        x = x[None]
        roi = [int(p) for p in reversed(patch_size)]
        total = _n_windows(x.shape[2:], roi, overlap)
    calls_total = max(1, math.ceil(total / sw_batch_size))
    done = [0]

    def predictor(window: Any) -> Any:
        out = net(window)
        done[0] += 1
        if progress is not None:
            progress(min(done[0], calls_total), calls_total)
        return out

    with torch.inference_mode():
        logits = sliding_window_inference(
            x.to(device),
            roi_size=roi,
            sw_batch_size=sw_batch_size,
            predictor=predictor,
            overlap=overlap,
            mode="gaussian",
            sw_device=device,
            device="cpu",
        )
    if spatial_dims == 2:
        logits = logits.permute(1, 0, 2, 3)[None]  # (1, C_out, K, J, I)
    if progress is not None:
        progress(calls_total, calls_total)
    return logits


def _bounding_slices(mask: np.ndarray) -> tuple[slice, ...]:
    """Smallest box holding every True voxel (the mask must not be empty)."""
    out = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(out)


def remove_small_components_array(arr: np.ndarray, min_voxels: int, values: Sequence[int]) -> None:
    """In place on a label array: components of each of ``values`` under ``min_voxels`` become 0.

    Components are labelled inside each label's bounding box only: lesions
    are small next to a 512 x 512 x 40 field of view.
    """
    for value in values:
        mask = arr == value
        if not mask.any():
            continue
        box = _bounding_slices(mask)
        sub = np.ascontiguousarray(mask[box])
        relabelled = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.GetImageFromArray(sub.view(np.uint8))), minimumObjectSize=int(min_voxels))
        kept = sitk.GetArrayViewFromImage(relabelled) > 0
        region = arr[box]  # a view: writes go into arr
        region[sub & ~kept] = 0


def _argmax(scores: np.ndarray) -> np.ndarray:
    """Channel index (uint8) of the largest score; one comparison when there are two channels."""
    if scores.shape[0] == 2:
        return np.greater(scores[1], scores[0]).view(np.uint8)
    return np.argmax(scores, axis=0).astype(np.uint8)


def _resample_channel(channel: np.ndarray, working: Geometry, reference: sitk.Image) -> sitk.Image:
    """One (K, J, I) score channel resampled linearly onto ``reference``'s grid (outside: 0)."""
    img = geometry_image(channel.astype(np.float32, copy=False), working)
    return sitk.Resample(img, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def scores_to_labelmap(
    scores: np.ndarray,
    label_values: Sequence[int],
    working: Geometry,
    reference: sitk.Image,
    resampled: bool,
    min_component_ml: float = DEFAULT_MIN_COMPONENT_ML,
) -> sitk.Image:
    """UInt8 labelmap on ``reference``'s grid from ``(C_out, K, J, I)`` class scores.

    Scores are probabilities when the working grid differs from the reference
    (they are interpolated); on the same grid logits do (argmax is the same).
    """
    lut = np.array([0, *label_values], dtype=np.uint8)
    identity = bool(np.array_equal(lut, np.arange(len(lut))))
    if resampled and scores.shape[0] == 2:
        # Interpolated probabilities still sum to 1, so argmax is "foreground > 0.5":
        # one channel resampled onto the (large) reference grid instead of two.
        foreground = _resample_channel(scores[1], working, reference)
        channel = np.greater(sitk.GetArrayViewFromImage(foreground), np.float32(0.5)).view(np.uint8)
        del foreground
    elif resampled:
        channel = _argmax(np.stack([sitk.GetArrayFromImage(_resample_channel(scores[c], working, reference)) for c in range(scores.shape[0])]))
    else:
        channel = _argmax(scores)
    labels_kji = channel if identity else lut[channel]
    voxel_ml = voxel_volume_ml(reference)
    if min_component_ml > 0:
        remove_small_components_array(labels_kji, int(math.ceil(min_component_ml / voxel_ml)), label_values)
    out = sitk.GetImageFromArray(labels_kji)
    out.CopyInformation(reference)
    return out


def segment_images(
    images: Mapping[str, sitk.Image],
    pkg: ModelPackage,
    force_cpu: bool = False,
    progress: ProgressCallback | None = None,
    checked: bool = False,
) -> sitk.Image:
    """Segment one case; UInt8 labelmap on the grid of ``images[pkg.input_sequences[0]]``.

    ``images`` must hold exactly the model's input sequences (InputError names
    missing and extra ones); other sequences are resampled by physical position.
    ``checked``: the caller already ran :func:`SpineMetsCore.qc.validate_image` on them.
    """
    import torch

    from SpineMetsCore.qc import validate_image

    for sequence, image in images.items():  # a single slice or a blank image: a clear error before ITK's filters
        if not checked and image.GetDimension() == 3:  # other dimensions: prepare_images names them
            validate_image(image, role="image", sequence=sequence)
    card = pkg.card
    prepared = prepare_images(images, pkg.input_sequences, pkg.spacing, card["normalisation"], card.get("orientation"))
    device = select_device(force_cpu)
    net = pkg.network(device)  # built once per package and device, reused across cases
    logger.debug("U-Net '%s' on %s; working grid %s (resampled: %s)", pkg.name, device, prepared.working.size, prepared.resampled)
    inference = card.get("inference", {})
    logits = sliding_window_logits(
        net,
        prepared.array,
        pkg.patch_size,
        pkg.spatial_dims,
        overlap=float(inference.get("overlap", DEFAULT_OVERLAP)),
        sw_batch_size=int(inference.get("sw_batch_size", DEFAULT_SW_BATCH)),
        device=device,
        progress=progress,
    )
    scores = torch.softmax(logits[0].float(), dim=0) if prepared.resampled else logits[0]
    return scores_to_labelmap(
        scores.numpy(),
        [int(lab["value"]) for lab in pkg.labels],
        prepared.working,
        prepared.reference,
        prepared.resampled,
        float(card.get("postprocessing", {}).get("min_component_ml", DEFAULT_MIN_COMPONENT_ML)),
    )
