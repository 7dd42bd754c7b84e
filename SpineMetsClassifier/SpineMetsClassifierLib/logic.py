"""SpineMetsClassifierLogic: cohort-level work (manifests, features, models, statistics).

Plain Python, usable from batch scripts and tests; the Slicer module re-exports
it with a parameter node. Later issues add feature extraction and classifiers.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import SimpleITK as sitk

from SpineMetsCore import tables
from SpineMetsCore.dataio import read_image
from SpineMetsCore.errors import InputError
from SpineMetsCore.manifest import read_manifest
from SpineMetsCore.runtime import MRMLRuntime, get_runtime
from SpineMetsCore.volumes import Geometry


class SpineMetsClassifierLogic:
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
                reference = read_image(row.mask) if row.mask else None
                for name, image_path in row.images.items():
                    image = read_image(image_path)
                    if reference is None:
                        reference = image
                    elif not Geometry.from_image(image).same_grid(Geometry.from_image(reference)):
                        record["problem"] += f"{name} is not on the mask's grid; "
                if row.mask is not None:
                    mask = sitk.GetArrayViewFromImage(read_image(row.mask))
                    record["lesion_voxels"] = int((mask > 0).sum())
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
