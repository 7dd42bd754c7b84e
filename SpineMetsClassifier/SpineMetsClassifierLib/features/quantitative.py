"""Computed counterparts of expert-derived features, measured on the images.

Columns (all prefixed ``q_``):

* ``q_reference`` - which reference the signal ratios use (see below).
* ``q_<seq>_ratio`` - mean lesion signal / reference signal in the same sequence.
* ``q_<seq>_signal`` - ``hypo`` / ``iso`` / ``hyper`` from that ratio, when the
  reference is normal marrow (segment or automatic estimate): hypo below 0.85, hyper
  above 1.15, iso in between (:data:`SpineMetsCore.conventions.SIGNAL_THRESHOLDS`; a reader calls a lesion
  iso-intense when it is within ~15 % of the marrow, and the phantom generates its
  classes with the same limits). Counterparts of the EDF items ``t1_signal``,
  ``t2_signal``, ``stir_signal`` (FS-T2) and ``t1ce_signal``.
* ``q_lesion_volume_ml`` (the selected lesion), ``q_total_lesion_volume_ml`` (every
  lesion label), ``q_n_lesion_components`` (face-connected components of all lesions).
* With an anatomy map: ``q_n_involved_vertebrae`` (vertebral bodies touched by any
  lesion), ``q_height_loss_ratio`` of the vertebra carrying the selected lesion and
  ``q_fracture`` (``yes`` when the ratio is at least :data:`FRACTURE_THRESHOLD`).

Signal references:

* ``normal_marrow`` - mean over the anatomy's normal-marrow structure;
* ``muscle`` - mean over the muscle structure (a ratio only: signal classes are
  defined against marrow);
* ``auto`` - no anatomy needed: the voxels 3-10 mm outside the lesion whose T1 signal
  is at least the median T1 of that ring (fatty marrow is T1-brighter than the cortex,
  disc and canal around a vertebral lesion); the reference of each sequence is the
  median over those voxels. Without a T1 image the whole ring is used. On 60 phantom
  cases it reproduced the generated T1/T2/STIR classes in 98 % of cases (100 % with the
  normal-marrow segment).

Height loss (a fracture indicator after Genant's semi-quantitative method): each
vertebral body (a face-connected component of the body structures) is measured in
its own frame (column axis from the neighbouring body centroids, antero-posterior
axis in the sagittal plane) as the extent along the column axis in three bands of
its central slices: anterior (2-15 % of the depth), middle (42-58 %) and posterior
(85-98 %). The ratio is ``max over bands of 1 - height / reference height``, the
reference being the same band's mean in the complete neighbouring bodies (its own
largest height without such neighbours). Bodies cut by the field of view along the
column are not measured (NaN). Genant's grade 1 (mild) fracture begins at 20 %
height loss; on phantom cohorts the measured ratio is below 0.18 for every
unfractured body and above 0.21 for every fractured one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.conventions import ANATOMY_LABEL_VALUES, signal_class
from SpineMetsCore.errors import InputError
from SpineMetsCore.volumes import Geometry, voxel_volume_ml

from .masks import Components, bounding_slices, components, peritumoural_shell

FRACTURE_THRESHOLD = 0.20
AUTO_RING_MM: tuple[float, float] = (3.0, 10.0)
REFERENCES: tuple[str, ...] = ("normal_marrow", "muscle", "auto")
MARROW_REFERENCES: tuple[str, ...] = ("normal_marrow", "auto")
BODY_STRUCTURES: tuple[str, ...] = ("vertebral_body", "normal_marrow")
"""Anatomy structures whose union is the vertebral bodies."""
HEIGHT_BANDS: tuple[tuple[float, float], ...] = ((0.02, 0.15), (0.42, 0.58), (0.85, 0.98))
MIN_BODY_ML = 0.3
"""Smaller body components are fragments at the edge of the field of view."""


def default_anatomy_labels() -> dict[str, int]:
    """Structure name -> label value of an anatomy map (the project's convention)."""
    return dict(ANATOMY_LABEL_VALUES)


def _array(image: sitk.Image) -> np.ndarray:
    """Read-only view; only for images the caller holds (a view outlives no temporary)."""
    return sitk.GetArrayViewFromImage(image)


def structure_mask(anatomy: sitk.Image, labels: Mapping[str, int], names: Sequence[str]) -> np.ndarray:
    """Boolean array of the union of named anatomy structures."""
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise InputError("anatomy labels", f"define no structure {unknown} (known: {sorted(labels)})")
    return np.isin(_array(anatomy), [labels[n] for n in names])


def auto_marrow_region(lesion: sitk.Image, t1: sitk.Image | None, ring_mm: tuple[float, float] = AUTO_RING_MM) -> np.ndarray:
    """Automatic normal-marrow estimate: T1-bright voxels of a ring around the lesion."""
    inner = sitk.GetArrayFromImage(peritumoural_shell(lesion, ring_mm[0])) != 0
    outer = sitk.GetArrayFromImage(peritumoural_shell(lesion, ring_mm[1])) != 0
    ring = outer & ~inner
    if not ring.any():
        raise InputError("automatic normal-marrow reference", f"the {ring_mm[0]:g}-{ring_mm[1]:g} mm ring around the lesion is empty")
    if t1 is None:
        return ring
    values = _array(t1)
    return ring & (values >= np.median(values[ring]))


def resolve_reference(reference: str | None, anatomy: sitk.Image | None, labels: Mapping[str, int]) -> str:
    """The signal reference to use: ``None`` means ``normal_marrow`` with an anatomy map, else ``auto``."""
    if reference is None:
        return "normal_marrow" if anatomy is not None and "normal_marrow" in labels else "auto"
    return reference


class SignalRatios:
    """``q_reference``, ``q_<seq>_ratio`` and ``q_<seq>_signal``, one sequence at a time.

    The regions come from the masks alone; :meth:`add` keeps of each image only its
    lesion mean and its reference voxels (``auto``) or statistic, so a caller can
    drop every sequence's volume before reading the next. The values equal
    :func:`signal_ratios` over all images at once.
    """

    def __init__(
        self,
        lesion: sitk.Image,
        reference: str,
        anatomy: sitk.Image | None = None,
        labels: Mapping[str, int] | None = None,
    ) -> None:
        if reference not in REFERENCES:
            raise InputError("signal reference", f"unknown reference {reference!r}; use one of {REFERENCES}")
        self.reference = reference
        inside = _array(lesion) != 0
        if reference == "auto":
            region = auto_marrow_region(lesion, None)  # the ring; T1's bright half is chosen in result()
        else:
            if anatomy is None:
                raise InputError(f"signal reference '{reference}'", "needs an anatomy map (or use reference 'auto')")
            region = structure_mask(anatomy, labels or default_anatomy_labels(), [reference]) & ~inside
            if not region.any():
                raise InputError(f"signal reference '{reference}'", "has no voxel in this case's anatomy map")
        # flat voxel indices, ascending: the same values in the same order as the boolean masks, in far less memory
        index_type = np.int32 if inside.size < 2**31 else np.int64
        self.inside = np.flatnonzero(inside).astype(index_type)
        self.region = np.flatnonzero(region).astype(index_type)
        self._lesion_mean: dict[str, float] = {}
        self._reference: dict[str, np.ndarray | float] = {}

    def add(self, sequence: str, image: sitk.Image) -> None:
        """Take what the ratios need from one sequence on the lesion mask's grid."""
        values = _array(image).reshape(-1)  # a view
        self._lesion_mean[sequence] = float(values[self.inside].mean())
        ring = values[self.region]  # a small copy: the ring, or the reference structure
        self._reference[sequence] = ring if self.reference == "auto" else float(np.mean(ring))

    def result(self) -> dict[str, object]:
        """The columns, in the order the sequences were added."""
        selected = None
        if self.reference == "auto" and "T1" in self._reference:
            t1 = self._reference["T1"]
            selected = t1 >= np.median(t1)  # T1-bright voxels of the ring, as auto_marrow_region
        out: dict[str, object] = {"q_reference": self.reference}
        for sequence, lesion_mean in self._lesion_mean.items():
            ref = self._reference[sequence]
            if self.reference == "auto":
                ref_value = float(np.median(ref if selected is None else ref[selected]))
            else:
                ref_value = float(ref)
            ratio = lesion_mean / ref_value if ref_value != 0 else float("nan")
            out[f"q_{sequence}_ratio"] = ratio
            if self.reference in MARROW_REFERENCES:
                out[f"q_{sequence}_signal"] = signal_class(ratio)
        return out


def signal_ratios(
    images: Mapping[str, sitk.Image],
    lesion: sitk.Image,
    reference: str,
    anatomy: sitk.Image | None = None,
    labels: Mapping[str, int] | None = None,
) -> dict[str, object]:
    """``q_reference``, ``q_<seq>_ratio`` and (marrow references) ``q_<seq>_signal``.

    Every image must be on the lesion mask's grid.
    """
    ratios = SignalRatios(lesion, reference, anatomy, labels)
    for sequence, image in images.items():
        ratios.add(sequence, image)
    return ratios.result()


@dataclass
class VertebralBody:
    """One measured vertebral body (positions LPS mm)."""

    label: int
    """Value of the body in the component map :func:`vertebral_bodies` returns."""
    centroid: np.ndarray
    axis: np.ndarray
    """Unit column axis (pointing superior)."""
    n_voxels: int
    complete: bool
    """Not cut by the field of view along the column axis."""
    heights_mm: np.ndarray
    """Anterior, middle and posterior heights (:data:`HEIGHT_BANDS`)."""


def vertebral_bodies(body: sitk.Image) -> tuple[list[VertebralBody], np.ndarray]:
    """Measured bodies ordered superior to inferior, and their component map (K, J, I)."""
    lab, count = components(body)
    geometry = Geometry.from_image(body)
    matrix = geometry.ijk_to_lps()
    direction = np.reshape(geometry.direction, (3, 3))
    min_voxels = MIN_BODY_ML / voxel_volume_ml(body)
    found: list[tuple[int, np.ndarray, np.ndarray]] = []
    box = bounding_slices(lab)
    crop = lab[box] if box is not None else lab[:0]
    offset = np.array([b.start for b in box]) if box is not None else np.zeros(3, int)
    flat = crop.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(1, count + 2))
    for label in range(1, count + 1):
        idx = order[bounds[label - 1]: bounds[label]]
        kji = np.column_stack(np.unravel_index(idx, crop.shape)) + offset
        if len(idx) < min_voxels:
            lab[tuple(kji.T)] = 0
            continue
        points = (matrix @ np.c_[kji[:, ::-1].astype(float), np.ones(len(kji))].T).T[:, :3]
        found.append((label, kji, points))
    found.sort(key=lambda item: -item[2][:, 2].mean())  # LPS z points superior
    centroids = np.array([p.mean(axis=0) for _, _, p in found]) if found else np.zeros((0, 3))
    bodies: list[VertebralBody] = []
    lr = np.array([1.0, 0.0, 0.0])
    for n, (label, kji, points) in enumerate(found):
        if len(found) > 1:
            axis = centroids[max(n - 1, 0)] - centroids[min(n + 1, len(found) - 1)]
        else:
            axis = np.array([0.0, 0.0, 1.0])
        axis = axis - axis.dot(lr) * lr
        axis /= np.linalg.norm(axis)
        ap = np.cross(axis, lr)
        ap = ap if ap[1] >= 0 else -ap  # LPS y points posterior
        rel = points - centroids[n]
        column_index_axis = int(np.argmax(np.abs(direction.T @ axis)))
        along = kji[:, 2 - column_index_axis]
        complete = bool(along.min() > 0 and along.max() < lab.shape[2 - column_index_axis] - 1)
        bodies.append(VertebralBody(
            label=label,
            centroid=centroids[n],
            axis=axis,
            n_voxels=len(kji),
            complete=complete,
            heights_mm=_band_heights(rel @ axis, rel @ ap, rel @ lr),
        ))
    return bodies, lab


def lesion_vertebrae(
    bodies: Sequence[VertebralBody], body_map: np.ndarray, lesion: sitk.Image, labelled: Components | None = None
) -> list[set[int]]:
    """Indices (into ``bodies``) of the vertebrae each lesion component belongs to.

    A component belongs to every body it overlaps; one outside all bodies (e.g. in
    the posterior elements only) to the body nearest along the column axis.
    """
    if not bodies:
        return []
    lab, count = labelled if labelled is not None else components(lesion)
    index_of = {b.label: n for n, b in enumerate(bodies)}
    geometry = Geometry.from_image(lesion)
    matrix = geometry.ijk_to_lps()
    result: list[set[int]] = []
    box = bounding_slices(lab)
    offset = np.array([b.start for b in box]) if box is not None else np.zeros(3, int)
    for component in range(1, count + 1):
        kji = np.argwhere(lab[box] == component) + offset
        overlapped = {index_of[v] for v in np.unique(body_map[tuple(kji.T)]) if v in index_of}
        if not overlapped:
            centre = (matrix @ np.r_[kji[:, ::-1].mean(axis=0), 1.0])[:3]
            distance = [abs(float((centre - b.centroid) @ b.axis)) for b in bodies]
            overlapped = {int(np.argmin(distance))}
        result.append(overlapped)
    return result


def _band_heights(s: np.ndarray, a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Extent along the column axis in the anterior, middle and posterior bands of the central slices."""
    central = np.abs(r - np.median(r)) <= max(0.25 * np.ptp(r), 2.0)
    a_min, a_max = np.percentile(a[central], [0.5, 99.5])
    depth = a_max - a_min
    heights = []
    for low, high in HEIGHT_BANDS:
        band = central & (a >= a_min + low * depth) & (a <= a_min + high * depth)
        heights.append(float(np.ptp(s[band])) if band.any() else np.nan)
    return np.array(heights)


def height_loss_ratios(bodies: Sequence[VertebralBody]) -> list[float]:
    """Height-loss ratio of each body against its complete neighbours (NaN when cut off)."""
    ratios = []
    for n, body in enumerate(bodies):
        if not body.complete:
            ratios.append(float("nan"))
            continue
        neighbours = [bodies[m].heights_mm for m in (n - 1, n + 1) if 0 <= m < len(bodies) and bodies[m].complete]
        if neighbours:
            reference = np.nanmean(np.vstack(neighbours), axis=0)
        else:
            reference = np.full(len(HEIGHT_BANDS), np.nanmax(body.heights_mm))
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = 1.0 - body.heights_mm / reference
        ratios.append(float(max(np.nanmax(loss), 0.0)) if np.isfinite(loss).any() else float("nan"))
    return ratios


def lesion_measures(lesion: sitk.Image, all_lesions: sitk.Image, labelled: Components | None = None) -> dict[str, object]:
    """Volumes and component count of the lesions (``labelled``: precomputed components of all lesions)."""
    voxel_ml = voxel_volume_ml(lesion)
    _, count = labelled if labelled is not None else components(all_lesions)
    return {
        "q_lesion_volume_ml": float(_array(lesion).astype(bool).sum()) * voxel_ml,
        "q_total_lesion_volume_ml": float(_array(all_lesions).astype(bool).sum()) * voxel_ml,
        "q_n_lesion_components": int(count),
    }


def vertebral_measures(
    anatomy: sitk.Image,
    labels: Mapping[str, int],
    lesion: sitk.Image,
    all_lesions: sitk.Image,
    labelled: Components | None = None,
) -> dict[str, object]:
    """Involved vertebrae, height-loss ratio and fracture call for the selected lesion's vertebra."""
    body_array = structure_mask(anatomy, labels, BODY_STRUCTURES).astype(np.uint8)
    body = sitk.GetImageFromArray(body_array)
    body.CopyInformation(anatomy)
    bodies, body_map = vertebral_bodies(body)
    ratios = height_loss_ratios(bodies)
    involved = set().union(*lesion_vertebrae(bodies, body_map, all_lesions, labelled)) if bodies else set()
    index_sets = lesion_vertebrae(bodies, body_map, lesion)
    ratio = float("nan")
    if index_sets:
        inside = sitk.GetArrayViewFromImage(lesion) != 0
        candidates = sorted(set().union(*index_sets))
        overlap = [int((body_map[inside] == bodies[n].label).sum()) for n in candidates]
        ratio = ratios[candidates[int(np.argmax(overlap))]]
    return {
        "q_n_involved_vertebrae": len(involved),
        "q_height_loss_ratio": ratio,
        "q_fracture": "" if not np.isfinite(ratio) else ("yes" if ratio >= FRACTURE_THRESHOLD else "no"),
    }


def quantitative_features(
    images: Mapping[str, sitk.Image],
    lesion: sitk.Image,
    all_lesions: sitk.Image,
    anatomy: sitk.Image | None = None,
    labels: Mapping[str, int] | None = None,
    reference: str | None = None,
    labelled: Components | None = None,
) -> dict[str, object]:
    """Every ``q_`` column of one case; images, masks and anatomy share one grid.

    ``reference`` None means ``normal_marrow`` with an anatomy map, else ``auto``.
    """
    labels = dict(labels) if labels is not None else default_anatomy_labels()
    reference = resolve_reference(reference, anatomy, labels)
    out = signal_ratios(images, lesion, reference, anatomy, labels)
    out.update(mask_measures(lesion, all_lesions, anatomy, labels, labelled))
    return out


def mask_measures(
    lesion: sitk.Image,
    all_lesions: sitk.Image,
    anatomy: sitk.Image | None,
    labels: Mapping[str, int],
    labelled: Components | None = None,
) -> dict[str, object]:
    """The ``q_`` columns that need no image: lesion measures, and vertebral ones with an anatomy map."""
    labelled = labelled if labelled is not None else components(all_lesions)
    out = lesion_measures(lesion, all_lesions, labelled)
    if anatomy is not None and all(name in labels for name in BODY_STRUCTURES):
        out.update(vertebral_measures(anatomy, labels, lesion, all_lesions, labelled))
    return out
