"""Tables: pandas DataFrame <-> vtkMRMLTableNode and CSV, each with provenance.

Every table SpineMets writes carries how it was made (SpineMets and library
versions, inputs, settings), as PyRadiomics does with its ``diagnostics_``
columns: on a table node as the ``SpineMets.Provenance`` attribute (JSON, saved
with the scene) and next to a CSV as ``<name>.provenance.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .fileio import atomic_path, write_text_atomic
from .runtime import get_scene

PROVENANCE_ATTRIBUTE = "SpineMets.Provenance"
_LIBRARIES = ("spinemets", "numpy", "scipy", "SimpleITK", "slicer-core", "pandas", "scikit-learn", "skops", "pyradiomics-bhklab",
              "torch", "monai", "safetensors", "shap")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that can change a number in a table."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def provenance(**details: Any) -> dict[str, Any]:
    """Provenance record: time (UTC), versions and caller-supplied details (inputs, settings)."""
    return {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **details,
    }


def dataframe_to_table_node(
    frame: pd.DataFrame, name: str = "Table", node: Any | None = None, prov: Mapping[str, Any] | None = None
) -> Any:
    """Fill a (new or given) vtkMRMLTableNode; numeric columns stay numeric."""
    import vtk

    if node is None:
        node = get_scene().AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    table.Initialize()
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
            arr = vtk.vtkIntArray()
            for v in values:
                arr.InsertNextValue(int(v))
        elif pd.api.types.is_numeric_dtype(values):
            arr = vtk.vtkDoubleArray()
            for v in values:
                arr.InsertNextValue(float(v) if v is not None else np.nan)
        else:
            arr = vtk.vtkStringArray()
            for v in values:
                arr.InsertNextValue("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        arr.SetName(str(column))
        table.AddColumn(arr)
    table.Modified()
    if prov is not None:
        node.SetAttribute(PROVENANCE_ATTRIBUTE, json.dumps(prov, default=str))
    return node


def table_node_to_dataframe(node: Any) -> pd.DataFrame:
    """Read a vtkMRMLTableNode back into a DataFrame."""
    table = node.GetTable()
    data = {}
    for c in range(table.GetNumberOfColumns()):
        column = table.GetColumn(c)
        n = column.GetNumberOfTuples() if hasattr(column, "GetNumberOfTuples") else column.GetNumberOfValues()
        if column.IsA("vtkStringArray"):
            data[column.GetName()] = [column.GetValue(i) for i in range(n)]
        else:
            data[column.GetName()] = [column.GetValue(i) for i in range(n)]
    return pd.DataFrame(data)


def write_table_csv(frame: pd.DataFrame, path: str | os.PathLike[str], prov: Mapping[str, Any] | None = None) -> Path:
    """CSV written atomically, with ``<stem>.provenance.json`` beside it when given."""
    target = Path(path)
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    if prov is not None:
        write_text_atomic(target.with_name(target.stem + ".provenance.json"), json.dumps(prov, indent=2, default=str))
    return target
