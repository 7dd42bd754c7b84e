"""Expert-derived features (EDF): the documented schema and cell-by-cell validation.

The schema (``SpineMetsCore/Resources/edf_schema.json``, the project's conventions) lists every item a radiologist
records: name, type, allowed values or range, meaning, accepted column aliases and
the computed counterpart. Values come from a CSV, a manifest or the module's form;
each bad cell is reported with its row, column, value and the allowed values, and
all bad cells are reported at once so a 500-row sheet is fixed in one pass.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpineMetsCore.conventions import MISSING_VALUES
from SpineMetsCore.errors import InputError

from .resources import EDF_SCHEMA, resource

ITEM_TYPES = ("integer", "number", "categorical")
MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class EDFItem:
    """One schema item."""

    name: str
    type: str
    meaning: str
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    aliases: tuple[str, ...] = ()
    counterpart: str = ""

    def describe_allowed(self) -> str:
        """Allowed values as an error message shows them."""
        if self.type == "categorical":
            return ", ".join(self.allowed)
        kind = "a whole number" if self.type == "integer" else "a number"
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"{kind} in {low}..{high}" + (f" ({self.unit})" if self.unit else "")

    def parse(self, raw: Any) -> Any:
        """Canonical value of a non-missing cell; ValueError when it is not allowed."""
        if self.type == "categorical":
            text = str(raw).strip()
            for value in self.allowed:
                if text.lower() == value.lower():
                    return value
            raise ValueError(text)
        try:
            number = float(str(raw).strip())
        except ValueError:
            raise ValueError(str(raw)) from None
        if not math.isfinite(number):
            raise ValueError(str(raw))
        if self.type == "integer":
            if number != round(number):
                raise ValueError(str(raw))
            number = int(round(number))
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise ValueError(str(raw))
        return number


@dataclass(frozen=True)
class EDFSchema:
    """The whole schema: items in display order plus the spellings of a missing cell."""

    name: str
    version: int
    items: tuple[EDFItem, ...]
    missing: tuple[str, ...] = MISSING_VALUES
    path: str = ""
    _by_name: dict[str, EDFItem] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({item.name: item for item in self.items})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.items)

    def item(self, name: str) -> EDFItem:
        if name not in self._by_name:
            raise InputError(f"EDF item '{name}'", f"is not in the schema (items: {', '.join(self.names)})")
        return self._by_name[name]

    def canonical(self, column: str) -> str | None:
        """Item name of a column (its own name or an alias, case-insensitive); None if unrelated."""
        key = column.strip().lower()
        for item in self.items:
            if key == item.name.lower() or key in (a.lower() for a in item.aliases):
                return item.name
        return None

    def is_missing(self, raw: Any) -> bool:
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return True
        return str(raw).strip().lower() in {m.lower() for m in self.missing}


@dataclass(frozen=True)
class EDFProblem:
    """One bad cell."""

    row: int
    """1-based data row (the header is not counted; CSV line = row + 1)."""
    case_id: str
    column: str
    value: str
    allowed: str

    def __str__(self) -> str:
        case = f" (case '{self.case_id}')" if self.case_id else ""
        return f"row {self.row}{case}, column '{self.column}': value '{self.value}' is not allowed; allowed: {self.allowed}"


class EDFValidationError(InputError):
    """Raised with every bad cell; ``problems`` keeps them for programs."""

    def __init__(self, what: str, problems: Sequence[EDFProblem]) -> None:
        self.problems = list(problems)
        listed = "; ".join(str(p) for p in self.problems[:MAX_LISTED_PROBLEMS])
        more = f" ... and {len(self.problems) - MAX_LISTED_PROBLEMS} more" if len(self.problems) > MAX_LISTED_PROBLEMS else ""
        super().__init__(what, f"{len(self.problems)} invalid EDF cell(s): {listed}{more}")


def load_schema(path: str | os.PathLike[str] | None = None) -> EDFSchema:
    """Read and check a schema file (JSON, or YAML); errors name the file and the item.

    The shipped schema is JSON, read without PyYAML (desktop Slicer does not bundle it);
    PyYAML is imported only for a user's ``.yaml`` schema.
    """
    schema_path = Path(path) if path is not None else resource(EDF_SCHEMA)
    if not schema_path.is_file():
        raise InputError(str(schema_path), "EDF schema file does not exist")
    text = schema_path.read_text(encoding="utf-8")
    if schema_path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(str(schema_path), f"is not valid JSON ({exc})") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(str(schema_path), f"is not valid YAML/JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) or not data["items"]:
        raise InputError(str(schema_path), "needs a non-empty 'items' list")
    items = [_item(schema_path, index, raw) for index, raw in enumerate(data["items"], start=1)]
    names = [item.name for item in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(str(schema_path), f"defines item(s) {duplicates} more than once")
    missing = tuple(str(m) for m in data.get("missing", MISSING_VALUES))
    return EDFSchema(str(data.get("name", "EDF")), int(data.get("version", 1)), tuple(items), missing, str(schema_path))


def _item(path: Path, index: int, raw: Any) -> EDFItem:
    where = f"{path} (item {index})"
    if not isinstance(raw, dict) or not raw.get("name"):
        raise InputError(where, "every item needs a 'name'")
    name = str(raw["name"])
    where = f"{path} (item '{name}')"
    kind = raw.get("type")
    if kind not in ITEM_TYPES:
        raise InputError(where, f"type {kind!r} is not one of {ITEM_TYPES}")
    allowed = tuple(str(v) for v in raw.get("allowed") or ())
    if kind == "categorical" and not allowed:
        raise InputError(where, "a categorical item needs 'allowed' values")
    minimum = raw.get("minimum")
    maximum = raw.get("maximum")
    if minimum is not None and maximum is not None and float(minimum) > float(maximum):
        raise InputError(where, f"minimum {minimum} is above maximum {maximum}")
    if not raw.get("meaning"):
        raise InputError(where, "needs a 'meaning' (what the reader records)")
    return EDFItem(
        name=name,
        type=kind,
        meaning=" ".join(str(raw["meaning"]).split()),
        allowed=allowed,
        minimum=None if minimum is None else float(minimum),
        maximum=None if maximum is None else float(maximum),
        unit=str(raw.get("unit", "")),
        aliases=tuple(str(a) for a in raw.get("aliases") or ()),
        counterpart=str(raw.get("counterpart", "")),
    )


def validate_records(
    records: Iterable[Mapping[str, Any]],
    schema: EDFSchema | None = None,
    id_column: str = "case_id",
    required: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[EDFProblem]]:
    """Canonical EDF values of each record and the list of bad cells.

    Columns that are not schema items (nor aliases) pass through unchanged; alias
    columns are renamed to the item name. Missing cells become None; an item in
    ``required`` must be present and not missing.
    """
    schema = schema or load_schema()
    out: list[dict[str, Any]] = []
    problems: list[EDFProblem] = []
    for row_number, record in enumerate(records, start=1):
        case_id = str(record.get(id_column, "") or "")
        clean: dict[str, Any] = {}
        source: dict[str, str] = {}
        for column, raw in record.items():
            name = schema.canonical(str(column))
            if name is None:
                clean[column] = raw
                continue
            if name in source:
                raise InputError(f"columns '{source[name]}' and '{column}'", f"both hold the EDF item '{name}'; keep one")
            source[name] = str(column)
            item = schema.item(name)
            if schema.is_missing(raw):
                clean[name] = None
                continue
            try:
                clean[name] = item.parse(raw)
            except ValueError:
                problems.append(EDFProblem(row_number, case_id, str(column), str(raw), item.describe_allowed()))
                clean[name] = None
        for name in required:
            if clean.get(name) is None and not any(p.row == row_number and schema.canonical(p.column) == name for p in problems):
                problems.append(EDFProblem(row_number, case_id, name, "", f"a value is required ({schema.item(name).describe_allowed()})"))
        out.append(clean)
    return out, problems


def check_records(
    records: Iterable[Mapping[str, Any]],
    schema: EDFSchema | None = None,
    what: str = "EDF values",
    id_column: str = "case_id",
    required: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """:func:`validate_records` that raises :class:`EDFValidationError` listing every bad cell."""
    clean, problems = validate_records(records, schema, id_column, required)
    if problems:
        raise EDFValidationError(what, problems)
    return clean


def read_edf_csv(
    path: str | os.PathLike[str],
    schema: EDFSchema | None = None,
    id_column: str = "case_id",
    required: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Validated rows of an EDF CSV (``case_id`` + item columns); errors name the file."""
    import csv

    csv_path = Path(path)
    if not csv_path.is_file():
        raise InputError(str(csv_path), "EDF table does not exist")
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if id_column not in columns:
            raise InputError(str(csv_path), f"has no '{id_column}' column (columns: {columns})")
        rows = list(reader)
    schema = schema or load_schema()
    unknown_required = [name for name in required if name not in columns and not any(schema.canonical(c) == name for c in columns)]
    if unknown_required:
        raise InputError(str(csv_path), f"is missing required EDF column(s) {unknown_required}")
    ids = [row.get(id_column, "") for row in rows]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise InputError(str(csv_path), f"has duplicate {id_column} value(s) {duplicated[:10]}")
    return check_records(rows, schema, str(csv_path), id_column, required)


def edf_columns(columns: Iterable[str], schema: EDFSchema | None = None) -> list[str]:
    """The columns (given spelling) that are EDF items or aliases."""
    schema = schema or load_schema()
    return [c for c in columns if schema.canonical(c) is not None]
