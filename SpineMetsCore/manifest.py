"""The project-wide cohort manifest: one CSV row per case.

Columns: ``case_id``; one column per sequence (``T1``, ``T2``, ``STIR``,
``T1CE``) holding an image path; ``mask`` (lesion labelmap path); optional
``anatomy`` (anatomy labelmap); then label and clinical columns. Paths may be
relative to the manifest's folder or absolute.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .conventions import SEQUENCES
from .errors import InputError

logger = logging.getLogger(__name__)

KNOWN_SEQUENCES: tuple[str, ...] = SEQUENCES
"""Sequence columns of a manifest: the project's conventions."""
PATH_COLUMNS: tuple[str, ...] = (*KNOWN_SEQUENCES, "mask", "anatomy")


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
) -> list[CaseRow]:
    """Read and validate a manifest; every problem names the row and column."""
    manifest = Path(path)
    if not manifest.is_file():
        raise InputError(str(manifest), "manifest does not exist")
    base = manifest.resolve().parent
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "case_id" not in columns:
            raise InputError(str(manifest), f"has no 'case_id' column (columns: {columns})")
        missing = [c for c in required_sequences if c not in columns]
        if require_mask and "mask" not in columns:
            missing.append("mask")
        if missing:
            raise InputError(str(manifest), f"is missing column(s) {missing}")
        rows: list[CaseRow] = []
        relative: list[str] = []
        seen: set[str] = set()
        problems: list[str] = []
        for line_no, raw in enumerate(reader, start=2):
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
                p = Path(value)
                if not p.is_absolute():
                    relative.append(col)
                    p = base / p
                if check_files and not p.exists():
                    problems.append(f"line {line_no} (case '{case_id}'), column '{col}': file {p} does not exist")
                return p

            images = {s: resolve(s) for s in columns if s in KNOWN_SEQUENCES}
            for s in required_sequences:
                if images.get(s) is None:
                    problems.append(f"line {line_no} (case '{case_id}'), column '{s}': empty")
            mask = resolve("mask") if "mask" in columns else None
            if require_mask and mask is None:
                problems.append(f"line {line_no} (case '{case_id}'), column 'mask': empty")
            anatomy = resolve("anatomy") if "anatomy" in columns else None
            values = {k: v for k, v in raw.items() if k not in PATH_COLUMNS and k != "case_id" and k is not None}
            rows.append(CaseRow(case_id, {k: v for k, v in images.items() if v is not None}, mask, anatomy, values))
        if problems:
            raise InputError(str(manifest), "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else ""))
    if relative:
        logger.info("%s: relative paths are resolved against the manifest's folder %s", manifest, base)
    return rows
