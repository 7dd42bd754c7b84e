"""The domain vocabulary of SpineMets, in one place, read from shipped data files.

* sequences (manifest columns ``T1``, ``T2``, ``STIR``, ``T1CE``), anatomy labels of
  an anatomy map, signal classes and their lesion/normal-marrow ratio thresholds,
  the tokens of a missing cell: ``Resources/conventions.json``;
* the expert-derived-feature (EDF) items, their types and allowed values:
  ``Resources/edf_schema.json`` (``--feature-set edf`` is exactly its items).

JSON, not YAML, so that desktop Slicer (which does not bundle PyYAML) reads them
at import. The phantom, the features code, the manifest reader and the models all
take these names from here; none keeps its own list.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESOURCES_DIR = Path(__file__).resolve().parent / "Resources"
CONVENTIONS_FILE = RESOURCES_DIR / "conventions.json"
EDF_SCHEMA_FILE = RESOURCES_DIR / "edf_schema.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:  # an incomplete installation, not a user error
        raise RuntimeError(f"{path}: shipped SpineMets conventions file is unreadable ({exc})") from exc


_CONVENTIONS = _load(CONVENTIONS_FILE)
_EDF = _load(EDF_SCHEMA_FILE)

SEQUENCES: tuple[str, ...] = tuple(_CONVENTIONS["sequences"])
"""MRI sequences SpineMets knows, in display order (manifest column names)."""

ANATOMY_LABELS: dict[int, str] = {int(value): name for value, name in _CONVENTIONS["anatomy_labels"].items()}
"""Label value -> structure name of an anatomy map (0 is background)."""

ANATOMY_LABEL_VALUES: dict[str, int] = {name: value for value, name in ANATOMY_LABELS.items() if value != 0}
"""Structure name -> label value, background left out (the features code's default)."""

SIGNAL_CLASSES: tuple[str, ...] = tuple(_CONVENTIONS["signal_classes"])
"""Lesion signal relative to normal vertebral marrow of the same case and sequence."""

SIGNAL_THRESHOLDS: tuple[float, float] = tuple(float(v) for v in _CONVENTIONS["signal_thresholds"])  # type: ignore[assignment]
"""Lesion/normal-marrow mean ratio limits between hypo|iso and iso|hyper."""

NO_LESION: str = _CONVENTIONS["no_lesion"]
"""EDF value of a lesion item in a lesion-free case (a category, never a missing value)."""

MISSING_VALUES: tuple[str, ...] = tuple(_CONVENTIONS["missing_values"])
"""Spellings of a missing ("not recorded") cell, matched case-insensitively."""

_MISSING_LOWER = frozenset(v.strip().lower() for v in MISSING_VALUES)

EDF_SCHEMA: dict[str, Any] = _EDF
"""The shipped EDF schema (name, version, items with type, allowed values, meaning)."""

EDF_ITEMS: tuple[str, ...] = tuple(str(item["name"]) for item in _EDF["items"])
"""The EDF items, in the schema's order (what a radiologist records per case)."""

EDF_CATEGORIES: dict[str, tuple[str, ...]] = {
    str(item["name"]): tuple(str(v) for v in item["allowed"]) for item in _EDF["items"] if item["type"] == "categorical"
}
"""Allowed values of each categorical EDF item."""


def is_missing(value: Any) -> bool:
    """True for None, NaN and the missing-cell tokens (case-insensitive); ``none`` is not missing."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip().lower() in _MISSING_LOWER


def pandas_na_values(extra: tuple[str, ...] = ()) -> list[str]:
    """The missing tokens in the spellings ``pandas.read_csv(na_values=...)`` matches exactly."""
    spellings: set[str] = set()
    for token in (*MISSING_VALUES, *extra):
        spellings.update({token, token.lower(), token.upper(), token.capitalize(), token.title()})
    return sorted(spellings)


def signal_class(ratio: float, thresholds: tuple[float, float] = SIGNAL_THRESHOLDS) -> str:
    """``hypo`` / ``iso`` / ``hyper`` of a lesion/normal-marrow ratio ('' when not finite)."""
    if not math.isfinite(ratio):
        return ""
    low, high = thresholds
    if ratio < low:
        return SIGNAL_CLASSES[0]
    if ratio > high:
        return SIGNAL_CLASSES[2]
    return SIGNAL_CLASSES[1]
