"""Read and write volumes and segmentations through MRML storage nodes.

NRRD, NIfTI (.nii/.nii.gz), MetaImage and ``.seg.nrrd`` go through the same
storage nodes desktop Slicer uses, so what a batch script writes is what
Slicer's Add Data dialog reads. DICOM series are read and written with
SimpleITK/GDCM (slicer-core has no DICOM database). Every writer is atomic.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import CorruptFileError, ImageQualityError, InputError, UnsupportedFormatError
from .fileio import atomic_dir, atomic_path, compound_suffix
from .native import captured_native_messages, preserved_locale
from .runtime import get_scene, remove_node_tree
from .volumes import sitk_to_volume, volume_to_sitk

logger = logging.getLogger(__name__)

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
SEGMENTATION_EXTENSIONS = (".seg.nrrd",)


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(str(p), "does not exist")
    return p


def is_dicom_dir(path: str | os.PathLike[str]) -> bool:
    """True for a directory holding at least one DICOM series."""
    p = Path(path)
    return p.is_dir() and bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p)))


def read_image(path: str | os.PathLike[str], series_uid: str | None = None, *, sequence: str | None = None) -> sitk.Image:
    """Read a 3-D scalar image as SimpleITK (files or a DICOM series folder), checked.

    Truncated or damaged files, non-3-D or multi-component images and NaN/infinite
    voxels raise an :class:`InputError` naming the file (and ``sequence`` when given);
    the libraries' own messages are quoted in the error, never printed raw.
    """
    p = _existing(path)
    what = _label(p, sequence)
    if p.is_dir():
        image = read_dicom_series(p, series_uid)
    else:
        ext = compound_suffix(p)
        if ext not in VOLUME_EXTENSIONS + SEGMENTATION_EXTENSIONS:
            raise UnsupportedFormatError(what, f"unknown image extension '{ext}' (expected one of {VOLUME_EXTENSIONS} or a DICOM folder)")
        check_file_complete(p)
        with captured_native_messages() as native:
            try:
                image = sitk.ReadImage(str(p))
            except RuntimeError as exc:
                failure: RuntimeError | None = exc
            else:
                failure = None
        if failure is not None:
            reason = native.reason() or _first_line(failure)
            raise CorruptFileError(what, f"cannot be read as an image ({reason}); check that it is a complete {ext} file") from failure
        native.log_warnings(what)
    _check_3d(image, what)
    check_finite(image, what)
    return image


def _label(p: Path, sequence: str | None) -> str:
    return f"{p} (sequence {sequence})" if sequence else str(p)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _check_3d(image: sitk.Image, what: str) -> None:
    if image.GetDimension() != 3 or min(image.GetSize()) < 1:
        raise InputError(what, f"is a {image.GetDimension()}-D image of size {image.GetSize()}; a 3-D volume is required")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(what, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar volume is required")


def read_volume(
    path: str | os.PathLike[str],
    name: str | None = None,
    labelmap: bool = False,
    series_uid: str | None = None,
    *,
    sequence: str | None = None,
    display: bool = True,
) -> Any:
    """Load a file (or DICOM folder) into a new scalar/labelmap volume node, checked as :func:`read_image`.

    ``display=False`` (headless batch work) skips the display nodes: creating one
    computes the volume's auto window/level over every voxel (~0.3 s for 512 x 512 x 40).
    """
    p = _existing(path)
    what = _label(p, sequence)
    node_name = name or _stem(p)
    if p.is_dir():
        return sitk_to_volume(read_dicom_series(p, series_uid), name=node_name, labelmap=labelmap, display=display)
    ext = compound_suffix(p)
    if ext in SEGMENTATION_EXTENSIONS:
        raise InputError(what, "is a segmentation; use read_segmentation")
    if ext not in VOLUME_EXTENSIONS:
        raise UnsupportedFormatError(what, f"unknown volume extension '{ext}' (expected one of {VOLUME_EXTENSIONS})")
    check_file_complete(p)
    scene = get_scene()
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode", node_name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(p))
    storage.SetSingleFile(True)
    try:
        with captured_native_messages() as native:
            try:
                ok = storage.ReadData(node)
            except Exception:  # noqa: BLE001 - VTK wrappers raise varied errors
                ok = 0
        image_data = node.GetImageData()
        if not ok or image_data is None:
            _explain_unreadable(p, sequence, native.reason(), ext)
        native.log_warnings(what)
        dims = image_data.GetDimensions()
        components = image_data.GetNumberOfScalarComponents()
        if components != 1 or min(dims) < 1:
            raise InputError(what, f"is not a 3-D scalar volume (dimensions {dims}, {components} components)")
        scalars = image_data.GetPointData().GetScalars()
        if scalars is not None and scalars.GetDataType() in (10, 11):  # VTK_FLOAT, VTK_DOUBLE
            from vtk.util.numpy_support import vtk_to_numpy

            values = vtk_to_numpy(scalars)
            if not np.isfinite(values).all():
                count = int((~np.isfinite(values)).sum())
                raise ImageQualityError(
                    what, f"has {count} NaN or infinite voxel(s); replace them (e.g. with 0) in the export or conversion step, then try again"
                )
    except InputError:
        remove_node_tree(node)
        remove_node_tree(storage)
        raise
    node.SetAndObserveStorageNodeID(storage.GetID())
    if display:
        node.CreateDefaultDisplayNodes()
    logger.debug("read %s into node %s", p, node.GetID())
    return node


def _check_header_readable(p: Path) -> None:
    """Parse the image header with SimpleITK; raise :class:`CorruptFileError` if it is malformed."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    with captured_native_messages() as native:
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            failure: RuntimeError | None = exc
        else:
            failure = None
    if failure is not None:
        raise CorruptFileError(str(p), f"has an unreadable header ({native.reason() or _first_line(failure)}); "
                               "check that it is a complete file of its type") from failure


def _explain_unreadable(p: Path, sequence: str | None, reason: str, ext: str) -> None:
    """Raise the clearest error for a file MRML could not read: SimpleITK's checks usually name the cause."""
    read_image(p, sequence=sequence)  # raises for damaged, 2-D, vector or NaN images
    reason = re.sub(r"^\w+: \w+::\w+: ", "", reason)
    raise CorruptFileError(
        _label(p, sequence), "cannot be read as a volume" + (f" ({reason})" if reason else "") + f"; check that it is a complete {ext} image file"
    )


def _stem(p: Path) -> str:
    ext = compound_suffix(p)
    return p.name[: -len(ext)] if ext else p.name


def write_volume(node: Any, path: str | os.PathLike[str], compress: bool = True) -> Path:
    """Write a volume node to NRRD/NIfTI/MetaImage (atomically) or a DICOM folder."""
    target = Path(path)
    ext = compound_suffix(target)
    if ext == "" or target.suffix == "":
        write_dicom_series(volume_to_sitk(node), target)
        return target
    if ext not in VOLUME_EXTENSIONS:
        raise UnsupportedFormatError(str(target), f"unknown volume extension '{ext}' (expected one of {VOLUME_EXTENSIONS})")
    scene = get_scene()
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    try:
        with atomic_path(target) as tmp:
            storage.SetFileName(str(tmp))
            storage.SetUseCompression(bool(compress))
            if not storage.WriteData(node):
                raise InputError(str(target), f"volume '{node.GetName()}' could not be written")
    finally:
        scene.RemoveNode(storage)
    return target


def read_segmentation(path: str | os.PathLike[str], name: str | None = None) -> Any:
    """Load a ``.seg.nrrd`` (or a labelmap file, one segment per label) into a segmentation node."""
    p = _existing(path)
    ext = compound_suffix(p)
    scene = get_scene()
    if ext not in SEGMENTATION_EXTENSIONS:
        if ext in VOLUME_EXTENSIONS:
            from .segmentations import labelmap_to_segmentation

            node, _ = labelmap_to_segmentation(sitk.Cast(read_image(p), sitk.sitkUInt16), name=name or _stem(p))
            return node
        raise UnsupportedFormatError(str(p), f"unknown segmentation extension '{ext}' (expected .seg.nrrd or a labelmap volume)")
    check_file_complete(p)
    _check_header_readable(p)  # a malformed header aborts MRML's segmentation reader (SIGABRT), so check first
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or _stem(p))
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(p))
    with captured_native_messages() as native:
        try:
            ok = storage.ReadData(node)
        except Exception:  # noqa: BLE001
            ok = 0
    if not ok:
        remove_node_tree(node)
        remove_node_tree(storage)
        reason = native.reason()
        raise CorruptFileError(str(p), "cannot be read as a Slicer segmentation (.seg.nrrd)" + (f" ({reason})" if reason else ""))
    native.log_warnings(str(p))
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node


def write_segmentation(node: Any, path: str | os.PathLike[str]) -> Path:
    """Write a segmentation node to ``.seg.nrrd`` atomically."""
    target = Path(path)
    if compound_suffix(target) not in SEGMENTATION_EXTENSIONS:
        raise UnsupportedFormatError(str(target), "segmentations are written as .seg.nrrd")
    scene = get_scene()
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    try:
        with atomic_path(target) as tmp:
            storage.SetFileName(str(tmp))
            if not storage.WriteData(node):
                raise InputError(str(target), f"segmentation '{node.GetName()}' could not be written")
    finally:
        scene.RemoveNode(storage)
    return target


def read_dicom_series(folder: str | os.PathLike[str], series_uid: str | None = None) -> sitk.Image:
    """Read one DICOM series; a folder with several series needs ``series_uid``."""
    p = _existing(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p))
    if not ids:
        raise InputError(str(p), "contains no DICOM series")
    if series_uid is None:
        if len(ids) > 1:
            raise InputError(str(p), f"contains {len(ids)} DICOM series {list(ids)}; choose one with series_uid")
        series_uid = ids[0]
    elif series_uid not in ids:
        raise InputError(str(p), f"has no DICOM series {series_uid} (found {list(ids)})")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(p), series_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    with captured_native_messages() as native:
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            failure: RuntimeError | None = exc
        else:
            failure = None
    if failure is not None:
        raise CorruptFileError(str(p), f"DICOM series {series_uid} cannot be read ({native.reason() or _first_line(failure)})") from failure
    native.log_warnings(str(p))
    _check_3d(image, str(p))
    check_finite(image, str(p))
    return image


def write_dicom_series(
    image: sitk.Image,
    folder: str | os.PathLike[str],
    series_description: str = "SpineMets",
    patient_id: str = "ANON",
    modality: str = "MR",
) -> Path:
    """Write a 3-D image as a DICOM series (one file per slice, int16 with rescale).

    Geometry goes into ImagePositionPatient / ImageOrientationPatient per slice
    so any DICOM reader reconstructs the same physical positions. Floating point
    images are stored as int16 with RescaleSlope/Intercept chosen to keep the
    full range.
    """
    _check_3d(image, "image to write as DICOM")
    target = Path(folder)
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    lo, hi = float(array.min()), float(array.max())
    integral = np.issubdtype(sitk.GetArrayViewFromImage(image).dtype, np.integer) and lo >= -32768 and hi <= 32767
    if integral:
        slope, intercept = 1.0, 0.0
        pixels = array.astype(np.int16)
    else:
        # GDCM stores (value - intercept) / slope as int16 when given float pixels and these tags.
        intercept = float(np.floor(lo))
        slope = (hi - intercept) / 32000.0 if hi > intercept else 1.0
        pixels = array
    direction = np.reshape(image.GetDirection(), (3, 3))
    orientation = "\\".join(f"{v:.10g}" for v in (*direction[:, 0], *direction[:, 1]))
    uid_root = "1.2.826.0.1.3680043.2.1125." + f"{int(time.time() * 1e3)}.{os.getpid()}"
    study_uid, series_uid = uid_root + ".1", uid_root + ".2"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    with atomic_dir(target) as tmp, preserved_locale():  # GDCM's writer leaves the process in the C locale
        for k in range(pixels.shape[0]):
            slice_img = sitk.GetImageFromArray(pixels[k][np.newaxis])[:, :, 0]
            slice_img.SetSpacing(image.GetSpacing()[:2])  # GDCM writes PixelSpacing from the image
            origin = image.TransformIndexToPhysicalPoint((0, 0, k))
            tags = {
                "0008|0060": modality,
                "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
                "0008|0018": f"{series_uid}.{k + 1}",
                "0008|103e": series_description,
                "0010|0020": patient_id,
                "0020|000d": study_uid,
                "0020|000e": series_uid,
                "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.10g}" for v in origin),
                "0020|0037": orientation,
                "0018|0050": f"{image.GetSpacing()[2]:.10g}",
                "0018|0088": f"{image.GetSpacing()[2]:.10g}",
                "0028|0030": f"{image.GetSpacing()[1]:.10g}\\{image.GetSpacing()[0]:.10g}",
                "0028|1053": f"{slope:.10g}",
                "0028|1052": f"{intercept:.10g}",
                "0028|0100": "16",
                "0028|0101": "16",
                "0028|0102": "15",
                "0028|0103": "1",
            }
            for key, value in tags.items():
                slice_img.SetMetaData(key, value)
            writer.SetFileName(str(tmp / f"slice{k:04d}.dcm"))
            writer.Execute(slice_img)
    return target


def write_image(image: sitk.Image, path: str | os.PathLike[str], compress: bool = True) -> Path:
    """Write a SimpleITK image atomically (format from the extension)."""
    target = Path(path)
    ext = compound_suffix(target)
    if ext not in VOLUME_EXTENSIONS:
        raise UnsupportedFormatError(str(target), f"unknown image extension '{ext}' (expected one of {VOLUME_EXTENSIONS})")
    with atomic_path(target) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return target


# ----------------------------------------------------------------------------------
# File integrity: a truncated file must be an error, not an image half full of zeros
# ----------------------------------------------------------------------------------
_NRRD_TYPE_BYTES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t", "char"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                     "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), 8),
    "float": 4,
    "double": 8,
}
_MET_TYPE_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}
_FIX = "the file is damaged or was not copied completely; export or copy it again"


def _gzip_trailer_matches(path: Path, expected: int) -> bool:
    """True when the gzip trailer's ISIZE field (uncompressed length mod 2**32) equals ``expected``.

    A single-member stream cut short ends in compressed data, whose last four bytes match the
    expected length with probability 2**-32: a match lets a complete file skip the full
    decompression below, which costs as much CPU as ITK's own read.
    """
    with open(path, "rb") as raw:
        raw.seek(0, os.SEEK_END)
        if raw.tell() < 18:  # smaller than an empty gzip member
            return False
        raw.seek(-4, os.SEEK_END)
        (isize,) = struct.unpack("<I", raw.read(4))
    return isize == expected % (1 << 32)


def _count_gzip_bytes(path: Path, offset: int, what: str, expected: int | None = None) -> int:
    """Uncompressed length of the gzip stream starting at ``offset``; a damaged stream raises.

    With ``expected`` given and the trailer agreeing, ``expected`` is returned without decompressing.
    """
    if expected is not None and _gzip_trailer_matches(path, expected):
        return expected
    total = 0
    with open(path, "rb") as raw:
        raw.seek(offset)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    total += len(block)
        except EOFError as exc:
            raise CorruptFileError(what, f"is truncated: its compressed data ends early ({_FIX})") from exc
        except (OSError, zlib.error) as exc:
            raise CorruptFileError(what, f"has corrupt compressed data ({exc}; {_FIX})") from exc
    return total


def _nifti_expected(header: bytes) -> int | None:
    """Bytes a NIfTI-1/2 file must hold (header + voxels), or None when the header is not NIfTI."""
    for endian in ("<", ">"):
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = int(struct.unpack(endian + "q", header[168:176])[0])
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or any(d < 0 for d in dims[1 : ndim + 1]):
        return None
    voxels = int(np.prod([max(int(d), 1) for d in dims[1 : ndim + 1]], dtype=np.int64))
    return max(offset, 348) + voxels * bitpix // 8


def _check_nifti(path: Path, gz: bool) -> None:
    what = str(path)
    if gz:
        with open(path, "rb") as raw:
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    header = stream.read(540)
            except (EOFError, OSError, zlib.error) as exc:
                raise CorruptFileError(what, f"is not a readable gzip-compressed NIfTI file ({exc}; {_FIX})") from exc
        expected = _nifti_expected(header)
        available = _count_gzip_bytes(path, 0, what, expected)
    else:
        with open(path, "rb") as fh:
            header = fh.read(540)
        expected = _nifti_expected(header)
        available = path.stat().st_size
    if expected is not None and available < expected:
        raise CorruptFileError(what, f"is truncated: the header describes {expected} bytes but the file holds {available} ({_FIX})")


def _text_header(path: Path, limit: int = 1 << 16) -> tuple[list[str], int] | None:
    """Header lines up to the first blank line and the byte offset of the data after it."""
    with open(path, "rb") as fh:
        head = fh.read(limit)
    for sep in (b"\n\n", b"\r\n\r\n"):
        end = head.find(sep)
        if end >= 0:
            text = head[:end].decode("latin-1")
            return text.splitlines(), end + len(sep)
    return None


def _check_nrrd(path: Path) -> None:
    header = _text_header(path)
    if header is None or not header[0] or not header[0][0].startswith("NRRD"):
        return
    lines, data_offset = header
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#") or ":=" in line:
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if "data file" in fields or "datafile" in fields or fields.get("byte skip", "0") != "0" or "line skip" in fields:
        return  # detached or skipped data: ITK's own checks apply
    try:
        sizes = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        return
    type_bytes = _NRRD_TYPE_BYTES.get(fields.get("type", "").lower())
    if not sizes or type_bytes is None:
        return
    expected = int(np.prod(sizes, dtype=np.int64)) * type_bytes
    encoding = fields.get("encoding", "raw").lower()
    if encoding == "raw":
        available = path.stat().st_size - data_offset
    elif encoding in ("gzip", "gz"):
        available = _count_gzip_bytes(path, data_offset, str(path), expected)
    else:
        return
    if available < expected:
        raise CorruptFileError(str(path), f"is truncated: the header describes {expected} bytes of voxels but the file holds {available} ({_FIX})")


def _check_metaimage(path: Path) -> None:
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        offset = 0
        for raw_line in iter(fh.readline, b""):
            offset += len(raw_line)
            key, sep, value = raw_line.decode("latin-1").partition("=")
            if not sep:
                return
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
            if offset > 1 << 16:
                return
    if fields.get("ElementDataFile") != "LOCAL" or fields.get("CompressedData", "False").lower() == "true":
        return
    type_bytes = _MET_TYPE_BYTES.get(fields.get("ElementType", ""))
    try:
        sizes = [int(v) for v in fields.get("DimSize", "").split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        return
    if type_bytes is None or not sizes:
        return
    expected = int(np.prod(sizes, dtype=np.int64)) * type_bytes * channels
    available = path.stat().st_size - offset
    if available < expected:
        raise CorruptFileError(str(path), f"is truncated: the header describes {expected} bytes of voxels but the file holds {available} ({_FIX})")


def check_file_complete(path: str | os.PathLike[str]) -> None:
    """Raise :class:`CorruptFileError` when an image file holds fewer voxel bytes than its header says.

    ITK fills the missing part of a truncated ``.nii.gz`` with zeros without a word;
    this compares the header's size with what is there (NIfTI, NRRD, MetaImage).
    """
    p = Path(path)
    ext = compound_suffix(p)
    try:
        if ext in (".nii", ".nii.gz"):
            _check_nifti(p, gz=ext == ".nii.gz")
        elif ext in (".nrrd", ".seg.nrrd"):
            _check_nrrd(p)
        elif ext == ".mha":
            _check_metaimage(p)
    except OSError as exc:
        raise InputError(str(p), f"cannot be read ({exc.strerror or exc})") from exc


def check_finite(image: sitk.Image, what: str) -> None:
    """NaN or infinite voxels are an error: every statistic and every region would silently absorb them."""
    array = sitk.GetArrayViewFromImage(image)
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count:
        k, j, i = (int(v) for v in np.argwhere(bad)[0])
        raise ImageQualityError(
            what, f"has {count} NaN or infinite voxel(s) (first at index i={i}, j={j}, k={k}); "
            "replace them (e.g. with 0) in the export or conversion step, then try again"
        )
