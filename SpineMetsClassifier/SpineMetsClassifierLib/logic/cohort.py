"""CohortLogic: cohort-level work (manifests, features, models, statistics).

Plain Python, usable from batch scripts and tests; the Slicer module re-exports
it with a parameter node. Feature extraction works on MRML nodes (one case, as
the module's Extract button does) and on manifests (a cohort, as ``spinemets
features`` does); both go through :func:`SpineMetsClassifierLib.features.case.extract_case`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from SpineMetsCore import tables
from SpineMetsCore.dataio import read_image
from SpineMetsCore.errors import InputError
from SpineMetsCore.manifest import read_manifest
from SpineMetsCore.progress import ProgressCallback
from SpineMetsCore.runtime import MRMLRuntime, get_runtime
from SpineMetsCore.volumes import Geometry

from ..edf_form import EDF_FORM_FIELDS


class CohortLogic:
    """Cohort logic on MRML table nodes and CSV files."""

    def __init__(self, runtime: MRMLRuntime | None = None) -> None:
        self.runtime = runtime or get_runtime()

    def checkManifest(self, path: str | os.PathLike[str]) -> pd.DataFrame:
        """One row per case: which sequences it has, and whether all share the mask's grid.

        Geometry problems are reported per case (column ``problem``) rather than
        raised, so one bad case does not hide the others.
        """
        rows = read_manifest(path)
        records: list[dict[str, Any]] = []
        for row in rows:
            record: dict[str, Any] = {"case_id": row.case_id, "sequences": " ".join(sorted(row.images)), "problem": ""}
            try:
                mask_image = read_image(row.mask) if row.mask else None
                reference = mask_image
                for name, image_path in row.images.items():
                    image = read_image(image_path)
                    if reference is None:
                        reference = image
                    elif not Geometry.from_image(image).same_grid(Geometry.from_image(reference)):
                        record["problem"] += f"{name} is not on the mask's grid; "
                if mask_image is not None:
                    record["lesion_voxels"] = int((sitk.GetArrayFromImage(mask_image) > 0).sum())
            except InputError as exc:
                record["problem"] += str(exc)
            records.append(record)
        frame = pd.DataFrame.from_records(records)
        return frame

    def checkManifestToTable(self, path: str | os.PathLike[str], tableNode: Any | None = None) -> Any:
        """:meth:`checkManifest` as a table node with provenance."""
        frame = self.checkManifest(path)
        prov = tables.provenance(manifest=str(path), operation="checkManifest")
        return tables.dataframe_to_table_node(frame, name="ManifestCheck", node=tableNode, prov=prov)

    # ------------------------------------------------------------------------------
    # Features
    # ------------------------------------------------------------------------------
    def edfFromForm(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """Validated EDF record from the module form's values (keyed by parameter-node field)."""
        from ..features.edf import check_records

        record: dict[str, Any] = {}
        for item, fieldName in EDF_FORM_FIELDS.items():
            if fieldName not in form:
                continue
            value = form[fieldName]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                value = ""
            record[item] = value
        return check_records([record], what="EDF form")[0]

    def extractCaseFeatures(
        self,
        volumeNodes: Mapping[str, Any],
        lesionSegmentationNode: Any,
        lesionSegmentIds: Sequence[str] | None = None,
        anatomySegmentationNode: Any | None = None,
        paramsPath: str | os.PathLike[str] | None = None,
        caseId: str = "case",
        edf: Mapping[str, Any] | None = None,
        shellMm: float = 0.0,
        reference: str | None = None,
        radiomics: bool = True,
        tableNode: Any | None = None,
        csvPath: str | os.PathLike[str] | None = None,
    ) -> Any:
        """Every feature of one case from MRML nodes -> a one-row table node (and CSV).

        ``volumeNodes`` maps sequence names (T1, T2, STIR, T1CE, ...) to scalar volume
        nodes; the first is the grid of the quantitative features and the shape
        reference. ``lesionSegmentIds`` are the segments analysed (their union; None:
        every segment); all segments count as lesions for component and burden
        features. ``anatomySegmentationNode`` holds segments named like the anatomy
        structures (``normal_marrow``, ``muscle``, ``vertebral_body``, ...). The input
        nodes are never modified; on error nothing is created.
        """
        from SpineMetsCore.volumes import volume_to_sitk

        from ..features.case import CaseSettings, extract_case
        from ..features.edf import check_records
        from ..features.quantitative import default_anatomy_labels
        from ..features.radiomics_features import RadiomicsExtractor

        if not volumeNodes:
            raise InputError("volumeNodes", "select at least one sequence volume")
        if lesionSegmentationNode is None:
            raise InputError("lesion segmentation", "no segmentation node selected")
        edfRecord = check_records([{"case_id": caseId, **dict(edf or {})}], what="EDF values")[0] if edf else {"case_id": caseId}
        sequences = list(volumeNodes)
        images = {seq: volume_to_sitk(node) for seq, node in volumeNodes.items()}
        referenceNode = volumeNodes[sequences[0]]
        labelmap = self._lesionLabelmap(lesionSegmentationNode, lesionSegmentIds, referenceNode)
        labels = default_anatomy_labels()
        anatomy = self._anatomyLabelmap(anatomySegmentationNode, referenceNode, labels) if anatomySegmentationNode else None
        settings = CaseSettings(
            params_path=str(paramsPath) if paramsPath else None, sequences=tuple(sequences), label=1,
            shell_mm=float(shellMm), radiomics=radiomics, reference=reference, anatomy_labels=tuple(sorted(labels.items())),
        )
        extractor = RadiomicsExtractor(settings.params_path) if radiomics else None
        row = extract_case(images, labelmap, anatomy, settings, extractor, what=f"case '{caseId}'")
        frame = pd.DataFrame.from_records([{**edfRecord, **row}])
        prov = tables.provenance(
            operation="extractCaseFeatures",
            case_id=caseId,
            volumes={seq: node.GetName() for seq, node in volumeNodes.items()},
            lesion_segmentation=lesionSegmentationNode.GetName(),
            lesion_segments=list(lesionSegmentIds) if lesionSegmentIds else "all",
            anatomy_segmentation=anatomySegmentationNode.GetName() if anatomySegmentationNode else None,
            params=str(extractor.params_path) if extractor else None,
            params_sha256=extractor.params_sha256 if extractor else None,
            settings=settings.as_dict(),
        )
        if csvPath:
            tables.write_table_csv(frame, csvPath, prov)
        return tables.dataframe_to_table_node(frame, name=f"{caseId}_features", node=tableNode, prov=prov)

    @staticmethod
    def _lesionLabelmap(segmentationNode: Any, segmentIds: Sequence[str] | None, referenceNode: Any) -> sitk.Image:
        """Label 1 = the analysed segments, 2 = every other segment, on the reference grid."""
        from SpineMetsCore.segmentations import segment_ids, segmentation_to_labelmap

        allIds = segment_ids(segmentationNode)
        if not allIds:
            raise InputError(f"segmentation '{segmentationNode.GetName()}'", "has no segments")
        selected = list(segmentIds) if segmentIds else allIds
        unknown = [sid for sid in selected if sid not in allIds]
        if unknown:
            raise InputError(f"segmentation '{segmentationNode.GetName()}'", f"has no segment(s) {unknown}")
        chosen, _ = segmentation_to_labelmap(segmentationNode, referenceNode, selected)
        out = np.zeros(sitk.GetArrayViewFromImage(chosen).shape, np.uint8)
        others = [sid for sid in allIds if sid not in selected]
        if others:
            rest, _ = segmentation_to_labelmap(segmentationNode, referenceNode, others)
            out[sitk.GetArrayViewFromImage(rest) > 0] = 2
        out[sitk.GetArrayViewFromImage(chosen) > 0] = 1
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(chosen)
        return image

    @staticmethod
    def _anatomyLabelmap(segmentationNode: Any, referenceNode: Any, labels: Mapping[str, int]) -> sitk.Image:
        """Anatomy label map from segments named like the structures (e.g. ``normal_marrow``)."""
        from SpineMetsCore.segmentations import find_segment_id, segmentation_to_labelmap

        found = {name: find_segment_id(segmentationNode, name) for name in labels}
        found = {name: sid for name, sid in found.items() if sid}
        if not found:
            raise InputError(
                f"anatomy segmentation '{segmentationNode.GetName()}'",
                f"has no segment named like an anatomy structure ({', '.join(sorted(labels))})",
            )
        names = list(found)
        exported, _ = segmentation_to_labelmap(segmentationNode, referenceNode, [found[n] for n in names])
        values = sitk.GetArrayViewFromImage(exported)
        out = np.zeros(values.shape, np.uint8)
        for index, name in enumerate(names, start=1):
            out[values == index] = labels[name]
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(exported)
        return image

    def extractCohortFeatures(
        self,
        manifestPath: str | os.PathLike[str],
        outCsv: str | os.PathLike[str],
        paramsPath: str | os.PathLike[str] | None = None,
        workers: int = 1,
        sequences: Sequence[str] | None = None,
        shellMm: float = 0.0,
        reference: str | None = None,
        edfCsv: str | os.PathLike[str] | None = None,
        useCache: bool = True,
        tableNode: Any | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """:func:`~SpineMetsClassifierLib.features.cohort.extract_cohort` -> CSV + table node."""
        from ..features.case import CaseSettings
        from ..features.cohort import extract_cohort, write_feature_table

        out = Path(outCsv)
        settings = CaseSettings(
            params_path=str(paramsPath) if paramsPath else None,
            sequences=tuple(sequences) if sequences else None,
            shell_mm=float(shellMm),
            reference=reference,
        )
        cache = out.with_name(out.stem + ".cache") if useCache else None
        result = extract_cohort(manifestPath, settings, workers=workers, cache_dir=cache, edf_csv=edfCsv, progress=progress)
        write_feature_table(result, out)
        return tables.dataframe_to_table_node(result.frame, name=out.stem, node=tableNode, prov=result.provenance)
