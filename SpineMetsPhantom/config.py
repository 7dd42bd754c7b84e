"""Settings of the phantom generator: grid, cohort mixture and scanner switches.

Only settings that a study design or a benchmark needs to vary are here; the
site -> appearance rules live in :mod:`.signal_rules` so they are read in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from SpineMetsCore.errors import InputError

from .signal_rules import SITE_PREVALENCE, SITES

DEFAULT_SIZE: tuple[int, int, int] = (96, 128, 14)
"""Voxels along image axes (0: anterior->posterior, 1: superior->inferior, 2: left->right)."""
DEFAULT_FOV_MM: tuple[float, float, float] = (110.4, 147.2, 49.0)
"""Field of view (mm) on the same axes; default spacing is (1.15, 1.15, 3.5) mm."""
MIN_FOV_MM: tuple[float, float, float] = (80.0, 100.0, 20.0)


@dataclass(frozen=True)
class CentreSettings:
    """Scanner settings that differ between the two centres (a mild domain shift)."""

    gain: float
    """Scanner units per unit of relative signal."""
    snr_factor: float
    p_3t: float
    """Share of the centre's examinations at 3 T (when both field strengths are allowed)."""
    stir_fat_residual: float
    """Fat signal left by the inversion pulse (imperfect suppression)."""
    t2_fluid_scale: float
    """Longer TE makes fluid relatively brighter on T2."""
    t1_contrast: float
    """Exponent applied to relative T1 signal (<1 flattens T1 contrast)."""
    bias_scale: float


CENTRES: dict[str, CentreSettings] = {
    "C1": CentreSettings(gain=1000.0, snr_factor=1.0, p_3t=0.5, stir_fat_residual=0.04,
                         t2_fluid_scale=1.0, t1_contrast=1.0, bias_scale=1.0),
    "C2": CentreSettings(gain=640.0, snr_factor=0.85, p_3t=0.3, stir_fat_residual=0.09,
                         t2_fluid_scale=1.12, t1_contrast=0.92, bias_scale=1.3),
}


def _default_prevalence() -> dict[str, float]:
    return dict(SITE_PREVALENCE)


@dataclass(frozen=True)
class PhantomConfig:
    """What to generate. The defaults give ~0.2 s cases suitable for tests.

    ``spacing=None`` spreads the default field of view over ``size`` so a benchmark can
    ask for ``PhantomConfig(size=(512, 512, 40))`` and get the same anatomy, finer.
    """

    size: tuple[int, int, int] = DEFAULT_SIZE
    spacing: tuple[float, float, float] | None = None
    site_prevalence: Mapping[str, float] = field(default_factory=_default_prevalence)
    primary_bone_fraction: float = 0.2
    """Share of cases generated as primary malignant bone tumour (``tumour_class``)."""
    zero_lesion_fraction: float = 0.0
    """Share of lesion-free control cases (their lesion EDF items read ``none``)."""
    centre_probs: Mapping[str, float] = field(default_factory=lambda: {"C1": 0.65, "C2": 0.35})
    field_strengths: tuple[float, ...] = (1.5, 3.0)
    """Allowed field strengths; with one value every case uses it."""
    noise: bool = True
    bias_field: bool = True
    snr_scale: float = 1.0
    """Multiplies every sequence's SNR (benchmarks of noise robustness)."""
    realism: bool = True
    """The imperfections of real spine MRI that make one-click segmentation hard (see
    :mod:`.case`): a strong spine-coil bias field, slice-profile blur and slice-to-slice
    gain, heterogeneous lesions with necrotic/cystic parts, and peritumoral marrow oedema
    that looks like the lesion on fluid-sensitive sequences. ``False`` gives the images of
    phantom version 1 (bit-identical), for before/after comparisons."""

    def __post_init__(self) -> None:
        if len(self.size) != 3 or any(int(n) != n or n < 8 for n in self.size):
            raise InputError("PhantomConfig.size", f"needs three integers >= 8, got {self.size!r}")
        if self.spacing is not None and (
            len(self.spacing) != 3 or any(not (math.isfinite(s) and s > 0) for s in self.spacing)
        ):
            raise InputError("PhantomConfig.spacing", f"needs three positive numbers, got {self.spacing!r}")
        fov = self.fov_mm
        if any(f < m for f, m in zip(fov, MIN_FOV_MM, strict=False)):
            raise InputError("PhantomConfig", f"field of view {fov} mm is smaller than the minimum {MIN_FOV_MM} mm")
        unknown = set(self.site_prevalence) - set(SITES)
        if unknown:
            raise InputError("PhantomConfig.site_prevalence", f"unknown site(s) {sorted(unknown)}; known: {SITES}")
        if any(v < 0 for v in self.site_prevalence.values()) or sum(self.site_prevalence.values()) <= 0:
            raise InputError("PhantomConfig.site_prevalence", "needs non-negative weights with a positive sum")
        for name in ("primary_bone_fraction", "zero_lesion_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"PhantomConfig.{name}", f"must be within [0, 1], got {value}")
        unknown = set(self.centre_probs) - set(CENTRES)
        if unknown or sum(self.centre_probs.values()) <= 0 or any(v < 0 for v in self.centre_probs.values()):
            raise InputError("PhantomConfig.centre_probs", f"needs weights for centres {tuple(CENTRES)}")
        if not self.field_strengths or any(f not in (1.5, 3.0) for f in self.field_strengths):
            raise InputError("PhantomConfig.field_strengths", f"must be a non-empty subset of (1.5, 3.0), got {self.field_strengths!r}")
        if not self.snr_scale > 0:
            raise InputError("PhantomConfig.snr_scale", f"must be positive, got {self.snr_scale}")

    @property
    def voxel_spacing(self) -> tuple[float, float, float]:
        if self.spacing is not None:
            return tuple(float(s) for s in self.spacing)  # type: ignore[return-value]
        return tuple(round(f / n, 6) for f, n in zip(DEFAULT_FOV_MM, self.size, strict=False))  # type: ignore[return-value]

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        return tuple(n * s for n, s in zip(self.size, self.voxel_spacing, strict=False))  # type: ignore[return-value]
