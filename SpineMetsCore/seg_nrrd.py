"""Write a labelmap as a Slicer ``.seg.nrrd`` directly, without a scene.

A ``.seg.nrrd`` is a documented NRRD file (docs: Slicer's "Segmentation file
format"): one shared labelmap layer on the reference grid plus ``Segment<N>_*``
and ``Segmentation_*`` key/value header fields. A headless command that only
writes a new file does not need MRML nodes for that: building a segmentation
node, importing the labelmap and writing it through
``vtkMRMLSegmentationStorageNode`` costs the import of slicer-core and a few
copies of the volume, for the same bytes. :func:`write_labelmap_segmentation`
writes exactly what that path writes for a new segmentation (same segment order,
names, colours, label values, extents, reference geometry, voxel type), which
``Testing/Python/test_seg_nrrd.py`` checks through Slicer's own reader.
Adding to an existing segmentation still goes through MRML
(:mod:`SpineMetsCore.segmentations`).
"""

from __future__ import annotations

import os
import secrets
import string
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError, UnsupportedFormatError
from .fileio import atomic_path, compound_suffix
from .segmentations import DEFAULT_COLORS, SegmentSpec
from .volumes import Geometry

REPRESENTATION = "Binary labelmap"
DEFAULT_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue~^^"
    "~Anatomic codes - DICOM master list~^^~^^"
)
"""The terminology tag Slicer gives a segment that names none (generic "Tissue")."""
_GEOMETRY_PARAMETER = "Reference image geometry"
_GEOMETRY_DESCRIPTION = (
    "Image geometry description string determining the geometry of the labelmap that is created in course of conversion. "
    "Can be copied from a volume, using the button."
)
_ID_ALPHABET = string.ascii_letters + string.digits


def new_segment_id() -> str:
    """A segment ID in the form Slicer generates (``S_`` + 16 random letters/digits)."""
    return "S_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _number(value: float) -> str:
    """Shortest text that reads back as the same double (``3.0`` -> ``3``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _escape(text: str) -> str:
    """NRRD key/value escaping (backslash and newline)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _unique_names(names: Sequence[str]) -> list[str]:
    """``name``, ``name_2``, ``name_3``... as a new segmentation node names repeated segments."""
    used: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 2
        while candidate in used:
            candidate = f"{name}_{n}"
            n += 1
        used.add(candidate)
        out.append(candidate)
    return out


def _box(array: np.ndarray) -> tuple[slice, ...] | None:
    """(K, J, I) slices of the smallest box holding every non-zero voxel; None when there is none."""
    out = []
    for axis in range(array.ndim):
        hits = np.flatnonzero(array.any(axis=tuple(a for a in range(array.ndim) if a != axis)))
        if hits.size == 0:
            return None
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(out)


def reference_geometry_string(geometry: Geometry) -> str:
    """Slicer's serialised image geometry: IJK-to-RAS row by row, then the extent, ``;``-separated."""
    values = [_number(v) for v in geometry.ijk_to_ras().ravel()]
    values += [str(v) for n in geometry.size for v in (0, n - 1)]
    return "".join(v + ";" for v in values)


def write_labelmap_segmentation(
    labelmap: sitk.Image,
    segments: Sequence[SegmentSpec],
    path: str | os.PathLike[str],
    compress_level: int = 6,
) -> dict[int, tuple[str, str]]:
    """Write ``labelmap`` as a new ``.seg.nrrd`` with one segment per spec, atomically.

    The file is the one a new segmentation node would be written as after
    :func:`SpineMetsCore.segmentations.labelmap_to_segmentation` (reference grid =
    the labelmap's grid; segment ``n`` in spec order holds value ``n`` in the
    shared layer). Returns label value -> (segment ID, segment name).
    """
    target = Path(path)
    if compound_suffix(target) != ".seg.nrrd":
        raise UnsupportedFormatError(str(target), "segmentations are written as .seg.nrrd")
    if labelmap.GetDimension() != 3 or labelmap.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("labelmap", "must be a 3-D scalar labelmap")
    array = sitk.GetArrayViewFromImage(labelmap)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError("labelmap", f"has voxel type {array.dtype}; an integer labelmap is required")
    if not segments:
        raise InputError("segments", "give at least one segment")
    if len({s.label for s in segments}) != len(segments):
        raise InputError("segments", "label values must be unique")

    layer = np.zeros(array.shape, dtype="<u2")
    for index, spec in enumerate(segments, start=1):
        layer[array == spec.label] = index
    geometry = Geometry.from_image(labelmap)
    box = _box(array)  # the MRML path imports the labelmap cropped to this box
    if box is None:
        extent = [v for n in geometry.size for v in (0, n - 1)]
    else:
        extent = [v for b in reversed(box) for v in (b.start, b.stop - 1)]
    extent_text = " ".join(str(v) for v in extent)

    ijk_to_lps = geometry.ijk_to_lps()
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        "type: unsigned short",
        "dimension: 3",
        "space: left-posterior-superior",
        "sizes: " + " ".join(str(n) for n in geometry.size),
        "space directions: " + " ".join("(" + ",".join(_number(v) for v in ijk_to_lps[:3, c]) + ")" for c in range(3)),
        "kinds: domain domain domain",
        "endian: little",
        "encoding: gzip",
        "space origin: (" + ",".join(_number(v) for v in geometry.origin) + ")",
    ]
    fields: list[tuple[str, str]] = []
    result: dict[int, tuple[str, str]] = {}
    names = _unique_names([s.name for s in segments])
    for index, (spec, name) in enumerate(zip(segments, names, strict=True)):
        color = spec.color or DEFAULT_COLORS[index % len(DEFAULT_COLORS)]
        sid = new_segment_id()
        result[spec.label] = (sid, name)
        prefix = f"Segment{index}_"
        fields += [
            (prefix + "Color", " ".join(f"{float(c):g}" for c in color)),
            (prefix + "ColorAutoGenerated", "0"),
            (prefix + "Extent", extent_text),
            (prefix + "ID", sid),
            (prefix + "LabelValue", str(index + 1)),
            (prefix + "Layer", "0"),
            (prefix + "Name", name),
            (prefix + "NameAutoGenerated", "0"),
            (prefix + "Tags", f"TerminologyEntry:{DEFAULT_TERMINOLOGY}|"),
        ]
    fields += [
        ("Segmentation_ContainedRepresentationNames", REPRESENTATION + "|"),
        ("Segmentation_ConversionParameters",
         f"{_GEOMETRY_PARAMETER}|{reference_geometry_string(geometry)}|{_GEOMETRY_DESCRIPTION}&"),
        ("Segmentation_MasterRepresentation", REPRESENTATION),
        ("Segmentation_ReferenceImageExtentOffset", "0 0 0"),
    ]
    lines += [f"{_escape(k)}:={_escape(v)}" for k, v in fields]
    header = ("\n".join(lines) + "\n\n").encode("utf-8")

    compressor = zlib.compressobj(compress_level, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        flat = layer.reshape(-1)
        step = 1 << 22
        for start in range(0, flat.size, step):  # a slab at a time: no second full-size buffer
            fh.write(compressor.compress(flat[start : start + step].tobytes()))
        fh.write(compressor.flush())
    return result
