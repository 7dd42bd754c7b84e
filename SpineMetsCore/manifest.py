"""The project-wide cohort manifest: one CSV row per case.

Columns: ``case_id``; one column per sequence (``T1``, ``T2``, ``STIR``,
``T1CE``) holding an image path; ``mask`` (lesion labelmap path); optional
``anatomy`` (anatomy labelmap); then label and clinical columns. Paths may be
relative to the manifest's folder or absolute (``~`` expanded).

Spreadsheet exports are accepted as they come: a UTF-8 byte-order mark (Excel's
"CSV UTF-8") and CRLF line ends. What is refused, naming the column and what
to do: a misspelled sequence or path column (``t2``, ``T2W``, ``Mask``: "did you
mean T2?"), another column holding image paths, duplicate columns or case ids,
rows with more cells than the header, non-UTF-8 text and semicolon-separated
files.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from .conventions import SEQUENCES
from .errors import InputError

logger = logging.getLogger(__name__)

KNOWN_SEQUENCES: tuple[str, ...] = SEQUENCES
"""Sequence columns of a manifest: the project's conventions."""
PATH_COLUMNS: tuple[str, ...] = (*KNOWN_SEQUENCES, "mask", "anatomy")
REFERENCE_COLUMNS: tuple[str, ...] = ("reference_mask",)
"""Image-path columns kept as data, not read as case images: a reference (ground-truth) lesion mask
beside the ``mask`` in use (``spinemets run`` writes one in ``segmented_manifest.csv``)."""
DEFAULT_OPTIONAL_SEQUENCES: tuple[str, ...] = ("T1CE",)
"""Sequences a cohort may lack when the caller does not name its sequences: contrast is
not part of a non-contrast protocol (study A); T1, T2 and STIR are expected."""
_IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm")


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest_column(name: str) -> str | None:
    """The known column a misspelled header most likely means (``t2`` -> ``T2``), or None."""
    if name in (*PATH_COLUMNS, "case_id"):
        return None
    known = {_normalized(c): c for c in (*PATH_COLUMNS, "case_id")}
    match = difflib.get_close_matches(_normalized(name), list(known), n=1, cutoff=0.75)
    return known[match[0]] if match else None


def _check_header(manifest: Path, columns: list[str], first_rows: list[dict[str, str]]) -> None:
    """Refuse misspelled path columns, image paths in other columns and duplicate headers."""
    problems = []
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        problems.append(f"duplicate column(s) {duplicates}")
    for column in columns:
        suggestion = suggest_column(column)
        if suggestion is not None:
            problems.append(f"column '{column}' is not a known column; did you mean '{suggestion}'? "
                            f"(sequence columns are {list(KNOWN_SEQUENCES)}, spelt exactly)")
            continue
        if column in PATH_COLUMNS or column in REFERENCE_COLUMNS or column == "case_id":
            continue
        looks_like_path = [r.get(column, "") for r in first_rows
                           if str(r.get(column) or "").strip().lower().endswith(_IMAGE_SUFFIXES)]
        if looks_like_path:
            problems.append(f"column '{column}' holds image paths (e.g. '{looks_like_path[0]}') but is not a sequence "
                            f"column; rename it to one of {list(KNOWN_SEQUENCES)} (or 'mask'/'anatomy')")
    if problems:
        raise InputError(str(manifest), "; ".join(problems))


def _read_text(manifest: Path) -> str:
    try:
        return manifest.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(str(manifest), f"is not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'") from None
    except OSError as exc:
        raise InputError(str(manifest), f"cannot be read ({exc.strerror or exc})") from None


@dataclass
class CaseRow:
    """One manifest row with paths resolved to absolute ones."""

    case_id: str
    images: dict[str, Path]
    mask: Path | None
    anatomy: Path | None
    values: dict[str, str] = field(default_factory=dict)


def read_manifest(
    path: str | os.PathLike[str],
    required_sequences: tuple[str, ...] = (),
    require_mask: bool = False,
    check_files: bool = True,
    *,
    optional_sequences: Collection[str] | None = None,
) -> list[CaseRow]:
    """Read and validate a manifest; every problem names the row and column.

    ``required_sequences`` must have a column and a file in every row. With
    ``optional_sequences`` given, every other known sequence is required too,
    except those listed: a cohort that silently lacks T1 is an error, not a
    smaller feature table.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise InputError(str(manifest), "manifest does not exist")
    base = manifest.parent
    text = _read_text(manifest)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    raw_columns = reader.fieldnames or []
    columns = [c.strip() for c in raw_columns]
    reader.fieldnames = columns
    if "case_id" not in columns:
        hint = ""
        if len(columns) == 1 and ";" in columns[0]:
            hint = "; it looks semicolon-separated: save it with commas as separator"
        elif any(suggest_column(c) == "case_id" for c in columns):
            hint = f"; did you mean 'case_id' (found '{next(c for c in columns if suggest_column(c) == 'case_id')}')?"
        raise InputError(str(manifest), f"has no 'case_id' column (columns: {columns}){hint}")
    raw_rows = list(reader)
    _check_header(manifest, columns, raw_rows[:50])
    required = list(required_sequences)
    if optional_sequences is not None:
        required += [s for s in KNOWN_SEQUENCES if s not in optional_sequences and s not in required]
    missing = [c for c in required if c not in columns]
    if require_mask and "mask" not in columns:
        missing.append("mask")
    if missing:
        hint = ""
        if optional_sequences is not None and any(s in KNOWN_SEQUENCES for s in missing):
            hint = "; add the column(s), or name the sequences to use (e.g. --sequences T2,STIR)"
        raise InputError(str(manifest), f"is missing column(s) {missing}{hint}")
    rows: list[CaseRow] = []
    seen: set[str] = set()
    relative: set[str] = set()
    problems: list[str] = []
    for line_no, raw in enumerate(raw_rows, start=2):
        if None in raw:
            problems.append(f"line {line_no}: more cells than the header has columns ({raw[None]})")
        if not any(str(v or "").strip() for k, v in raw.items() if k is not None):
            continue  # a blank line (spreadsheets often add them)
        case_id = (raw.get("case_id") or "").strip()
        if not case_id:
            problems.append(f"line {line_no}: empty case_id")
            continue
        if case_id in seen:
            problems.append(f"line {line_no}: duplicate case_id '{case_id}'")
        seen.add(case_id)

        def resolve(col: str, case_id: str = case_id, line_no: int = line_no, raw: dict = raw) -> Path | None:
            value = (raw.get(col) or "").strip()
            if not value:
                return None
            p = Path(value).expanduser()
            if not p.is_absolute():
                relative.add(col)
                p = base / p
            if check_files and not p.exists():
                problems.append(f"line {line_no} (case '{case_id}'), column '{col}': file {p} does not exist")
            return p

        images = {s: resolve(s) for s in columns if s in KNOWN_SEQUENCES}
        for s in required:
            if s in KNOWN_SEQUENCES and images.get(s) is None:
                problems.append(f"line {line_no} (case '{case_id}'), column '{s}': empty")
        mask = resolve("mask") if "mask" in columns else None
        if require_mask and mask is None:
            problems.append(f"line {line_no} (case '{case_id}'), column 'mask': empty")
        anatomy = resolve("anatomy") if "anatomy" in columns else None
        values = {k: v for k, v in raw.items() if k not in PATH_COLUMNS and k != "case_id" and k is not None}
        rows.append(CaseRow(case_id, {k: v for k, v in images.items() if v is not None}, mask, anatomy, values))
    if problems:
        raise InputError(str(manifest), "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else ""))
    if not rows:
        raise InputError(str(manifest), "has no case rows")
    if relative:
        logger.info("%s: relative paths (%s) are resolved against the manifest's folder %s",
                    manifest, ", ".join(sorted(relative)), base.resolve())
    return rows
