"""Every feature of one case, from SimpleITK images read from files or taken from MRML nodes.

Both routes end in :func:`extract_case`, so a table made by the ``spinemets
features`` command and one made in Slicer from volume and segmentation nodes hold
the same numbers for the same voxels.

Row layout: ``q_*`` (quantitative EDF counterparts), ``seg_lesion_*``
(segmentation features of all lesions, burden against the vertebral bodies),
radiomics (``shape_*`` then ``<seq>_<imageType>_<class>_<feature>``), then
provenance columns ``prov_*``: parameter-file SHA-256, PyRadiomics version, the
shape reference sequence, the selected label, and for the lesion mask and each
sequence the voxel-and-grid SHA-256 and the grid (JSON).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.manifest import KNOWN_SEQUENCES
from SpineMetsCore.qc import QCFlag, format_flags, validate_image
from SpineMetsCore.volumes import resample_to

from .masks import ALL_LABELS, components, on_grid, select_label
from .provenance import geometry_json, image_sha256
from .quantitative import (
    BODY_STRUCTURES,
    SignalRatios,
    default_anatomy_labels,
    mask_measures,
    resolve_reference,
    structure_mask,
)
from .radiomics_features import RadiomicsExtractor
from .segmentation_features import segmentation_features


@dataclass(frozen=True)
class CaseSettings:
    """What to extract (hashable and picklable: part of the cohort cache key)."""

    params_path: str | None = None
    """PyRadiomics parameter file; None: the shipped ``mri_default.yaml``."""
    sequences: tuple[str, ...] | None = None
    """Sequences to use, in this order; None: every sequence of the case (T1, T2, STIR, T1CE order)."""
    label: int = 1
    """Lesion label for radiomics and the signal ratio (0: every lesion label together)."""
    shell_mm: float = 0.0
    """Peritumoural shell thickness for extra radiomics (0: none)."""
    radiomics: bool = True
    quantitative: bool = True
    segmentation: bool = True
    reference: str | None = None
    """Signal reference (normal_marrow, muscle, auto); None: normal_marrow with anatomy, else auto."""
    anatomy_labels: tuple[tuple[str, int], ...] | None = None
    """Structure name -> anatomy label value; None: the phantom's convention."""

    def labels(self) -> dict[str, int]:
        return dict(self.anatomy_labels) if self.anatomy_labels is not None else default_anatomy_labels()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_sequences(available: Sequence[str], requested: Sequence[str] | None, what: str = "case") -> list[str]:
    """Requested sequences (all missing ones named) or every available one in canonical order."""
    if requested is None:
        known = [s for s in KNOWN_SEQUENCES if s in available]
        return known + [s for s in available if s not in known]
    missing = [s for s in requested if s not in available]
    if missing:
        raise InputError(what, f"has no image for sequence(s) {missing} (has {list(available)})")
    return list(requested)


def extract_case(
    images: Mapping[str, sitk.Image],
    labelmap: sitk.Image,
    anatomy: sitk.Image | None = None,
    settings: CaseSettings | None = None,
    extractor: RadiomicsExtractor | None = None,
    what: str = "case",
    sources: Mapping[str, str | os.PathLike[str]] | None = None,
) -> dict[str, Any]:
    """All features of one case as one flat row (see the module docstring for its columns).

    ``labelmap`` holds the lesions (label k = lesion k, or a binary mask);
    ``anatomy`` (optional) is an anatomy label map (:attr:`CaseSettings.anatomy_labels`).
    Images may be on other grids than the labelmap: radiomics uses each image's
    own grid (mask resampled by nearest neighbour), the quantitative features the
    labelmap's grid.

    Every input is checked (:func:`SpineMetsCore.qc.validate_image`) before it is
    used: a blank sequence, an empty/full mask or a mask off the image raise an
    error naming the file (``sources``: sequence, ``"mask"`` or ``"anatomy"`` ->
    path, for messages); warnings go into the row's ``qc_flags`` column.

    Memory: each image is looked up once (``images[s]``) and all its work (checks,
    quantitative values, radiomics, hash) is done before the next, so with a
    mapping that reads on access (:class:`CaseImageFiles`) one volume is held at a
    time, not every sequence during PyRadiomics' own full-volume copies.
    """
    settings = settings or CaseSettings()
    sources = sources or {}
    sequences = resolve_sequences(list(images), settings.sequences, what)
    if not sequences:
        raise InputError(what, "has no image")
    image_flags: list[QCFlag] = []
    mask_flags: list[QCFlag] = []
    anatomy_flags: list[QCFlag] = []
    if anatomy is not None:
        with _naming_the_case(what):
            anatomy_flags = validate_image(anatomy, role="anatomy", path=sources.get("anatomy"))
    quantitative: dict[str, Any] = {}
    segmentation: dict[str, Any] = {}
    radiomics: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    ratios: SignalRatios | None = None
    lesion: sitk.Image | None = None
    if settings.radiomics:
        extractor = extractor or RadiomicsExtractor(settings.params_path)
    for index, sequence in enumerate(sequences):
        image = images[sequence]  # the one look-up: a file-backed mapping reads it here
        with _naming_the_case(what):
            image_flags += validate_image(image, role="image", sequence=sequence, path=sources.get(sequence))
            found = validate_image(labelmap, role="mask", path=sources.get("mask"), reference=image, reference_sequence=sequence)
        mask_flags += [f for f in found if f not in mask_flags and f not in image_flags]
        if index == 0:  # what needs only the masks, once they are checked against the first image
            lesion = select_label(labelmap, settings.label, f"{what}: lesion mask")
            if settings.quantitative or settings.segmentation:
                quantitative, segmentation, ratios = _mask_features(lesion, labelmap, anatomy, settings, what)
        if ratios is not None:
            ratios.add(sequence, resample_to(image, labelmap, name=f"{what}: sequence {sequence}"))
        if settings.radiomics:
            release_freed_memory()  # the checks' and mask features' temporaries, before PyRadiomics' full-volume copies
            mask = on_grid(lesion, image, f"{what}: lesion mask on {sequence}")
            radiomics.update(extractor.extract_sequence(sequence, image, mask, index == 0, settings.shell_mm))
            del mask
        provenance[f"prov_{sequence}_image_sha256"] = image_sha256(image)
        provenance[f"prov_{sequence}_geometry"] = geometry_json(image)
        del image  # before the next sequence is read
    row: dict[str, Any] = {}
    if ratios is not None and settings.quantitative:
        row.update(ratios.result())
    row.update(quantitative)
    row.update(segmentation)
    if settings.radiomics:
        row.update(radiomics)
        row["prov_params_sha256"] = extractor.params_sha256
        row["prov_pyradiomics_version"] = extractor.version
        row["prov_shape_sequence"] = sequences[0]
    row["qc_flags"] = format_flags(image_flags + mask_flags + anatomy_flags)
    row["prov_label"] = settings.label
    row["prov_mask_sha256"] = image_sha256(lesion)
    row["prov_mask_geometry"] = geometry_json(lesion)
    row.update(provenance)
    return row


def release_freed_memory() -> None:
    """Give the C heap's freed pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    The mask features and each sequence free tens of MB of arrays that glibc keeps
    for reuse, while PyRadiomics' full-volume copies of the next sequence are
    mapped afresh: without this the process peak carries both.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl has no malloc_trim
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def _naming_the_case(what: str) -> Iterator[None]:
    """An input check's error names the case."""
    try:
        yield
    except InputError as exc:
        raise type(exc)(f"{what}: {exc.what}", exc.problem) from exc


def _mask_features(
    lesion: sitk.Image, labelmap: sitk.Image, anatomy: sitk.Image | None, settings: CaseSettings, what: str
) -> tuple[dict[str, Any], dict[str, Any], SignalRatios | None]:
    """Image-free ``q_`` and ``seg_lesion_`` columns, and the signal-ratio accumulator (quantitative only).

    Their component maps and body masks are dropped on return, before any radiomics.
    """
    all_lesions = select_label(labelmap, ALL_LABELS, f"{what}: lesion mask")
    labels = settings.labels()
    anatomy_grid = on_grid(anatomy, labelmap, f"{what}: anatomy") if anatomy is not None else None
    labelled = components(all_lesions)
    quantitative: dict[str, Any] = {}
    segmentation: dict[str, Any] = {}
    ratios = None
    if settings.quantitative:
        reference = resolve_reference(settings.reference, anatomy_grid, labels)
        ratios = SignalRatios(lesion, reference, anatomy_grid, labels)
        quantitative = mask_measures(lesion, all_lesions, anatomy_grid, labels, labelled)
    if settings.segmentation:
        reference_image = None
        if anatomy_grid is not None and all(n in labels for n in BODY_STRUCTURES):
            bodies = structure_mask(anatomy_grid, labels, BODY_STRUCTURES)
            reference_image = sitk.GetImageFromArray(bodies.astype("uint8"))
            reference_image.CopyInformation(anatomy_grid)
        segmentation = segmentation_features(all_lesions, "lesion", reference_image, labelled)
    return quantitative, segmentation, ratios


class CaseImageFiles(Mapping[str, sitk.Image]):
    """Sequence name -> image, read from its file on each look-up and never kept.

    :func:`extract_case` looks each sequence up once, so a case costs one volume
    in memory at a time instead of all of them (each file is still read once).
    """

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]]) -> None:
        self.paths = dict(paths)

    def __getitem__(self, sequence: str) -> sitk.Image:
        from SpineMetsCore.dataio import read_image

        return read_image(self.paths[sequence], sequence=sequence)

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def read_case_images(
    images: Mapping[str, str | os.PathLike[str]],
    mask: str | os.PathLike[str] | None,
    anatomy: str | os.PathLike[str] | None,
    sequences: Sequence[str] | None,
    what: str = "case",
    lazy: bool = False,
) -> tuple[Mapping[str, sitk.Image], sitk.Image, sitk.Image | None]:
    """Read a case's files (only the sequences that will be used).

    ``lazy``: the sequences come as :class:`CaseImageFiles` (read when
    :func:`extract_case` reaches them; a damaged file is then reported there).
    """
    from SpineMetsCore.dataio import read_image

    if mask is None:
        raise InputError(what, "has no lesion mask (column 'mask' is empty)")
    wanted = resolve_sequences(list(images), sequences, what)
    if lazy:
        read: Mapping[str, sitk.Image] = CaseImageFiles({s: images[s] for s in wanted})
    else:
        read = {s: read_image(images[s], sequence=s) for s in wanted}
    labelmap = read_image(mask)
    anatomy_image = read_image(anatomy) if anatomy is not None else None
    return read, labelmap, anatomy_image
