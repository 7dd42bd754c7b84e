"""Segmentation node <-> labelmap, with named, coloured segments.

Segments are created through MRML's own segmentation logic
(``ImportLabelmapToSegmentationNode`` / ``ExportSegmentsToLabelmapNode``), so
the reference geometry, extents and layers are exactly those desktop Slicer
would produce. Label value ``v`` in a labelmap maps to one named segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import GeometryError, InputError
from .runtime import get_scene, remove_node_tree
from .volumes import Geometry, sitk_to_volume, volume_to_sitk, voxel_volume_ml

# Colours for segments that do not name one (Slicer's GenericAnatomyColors-like).
DEFAULT_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.95, 0.35, 0.25),
    (0.30, 0.70, 0.95),
    (0.95, 0.85, 0.30),
    (0.45, 0.85, 0.45),
    (0.75, 0.45, 0.90),
    (0.95, 0.60, 0.20),
    (0.55, 0.55, 0.55),
)


@dataclass(frozen=True)
class SegmentSpec:
    """Name and colour of the segment built from one label value."""

    label: int
    name: str
    color: tuple[float, float, float] | None = None


def _string_array(values: Iterable[str]) -> Any:
    import vtk

    arr = vtk.vtkStringArray()
    for v in values:
        arr.InsertNextValue(v)
    return arr


def segment_ids(seg_node: Any) -> list[str]:
    """Segment IDs in display order."""
    seg = seg_node.GetSegmentation()
    return [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]


def segment_names(seg_node: Any) -> dict[str, str]:
    """Map segment ID -> name."""
    seg = seg_node.GetSegmentation()
    return {sid: seg.GetSegment(sid).GetName() for sid in segment_ids(seg_node)}


def find_segment_id(seg_node: Any, name: str) -> str | None:
    """ID of the segment called ``name`` (None if absent)."""
    sid = seg_node.GetSegmentation().GetSegmentIdBySegmentName(name)
    return sid or None


def unique_segment_name(seg_node: Any, name: str) -> str:
    """``name`` if unused, else ``name_2``, ``name_3``... so nothing is overwritten silently."""
    existing = set(segment_names(seg_node).values())
    if name not in existing:
        return name
    n = 2
    while f"{name}_{n}" in existing:
        n += 1
    return f"{name}_{n}"


def new_segmentation_node(name: str = "Segmentation", reference_volume: Any | None = None) -> Any:
    """Empty segmentation node with display nodes and optional reference geometry."""
    node = get_scene().AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if reference_volume is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    return node


def labelmap_to_segmentation(
    labelmap: sitk.Image,
    segments: Sequence[SegmentSpec] | Mapping[int, str] | None = None,
    seg_node: Any | None = None,
    name: str = "Segmentation",
    replace_existing: bool = False,
) -> tuple[Any, dict[int, str]]:
    """Add one segment per label value of ``labelmap`` to a (new or given) segmentation node.

    Existing segments other than the ones created are never touched. A segment whose
    name already exists is replaced only when ``replace_existing``; otherwise the new
    one gets a unique name. Returns the node and a map label value -> segment ID.
    """
    import slicer

    if labelmap.GetDimension() != 3:
        raise InputError("labelmap", f"is {labelmap.GetDimension()}-D; a 3-D labelmap is required")
    array = sitk.GetArrayViewFromImage(labelmap)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError("labelmap", f"has voxel type {array.dtype}; an integer labelmap is required")
    present = [int(v) for v in np.unique(array) if v != 0]
    specs = _normalise_specs(segments, present)

    label_node = sitk_to_volume(sitk.Cast(labelmap, sitk.sitkUInt16), name="__spinemets_tmp_label__", labelmap=True)
    try:
        if seg_node is None:
            seg_node = new_segmentation_node(name)
        if seg_node.GetNodeReference(seg_node.GetReferenceImageGeometryReferenceRole()) is None:
            seg_node.SetReferenceImageGeometryParameterFromVolumeNode(label_node)
        seg = seg_node.GetSegmentation()

        # Remap labels to 1..n in spec order so ImportLabelmapToSegmentationNode fills the IDs we made.
        remapped = np.zeros(array.shape, dtype=np.uint16)
        ids: list[str] = []
        label_to_id: dict[int, str] = {}
        to_replace: dict[str, tuple[str, str]] = {}  # new id -> (old id, final name)
        for index, spec in enumerate(specs, start=1):
            remapped[array == spec.label] = index
            existing = find_segment_id(seg_node, spec.name)
            # New segments always get a unique name first; a replaced segment is removed
            # only after the import succeeded, so a failure never loses it.
            segment_name = unique_segment_name(seg_node, spec.name)
            color = spec.color or DEFAULT_COLORS[(index - 1) % len(DEFAULT_COLORS)]
            sid = seg.AddEmptySegment("", segment_name, list(color))
            segment = seg.GetSegment(sid)
            segment.SetNameAutoGenerated(False)
            segment.SetColorAutoGenerated(False)
            ids.append(sid)
            label_to_id[spec.label] = sid
            if existing and replace_existing:
                to_replace[sid] = (existing, spec.name)
        if not ids:
            return seg_node, {}
        slicer.util.updateVolumeFromArray(label_node, remapped)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            label_node, seg_node, _string_array(ids)
        )
        if not ok:
            for sid in ids:
                seg.RemoveSegment(sid)
            raise InputError(f"segmentation '{seg_node.GetName()}'", "labelmap import failed")
        for sid, (old_id, final_name) in to_replace.items():
            seg.RemoveSegment(old_id)
            seg.GetSegment(sid).SetName(final_name)
        return seg_node, label_to_id
    finally:
        remove_node_tree(label_node)


def _normalise_specs(
    segments: Sequence[SegmentSpec] | Mapping[int, str] | None, present: list[int]
) -> list[SegmentSpec]:
    if segments is None:
        return [SegmentSpec(v, f"Segment_{v}") for v in present]
    if isinstance(segments, Mapping):
        return [SegmentSpec(int(k), str(v)) for k, v in segments.items()]
    return list(segments)


def segmentation_to_labelmap(
    seg_node: Any,
    reference: Any | sitk.Image | None = None,
    ids: Sequence[str] | None = None,
) -> tuple[sitk.Image, dict[int, str]]:
    """Labelmap of the given segments (all by default) on a reference grid.

    ``reference`` is a volume node or a SimpleITK image; without one, the
    segmentation's own reference geometry is used. Returns the image and a map
    label value -> segment name (label ``n`` = ``n``-th requested segment;
    overlapping segments: later ones win, as in Slicer's export).
    """
    import slicer

    scene = get_scene()
    ids = list(ids) if ids is not None else segment_ids(seg_node)
    names = segment_names(seg_node)
    unknown = [sid for sid in ids if sid not in names]
    if unknown:
        raise InputError(f"segmentation '{seg_node.GetName()}'", f"has no segment(s) {unknown}")
    temp_ref = None
    if isinstance(reference, sitk.Image):
        temp_ref = sitk_to_volume(reference, name="__spinemets_tmp_ref__")
        ref_node = temp_ref
    else:
        ref_node = reference
    out = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__spinemets_tmp_export__")
    try:
        if ref_node is not None:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                seg_node, _string_array(ids), out, ref_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
            )
        else:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                seg_node, _string_array(ids), out, None, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
            )
        if not ok or out.GetImageData() is None:
            raise InputError(f"segmentation '{seg_node.GetName()}'", "could not be exported to a labelmap")
        image = volume_to_sitk_labelmap(out)
        return image, {i + 1: names[sid] for i, sid in enumerate(ids)}
    finally:
        remove_node_tree(out)
        if temp_ref is not None:
            remove_node_tree(temp_ref)


def volume_to_sitk_labelmap(node: Any) -> sitk.Image:
    """Labelmap node -> SimpleITK UInt16 image (geometry preserved)."""
    image = volume_to_sitk(node)
    return sitk.Cast(image, sitk.sitkUInt16)


def segment_to_mask(seg_node: Any, segment_id: str, reference: Any | sitk.Image) -> sitk.Image:
    """Binary UInt8 mask of one segment on the reference grid."""
    image, _ = segmentation_to_labelmap(seg_node, reference, [segment_id])
    return sitk.Cast(image > 0, sitk.sitkUInt8)


def segment_volume_ml(seg_node: Any, segment_id: str, reference: Any | sitk.Image) -> float:
    """Segment volume in millilitres measured on the reference grid."""
    mask = segment_to_mask(seg_node, segment_id, reference)
    return float(sitk.GetArrayViewFromImage(mask).sum()) * voxel_volume_ml(mask)


def create_closed_surfaces(seg_node: Any) -> dict[str, Any]:
    """Build the closed-surface representation; return segment ID -> vtkPolyData."""
    import vtk

    if not seg_node.CreateClosedSurfaceRepresentation():
        raise InputError(f"segmentation '{seg_node.GetName()}'", "closed surface conversion failed")
    surfaces = {}
    for sid in segment_ids(seg_node):
        poly = vtk.vtkPolyData()
        seg_node.GetClosedSurfaceRepresentation(sid, poly)
        surfaces[sid] = poly
    return surfaces


def check_same_grid(a: sitk.Image, b: sitk.Image, what: str) -> None:
    """Raise GeometryError naming ``what`` when two images are on different grids."""
    if not Geometry.from_image(a).same_grid(Geometry.from_image(b)):
        raise GeometryError(what, "is not on the same voxel grid as the reference image")
