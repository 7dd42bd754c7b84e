"""Writing cases and cohorts: image files plus one manifest CSV.

Manifest convention (shared by the whole project): one row per case; ``case_id``;
one column per sequence (``T1``, ``T2``, ``STIR``, ``T1CE``) with an image path
relative to the manifest; ``mask`` (lesion labelmap) and ``anatomy`` (anatomy
labelmap) paths; then the label and clinical columns of :data:`.plan.RECORD_COLUMNS`.

Case ``i`` of a cohort with seed ``s`` uses the case seed
``SeedSequence([s, i]).generate_state(1, uint64)[0] >> 11`` (stored in the ``seed``
column), so a case does not change when the cohort grows and can be regenerated on
its own with :func:`.case.generate_case`. Every file is written atomically, and the
gzip streams SimpleITK writes carry no time stamp, so the same seed gives
byte-identical files.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import atomic_path
from SpineMetsCore.progress import ProgressCallback

from .case import PhantomCase, generate_case
from .config import PhantomConfig
from .plan import RECORD_COLUMNS, check_seed, plan_case, plan_record
from .signal_rules import SEQUENCES

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("nii.gz", "nii", "nrrd", "mha")
"""Single-file formats only: a detached header would name the temporary file."""
PATH_COLUMNS: tuple[str, ...] = (*SEQUENCES, "mask", "anatomy")
MANIFEST_COLUMNS: tuple[str, ...] = ("case_id", *PATH_COLUMNS, *RECORD_COLUMNS[1:])
MANIFEST_NAME = "manifest.csv"


def case_seed(cohort_seed: int, index: int) -> int:
    """Seed of case ``index`` in a cohort: independent of the cohort size.

    Kept below 2**53 so a spreadsheet or pandas reading the manifest as float64 does
    not round it.
    """
    check_seed(cohort_seed, "seed")
    state = np.random.SeedSequence([int(cohort_seed), int(index)]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 11


def case_id_for(index: int) -> str:
    return f"case{index:04d}"


def sample_records(n_cases: int, seed: int, config: PhantomConfig | None = None) -> list[dict[str, object]]:
    """Records of the cohort :func:`write_cohort` would write, without images (fast)."""
    _check_count(n_cases)
    config = config or PhantomConfig()
    return [plan_record(plan_case(case_seed(seed, i), case_id_for(i), config)) for i in range(n_cases)]


def write_case(case: PhantomCase, out_dir: str | os.PathLike[str], fmt: str = "nii.gz") -> dict[str, object]:
    """Write ``<case_id>_<SEQ>``, ``_mask`` and ``_anatomy`` files; return the manifest row."""
    _check_format(fmt)
    out = _prepare_dir(out_dir)
    row: dict[str, object] = {"case_id": case.case_id}
    items = [*((seq, case.images[seq]) for seq in SEQUENCES), ("mask", case.lesion_mask), ("anatomy", case.anatomy)]
    for column, image in items:
        name = f"{case.case_id}_{column}.{fmt}"
        try:
            with atomic_path(out / name) as tmp:
                sitk.WriteImage(image, str(tmp), useCompression=fmt != "nii")
        except (OSError, RuntimeError) as exc:
            raise InputError(str(out / name), f"cannot be written ({exc})") from exc
        row[column] = name
    for key in RECORD_COLUMNS[1:]:
        row[key] = case.record[key]
    return {key: row[key] for key in MANIFEST_COLUMNS}


def write_cohort(
    out_dir: str | os.PathLike[str],
    n_cases: int,
    seed: int,
    config: PhantomConfig | None = None,
    fmt: str = "nii.gz",
    progress: ProgressCallback | None = None,
) -> Path:
    """Generate and write ``n_cases`` cases and ``manifest.csv``; return the manifest path."""
    _check_count(n_cases)
    check_seed(seed, "seed")
    _check_format(fmt)
    config = config or PhantomConfig()
    out = _prepare_dir(out_dir)
    rows = []
    for i in range(n_cases):
        case = generate_case(case_seed(seed, i), case_id_for(i), config)
        rows.append(write_case(case, out, fmt))
        if progress is not None:
            progress(i + 1, n_cases)
    manifest = out / MANIFEST_NAME
    with atomic_path(manifest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
    logger.info("wrote %d phantom case(s) and %s", n_cases, manifest)
    return manifest


def _csv_value(value: object) -> object:
    return repr(value) if isinstance(value, float) else value


def _check_count(n_cases: object) -> None:
    if isinstance(n_cases, bool) or not isinstance(n_cases, (int, np.integer)) or n_cases < 0:
        raise InputError("n_cases", f"must be a non-negative integer, got {n_cases!r}")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError("fmt", f"unknown image format {fmt!r}; use one of {FORMATS}")


def _prepare_dir(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(out), f"cannot create the output folder ({exc})") from exc
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise InputError(str(out), "is not a writable folder")
    return out
