"""Overlap and surface-distance metrics between two binary masks, in physical units.

Both masks are compared on the *reference* mask's grid: a test mask on another
grid is resampled there by physical position (nearest neighbour), so a reader's
segmentation drawn on T2 can be scored against a model output on T1. Distances
use the voxel spacing (mm); volumes are measured on each mask's own grid, so
the volume difference does not depend on the resampling.

Definitions (``A`` = reference, ``B`` = test, ``dA``/``dB`` their boundary voxels):

* Dice = 2|A∩B| / (|A|+|B|); Jaccard = |A∩B| / |A∪B|.
* Directed surface distances: for every voxel of ``dA`` the distance (mm) to the
  nearest voxel of ``dB``, and vice versa.
* HD95 = max(95th percentile of A->B, 95th percentile of B->A) (MONAI's
  symmetric convention); MSD = mean of both directed sets pooled (average
  symmetric surface distance).
* volume_difference_ml = volume(B) - volume(A) (positive: test larger).

Two empty masks agree perfectly (Dice 1, distances 0); when exactly one is
empty, Dice and Jaccard are 0 and the distances are undefined (NaN).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.volumes import Geometry, resample_like, voxel_volume_ml

METRIC_NAMES: tuple[str, ...] = (
    "dice",
    "jaccard",
    "hd95_mm",
    "msd_mm",
    "volume_difference_ml",
    "reference_volume_ml",
    "test_volume_ml",
)


@dataclass(frozen=True)
class SegmentationMetrics:
    """Agreement between a reference and a test mask (see the module docstring)."""

    dice: float
    jaccard: float
    hd95_mm: float
    msd_mm: float
    volume_difference_ml: float
    reference_volume_ml: float
    test_volume_ml: float

    def as_dict(self, json_safe: bool = False) -> dict[str, float | None]:
        """Plain dict; ``json_safe`` turns NaN into None (JSON has no NaN)."""
        values = asdict(self)
        if json_safe:
            return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
        return values


def mask_volume_ml(mask: sitk.Image) -> float:
    """Volume of the non-zero voxels in millilitres."""
    return float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * voxel_volume_ml(mask)


def _binary(mask: sitk.Image, what: str) -> sitk.Image:
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(what, "must be a 3-D single-component mask")
    return sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)


def _surface_distances(a: sitk.Image, b: sitk.Image) -> np.ndarray:
    """Distances (mm) from every boundary voxel of ``a`` to the boundary of ``b``.

    Masks are padded by one empty voxel first, so a mask cut by the field of view
    has a surface there (as with scipy's ``border_value=0``).
    """
    a = sitk.ConstantPad(a, [1, 1, 1], [1, 1, 1], 0)
    b = sitk.ConstantPad(b, [1, 1, 1], [1, 1, 1], 0)
    contour_a = sitk.GetArrayFromImage(sitk.BinaryContour(a, fullyConnected=True)) > 0
    contour_b = sitk.BinaryContour(b, fullyConnected=True)
    # Distance to the nearest boundary voxel of b (0 on it), with physical spacing.
    distance_b = sitk.SignedMaurerDistanceMap(
        contour_b, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    # Outside the contour the map is the distance to its nearest voxel; on it (negative
    # inside thick contour patches) the distance to the contour is 0.
    values = np.maximum(sitk.GetArrayFromImage(distance_b)[contour_a], 0.0)
    return values.astype(np.float64)


def compute_metrics(reference: sitk.Image, test: sitk.Image) -> SegmentationMetrics:
    """Dice, Jaccard, HD95, MSD and volume difference of two masks (any non-zero = inside)."""
    ref = _binary(reference, "reference mask")
    tst = _binary(test, "test mask")
    ref_ml, test_ml = mask_volume_ml(ref), mask_volume_ml(tst)
    if not Geometry.from_image(tst).same_grid(Geometry.from_image(ref)):
        tst = resample_like(tst, ref, labelmap=True, name="test mask")
    a = sitk.GetArrayViewFromImage(ref) > 0
    b = sitk.GetArrayViewFromImage(tst) > 0
    na, nb = int(a.sum()), int(b.sum())
    inter = int(np.logical_and(a, b).sum())
    union = na + nb - inter
    if na == 0 and nb == 0:
        return SegmentationMetrics(1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    dice = 2.0 * inter / (na + nb)
    jaccard = inter / union
    if na == 0 or nb == 0:
        hd95 = msd = float("nan")
    else:
        d_ab = _surface_distances(ref, tst)
        d_ba = _surface_distances(tst, ref)
        hd95 = float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
        msd = float(np.concatenate([d_ab, d_ba]).mean())
    return SegmentationMetrics(
        dice=float(dice),
        jaccard=float(jaccard),
        hd95_mm=hd95,
        msd_mm=msd,
        volume_difference_ml=test_ml - ref_ml,
        reference_volume_ml=ref_ml,
        test_volume_ml=test_ml,
    )
