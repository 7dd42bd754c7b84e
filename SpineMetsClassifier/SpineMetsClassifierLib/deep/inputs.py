"""Network inputs built from a case's sequences and its lesion mask (numpy only, no torch).

Two kinds of input, both lesion-centred and channel-first (sequences as channels):

* **2-D**: the ``n_slices`` sagittal slices with the most lesion voxels, each a
  square in-plane crop around the lesion resampled to ``size`` = (rows, cols);
  the array is ``(n_slices, C, rows, cols)``. Slices are taken at the first
  sequence's native slice positions, so thick sagittal slices are never
  interpolated across; only the in-plane grid is resampled.
* **3-D**: one cube around the lesion resampled to ``size`` = (d, h, w) voxels;
  the array is ``(1, C, d, h, w)``.

The crop grid keeps the first sequence's axes, reordered and flipped (never
rotated) to the canonical sagittal order: image axis i anterior->posterior, j
superior->inferior, k left->right. So the sagittal slice axis is always k
(array axis 0 of a ``(K, J, I)`` volume), whatever plane the scan was acquired
in, and a model sees every case the same way up. Resampling and per-channel
normalisation are Core's (:mod:`SpineMetsCore.imaging`), the same code the
U-Net uses; statistics are taken over the whole crop (3-D) or the chosen slices
together (2-D), so the lesion-to-background contrast survives normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.imaging import NORMALISATIONS, best_axis_permutation, normalise, resample_to_geometry
from SpineMetsCore.volumes import Geometry

CANONICAL_SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""LPS direction (columns = axes i, j, k): i A->P, j S->I, k L->R (the phantom's sagittal grid)."""

DEFAULT_SIZE: dict[int, tuple[int, ...]] = {2: (64, 64), 3: (32, 32, 32)}


@dataclass(frozen=True)
class InputSpec:
    """How a case becomes a network input (stored in the model card)."""

    sequences: tuple[str, ...] = ("T1", "T2", "STIR")
    dims: int = 2
    n_slices: int = 3
    """2-D: how many sagittal slices (most lesion first) each case contributes."""
    size: tuple[int, ...] | None = None
    """Voxels of the network input: (rows, cols) in 2-D, (d, h, w) along (k, j, i) in 3-D."""
    margin: float = 0.5
    """Context around the lesion box on each side, as a fraction of its largest extent."""
    min_fov_mm: float = 32.0
    """Smallest side of the crop (mm), so small lesions keep some surrounding bone."""
    lesion_label: int = 1
    """Mask value of the lesion; 0 takes every non-zero value as lesion."""
    normalisation: Mapping[str, Any] = field(default_factory=lambda: {"method": "zscore", "clip": 5.0})

    def resolved_size(self) -> tuple[int, ...]:
        size = tuple(int(s) for s in (self.size or DEFAULT_SIZE[self.dims]))
        if len(size) != self.dims or any(s < 8 for s in size):
            raise InputError("input size", f"a {self.dims}-D input needs {self.dims} sizes >= 8, got {self.size}")
        return size

    def check(self) -> InputSpec:
        """Self, after refusing settings no input can be built from."""
        if self.dims not in (2, 3):
            raise InputError("dims", f"must be 2 or 3, got {self.dims}")
        if not self.sequences or len(set(self.sequences)) != len(self.sequences):
            raise InputError("sequences", f"need distinct sequence names, got {list(self.sequences)}")
        if self.dims == 2 and self.n_slices < 1:
            raise InputError("n_slices", f"must be >= 1, got {self.n_slices}")
        if self.margin < 0 or self.min_fov_mm <= 0:
            raise InputError("margin / min_fov_mm", f"need margin >= 0 and min_fov_mm > 0, got {self.margin}, {self.min_fov_mm}")
        if self.lesion_label < 0:
            raise InputError("lesion_label", f"must be >= 0, got {self.lesion_label}")
        if self.normalisation.get("method") not in NORMALISATIONS:
            raise InputError("normalisation", f"unknown method {self.normalisation.get('method')!r}; known: {sorted(NORMALISATIONS)}")
        self.resolved_size()
        return self

    @property
    def samples_per_case(self) -> int:
        return self.n_slices if self.dims == 2 else 1

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["sequences"] = list(self.sequences)
        out["size"] = list(self.resolved_size())
        out["normalisation"] = dict(self.normalisation)
        out["tensor_axes"] = "sagittal slices (n, C, j, i)" if self.dims == 2 else "(1, C, k, j, i)"
        out["orientation"] = "canonical sagittal: i anterior->posterior, j superior->inferior, k left->right"
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputSpec:
        known = {"sequences", "dims", "n_slices", "size", "margin", "min_fov_mm", "lesion_label", "normalisation"}
        values = {k: v for k, v in data.items() if k in known}
        values["sequences"] = tuple(values.get("sequences", ()))
        if values.get("size") is not None:
            values["size"] = tuple(int(s) for s in values["size"])
        return cls(**values).check()


@dataclass
class CaseInput:
    """One case's network input and where it came from."""

    array: np.ndarray
    """float32 ``(n, C, *size)``: n = n_slices (2-D) or 1 (3-D)."""
    geometry: Geometry
    """The crop grid (LPS) the channels were resampled onto."""
    slices: list[int]
    """2-D: indices (along k of ``geometry``) of the chosen slices; 3-D: empty."""
    lesion_voxels: list[int]
    """Lesion voxels of each chosen slice on the crop grid (3-D: of the cube)."""


def lesion_array(mask: sitk.Image, label: int, what: str) -> np.ndarray:
    """Boolean (K, J, I) lesion voxels of ``mask``; an empty lesion names the values present."""
    values = sitk.GetArrayViewFromImage(mask)
    lesion = values != 0 if label == 0 else values == label
    if not lesion.any():
        present = sorted(int(v) for v in np.unique(values) if v != 0)[:10]
        wanted = "any non-zero label" if label == 0 else f"label {label}"
        raise InputError(what, f"has no lesion voxels ({wanted}; non-zero values present: {present or 'none'})")
    return lesion


def _working_direction(reference: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Crop axes (columns, LPS) and the reference axis feeding each of them."""
    d_ref = np.reshape(reference.GetDirection(), (3, 3))
    p = best_axis_permutation(d_ref, CANONICAL_SAGITTAL)
    return d_ref @ p, np.abs(p).argmax(axis=0)


def _lesion_extent(mask: sitk.Image, lesion: np.ndarray, d_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper coordinates of the lesion along the crop axes (voxel edges included), and its centroid."""
    kji = np.argwhere(lesion)
    ijk = kji[:, ::-1].astype(float)
    d_mask = np.reshape(mask.GetDirection(), (3, 3))
    spacing = np.asarray(mask.GetSpacing())
    points = np.asarray(mask.GetOrigin()) + (ijk * spacing) @ d_mask.T
    coords = points @ d_w
    half = 0.5 * (np.abs(d_w.T @ d_mask) @ spacing)
    return coords.min(axis=0) - half, coords.max(axis=0) + half, coords.mean(axis=0)


def _geometry(d_w: np.ndarray, start: np.ndarray, spacing: np.ndarray, size: Sequence[int]) -> Geometry:
    """Grid whose first voxel centre sits at ``start`` (coordinates along the crop axes)."""
    return Geometry(
        tuple(int(s) for s in size),
        tuple(float(s) for s in spacing),
        tuple(float(v) for v in d_w @ start),
        tuple(float(v) for v in d_w.ravel()),
    )


def crop_geometry(reference: sitk.Image, mask: sitk.Image, spec: InputSpec, lesion: np.ndarray) -> Geometry:
    """The lesion-centred crop grid (2-D: a slab of native sagittal slices around the lesion)."""
    d_w, feeds = _working_direction(reference)
    lo, hi, centre = _lesion_extent(mask, lesion, d_w)
    size = spec.resolved_size()
    extent = hi - lo
    box_centre = (lo + hi) / 2.0
    if spec.dims == 3:
        side = max(spec.min_fov_mm, (1.0 + 2.0 * spec.margin) * float(extent.max()))
        n = np.array(size[::-1], dtype=float)  # (i, j, k)
        spacing = side / n
        start = box_centre - (n - 1) / 2.0 * spacing
        return _geometry(d_w, start, spacing, n.astype(int))
    # 2-D: square in-plane (i, j) crop; k at the reference's own slice positions
    side = max(spec.min_fov_mm, (1.0 + 2.0 * spec.margin) * float(max(extent[0], extent[1])))
    rows, cols = size
    spacing_ij = np.array([side / cols, side / rows])
    b = int(feeds[2])  # reference axis that runs left-right
    ref_spacing = float(reference.GetSpacing()[b])
    ref_origin_k = float(np.asarray(reference.GetOrigin()) @ d_w[:, 2])
    step = float(np.reshape(reference.GetDirection(), (3, 3))[:, b] @ d_w[:, 2]) * ref_spacing  # +-spacing
    n_ref = reference.GetSize()[b]
    positions = ref_origin_k + step * np.arange(n_ref)  # native slice centres along k
    inside = np.flatnonzero((positions >= lo[2] - 1e-6) & (positions <= hi[2] + 1e-6))
    if inside.size == 0:  # lesion thinner than a slice: the nearest slice
        inside = np.array([int(np.argmin(np.abs(positions - centre[2])))])
    lo_i = max(0, int(inside.min()) - spec.n_slices)
    hi_i = min(n_ref - 1, int(inside.max()) + spec.n_slices)
    chosen = positions[lo_i:hi_i + 1]
    start_k = float(chosen.min())
    start = np.array([
        box_centre[0] - (cols - 1) / 2.0 * spacing_ij[0],
        box_centre[1] - (rows - 1) / 2.0 * spacing_ij[1],
        start_k,
    ])
    return _geometry(d_w, start, np.array([*spacing_ij, ref_spacing]), (cols, rows, len(chosen)))


def _sub_image(image: sitk.Image, geometry: Geometry, pad_voxels: int, what: str) -> sitk.Image:
    """The part of ``image`` under the crop (plus a margin for smoothing), so big scans resample fast."""
    corners = np.array([[i, j, k] for i in (-0.5, geometry.size[0] - 0.5) for j in (-0.5, geometry.size[1] - 0.5)
                        for k in (-0.5, geometry.size[2] - 0.5)])
    d = np.reshape(geometry.direction, (3, 3))
    points = np.asarray(geometry.origin) + (corners * np.asarray(geometry.spacing)) @ d.T
    d_img = np.reshape(image.GetDirection(), (3, 3))
    index = ((points - np.asarray(image.GetOrigin())) @ d_img) / np.asarray(image.GetSpacing())
    lo = np.floor(index.min(axis=0)).astype(int) - pad_voxels
    hi = np.ceil(index.max(axis=0)).astype(int) + pad_voxels
    size = np.asarray(image.GetSize())
    lo, hi = np.maximum(lo, 0), np.minimum(hi, size - 1)
    if np.any(hi < lo):
        raise InputError(what, "does not overlap the lesion crop in physical space")
    return image[int(lo[0]):int(hi[0]) + 1, int(lo[1]):int(hi[1]) + 1, int(lo[2]):int(hi[2]) + 1]


def _channel(image: sitk.Image, geometry: Geometry, what: str) -> np.ndarray:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(what, "must be a 3-D scalar image")
    sub = _sub_image(image, geometry, 4, what)
    return sitk.GetArrayFromImage(resample_to_geometry(sitk.Cast(sub, sitk.sitkFloat32), geometry))


def _top_slices(counts: np.ndarray, n: int) -> list[int]:
    """Indices of the ``n`` slices with most lesion (ties: nearer the lesion's centre), in order."""
    weights = counts.astype(float)
    centre = float((weights * np.arange(len(counts))).sum() / weights.sum()) if weights.sum() > 0 else (len(counts) - 1) / 2
    order = sorted(range(len(counts)), key=lambda k: (-counts[k], abs(k - centre), k))
    chosen = order[:n]
    while len(chosen) < n:  # fewer slices in the scan than requested: repeat the best ones
        chosen.append(order[len(chosen) % len(order)])
    return sorted(chosen)


def build_case_input(
    images: Mapping[str, sitk.Image], mask: sitk.Image, spec: InputSpec, what: str = "case",
) -> CaseInput:
    """The network input of one case (see the module docstring)."""
    spec.check()
    missing = [s for s in spec.sequences if s not in images]
    if missing:
        raise InputError(what, f"has no image for sequence(s) {missing} (model inputs: {list(spec.sequences)})")
    if mask.GetDimension() != 3:
        raise InputError(f"{what} mask", f"must be a 3-D labelmap, got {mask.GetDimension()}-D")
    lesion = lesion_array(mask, spec.lesion_label, f"{what} mask")
    reference = images[spec.sequences[0]]
    geometry = crop_geometry(reference, mask, spec, lesion)
    channels = np.stack([_channel(images[s], geometry, f"{what} sequence '{s}'") for s in spec.sequences])
    label_img = sitk.Cast(sitk.GetImageFromArray(lesion.view(np.uint8)), sitk.sitkUInt8)
    label_img.CopyInformation(mask)
    on_grid = sitk.GetArrayFromImage(sitk.Resample(
        label_img, geometry.size, sitk.Transform(), sitk.sitkNearestNeighbor, geometry.origin, geometry.spacing,
        geometry.direction, 0, sitk.sitkUInt8,
    )) > 0
    if spec.dims == 2:
        counts = on_grid.reshape(on_grid.shape[0], -1).sum(axis=1)
        chosen = _top_slices(counts, spec.n_slices)
        data = channels[:, chosen]  # (C, n, rows, cols)
        out = np.empty_like(data, dtype=np.float32)
        for c in range(data.shape[0]):
            normalise(data[c], spec.normalisation, out=out[c])
        array = np.ascontiguousarray(out.transpose(1, 0, 2, 3))
        return CaseInput(array, geometry, chosen, [int(counts[k]) for k in chosen])
    out = np.empty(channels.shape, dtype=np.float32)
    for c in range(channels.shape[0]):
        normalise(channels[c], spec.normalisation, out=out[c])
    return CaseInput(out[None], geometry, [], [int(on_grid.sum())])
