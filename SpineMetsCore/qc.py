"""Quality checks on images and masks: an error before a meaningless result, a flag beside a doubtful one.

The reader (:mod:`.dataio`) already refuses damaged files, non-3-D images and
NaN/infinite voxels. What a file cannot tell by itself is checked here against
its role: a blank (constant) sequence, a lesion mask that is empty or covers
the whole image, a mask on no common ground with its image. Each problem is a
:class:`QCFlag`. ``error`` flags raise :class:`ImageQualityError` (one message
listing all of them, naming the file, the sequence and what to do); ``warning``
flags are returned so the caller carries them into its output (the ``qc_flags``
column of a feature table, the pipeline's case table) - never silence.

Decisions:

========================  ========  ===============================================
code                      severity  why
========================  ========  ===============================================
``not_3d``                error     a single slice cannot be segmented or measured in 3-D
``nonfinite``             error     NaN/Inf poison every statistic and region
``constant_image``        error     a blank/failed export gives "lesions" from nothing
``mask_not_integer``      error     fractional labels: an interpolated or probability map
``mask_negative``         error     labels are 0 (background) and positive integers
``mask_empty``            error     nothing to measure (a control case has no features)
``mask_full``             error     every voxel labelled: an inverted or wrong mask
``mask_no_overlap``       error     the mask lies outside the image: another case's mask
``image_looks_like_mask`` warning   a sequence column pointing at a labelmap
``mask_resampled``        warning   the mask is on another grid and was resampled
``mask_outside_image``    warning   part of the lesion lies outside the image
``anatomy_empty``         warning   signal references fall back to image statistics
========================  ========  ===============================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import SimpleITK as sitk

from .errors import ImageQualityError

Severity = Literal["error", "warning"]
Role = Literal["image", "mask", "anatomy", "reference_mask"]


@dataclass(frozen=True)
class QCFlag:
    """One finding about one input."""

    code: str
    severity: Severity
    subject: str
    """The input it is about: file path and/or sequence."""
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


def subject_name(path: str | os.PathLike[str] | None, sequence: str | None, role: str) -> str:
    """How a message names an input: ``<path> (sequence T2)`` or ``lesion mask <path>``."""
    label = {"image": "image", "mask": "lesion mask", "anatomy": "anatomy labelmap", "reference_mask": "reference mask"}.get(role, role)
    if sequence and path:
        return f"{path} (sequence {sequence})"
    if sequence:
        return f"sequence {sequence}"
    if path:
        return f"{label} {path}" if role != "image" else str(path)
    return label


def format_flags(flags: Iterable[QCFlag]) -> str:
    """The ``qc_flags`` cell: ``code: subject; code: subject`` ('' when clean)."""
    return "; ".join(f"{f.code}: {f.subject}" for f in flags)


def raise_errors(flags: Iterable[QCFlag]) -> list[QCFlag]:
    """Raise one :class:`ImageQualityError` for all error flags; return the warnings."""
    flags = list(flags)
    errors = [f for f in flags if f.severity == "error"]
    if errors:
        subject = errors[0].subject
        detail = "; ".join(f.message if f.subject == subject else str(f) for f in errors)
        raise ImageQualityError(subject, detail)
    return [f for f in flags if f.severity == "warning"]


def validate_image(
    image: sitk.Image | np.ndarray,
    *,
    role: Role = "image",
    sequence: str | None = None,
    path: str | os.PathLike[str] | None = None,
    reference: sitk.Image | None = None,
    reference_sequence: str | None = None,
    raise_on_error: bool = True,
) -> list[QCFlag]:
    """Check ``image`` for its ``role``; raise on errors (unless told not to), return warnings.

    ``reference`` (for masks): the image the mask must lie on; a mask on another
    grid is checked for overlap and for lesion voxels falling outside
    (``reference_sequence`` names it in messages). ``image`` may also be a
    (K, J, I) array, e.g. a view of a volume node's voxels, so checking costs no copy.
    """
    subject = subject_name(path, sequence, role)
    flags: list[QCFlag] = []

    def flag(code: str, severity: Severity, message: str) -> None:
        flags.append(QCFlag(code, severity, subject, message))

    if isinstance(image, np.ndarray):
        if reference is not None:
            raise TypeError("a mask checked against a reference must be a SimpleITK image")
        size, dimension = tuple(int(s) for s in image.shape[::-1]), image.ndim
    else:
        size, dimension = tuple(int(s) for s in image.GetSize()), image.GetDimension()
    if dimension != 3 or min(size) < 2:
        flag("not_3d", "error", f"is a {_dims(size)} image of size {'x'.join(map(str, size))}; "
             "SpineMets needs a 3-D volume with at least 2 voxels along every axis (export the whole series)")
        return raise_errors(flags) if raise_on_error else flags
    array = image if isinstance(image, np.ndarray) else sitk.GetArrayViewFromImage(image)
    floating = np.issubdtype(array.dtype, np.floating)
    lo, hi = float(array.min()), float(array.max())  # NaN propagates and Inf is an extreme: no full-size temporary
    if floating and not (np.isfinite(lo) and np.isfinite(hi)):
        flag("nonfinite", "error", f"has {int((~np.isfinite(array)).sum())} NaN or infinite voxel(s); "
             "replace them (e.g. with 0) in the export or conversion step")
        return raise_errors(flags) if raise_on_error else flags
    if role == "image":
        if lo == hi:
            flag("constant_image", "error", f"is blank: every voxel is {lo:g}; the export or conversion failed, "
                 "or the column points at the wrong file")
        elif not floating and hi - lo <= 1:
            flag("image_looks_like_mask", "warning", f"holds only the values {lo:g} and {hi:g}, like a mask; "
                 "check that the column points at the MR image")
    else:
        if floating and not np.array_equal(array, np.round(array)):
            flag("mask_not_integer", "error", "has fractional values; a labelmap holds integer labels "
                 "(resample masks with nearest-neighbour interpolation, or threshold a probability map)")
        elif lo < 0:
            flag("mask_negative", "error", f"has negative values (minimum {lo:g}); labels are 0 for background and positive integers")
        elif hi == 0:
            if role == "mask":
                flag("mask_empty", "error", "has no labelled voxel; draw the lesion, or leave this case out "
                     "(features are measured inside a lesion)")
            elif role == "anatomy":
                flag("anatomy_empty", "warning", "has no labelled voxel; signal references use image statistics instead")
        elif lo > 0 and role in ("mask", "reference_mask"):
            flag("mask_full", "error", "labels every voxel of the image; it is probably inverted (background must be 0)")
        if reference is not None and hi > 0 and not any(f.severity == "error" for f in flags):
            flags.extend(_mask_on_reference(image, reference, subject, reference_sequence))
    return raise_errors(flags) if raise_on_error else flags


def _dims(size: tuple[int, ...]) -> str:
    return f"{sum(1 for s in size if s > 1)}-D"


def _mask_on_reference(mask: sitk.Image, reference: sitk.Image, subject: str, sequence: str | None) -> list[QCFlag]:
    from .volumes import Geometry, images_overlap

    if Geometry.from_image(mask).same_grid(Geometry.from_image(reference)):
        return []
    target = f"the {sequence} image" if sequence else "the image"
    if not images_overlap(mask, reference):
        return [QCFlag("mask_no_overlap", "error", subject,
                       f"does not overlap {target} in physical space: it belongs to another case, or its "
                       "origin/direction was lost in a conversion (check the mask's geometry)")]
    flags = [QCFlag("mask_resampled", "warning", subject, f"is on another grid than {target} and was resampled onto it")]
    labelled_ml = float((sitk.GetArrayViewFromImage(mask) > 0).sum()) * float(np.prod(mask.GetSpacing()))
    resampled = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, mask.GetPixelID())
    kept_ml = float((sitk.GetArrayViewFromImage(resampled) > 0).sum()) * float(np.prod(reference.GetSpacing()))
    if kept_ml == 0.0:
        flags = [QCFlag("mask_no_overlap", "error", subject,
                        f"has no labelled voxel inside {target}: it belongs to another case, or its geometry is wrong")]
    elif labelled_ml > 0 and kept_ml < 0.8 * labelled_ml:
        flags.append(QCFlag("mask_outside_image", "warning", subject,
                            f"lies partly outside {target} ({100 * (1 - kept_ml / labelled_ml):.0f}% of the lesion volume lost)"))
    return flags
