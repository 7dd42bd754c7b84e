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

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.manifest import KNOWN_SEQUENCES
from SpineMetsCore.volumes import resample_to

from .masks import ALL_LABELS, components, on_grid, select_label
from .provenance import geometry_json, image_sha256
from .quantitative import BODY_STRUCTURES, default_anatomy_labels, quantitative_features, structure_mask
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
) -> dict[str, Any]:
    """All features of one case as one flat row (see the module docstring for its columns).

    ``labelmap`` holds the lesions (label k = lesion k, or a binary mask);
    ``anatomy`` (optional) is an anatomy label map (:attr:`CaseSettings.anatomy_labels`).
    Images may be on other grids than the labelmap: radiomics uses each image's
    own grid (mask resampled by nearest neighbour), the quantitative features the
    labelmap's grid.
    """
    settings = settings or CaseSettings()
    sequences = resolve_sequences(list(images), settings.sequences, what)
    if not sequences:
        raise InputError(what, "has no image")
    lesion = select_label(labelmap, settings.label, f"{what}: lesion mask")
    all_lesions = select_label(labelmap, ALL_LABELS, f"{what}: lesion mask")
    labels = settings.labels()
    row: dict[str, Any] = {}
    if settings.quantitative or settings.segmentation:
        on_mask_grid = {s: resample_to(images[s], labelmap, name=f"{what}: sequence {s}") for s in sequences}
        anatomy_grid = on_grid(anatomy, labelmap, f"{what}: anatomy") if anatomy is not None else None
        labelled = components(all_lesions)
        if settings.quantitative:
            row.update(quantitative_features(
                on_mask_grid, lesion, all_lesions, anatomy_grid, labels, settings.reference, labelled
            ))
        if settings.segmentation:
            reference = None
            if anatomy_grid is not None and all(n in labels for n in BODY_STRUCTURES):
                bodies = structure_mask(anatomy_grid, labels, BODY_STRUCTURES)
                reference = sitk.GetImageFromArray(bodies.astype("uint8"))
                reference.CopyInformation(anatomy_grid)
            row.update(segmentation_features(all_lesions, "lesion", reference, labelled))
    if settings.radiomics:
        extractor = extractor or RadiomicsExtractor(settings.params_path)
        masks = {s: on_grid(lesion, images[s], f"{what}: lesion mask on {s}") for s in sequences}
        row.update(extractor.extract({s: images[s] for s in sequences}, masks, sequences, settings.shell_mm))
        row["prov_params_sha256"] = extractor.params_sha256
        row["prov_pyradiomics_version"] = extractor.version
        row["prov_shape_sequence"] = sequences[0]
    row["prov_label"] = settings.label
    row["prov_mask_sha256"] = image_sha256(lesion)
    row["prov_mask_geometry"] = geometry_json(lesion)
    for sequence in sequences:
        row[f"prov_{sequence}_image_sha256"] = image_sha256(images[sequence])
        row[f"prov_{sequence}_geometry"] = geometry_json(images[sequence])
    return row


def read_case_images(
    images: Mapping[str, str | os.PathLike[str]],
    mask: str | os.PathLike[str] | None,
    anatomy: str | os.PathLike[str] | None,
    sequences: Sequence[str] | None,
    what: str = "case",
) -> tuple[dict[str, sitk.Image], sitk.Image, sitk.Image | None]:
    """Read a case's files (only the sequences that will be used)."""
    from SpineMetsCore.dataio import read_image

    if mask is None:
        raise InputError(what, "has no lesion mask (column 'mask' is empty)")
    wanted = resolve_sequences(list(images), sequences, what)
    read = {s: read_image(images[s]) for s in wanted}
    labelmap = read_image(mask)
    anatomy_image = read_image(anatomy) if anatomy is not None else None
    return read, labelmap, anatomy_image
