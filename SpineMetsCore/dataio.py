"""Read and write volumes and segmentations through MRML storage nodes.

NRRD, NIfTI (.nii/.nii.gz), MetaImage and ``.seg.nrrd`` go through the same
storage nodes desktop Slicer uses, so what a batch script writes is what
Slicer's Add Data dialog reads. DICOM series are read and written with
SimpleITK/GDCM (slicer-core has no DICOM database). Every writer is atomic.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import InputError, UnsupportedFormatError
from .fileio import atomic_dir, atomic_path, compound_suffix
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


def read_image(path: str | os.PathLike[str], series_uid: str | None = None) -> sitk.Image:
    """Read a 3-D scalar image as SimpleITK (files or a DICOM series folder), checked."""
    p = _existing(path)
    if p.is_dir():
        image = read_dicom_series(p, series_uid)
    else:
        ext = compound_suffix(p)
        if ext not in VOLUME_EXTENSIONS + SEGMENTATION_EXTENSIONS:
            raise UnsupportedFormatError(str(p), f"unknown image extension '{ext}' (expected one of {VOLUME_EXTENSIONS} or a DICOM folder)")
        try:
            image = sitk.ReadImage(str(p))
        except RuntimeError as exc:
            raise InputError(str(p), f"cannot be read as an image ({_first_line(exc)})") from exc
    _check_3d(image, str(p))
    return image


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
) -> Any:
    """Load a file (or DICOM folder) into a new scalar/labelmap volume node."""
    p = _existing(path)
    node_name = name or _stem(p)
    if p.is_dir():
        return sitk_to_volume(read_dicom_series(p, series_uid), name=node_name, labelmap=labelmap)
    ext = compound_suffix(p)
    if ext in SEGMENTATION_EXTENSIONS:
        raise InputError(str(p), "is a segmentation; use read_segmentation")
    if ext not in VOLUME_EXTENSIONS:
        raise UnsupportedFormatError(str(p), f"unknown volume extension '{ext}' (expected one of {VOLUME_EXTENSIONS})")
    scene = get_scene()
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode", node_name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(p))
    storage.SetSingleFile(True)
    try:
        try:
            ok = storage.ReadData(node)
        except Exception:  # noqa: BLE001 - VTK wrappers raise varied errors
            ok = 0
        image_data = node.GetImageData()
        if not ok or image_data is None:
            raise InputError(str(p), "cannot be read by MRML's volume storage node (corrupt or not an image)")
        dims = image_data.GetDimensions()
        components = image_data.GetNumberOfScalarComponents()
        if components != 1 or min(dims) < 1:
            raise InputError(str(p), f"is not a 3-D scalar volume (dimensions {dims}, {components} components)")
    except InputError:
        remove_node_tree(node)
        remove_node_tree(storage)
        raise
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    logger.debug("read %s into node %s", p, node.GetID())
    return node


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
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or _stem(p))
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(p))
    try:
        ok = storage.ReadData(node)
    except Exception:  # noqa: BLE001
        ok = 0
    if not ok:
        remove_node_tree(node)
        remove_node_tree(storage)
        raise InputError(str(p), "cannot be read as a Slicer segmentation (.seg.nrrd)")
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
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(str(p), f"DICOM series {series_uid} cannot be read ({_first_line(exc)})") from exc
    _check_3d(image, str(p))
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
    with atomic_dir(target) as tmp:
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
