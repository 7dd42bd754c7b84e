"""Files shipped in the module's ``Resources/`` folder (parameter files, EDF schema).

The Lib lives at ``SpineMetsClassifier/SpineMetsClassifierLib`` in the source tree,
in Slicer's extension layout and in the editable install, so ``Resources`` is found
two levels up from this package.
"""

from __future__ import annotations

from pathlib import Path

from SpineMetsCore.errors import InputError

RESOURCES_DIR = Path(__file__).resolve().parents[2] / "Resources"
DEFAULT_RADIOMICS_PARAMS = RESOURCES_DIR / "Radiomics" / "mri_default.yaml"
"""Original image only: the defaults of the GUI, the CLI and the tests."""
FILTER_RADIOMICS_PARAMS = RESOURCES_DIR / "Radiomics" / "mri_filters.yaml"
"""Original + LoG + wavelet images."""
EDF_SCHEMA = RESOURCES_DIR / "EDF" / "edf_schema.yaml"
EDF_SCHEMA_JSON = RESOURCES_DIR / "EDF" / "edf_schema.json"
"""The same schema as JSON (generated from the YAML; a test keeps them equal): the Slicer
module reads it at load time, when PyYAML may not be installed yet. Regenerate with
``python -m SpineMetsClassifierLib.features.edf_json``."""


def resource(path: Path) -> Path:
    """``path`` if it exists, else an error saying the installation is incomplete."""
    if not path.is_file():
        raise InputError(str(path), "shipped resource file is missing (incomplete SpineMets installation)")
    return path
