"""The synthetic phantom case shipped as Slicer sample data (checksummed files).

A new user gets a spine MRI case in one click (Sample Data module, category
"SpineMets"): four sequences (T1, T2, STIR, T1CE) and lesion and anatomy
segmentations of one case of the SpineMets phantom. The images are synthetic,
made by ``Resources/Scripts/make_phantom_sample.py``; they are not a patient.

``Resources/SampleData/SpineMetsPhantom.json`` lists each file with its SHA-256;
:func:`verify_sample` checks them before anything is loaded, and the Sample Data
module checks the same digests (``SHA256:<hex>`` checksums of the registered
source).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import sha256_file

SAMPLE_NAME = "SpineMetsPhantom"
CATEGORY = "SpineMets"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "Resources" / "SampleData"
INDEX_NAME = f"{SAMPLE_NAME}.json"
SEQUENCES = ("T1", "T2", "STIR", "T1CE")


@dataclass(frozen=True)
class SampleFile:
    """One shipped file: its name, the node name it loads as, its role and digest."""

    file: str
    node: str
    role: str
    """``T1``/``T2``/``STIR``/``T1CE`` (volumes), ``lesions`` or ``anatomy`` (segmentations)."""
    sha256: str


@dataclass
class SampleCase:
    """The loaded sample: volume nodes by sequence, the lesion and the anatomy segmentation nodes."""

    volumes: dict[str, Any]
    lesions: Any
    anatomy: Any


def read_index(folder: str | os.PathLike[str] = SAMPLE_DIR) -> tuple[list[SampleFile], dict[str, Any]]:
    """The files of the sample and its description (seed, phantom version, synthetic)."""
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise InputError(str(path), "sample data index is missing (incomplete SpineMets installation)")
    data = json.loads(path.read_text(encoding="utf-8"))
    files = [SampleFile(f["file"], f["node"], f["role"], f["sha256"]) for f in data["files"]]
    return files, data


def verify_sample(folder: str | os.PathLike[str] = SAMPLE_DIR) -> dict[str, Path]:
    """Role -> path of every sample file, after checking each SHA-256; InputError names a bad file."""
    files, _ = read_index(folder)
    out: dict[str, Path] = {}
    for entry in files:
        path = Path(folder) / entry.file
        if not path.is_file():
            raise InputError(str(path), "sample data file is missing")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise InputError(str(path), f"SHA-256 {digest} does not match the sample index ({entry.sha256}); the file is damaged")
        out[entry.role] = path
    return out


def write_index(folder: str | os.PathLike[str], roles: Mapping[str, str], description: Mapping[str, Any]) -> Path:
    """Write the index for files already in ``folder`` (role -> file name); used by the generator script."""
    from SpineMetsCore.fileio import write_text_atomic

    files = []
    for role, name in roles.items():
        files.append({"file": name, "node": f"{SAMPLE_NAME}_{role}", "role": role, "sha256": sha256_file(Path(folder) / name)})
    data = {**description, "files": files}
    return write_text_atomic(Path(folder) / INDEX_NAME, json.dumps(data, indent=1) + "\n")


def register_sample_data(folder: str | os.PathLike[str] = SAMPLE_DIR) -> bool:
    """Register the sample with desktop Slicer's Sample Data module (once); False outside the application."""
    import slicer

    if not hasattr(slicer, "app"):
        return False
    import SampleData

    files, _ = read_index(folder)
    # file:// URIs: Sample Data copies them into its cache with urllib and checks each SHA-256.
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=CATEGORY,
        sampleName=SAMPLE_NAME,
        uris=[(Path(folder) / f.file).resolve().as_uri() for f in files],
        fileNames=[f.file for f in files],
        nodeNames=[f.node for f in files],
        thumbnailFileName=str(Path(folder) / f"{SAMPLE_NAME}.png"),
        loadFileTypes=["SegmentationFile" if f.file.endswith(".seg.nrrd") else "VolumeFile" for f in files],
        checksums=[f"SHA256:{f.sha256}" for f in files],
    )
    return True
