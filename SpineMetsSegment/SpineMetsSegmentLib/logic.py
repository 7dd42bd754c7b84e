"""SpineMetsSegmentLogic: loading cases into MRML and managing lesion segments.

The class is plain Python (no ScriptedLoadableModuleLogic base) so that
``Slicer --no-main-window --python-script`` batch scripts, the ``spinemets``
command and the tests all use the same object; the Slicer module re-exports it.
MRML-facing method names follow Slicer's camelCase.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore import dataio, segmentations, volumes
from SpineMetsCore.errors import GeometryError, InputError
from SpineMetsCore.manifest import CaseRow
from SpineMetsCore.runtime import MRMLRuntime, get_runtime

logger = logging.getLogger(__name__)

LESION_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.20, 0.20),
    (0.95, 0.60, 0.10),
    (0.85, 0.30, 0.70),
)


@dataclass
class LoadedCase:
    """Volume nodes (by sequence) and the lesion segmentation of one case."""

    case_id: str
    volumes: dict[str, Any]
    segmentation: Any | None = None
    segment_ids: dict[int, str] = field(default_factory=dict)


class SpineMetsSegmentLogic:
    """Lesion segmentation logic working on MRML volume and segmentation nodes."""

    def __init__(self, runtime: MRMLRuntime | None = None) -> None:
        self.runtime = runtime or get_runtime()

    @property
    def scene(self) -> Any:
        return self.runtime.scene

    def loadSequences(self, paths: Mapping[str, str | os.PathLike[str]]) -> dict[str, Any]:
        """Load one volume node per sequence; all must overlap the first physically."""
        if not paths:
            raise InputError("sequences", "no image given")
        nodes: dict[str, Any] = {}
        reference: sitk.Image | None = None
        try:
            for name, path in paths.items():
                node = dataio.read_volume(path, name=name)
                nodes[name] = node
                image = volumes.volume_to_sitk(node)
                if reference is None:
                    reference = image
                elif not volumes.images_overlap(image, reference):
                    raise GeometryError(f"sequence '{name}' ({path})", f"does not overlap sequence '{next(iter(paths))}'")
        except Exception:
            for node in nodes.values():
                self.scene.RemoveNode(node)
            raise
        return nodes

    def importLabelmapAsSegments(
        self,
        labelmap: str | os.PathLike[str] | sitk.Image,
        referenceVolume: Any,
        names: Mapping[int, str] | None = None,
        segmentationNode: Any | None = None,
        replaceExisting: bool = False,
        colors: Sequence[tuple[float, float, float]] = LESION_COLORS,
    ) -> tuple[Any, dict[int, str]]:
        """Add one named segment per label of ``labelmap`` (resampled to the reference by position)."""
        image = dataio.read_image(labelmap) if not isinstance(labelmap, sitk.Image) else labelmap
        ref_image = volumes.volume_to_sitk(referenceVolume)
        if not volumes.Geometry.from_image(image).same_grid(volumes.Geometry.from_image(ref_image)):
            image = volumes.resample_like(image, ref_image, labelmap=True, name=f"labelmap {labelmap}")
        labels = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(image)) if v != 0]
        names = dict(names) if names else {v: f"Lesion {v}" for v in labels}
        specs = [
            segmentations.SegmentSpec(v, names.get(v, f"Lesion {v}"), colors[i % len(colors)])
            for i, v in enumerate(labels)
        ]
        node = segmentationNode or segmentations.new_segmentation_node("Lesions", referenceVolume)
        node, ids = segmentations.labelmap_to_segmentation(
            sitk.Cast(image, sitk.sitkUInt16), specs, seg_node=node, replace_existing=replaceExisting
        )
        return node, ids

    def loadCase(self, row: CaseRow, sequences: Sequence[str] | None = None) -> LoadedCase:
        """Load a manifest row: its sequences and, if present, its lesion mask as segments."""
        chosen = list(sequences) if sequences else list(row.images)
        missing = [s for s in chosen if s not in row.images]
        if missing:
            raise InputError(f"case '{row.case_id}'", f"has no image for sequence(s) {missing}")
        nodes = self.loadSequences({s: row.images[s] for s in chosen})
        loaded = LoadedCase(row.case_id, nodes)
        if row.mask is not None:
            seg, ids = self.importLabelmapAsSegments(row.mask, nodes[chosen[0]])
            seg.SetName(f"{row.case_id}_lesions")
            loaded.segmentation, loaded.segment_ids = seg, ids
        return loaded

    def segmentVolumesMl(self, segmentationNode: Any, referenceVolume: Any) -> dict[str, float]:
        """Volume (mL) of every segment, keyed by segment name."""
        names = segmentations.segment_names(segmentationNode)
        return {
            names[sid]: segmentations.segment_volume_ml(segmentationNode, sid, referenceVolume)
            for sid in segmentations.segment_ids(segmentationNode)
        }

    def saveSegmentation(self, segmentationNode: Any, path: str | os.PathLike[str]) -> Path:
        """Write ``.seg.nrrd`` atomically."""
        return dataio.write_segmentation(segmentationNode, path)
