"""Files shipped in the module's ``Resources/`` folder (radiomics parameter files); the EDF schema.

The Lib lives at ``SpineMetsClassifier/SpineMetsClassifierLib`` in the source tree,
in Slicer's extension layout and in the editable install, so ``Resources`` is found
two levels up from this package.
"""

from __future__ import annotations

from pathlib import Path

from SpineMetsCore.conventions import EDF_SCHEMA_FILE
from SpineMetsCore.errors import InputError

RESOURCES_DIR = Path(__file__).resolve().parents[2] / "Resources"
DEFAULT_RADIOMICS_PARAMS = RESOURCES_DIR / "Radiomics" / "mri_default.yaml"
"""Original image only: the defaults of the GUI, the CLI and the tests."""
FILTER_RADIOMICS_PARAMS = RESOURCES_DIR / "Radiomics" / "mri_filters.yaml"
"""Original + LoG + wavelet images."""
EDF_SCHEMA = EDF_SCHEMA_FILE
"""The shipped EDF schema: one of the project's conventions, so it lives in SpineMetsCore."""


def resource(path: Path) -> Path:
    """``path`` if it exists, else an error saying the installation is incomplete."""
    if not path.is_file():
        raise InputError(str(path), "shipped resource file is missing (incomplete SpineMets installation)")
    return path
