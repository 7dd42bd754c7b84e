"""MRML-facing deep-classifier logic: one case's volumes and lesion segment -> a ranked table node.

Qt-free like the other Logic classes: it runs in desktop Slicer, in
``Slicer --no-main-window`` scripts and headless on slicer-core. The table has
the same columns as the classical :class:`~.prediction.PredictionLogic` table
(rank, class, probability, top3), so the module panel shows both alike.
Nothing is touched in the scene until the prediction has succeeded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from SpineMetsCore import tables
from SpineMetsCore.errors import InputError
from SpineMetsCore.runtime import MRMLRuntime, get_runtime
from SpineMetsCore.segmentations import find_segment_id, segment_to_mask, volume_to_sitk_labelmap
from SpineMetsCore.volumes import volume_to_sitk

from ..deep.inference import predict_images
from ..deep.package import DeepPackage, load_deep_package
from .prediction import MODEL_ATTRIBUTE, PREDICTED_CLASS_ATTRIBUTE, SYNTHETIC_ATTRIBUTE, TOPK

logger = logging.getLogger(__name__)


class DeepPredictionLogic:
    """Apply a deep classifier package to the volumes and lesion of one case in the scene."""

    def __init__(self, runtime: MRMLRuntime | None = None) -> None:
        self.runtime = runtime or get_runtime()
        self._cache: dict[tuple[str, int, int], DeepPackage] = {}

    def loadModel(self, modelPath: str | os.PathLike[str]) -> DeepPackage:
        """Verified package, cached while its weights file (or the .zip) is unchanged."""
        path = Path(modelPath).resolve()
        stamp = path / "weights.safetensors" if path.is_dir() else path
        if not stamp.exists():
            return load_deep_package(path)  # raises the package error naming the path
        stat = stamp.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != str(path)}
            self._cache[key] = load_deep_package(path)
        return self._cache[key]

    def lesionMask(self, lesionNode: Any, segmentName: str | None, referenceVolume: Any) -> sitk.Image:
        """The lesion as a SimpleITK labelmap: a labelmap volume node, or one segment of a segmentation."""
        if lesionNode is None:
            raise InputError("lesion", "no lesion segmentation or labelmap given")
        if lesionNode.IsA("vtkMRMLSegmentationNode"):
            segmentation = lesionNode.GetSegmentation()
            if segmentName:
                segment_id = find_segment_id(lesionNode, segmentName)
                if segment_id is None:
                    raise InputError(f"segmentation '{lesionNode.GetName()}'", f"has no segment named {segmentName!r}")
            elif segmentation.GetNumberOfSegments() == 1:
                segment_id = segmentation.GetNthSegmentID(0)
            else:
                raise InputError(f"segmentation '{lesionNode.GetName()}'",
                                 f"has {segmentation.GetNumberOfSegments()} segments; name the lesion segment")
            return segment_to_mask(lesionNode, segment_id, referenceVolume)
        if lesionNode.IsA("vtkMRMLLabelMapVolumeNode"):
            return volume_to_sitk_labelmap(lesionNode)
        raise InputError("lesion", f"expected a segmentation or labelmap volume node, got {lesionNode.GetClassName()}")

    def predictCase(self, modelPath: str | os.PathLike[str], volumeNodes: Mapping[str, Any], lesionNode: Any,
                    segmentName: str | None = None, device: str = "auto") -> dict[str, Any]:
        """``predict_images`` on the scene's nodes (sequence name -> volume node)."""
        package = self.loadModel(modelPath)
        sequences = package.inputs.sequences
        missing = [s for s in sequences if volumeNodes.get(s) is None]
        if missing:
            raise InputError("volumes", f"no volume selected for sequence(s) {missing}; the model needs {list(sequences)}")
        images = {s: volume_to_sitk(volumeNodes[s]) for s in sequences}
        mask = self.lesionMask(lesionNode, segmentName, volumeNodes[sequences[0]])
        if package.inputs.lesion_label not in (0, 1) and lesionNode.IsA("vtkMRMLSegmentationNode"):
            mask = sitk.Cast(mask > 0, sitk.sitkUInt8) * package.inputs.lesion_label
        return predict_images(package, images, mask, device=device)

    def predictToTable(self, modelPath: str | os.PathLike[str], volumeNodes: Mapping[str, Any], lesionNode: Any,
                       segmentName: str | None = None, tableNode: Any | None = None, device: str = "auto") -> Any:
        """Table node of all classes ranked by probability (rank, class, probability, top3)."""
        package = self.loadModel(modelPath)
        result = self.predictCase(modelPath, volumeNodes, lesionNode, segmentName, device)
        ranked = sorted(result["probabilities"].items(), key=lambda kv: (-kv[1], package.classes.index(kv[0])))
        frame = pd.DataFrame({
            "rank": np.arange(1, len(ranked) + 1, dtype=int),
            "class": [c for c, _ in ranked],
            "probability": [p for _, p in ranked],
            f"top{TOPK}": [int(i < TOPK) for i in range(len(ranked))],
        })
        prov = tables.provenance(
            operation="DeepPredictionLogic.predictToTable", model=str(package.source), model_sha256=package.sha256,
            task=package.card["task"], synthetic_training_data=package.synthetic_training_data, slices=result["slices"],
            volumes={s: volumeNodes[s].GetName() for s in package.inputs.sequences}, lesion=lesionNode.GetName(),
        )
        name = tableNode.GetName() if tableNode is not None else f"{package.label} deep prediction"
        node = tables.dataframe_to_table_node(frame, name=name, node=tableNode, prov=prov)
        node.SetAttribute(PREDICTED_CLASS_ATTRIBUTE, ranked[0][0])
        node.SetAttribute(SYNTHETIC_ATTRIBUTE, "true" if package.synthetic_training_data else "false")
        node.SetAttribute(MODEL_ATTRIBUTE, package.sha256)
        if package.synthetic_training_data:
            logger.warning("model %s was trained on synthetic data: not clinically valid", package.source)
        return node
