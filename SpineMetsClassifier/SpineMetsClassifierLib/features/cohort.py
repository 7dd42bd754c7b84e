"""A cohort manifest to one feature table: worker processes, per-case cache, per-case errors.

* Parallel: cases run in ``spawn``-started worker processes (safe with MRML, VTK
  and PyRadiomics, which must not be forked mid-flight); each worker builds the
  PyRadiomics extractor once. ``workers=1`` runs in-process with the same code, so
  both give identical values.
* Cache: every finished case is written at once, atomically, to
  ``<cache>/<case>.json`` under a key made of the case's input files (path, size,
  modification time), the extraction settings, the parameter file's SHA-256 and
  the PyRadiomics version. A rerun after an interruption loads those cases and
  computes only the rest; a changed input or setting changes the key and the case
  is recomputed. Failed cases are never cached.
* Errors: a case that fails gets its message in the ``error`` column (feature
  columns empty); the other cases complete. Quality warnings about a case's
  inputs (:mod:`SpineMetsCore.qc`) go into the ``qc_flags`` column.
* Workers die with the parent process (no orphans after a SIGKILL); temporaries
  of interrupted cache writes are removed on start and on exit.
* A long-lived pool: ``executor`` takes any :class:`concurrent.futures.Executor` whose
  workers stay up between calls (the pipeline's Dask workers via
  ``SpineMetsApp.pipeline.WorkerPool.executor()``), so worker start-up, imports and the
  extractor are paid once per worker, not once per call; :func:`prepare_worker` pays
  them ahead of the first case.
* Outputs (CSV and ``<stem>.provenance.json``) are written atomically, only after
  every case has been processed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError, SpineMetsError
from SpineMetsCore.fileio import remove_part_files, sha256_file, write_text_atomic
from SpineMetsCore.manifest import DEFAULT_OPTIONAL_SEQUENCES
from SpineMetsCore.progress import ProgressCallback

from .case import CaseSettings, extract_case, read_case_images
from .radiomics_features import RadiomicsExtractor, pyradiomics_version
from .resources import EDF_SCHEMA

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
"""Bumped when a code change alters feature values, so old cache entries are not reused."""
CACHE_PART_PATTERN = ".*.part.json"
"""Temporaries of atomic cache writes (see :func:`SpineMetsCore.fileio.atomic_path`)."""
RESERVED_PREFIXES = ("q_", "seg_", "prov_", "shape_", "shape2D_")
NAMING = (
    "<sequence>_<imageType>_<class>_<feature> (e.g. T1_original_firstorder_Mean); "
    "<sequence>-peri<N>mm_<imageType>_<class>_<feature> for the peritumoural shell; "
    "shape_<feature> once per lesion, computed on prov_shape_sequence; "
    "q_* quantitative EDF counterparts; seg_lesion_* segmentation features; prov_* provenance"
)



@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs for one case (picklable)."""

    case_id: str
    images: tuple[tuple[str, str], ...]
    mask: str | None
    anatomy: str | None
    settings: CaseSettings
    key: str
    cache_file: str | None


@dataclass
class CohortResult:
    """The table plus what happened to each case."""

    frame: Any
    """pandas DataFrame: one row per manifest case, in manifest order."""
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------
# Worker side
# ----------------------------------------------------------------------------------
_EXTRACTORS: dict[tuple[str | None, str], RadiomicsExtractor] = {}


def _extractor(settings: CaseSettings, params_sha256: str) -> RadiomicsExtractor:
    key = (settings.params_path, params_sha256)
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = RadiomicsExtractor(settings.params_path)
    return _EXTRACTORS[key]


@contextlib.contextmanager
def quiet_radiomics() -> Iterator[None]:
    """Silence PyRadiomics' per-call notes (e.g. the symmetric-GLCM warning) during a batch."""
    import radiomics  # noqa: F401 - importing it resets its logger level, so import first

    loggers = [logging.getLogger(name) for name in ("radiomics", "pykwalify")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _init_worker(parent_pid: int | None = None) -> None:
    """One ITK thread per worker: the workers already share the cores, and it keeps
    sums deterministic (see :func:`.radiomics_features.single_threaded_itk`).
    The worker dies with its parent (no orphans after a SIGKILL of the command)."""
    import SimpleITK as sitk

    from SpineMetsCore.processes import die_with_parent

    die_with_parent(parent_pid)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def prepare_worker(settings: CaseSettings, params_sha256: str = "") -> None:
    """A worker's fixed costs before its first case: imports, one ITK thread, the extractor."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    if settings.radiomics:
        with quiet_radiomics():
            _extractor(settings, params_sha256)


def run_case(task: CaseTask, params_sha256: str = "") -> dict[str, Any]:
    """Extract one case from its files; never raises for a bad case (the error is returned)."""
    started = time.perf_counter()
    error = ""
    row: dict[str, Any] = {}
    try:
        with quiet_radiomics():
            images, labelmap, anatomy = read_case_images(  # sequences read one at a time, by extract_case
                dict(task.images), task.mask, task.anatomy, task.settings.sequences, f"case '{task.case_id}'", lazy=True
            )
            extractor = _extractor(task.settings, params_sha256) if task.settings.radiomics else None
            sources = {**dict(task.images), "mask": task.mask or "", "anatomy": task.anatomy or ""}
            row = extract_case(images, labelmap, anatomy, task.settings, extractor, f"case '{task.case_id}'", sources)
    except SpineMetsError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop a cohort
        logger.debug("case %s failed", task.case_id, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
    if not error and task.cache_file:
        entry = {"version": CACHE_VERSION, "key": task.key, "case_id": task.case_id, "row": row}
        write_text_atomic(task.cache_file, json.dumps(entry))
    return {"case_id": task.case_id, "row": row, "error": error, "seconds": time.perf_counter() - started}


# ----------------------------------------------------------------------------------
# Main side
# ----------------------------------------------------------------------------------
def file_identity(path: Path | None) -> dict[str, Any] | None:
    """What the cache key knows about an input file (cheap: no content hash)."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return {"path": str(path), "missing": True}
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def case_key(case_id: str, images: Mapping[str, Path], mask: Path | None, anatomy: Path | None,
             settings: CaseSettings, params_sha256: str) -> str:
    """Cache key of one case: inputs, settings, parameter file and library version."""
    payload = {
        "cache_version": CACHE_VERSION,
        "case_id": case_id,
        "images": {s: file_identity(p) for s, p in sorted(images.items())},
        "mask": file_identity(mask),
        "anatomy": file_identity(anatomy),
        "settings": settings.as_dict(),
        "params_sha256": params_sha256,
        "pyradiomics": pyradiomics_version() if settings.radiomics else "",
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_file_name(case_id: str) -> str:
    """A file-system-safe, collision-free cache file name for a case id."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)[:80]
    return f"{safe}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}.json"


def _load_cached(path: Path, key: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if entry.get("version") != CACHE_VERSION or entry.get("key") != key:
        return None
    return entry.get("row")


def _process_context() -> Any:
    """``spawn`` context; inside desktop Slicer the workers run Slicer's PythonSlicer."""
    context = multiprocessing.get_context("spawn")
    slicer_module = sys.modules.get("slicer")
    if slicer_module is not None and hasattr(slicer_module, "app"):
        executable = shutil.which("PythonSlicer") or str(Path(sys.executable).with_name("PythonSlicer"))
        context.set_executable(executable)
    return context


def _validated_values(rows: Sequence[Any], manifest: Path, edf_csv: Path | None, schema_path: Path | None) -> list[dict[str, Any]]:
    """Manifest value columns with EDF items validated (and overridden by an EDF CSV)."""
    from .edf import check_records, load_schema, read_edf_csv

    schema = load_schema(schema_path)
    records = [{"case_id": row.case_id, **row.values} for row in rows]
    values = check_records(records, schema, what=str(manifest))
    if edf_csv is not None:
        edf_rows = {r["case_id"]: r for r in read_edf_csv(edf_csv, schema)}
        unknown = sorted(set(edf_rows) - {row.case_id for row in rows})
        if unknown:
            raise InputError(str(edf_csv), f"has case_id(s) not in the manifest: {unknown[:10]}")
        without = [row.case_id for row in rows if row.case_id not in edf_rows]
        if without:
            logger.warning("%d case(s) have no row in %s: %s", len(without), edf_csv, without[:10])
        for record in values:
            record.update({k: v for k, v in edf_rows.get(record["case_id"], {}).items() if k != "case_id"})
    for record in values:
        record.pop("case_id", None)
        clash = [c for c in record if c in ("error", "qc_flags") or str(c).startswith(RESERVED_PREFIXES)]
        if clash:
            raise InputError(str(manifest), f"column(s) {clash} clash with feature column names; rename them")
    return values


def extract_cohort(
    manifest: str | os.PathLike[str],
    settings: CaseSettings | None = None,
    workers: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    edf_csv: str | os.PathLike[str] | None = None,
    edf_schema: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    optional_sequences: Sequence[str] = DEFAULT_OPTIONAL_SEQUENCES,
    executor: Executor | None = None,
) -> CohortResult:
    """Every feature of every manifest case in one DataFrame (see the module docstring).

    Without ``settings.sequences`` every known sequence must be in the manifest
    except ``optional_sequences`` (default T1CE): a manifest that lacks T1 is an
    error rather than a table without T1 features.

    ``cache_dir`` None disables the cache. ``progress(done, total)`` is called as
    cases finish (cached ones first). ``executor``: a running pool to use (and leave
    running) instead of starting ``workers`` processes; its workers must run ITK with one
    thread (:func:`prepare_worker`) for values identical to the in-process path.
    """
    import pandas as pd

    from SpineMetsCore.manifest import KNOWN_SEQUENCES, read_manifest
    from SpineMetsCore.tables import provenance

    manifest_path = Path(manifest)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError("workers", f"must be a positive integer, got {workers!r}")
    settings = settings or CaseSettings()
    settings = replace(settings, anatomy_labels=tuple(sorted(settings.labels().items())))
    if settings.sequences:
        rows = read_manifest(manifest_path, tuple(settings.sequences), check_files=False, optional_sequences=KNOWN_SEQUENCES)
    else:
        rows = read_manifest(manifest_path, check_files=False, optional_sequences=optional_sequences)
    if rows and all(row.mask is None for row in rows):
        raise InputError(str(manifest_path), "has no lesion masks (column 'mask'); features are measured inside a lesion")
    values = _validated_values(rows, manifest_path, Path(edf_csv) if edf_csv else None, Path(edf_schema) if edf_schema else None)

    params_sha256 = ""
    if settings.radiomics:
        with quiet_radiomics():
            extractor = RadiomicsExtractor(settings.params_path)  # fail fast on a bad parameter file
        params_sha256 = extractor.params_sha256
        settings = replace(settings, params_path=str(extractor.params_path.resolve()))
        _EXTRACTORS.setdefault((settings.params_path, params_sha256), extractor)  # reused by in-process runs
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        stale = remove_part_files(cache, CACHE_PART_PATTERN)  # a killed run's half-written entries
        if stale:
            logger.info("removed %d unfinished cache file(s) of an interrupted run from %s", stale, cache)

    results: dict[str, dict[str, Any]] = {}
    tasks: list[CaseTask] = []
    cached: list[str] = []
    for row in rows:
        key = case_key(row.case_id, row.images, row.mask, row.anatomy, settings, params_sha256)
        cache_file = cache / cache_file_name(row.case_id) if cache is not None else None
        hit = _load_cached(cache_file, key) if cache_file is not None and cache_file.is_file() else None
        if hit is not None:
            results[row.case_id] = {"row": hit, "error": ""}
            cached.append(row.case_id)
            continue
        tasks.append(CaseTask(
            row.case_id, tuple((s, str(p)) for s, p in row.images.items()),
            str(row.mask) if row.mask else None, str(row.anatomy) if row.anatomy else None,
            settings, key, str(cache_file) if cache_file is not None else None,
        ))
    total = len(rows)
    done = len(cached)
    if progress is not None:
        progress(done, total)
    if cached and tasks:
        logger.info("resuming: %d case(s) from the cache in %s, %d to compute", len(cached), cache, len(tasks))
    try:
        for outcome in _run(tasks, params_sha256, workers, executor):
            results[outcome["case_id"]] = outcome
            done += 1
            if progress is not None:
                progress(done, total)
    finally:
        if cache is not None:
            remove_part_files(cache, CACHE_PART_PATTERN)  # a worker that died mid-write

    records = []
    failed: dict[str, str] = {}
    for row, record_values in zip(rows, values, strict=True):
        outcome = results[row.case_id]
        if outcome["error"]:
            failed[row.case_id] = outcome["error"]
        features = dict(outcome["row"])
        qc_flags = features.pop("qc_flags", "")
        records.append({"case_id": row.case_id, "error": outcome["error"], "qc_flags": qc_flags, **record_values, **features})
    frame = pd.DataFrame.from_records(records)
    passthrough = {c for record in values for c in record}
    for column in passthrough:
        frame[column] = _numeric_if_possible(frame[column])
    computed = [t.case_id for t in tasks]
    schema_file = Path(edf_schema) if edf_schema else EDF_SCHEMA
    prov = provenance(
        operation="spinemets features",
        manifest=str(manifest_path.resolve()),
        manifest_sha256=sha256_file(manifest_path),
        params=settings.params_path,
        params_sha256=params_sha256,
        pyradiomics_version=pyradiomics_version() if settings.radiomics else None,
        settings=settings.as_dict(),
        edf_csv=str(edf_csv) if edf_csv else None,
        edf_csv_sha256=sha256_file(edf_csv) if edf_csv else None,
        edf_schema=str(schema_file),
        edf_schema_sha256=sha256_file(schema_file),
        workers=workers,
        cache_dir=str(cache) if cache is not None else None,
        cases=total,
        computed=len(computed),
        cached=len(cached),
        failed=failed,
        naming=NAMING,
        non_feature_columns=["case_id", "error", *sorted(passthrough, key=list(frame.columns).index)],
    )
    return CohortResult(frame=frame, computed=computed, cached=cached, failed=failed, provenance=prov)


def _numeric_if_possible(column: Any) -> Any:
    """A manifest column as numbers when every non-empty cell is one (CSV cells arrive as text)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return column
    present = column.map(lambda v: v is not None and not (isinstance(v, float) and v != v) and str(v).strip() != "")
    converted = pd.to_numeric(column.where(present), errors="coerce")
    if present.any() and int(converted.notna().sum()) == int(present.sum()):
        if pd.api.types.is_float_dtype(converted) and (converted.abs() > 2**53).any():
            return column  # e.g. 64-bit seeds: keep them exact as text
        return converted
    return column


def _file_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _run(tasks: Sequence[CaseTask], params_sha256: str, workers: int,
         executor: Executor | None = None) -> Iterator[dict[str, Any]]:
    """Outcomes of the tasks as they finish (in-process for one worker and no ``executor``)."""
    if not tasks:
        return
    if executor is None and (workers == 1 or len(tasks) == 1):
        for task in tasks:
            yield run_case(task, params_sha256)
        return
    own = executor is None
    if executor is None:
        executor = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=_process_context(),
                                       initializer=_init_worker, initargs=(os.getpid(),))
    pending: dict[Future, CaseTask] = {}
    try:
        # Largest masks first (a proxy for the slowest cases), so no long case is left for the end.
        ordered = sorted(tasks, key=lambda task: -_file_size(task.mask))
        pending = {executor.submit(run_case, task, params_sha256): task for task in ordered}
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in finished:
                task = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    yield {"case_id": task.case_id, "row": {}, "error": f"worker process died ({exc})", "seconds": 0.0}
                except Exception as exc:  # noqa: BLE001 - run_case never raises: the pool lost the task
                    yield {"case_id": task.case_id, "row": {}, "error": f"worker failed ({type(exc).__name__}: {exc})",
                           "seconds": 0.0}
        if own:
            executor.shutdown(wait=True)
    except BaseException:
        if own:
            executor.shutdown(wait=False, cancel_futures=True)
        else:
            for future in pending:
                future.cancel()
        raise


def write_feature_table(result: CohortResult, out: str | os.PathLike[str]) -> Path:
    """``out`` CSV and ``<stem>.provenance.json``, both atomic."""
    from SpineMetsCore.tables import write_table_csv

    target = Path(out)
    result.provenance["output"] = str(target.resolve())
    return write_table_csv(result.frame, target, result.provenance)
