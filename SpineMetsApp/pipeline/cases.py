"""Per-case work of ``spinemets run``: read the manifest row, segment the lesion, extract features.

One case is one independent, idempotent task (:func:`process_case`), run in a Dask worker
or in-process. Everything it writes lives in ``<out>/cases/<case folder>/`` and is written
atomically; ``result.json`` is written last and marks the case as finished, under a key
made of the case's inputs and the per-case settings. A rerun finds the finished cases by
that key and skips them; a case that fails writes ``error.json`` instead (and is retried on
the next run), and never stops the cohort.

Manifest columns read here (besides the project's ``case_id``, sequences, ``mask``,
``anatomy``):

=================  ===================================================================
``seed_ras``       region-growing seed(s) in Slicer RAS mm: ``R,A,S``; several seeds
                   separated by ``;`` (``-12.5,3,40;-11,4,41``)
``seeds_file``     a Slicer markups file (``.mrk.json``) with the seeds as control
                   points (``coordinateSystem`` LPS or RAS, as Slicer saves it); an ROI
                   markup in the same file is used as the ROI
``roi_min_ras``    with ``roi_max_ras``: opposite corners ``R,A,S`` of an axis-aligned ROI
``roi_size_mm``    ROI edge lengths ``X,Y,Z`` (or one number) centred on the seeds
``roi_file``       a Slicer ROI markups file (``.mrk.json``), oriented boxes allowed
``segment``        segment name to use from a ``.seg.nrrd`` mask (method ``mask``)
=================  ===================================================================

Without an ROI, region growing uses a box around the seeds (its ``default_roi_margin_mm``).
Relative paths are relative to the manifest's folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from SpineMetsCore.errors import InputError, SpineMetsError
from SpineMetsCore.fileio import write_text_atomic

logger = logging.getLogger(__name__)

CASE_VERSION = 1
"""Bumped when a code change alters per-case outputs, so old results are recomputed."""
SEED_COLUMNS: tuple[str, ...] = ("seed_ras", "seeds_file")
ROI_COLUMNS: tuple[str, ...] = ("roi_min_ras", "roi_max_ras", "roi_size_mm", "roi_file")
PIPELINE_COLUMNS: tuple[str, ...] = (*SEED_COLUMNS, *ROI_COLUMNS, "segment")
"""Manifest columns that steer the pipeline; never features."""
MANIFEST_COLUMN_DOCS: dict[str, str] = {
    "seed_ras": "region-growing seed(s) in Slicer RAS mm: R,A,S; several seeds separated by ';'",
    "seeds_file": "Slicer markups file (.mrk.json) whose control points are the seeds (LPS or RAS file); "
                  "an ROI markup in it is the ROI",
    "roi_min_ras": "with roi_max_ras: opposite corners R,A,S of an axis-aligned ROI box",
    "roi_max_ras": "see roi_min_ras",
    "roi_size_mm": "ROI edge lengths X,Y,Z in mm (or one number), centred on the seeds",
    "roi_file": "Slicer ROI markups file (.mrk.json); oriented boxes allowed",
    "segment": "segment name to use from a .seg.nrrd mask (segmentation method 'mask')",
}
"""One line per pipeline manifest column (``spinemets run --help``)."""
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LESION_FILE = "lesion.nrrd"


@dataclass(frozen=True)
class CaseSpec:
    """Everything one case task needs (picklable; paths absolute)."""

    case_id: str
    folder: str
    images: tuple[tuple[str, str], ...]
    mask: str | None = None
    anatomy: str | None = None
    seeds_ras: tuple[tuple[float, float, float], ...] = ()
    roi: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] | None = None
    """Oriented box: (centre RAS, axes 3x3 row-major with the box axes as columns, half sizes mm)."""
    segment: str | None = None
    reference: str | None = None
    key: str = ""


@dataclass(frozen=True)
class CaseSettings:
    """The per-case part of the study config (picklable; part of every case key)."""

    method: str
    seg_sequences: tuple[str, ...] | None
    region_growing: tuple[tuple[str, Any], ...]
    unet_model: str | None
    feature_settings: Any
    """``SpineMetsClassifierLib.features.case.CaseSettings``."""
    params_sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seg_sequences": self.seg_sequences,
                "region_growing": dict(self.region_growing), "unet_model": self.unet_model,
                "features": self.feature_settings.as_dict(), "params_sha256": self.params_sha256}


@dataclass
class CaseOutcome:
    """What the runner learns from one case."""

    case_id: str
    status: str
    """``ok``, ``cached`` or ``failed``."""
    record: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    stage: str = ""


# ----------------------------------------------------------------------------- manifest values
def parse_points(text: str, what: str) -> list[tuple[float, float, float]]:
    """``"R,A,S;R,A,S"`` -> RAS points; the error names ``what`` and shows the text."""
    points = []
    for part in [p for p in str(text).split(";") if p.strip()]:
        values = [v.strip() for v in part.split(",")]
        try:
            point = tuple(float(v) for v in values)
        except ValueError:
            raise InputError(what, f"needs R,A,S numbers (several points separated by ';'), got {text!r}") from None
        if len(point) != 3 or not all(math.isfinite(v) for v in point):
            raise InputError(what, f"needs three finite numbers R,A,S per point, got {part.strip()!r}")
        points.append(point)
    if not points:
        raise InputError(what, "is empty")
    return points  # type: ignore[return-value]


def _to_ras(values: Sequence[float], system: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)[:3]
    return v * np.array([-1.0, -1.0, 1.0]) if system == "LPS" else v


def read_markups(path: Path, what: str) -> tuple[list[tuple[float, float, float]], Any]:
    """Seeds (control points of point-list markups) and an optional ROI box from a ``.mrk.json``.

    Slicer writes positions in the file's ``coordinateSystem`` (LPS by default since
    Slicer 4.11; RAS in older files): both are converted to RAS here.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(what, f"markups file {path} cannot be read as JSON ({exc})") from None
    markups = data.get("markups") if isinstance(data, dict) else None
    if not isinstance(markups, list) or not markups:
        raise InputError(what, f"markups file {path} has no 'markups' list (not a Slicer .mrk.json?)")
    seeds: list[tuple[float, float, float]] = []
    roi = None
    for m, markup in enumerate(markups):
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise InputError(what, f"markups[{m}] of {path} uses coordinateSystem {system!r}; expected LPS or RAS")
        kind = str(markup.get("type", ""))
        if kind == "ROI":
            roi = _markups_roi(markup, system, f"{what}: {path} markups[{m}]")
            continue
        for p, point in enumerate(markup.get("controlPoints") or []):
            if point.get("positionStatus", "defined") != "defined":
                continue
            position = point.get("position")
            if not isinstance(position, list) or len(position) != 3 or not all(isinstance(v, (int, float)) for v in position):
                raise InputError(what, f"{path} markups[{m}].controlPoints[{p}].position must be three numbers, got {position!r}")
            seeds.append(tuple(float(v) for v in _to_ras(position, system)))  # type: ignore[arg-type]
    return seeds, roi


def _markups_roi(markup: Mapping[str, Any], system: str, what: str) -> tuple[tuple[float, ...], ...]:
    centre = markup.get("center")
    size = markup.get("size")
    if centre is None and markup.get("controlPoints"):
        centre = markup["controlPoints"][0].get("position")
    try:
        c = _to_ras(centre, system)
        s = np.asarray(size, dtype=float)
        orientation = np.asarray(markup.get("orientation", np.eye(3).ravel()), dtype=float).reshape(3, 3)
    except (TypeError, ValueError):
        raise InputError(what, "ROI needs 'center' (3 numbers), 'size' (3 numbers) and optionally 'orientation' (9)") from None
    if s.shape != (3,) or np.any(s <= 0) or not np.all(np.isfinite(s)):
        raise InputError(what, f"ROI size must be three positive numbers, got {size!r}")
    if system == "LPS":
        orientation = np.diag([-1.0, -1.0, 1.0]) @ orientation
    norms = np.linalg.norm(orientation, axis=0)
    if np.any(norms <= 0):
        raise InputError(what, "ROI orientation is degenerate")
    return tuple(c), tuple((orientation / norms).ravel()), tuple(s / 2)


def _box_from_corners(lo: Sequence[float], hi: Sequence[float], what: str) -> tuple[tuple[float, ...], ...]:
    a, b = np.minimum(lo, hi), np.maximum(lo, hi)
    if np.any(b - a <= 0):
        raise InputError(what, f"ROI corners {tuple(lo)} and {tuple(hi)} span zero size along an axis")
    return tuple((a + b) / 2), tuple(np.eye(3).ravel()), tuple((b - a) / 2)


def seeds_and_roi(values: Mapping[str, str], base: Path, what: str) -> tuple[list[tuple[float, float, float]], Any]:
    """Seeds and ROI of one manifest row (see the module docstring for the columns)."""
    seeds: list[tuple[float, float, float]] = []
    roi = None
    text = (values.get("seed_ras") or "").strip()
    if text:
        seeds.extend(parse_points(text, f"{what}, column 'seed_ras'"))
    file_text = (values.get("seeds_file") or "").strip()
    if file_text:
        path = resolve_path(file_text, base)
        if not path.is_file():
            raise InputError(f"{what}, column 'seeds_file'", f"file {path} does not exist")
        file_seeds, roi = read_markups(path, f"{what}, column 'seeds_file'")
        if not file_seeds:
            raise InputError(f"{what}, column 'seeds_file'", f"{path} has no defined control points")
        seeds.extend(file_seeds)
    lo_text, hi_text = (values.get("roi_min_ras") or "").strip(), (values.get("roi_max_ras") or "").strip()
    if bool(lo_text) != bool(hi_text):
        raise InputError(f"{what}, columns 'roi_min_ras'/'roi_max_ras'", "give both corners or neither")
    if lo_text:
        lo = parse_points(lo_text, f"{what}, column 'roi_min_ras'")
        hi = parse_points(hi_text, f"{what}, column 'roi_max_ras'")
        if len(lo) != 1 or len(hi) != 1:
            raise InputError(f"{what}, column 'roi_min_ras'", "needs exactly one R,A,S corner")
        roi = _box_from_corners(lo[0], hi[0], f"{what}, columns 'roi_min_ras'/'roi_max_ras'")
    size_text = (values.get("roi_size_mm") or "").strip()
    if size_text:
        where = f"{what}, column 'roi_size_mm'"
        try:
            size = [float(v) for v in size_text.split(",")]
        except ValueError:
            raise InputError(where, f"needs X,Y,Z or one number in mm, got {size_text!r}") from None
        size = size * 3 if len(size) == 1 else size
        if len(size) != 3 or any(not (math.isfinite(v) and v > 0) for v in size):
            raise InputError(where, f"needs three positive sizes in mm, got {size_text!r}")
        if roi is not None:
            raise InputError(where, "an ROI is already given by the corners or the markups file; give one ROI only")
        if not seeds:
            raise InputError(where, "centres the ROI on the seeds, but the case has none")
        centre = np.mean(np.asarray(seeds), axis=0)
        roi = (tuple(centre), tuple(np.eye(3).ravel()), tuple(np.asarray(size) / 2))
    roi_file = (values.get("roi_file") or "").strip()
    if roi_file:
        path = resolve_path(roi_file, base)
        if not path.is_file():
            raise InputError(f"{what}, column 'roi_file'", f"file {path} does not exist")
        _, file_roi = read_markups(path, f"{what}, column 'roi_file'")
        if file_roi is None:
            raise InputError(f"{what}, column 'roi_file'", f"{path} holds no ROI markup")
        if roi is not None:
            raise InputError(f"{what}, column 'roi_file'", "an ROI is already given; give one ROI only")
        roi = file_roi
    return seeds, roi


def resolve_path(text: str, base: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base / path


def case_folder_name(case_id: str) -> str:
    """File-system-safe, collision-free folder name for a case id."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)[:60]
    return f"{safe}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"


def file_identity(path: str | None) -> Any:
    """What a case key knows about an input file (path, size, mtime; no content hash)."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return {"path": path, "missing": True}
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def case_key(spec: CaseSpec, settings: CaseSettings) -> str:
    """Key of one case's outputs: its inputs, seeds/ROI and the per-case settings."""
    payload = {
        "version": CASE_VERSION,
        "case": {**asdict(spec), "key": "", "folder": ""},
        "files": {name: file_identity(p) for name, p in
                  [*spec.images, ("mask", spec.mask), ("anatomy", spec.anatomy), ("reference", spec.reference)]},
        "settings": settings.as_dict(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ----------------------------------------------------------------------------- worker side
_CACHE: dict[str, Any] = {}
"""Per-process cache of expensive objects (radiomics extractor, U-Net package)."""


@contextlib.contextmanager
def _single_itk_thread() -> Iterator[None]:
    """One ITK thread per case: workers already share the cores, and sums stay deterministic
    (the same values serially, in-process and in any number of workers)."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def prepare_worker(settings: CaseSettings) -> None:
    """Pay a worker's fixed costs before its first case: imports, the radiomics extractor (or U-Net
    package) that :func:`process_case` then finds in the process cache. Never raises: a broken model
    or parameter file fails each case instead, recorded like any other case error. (ITK's thread count
    is left alone: each case sets one thread for itself, and a threaded cluster may share this process.)"""
    try:
        from SpineMetsClassifierLib.features.case import extract_case  # noqa: F401

        from SpineMetsCore.dataio import read_image  # noqa: F401

        if settings.method == "region_growing":
            from SpineMetsSegmentLib.region_growing import grow_region  # noqa: F401
        elif settings.method == "unet":
            _unet_package(settings.unet_model or str(_demo_model()))
        if settings.feature_settings.radiomics:
            _radiomics_extractor(settings)
    except Exception:  # noqa: BLE001 - the cases report it, each with its own error record
        logger.debug("worker preparation failed; the cases will report it", exc_info=True)


def _radiomics_extractor(settings: CaseSettings) -> Any:
    """The process's extractor for the settings' parameter file (built once per process)."""
    from SpineMetsClassifierLib.features.cohort import quiet_radiomics
    from SpineMetsClassifierLib.features.radiomics_features import RadiomicsExtractor

    fs = settings.feature_settings
    cache_key = ("radiomics", fs.params_path, settings.params_sha256)
    extractor = _CACHE.get(cache_key)
    if extractor is None:
        with quiet_radiomics():
            extractor = _CACHE[cache_key] = RadiomicsExtractor(fs.params_path)
    return extractor


def _unet_package(model_path: str) -> Any:
    """The process's U-Net package (loaded once per process)."""
    from SpineMetsSegmentLib.unet import load_model_package

    package = _CACHE.get(("unet", model_path))
    if package is None:
        package = _CACHE[("unet", model_path)] = load_model_package(model_path)
    return package


def load_finished(folder: Path, key: str) -> dict[str, Any] | None:
    """The case's finished record when it was made under ``key``; None otherwise."""
    path = folder / RESULT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def process_case(spec: CaseSpec, settings: CaseSettings, out_dir: str) -> dict[str, Any]:
    """Segment and extract one case (skipped when finished under the same key); never raises for a bad case."""
    folder = Path(out_dir) / "cases" / spec.folder
    done = load_finished(folder, spec.key)
    if done is not None:
        return {"case_id": spec.case_id, "status": "cached", "record": done}
    stage = "segmentation"
    try:
        with _single_itk_thread():
            images = _read_images(spec, settings)
            lesion, seg_info = segment_case(spec, settings, images)
            folder.mkdir(parents=True, exist_ok=True)
            from SpineMetsCore.dataio import write_image

            write_image(lesion, folder / LESION_FILE)
            seg_info["file"] = f"cases/{spec.folder}/{LESION_FILE}"
            stage = "features"
            row = extract_features(spec, settings, images, lesion)
    except SpineMetsError as exc:
        return _failed(spec, folder, stage, str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop the cohort
        logger.debug("case %s failed", spec.case_id, exc_info=True)
        return _failed(spec, folder, stage, f"{type(exc).__name__}: {exc}")
    record = {"version": CASE_VERSION, "key": spec.key, "case_id": spec.case_id, "status": "ok",
              "segmentation": seg_info, "features": _json_row(row)}
    text = json.dumps(record, allow_nan=True)
    write_text_atomic(folder / RESULT_FILE, text)
    with contextlib.suppress(FileNotFoundError):
        (folder / ERROR_FILE).unlink()
    # What a later run reads back from result.json, so fresh and resumed runs give identical tables.
    return {"case_id": spec.case_id, "status": "ok", "record": json.loads(text)}


def _failed(spec: CaseSpec, folder: Path, stage: str, message: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"case_id": spec.case_id, "stage": stage, "error": message, "key": spec.key}
    write_text_atomic(folder / ERROR_FILE, json.dumps(entry, sort_keys=True))
    with contextlib.suppress(FileNotFoundError):
        (folder / RESULT_FILE).unlink()
    return {"case_id": spec.case_id, "status": "failed", "stage": stage, "error": message}


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _read_images(spec: CaseSpec, settings: CaseSettings) -> dict[str, Any]:
    from SpineMetsCore.dataio import read_image

    return {name: read_image(path) for name, path in spec.images}


def read_mask(path: str, reference: Any, segment: str | None, what: str) -> Any:
    """A lesion mask from a labelmap file or a ``.seg.nrrd`` (one named segment, or all) on ``reference``'s grid."""
    import SimpleITK as sitk

    from SpineMetsCore.dataio import read_image
    from SpineMetsCore.fileio import compound_suffix

    if compound_suffix(path) == ".seg.nrrd":
        from SpineMetsCore import dataio, segmentations
        from SpineMetsCore.runtime import remove_node_tree

        node = dataio.read_segmentation(path)
        try:
            names = segmentations.segment_names(node)
            if segment is not None:
                sid = segmentations.find_segment_id(node, segment)
                if sid is None:
                    raise InputError(what, f"{path} has no segment named {segment!r} (segments: {sorted(names.values())})")
                ids = [sid]
            else:
                ids = segmentations.segment_ids(node)
                if not ids:
                    raise InputError(what, f"{path} contains no segments")
            mask = None
            for sid in ids:
                part = segmentations.segment_to_mask(node, sid, reference)
                mask = part if mask is None else sitk.Or(mask, part)
            return sitk.Cast(mask, sitk.sitkUInt8)
        finally:
            remove_node_tree(node)
    if segment is not None:
        raise InputError(what, f"a segment name ({segment!r}) is given but {path} is a labelmap, not a .seg.nrrd")
    return read_image(path)


def segment_case(spec: CaseSpec, settings: CaseSettings, images: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The case's lesion labelmap (on the first sequence's grid) and a summary (volume, Dice)."""
    import SimpleITK as sitk

    what = f"case '{spec.case_id}'"
    reference = images[next(iter(images))]
    if settings.method == "region_growing":
        from SpineMetsSegmentLib.region_growing import RegionGrowingParameters, grow_region
        from SpineMetsSegmentLib.seeds import RoiBox

        names = list(settings.seg_sequences) if settings.seg_sequences else list(images)
        missing = [n for n in names if n not in images]
        if missing:
            raise InputError(what, f"has no image for region-growing sequence(s) {missing}")
        roi = RoiBox(*spec.roi, name="manifest ROI") if spec.roi is not None else None  # type: ignore[arg-type]
        params = RegionGrowingParameters.from_dict(dict(settings.region_growing))
        result = grow_region({n: images[n] for n in names}, list(spec.seeds_ras), roi, params)
        reference = images[result.reference_sequence]
        lesion = sitk.Resample(result.mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    elif settings.method == "unet":
        from SpineMetsSegmentLib.unet import segment_images

        package = _unet_package(settings.unet_model or str(_demo_model()))
        missing = [s for s in package.input_sequences if s not in images]
        if missing:
            raise InputError(what, f"has no image for the U-Net input sequence(s) {missing}")
        lesion = segment_images({s: images[s] for s in package.input_sequences}, package)
        reference = images[package.input_sequences[0]]
    else:
        if not spec.mask:
            raise InputError(what, "has no mask for segmentation method 'mask'")
        lesion = read_mask(spec.mask, reference, spec.segment, f"{what}, mask")
    array = sitk.GetArrayViewFromImage(lesion)
    voxels = int(np.count_nonzero(array))
    if voxels == 0:
        raise InputError(what, f"segmentation ({settings.method}) is empty: no lesion voxel")
    voxel_ml = float(np.prod(lesion.GetSpacing())) / 1000.0
    info: dict[str, Any] = {"method": settings.method, "voxels": voxels, "volume_ml": round(voxels * voxel_ml, 6),
                            "reference_sequence": _sequence_of(images, reference)}
    if spec.reference:
        info.update(_dice(lesion, read_mask(spec.reference, lesion, None, f"{what}, reference mask"), what))
    return lesion, info


def _sequence_of(images: Mapping[str, Any], image: Any) -> str:
    return next((name for name, im in images.items() if im is image), next(iter(images)))


def _demo_model() -> Path:
    from SpineMetsSegmentLib.unet import demo_model_path

    return demo_model_path()


def _dice(lesion: Any, reference: Any, what: str) -> dict[str, Any]:
    """Dice against every reference lesion and against the reference lesion(s) the result overlaps."""
    import SimpleITK as sitk

    from SpineMetsCore.volumes import Geometry, resample_like

    if not Geometry.from_image(reference).same_grid(Geometry.from_image(lesion)):
        reference = resample_like(reference, lesion, labelmap=True, name=f"{what}: reference mask")
    ref = sitk.GetArrayViewFromImage(reference)
    seg = sitk.GetArrayViewFromImage(lesion) > 0
    ref_any = ref > 0

    def dice(a: np.ndarray, b: np.ndarray) -> float:
        total = int(a.sum()) + int(b.sum())
        return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total

    touched = [int(v) for v in np.unique(ref[seg]) if v]
    matched = np.isin(ref, touched) if touched else np.zeros_like(ref_any)
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    return {"dice": round(dice(seg, matched), 6), "dice_all_lesions": round(dice(seg, ref_any), 6),
            "reference_volume_ml": round(int(matched.sum()) * voxel_ml, 6)}


def extract_features(spec: CaseSpec, settings: CaseSettings, images: Mapping[str, Any], lesion: Any) -> dict[str, Any]:
    """Every feature of the case from its images and the lesion labelmap (the features package)."""
    from SpineMetsClassifierLib.features.case import extract_case
    from SpineMetsClassifierLib.features.cohort import quiet_radiomics

    from SpineMetsCore.dataio import read_image

    fs = settings.feature_settings
    extractor = _radiomics_extractor(settings) if fs.radiomics else None
    anatomy = read_image(spec.anatomy) if spec.anatomy else None
    with quiet_radiomics():
        return extract_case(images, lesion, anatomy, fs, extractor, f"case '{spec.case_id}'")
