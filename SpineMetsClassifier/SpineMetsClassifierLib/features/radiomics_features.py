"""PyRadiomics on each MRI sequence inside a lesion (and optionally a peritumoural shell).

Images and masks are SimpleITK images handed straight to
``radiomics.featureextractor.RadiomicsFeatureExtractor.execute`` (no temporary
files); the extractor is built from a parameter file in PyRadiomics' own schema,
so a value in our table equals the value of a direct PyRadiomics call with that
file on the same image and mask.

Feature names (columns)
-----------------------
* ``<sequence>_<imageType>_<class>_<feature>`` for intensity and texture features,
  e.g. ``T1_original_firstorder_Mean``, ``STIR_wavelet-LLH_glcm_Idmn``,
  ``T2_log-sigma-2-0-mm-3D_glszm_ZoneEntropy`` (PyRadiomics' key prefixed with the
  sequence; PyRadiomics keys never contain ``_`` inside a part, so the four parts
  split unambiguously on ``_``).
* ``<sequence>-peri<N>mm_<imageType>_<class>_<feature>`` for the peritumoural shell
  of ``N`` mm (e.g. ``T2-peri5mm_original_firstorder_Median``).
* ``shape_<feature>`` (and ``shape2D_<feature>``) once per lesion: shape depends on
  the mask only, so it is computed with the first selected sequence (the *shape
  reference*, recorded as ``prov_shape_sequence``) and equals PyRadiomics'
  ``original_shape_<feature>`` on that sequence.
* PyRadiomics' ``diagnostics_*`` entries are not features and are not computed:
  the parameter file is used unchanged except that ``additionalInfo`` is switched
  off (the diagnostics cost ~30 % of a small lesion's extraction time and change no
  feature value); the case's provenance columns record parameter-file hash,
  PyRadiomics version, image and mask hashes and grids instead.

Reproducibility: PyRadiomics' normalisation takes the image mean and standard
deviation from ITK's multi-threaded statistics filter, which adds per-thread
partial sums in completion order; on a busy machine two identical calls can then
differ in the last bits. Extraction therefore runs with one ITK thread
(:func:`single_threaded_itk`), so a value is reproducible bit for bit and equals a
direct PyRadiomics call made under the same condition.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import sha256_file

from .masks import peritumoural_shell
from .resources import DEFAULT_RADIOMICS_PARAMS, resource

logger = logging.getLogger(__name__)

SHAPE_CLASSES = ("shape", "shape2D")
ROI_LABEL = 1
"""Masks given to PyRadiomics are binary (our label selection happens before), so label 1."""


@contextlib.contextmanager
def single_threaded_itk() -> Iterator[None]:
    """Run ITK filters on one thread (deterministic sums); restore the previous count after."""
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def pyradiomics_version() -> str:
    import radiomics

    return str(radiomics.__version__)


def shell_token(shell_mm: float) -> str:
    """Region token of a peritumoural shell, e.g. ``peri5mm`` or ``peri2.5mm``."""
    return f"peri{float(shell_mm):g}mm"


def feature_name(sequence: str, key: str, region: str = "") -> str | None:
    """Column name of a PyRadiomics result key (None for diagnostics)."""
    if key.startswith("diagnostics_"):
        return None
    image_type, feature_class, feature = key.split("_", 2)
    if feature_class in SHAPE_CLASSES:
        return f"{feature_class}_{feature}"
    prefix = f"{sequence}-{region}" if region else sequence
    return f"{prefix}_{image_type}_{feature_class}_{feature}"


def _number(value: Any) -> float:
    return float(np.asarray(value, dtype=float))


class RadiomicsExtractor:
    """PyRadiomics extractors built once from one parameter file.

    Parsing and schema-validating a parameter file costs ~0.1 s, more than a small
    lesion's features, so workers keep one instance per file for all their cases.
    """

    def __init__(self, params_path: str | os.PathLike[str] | None = None) -> None:
        from radiomics.featureextractor import RadiomicsFeatureExtractor

        path = Path(params_path) if params_path is not None else resource(DEFAULT_RADIOMICS_PARAMS)
        if not path.is_file():
            raise InputError(str(path), "PyRadiomics parameter file does not exist")
        self.params_path = path
        self.params_sha256 = sha256_file(path)
        self.version = pyradiomics_version()
        try:
            self.with_shape = RadiomicsFeatureExtractor(str(path))
        except Exception as exc:  # noqa: BLE001 - pykwalify/yaml raise many error types
            message = str(exc).strip().splitlines()
            raise InputError(str(path), f"is not a valid PyRadiomics parameter file ({message[0] if message else exc})") from exc
        self.with_shape.settings["additionalInfo"] = False  # diagnostics only; see the module docstring
        self.without_shape = copy.deepcopy(self.with_shape)
        for name in SHAPE_CLASSES:
            self.without_shape.enabledFeatures.pop(name, None)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.with_shape.settings)

    @property
    def image_types(self) -> dict[str, Any]:
        return dict(self.with_shape.enabledImagetypes)

    def execute(self, image: sitk.Image, mask: sitk.Image, shape: bool, what: str) -> dict[str, Any]:
        """One PyRadiomics call; an invalid ROI becomes an error naming ``what``."""
        extractor = self.with_shape if shape else self.without_shape
        try:
            with single_threaded_itk():
                return extractor.execute(image, mask, label=ROI_LABEL)
        except (ValueError, RuntimeError, AssertionError) as exc:
            message = str(exc).strip().splitlines()
            raise InputError(what, f"PyRadiomics failed: {message[0] if message else type(exc).__name__}") from exc

    def extract(
        self,
        images: Mapping[str, sitk.Image],
        masks: Mapping[str, sitk.Image],
        sequences: Sequence[str] | None = None,
        shell_mm: float = 0.0,
    ) -> dict[str, float]:
        """Features of every sequence (lesion, and shell when ``shell_mm`` > 0), named as documented.

        ``masks[seq]`` is the binary lesion mask on ``images[seq]``'s grid. Shape
        features come from the first sequence only.
        """
        sequences = list(sequences) if sequences is not None else list(images)
        features: dict[str, float] = {}
        for index, sequence in enumerate(sequences):
            features.update(self.extract_sequence(sequence, images[sequence], masks[sequence], index == 0, shell_mm))
        return features

    def extract_sequence(
        self, sequence: str, image: sitk.Image, mask: sitk.Image, shape: bool, shell_mm: float = 0.0
    ) -> dict[str, float]:
        """Features of one sequence (as :meth:`extract` names them); ``shape`` on the shape reference only."""
        features = self._named(sequence, self.execute(image, mask, shape=shape, what=f"sequence {sequence} (lesion)"))
        if shell_mm > 0:
            region = shell_token(shell_mm)
            shell = peritumoural_shell(mask, shell_mm)
            result = self.execute(image, shell, shape=False, what=f"sequence {sequence} ({region} shell)")
            features.update(self._named(sequence, result, region))
        return features

    @staticmethod
    def _named(sequence: str, result: Mapping[str, Any], region: str = "") -> dict[str, float]:
        named: dict[str, float] = {}
        for key, value in result.items():
            name = feature_name(sequence, key, region)
            if name is not None:
                named[name] = _number(value)
        return named
