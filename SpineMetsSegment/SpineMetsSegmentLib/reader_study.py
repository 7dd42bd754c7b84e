"""Reader study: do readers segment closer to the reference with model assistance?

Cohort file (CSV, one row per case and reader; paths relative to the CSV)::

    case_id,reader,reference,unassisted,assisted[,reference_segment][,segment]

``reference`` is the reference standard (expert consensus or ground truth),
``unassisted`` the reader's segmentation made without the model, ``assisted``
the one made with the model's proposal; files are ``.seg.nrrd`` or labelmaps.
``reference_segment`` / ``segment`` optionally name the segment to compare
(default: the union of all segments). Every (case, reader) pair is scored in
both conditions with :mod:`.metrics`, then each metric is compared between
conditions with a paired Wilcoxon signed-rank test and a paired t-test, over
all readers and per reader (pairs with an undefined metric are dropped and the
remaining ``n`` reported). The volume error compared is the absolute volume
difference. Differences are assisted minus unassisted.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError
from SpineMetsCore.stats.paired import paired_tests
from SpineMetsCore.tables import provenance, write_table_csv

from .metrics import SegmentationMetrics

REQUIRED_COLUMNS: tuple[str, ...] = ("case_id", "reader", "reference", "unassisted", "assisted")
CONDITIONS: tuple[str, ...] = ("unassisted", "assisted")
COMPARED_METRICS: tuple[str, ...] = ("dice", "jaccard", "hd95_mm", "msd_mm", "abs_volume_difference_ml")

MetricsFunction = Callable[[Path, Path, "str | None", "str | None"], SegmentationMetrics]


@dataclass
class ReaderRow:
    case_id: str
    reader: str
    reference: Path
    tests: dict[str, Path]
    reference_segment: str | None = None
    segment: str | None = None


@dataclass
class ReaderStudyResult:
    per_case: pd.DataFrame
    """One row per case, reader and condition with every metric."""
    summary: pd.DataFrame
    """One row per scope (all readers, each reader) and metric: means, difference, CI, p-values."""
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics_table: Any = None
    summary_table: Any = None

    def summary_records(self) -> list[dict[str, Any]]:
        """Summary rows as JSON-safe dicts (NaN -> None)."""
        records = self.summary.to_dict(orient="records")
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]


def read_cohort(path: str | os.PathLike[str]) -> list[ReaderRow]:
    """Read and check the cohort CSV; every problem names the line and column."""
    cohort = Path(path)
    if not cohort.is_file():
        raise InputError(str(cohort), "reader-study cohort file does not exist")
    rows: list[ReaderRow] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    with cohort.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(str(cohort), f"is missing column(s) {missing} (needs {list(REQUIRED_COLUMNS)})")
        for line, raw in enumerate(reader, start=2):
            key = ((raw.get("case_id") or "").strip(), (raw.get("reader") or "").strip())
            if not all(key):
                problems.append(f"line {line}: empty case_id or reader")
                continue
            if key in seen:
                problems.append(f"line {line}: duplicate case '{key[0]}' for reader '{key[1]}'")
            seen.add(key)
            paths = {}
            for column in ("reference", *CONDITIONS):
                value = (raw.get(column) or "").strip()
                p = Path(value) if value else None
                if p is not None and not p.is_absolute():
                    p = cohort.parent / p
                if p is None or not p.exists():
                    problems.append(f"line {line}, column '{column}': file {value!r} does not exist")
                paths[column] = p
            rows.append(
                ReaderRow(
                    key[0],
                    key[1],
                    paths["reference"],
                    {c: paths[c] for c in CONDITIONS},
                    (raw.get("reference_segment") or "").strip() or None,
                    (raw.get("segment") or "").strip() or None,
                )
            )
    if problems:
        raise InputError(str(cohort), "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else ""))
    if not rows:
        raise InputError(str(cohort), "has no rows")
    return rows


def score_cohort(rows: list[ReaderRow], metrics_fn: MetricsFunction) -> pd.DataFrame:
    """Long table: case_id, reader, condition and every metric."""
    records = []
    for row in rows:
        for condition in CONDITIONS:
            try:
                m = metrics_fn(row.reference, row.tests[condition], row.reference_segment, row.segment)
            except InputError as exc:
                raise InputError(f"case '{row.case_id}', reader '{row.reader}', {condition}", str(exc)) from exc
            record = {"case_id": row.case_id, "reader": row.reader, "condition": condition, **m.as_dict()}
            record["abs_volume_difference_ml"] = abs(m.volume_difference_ml)
            records.append(record)
    return pd.DataFrame.from_records(records)


def paired_comparison(per_case: pd.DataFrame, metrics: tuple[str, ...] = COMPARED_METRICS) -> pd.DataFrame:
    """Paired tests assisted vs unassisted, over all readers and per reader."""
    scopes: list[tuple[str, pd.DataFrame]] = [("all readers", per_case)]
    readers = sorted(per_case["reader"].unique())
    if len(readers) > 1:
        scopes += [(f"reader {r}", per_case[per_case["reader"] == r]) for r in readers]
    rows = []
    for scope, frame in scopes:
        wide = frame.pivot_table(index=["case_id", "reader"], columns="condition", values=list(metrics), aggfunc="first")
        for metric in metrics:
            pairs = wide[metric][list(CONDITIONS)].dropna()
            rows.append({"scope": scope, "metric": metric, **_paired_stats(pairs["unassisted"].to_numpy(), pairs["assisted"].to_numpy())})
    return pd.DataFrame.from_records(rows)


def _paired_stats(unassisted: np.ndarray, assisted: np.ndarray) -> dict[str, float]:
    """The reader-study columns of :func:`SpineMetsCore.stats.paired.paired_tests` (assisted - unassisted)."""
    r = paired_tests(unassisted, assisted, conf_level=0.95, first_name="unassisted", second_name="assisted")
    return {
        "n": r.n,
        "mean_unassisted": r.mean_first,
        "mean_assisted": r.mean_second,
        "mean_difference": r.mean_difference,
        "ci95_low": r.ci_low,
        "ci95_high": r.ci_high,
        "wilcoxon_p": r.wilcoxon_p,
        "ttest_p": r.ttest_p,
    }


def run_reader_study(cohort: str | os.PathLike[str], metrics_fn: MetricsFunction) -> ReaderStudyResult:
    """Score every reader in both conditions and compare (see module docstring)."""
    rows = read_cohort(cohort)
    per_case = score_cohort(rows, metrics_fn)
    summary = paired_comparison(per_case)
    prov = provenance(
        analysis="SpineMets reader study (assisted vs unassisted)",
        cohort=str(Path(cohort).resolve()),
        n_rows=len(rows),
        tests="paired Wilcoxon signed-rank (two-sided) and paired t-test; difference = assisted - unassisted",
        hd95="max of the two directed 95th-percentile surface distances",
    )
    return ReaderStudyResult(per_case, summary, prov)


def write_results(
    result: ReaderStudyResult,
    out_csv: str | os.PathLike[str] | None,
    summary_csv: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Per-case CSV at ``out_csv``; summary at ``summary_csv`` (default ``<stem>_summary.csv``)."""
    written: dict[str, Path] = {}
    if out_csv is not None:
        written["metrics"] = write_table_csv(result.per_case, out_csv, result.provenance)
        if summary_csv is None:
            target = Path(out_csv)
            summary_csv = target.with_name(target.name[: -len(target.suffix)] + "_summary" + target.suffix) if target.suffix else target.with_name(target.name + "_summary.csv")
    if summary_csv is not None:
        written["summary"] = write_table_csv(result.summary, summary_csv, result.provenance)
    return written
