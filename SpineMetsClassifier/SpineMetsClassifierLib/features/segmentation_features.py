"""Segmentation-derived features: volume, burden, components and location of any segment.

These let a classifier be built on a segmentation alone (the axSpA-vs-non-axSpA
design: fat-metaplasia segmentation -> features -> classifier). Columns are
``seg_<name>_<feature>``; positions are LPS millimetres (``L``, ``P``, ``S``
components, as ITK and DICOM use them):

* ``volume_ml``, ``n_components`` (face-connected), ``largest_component_ml``
* ``centroid_{L,P,S}_mm``, ``extent_{L,P,S}_mm`` (bounding box of the voxels,
  voxel size included), ``spread_{L,P,S}_mm`` (standard deviation of voxel positions)
* with a reference structure (e.g. the vertebral bodies, the sacroiliac joints):
  ``burden`` (segment volume inside the reference / reference volume),
  ``outside_fraction`` (share of the segment outside the reference),
  ``offset_{L,P,S}_mm`` (centroid minus the reference's centroid) and
  ``relpos_{L,P,S}`` (centroid inside the reference's bounding box, 0 at the
  L/P/S-minimum side, 1 at the maximum side).

An empty segment is valid (volume 0, no components, location NaN): "no fat
metaplasia" is a finding, not an error.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import GeometryError
from SpineMetsCore.volumes import Geometry, voxel_volume_ml

from .masks import Components, components, physical_points

AXES = ("L", "P", "S")


def _voxel_extent_lps(image: sitk.Image) -> np.ndarray:
    """Physical extent of one voxel along L, P and S."""
    direction = np.reshape(image.GetDirection(), (3, 3))
    return np.abs(direction) @ np.asarray(image.GetSpacing())


def segmentation_features(
    mask: sitk.Image, name: str, reference: sitk.Image | None = None, labelled: Components | None = None
) -> dict[str, float]:
    """Features of a binary ``mask`` (non-zero = segment), optionally against ``reference``.

    ``labelled`` passes the mask's components when the caller has them already.
    """
    prefix = f"seg_{name}_"
    array = sitk.GetArrayViewFromImage(mask) != 0
    voxel_ml = voxel_volume_ml(mask)
    labels, count = labelled if labelled is not None else components(array)
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(0)
    out: dict[str, float] = {
        f"{prefix}volume_ml": float(array.sum()) * voxel_ml,
        f"{prefix}n_components": int(count),
        f"{prefix}largest_component_ml": float(sizes.max()) * voxel_ml if count else 0.0,
    }
    points = physical_points(mask)
    voxel = _voxel_extent_lps(mask)
    for n, axis in enumerate(AXES):
        if len(points):
            out[f"{prefix}centroid_{axis}_mm"] = float(points[:, n].mean())
            out[f"{prefix}extent_{axis}_mm"] = float(np.ptp(points[:, n]) + voxel[n])
            out[f"{prefix}spread_{axis}_mm"] = float(points[:, n].std())
        else:
            out[f"{prefix}centroid_{axis}_mm"] = float("nan")
            out[f"{prefix}extent_{axis}_mm"] = 0.0
            out[f"{prefix}spread_{axis}_mm"] = float("nan")
    if reference is None:
        return out
    if not Geometry.from_image(reference).same_grid(Geometry.from_image(mask)):
        raise GeometryError(f"reference structure for segment '{name}'", "is not on the segment's voxel grid")
    ref = sitk.GetArrayViewFromImage(reference) != 0
    ref_points = physical_points(reference)
    inside = float((array & ref).sum())
    out[f"{prefix}burden"] = inside / float(ref.sum()) if ref.any() else float("nan")
    out[f"{prefix}outside_fraction"] = 1.0 - inside / float(array.sum()) if array.any() else float("nan")
    for n, axis in enumerate(AXES):
        if len(points) and len(ref_points):
            low, high = ref_points[:, n].min(), ref_points[:, n].max()
            centre = float(points[:, n].mean())
            out[f"{prefix}offset_{axis}_mm"] = centre - float(ref_points[:, n].mean())
            out[f"{prefix}relpos_{axis}"] = (centre - low) / (high - low) if high > low else 0.5
        else:
            out[f"{prefix}offset_{axis}_mm"] = float("nan")
            out[f"{prefix}relpos_{axis}"] = float("nan")
    return out
