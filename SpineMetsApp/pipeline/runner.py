"""``spinemets run``: check everything, run the per-case tasks on Dask, then the study stage and the report.

Order of work (nothing is computed before every input check passed):

1. Config (:mod:`.config`) and manifest checked: every problem names the key or the
   manifest line and column; the output folder must be writable and either new, empty,
   or a run of the same config on the same manifest (resumed, and said so) unless
   ``overwrite``.
2. Per-case tasks (:mod:`.cases`) on a :class:`WorkerPool`: an in-process ``LocalCluster``
   with ``workers`` processes by default (workers die with this process, see
   :mod:`.worker_guard`), an existing cluster with ``scheduler`` (``tcp://host:8786``), a
   running pool passed in (fixed costs paid once for several cohorts), or in this process
   with ``workers=0``. Finished cases are skipped; a failing case is
   recorded (``failures.csv``) and the cohort goes on. Progress with ETA on stderr.
3. Cohort tables: ``features.csv`` (with provenance naming its non-feature columns),
   ``segmentation.csv``, ``failures.csv``, ``segmented_manifest.csv``.
4. Study stage (:mod:`.study`) and report (:mod:`.report`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import sha256_file, write_text_atomic

from .cases import (
    PIPELINE_COLUMNS,
    CaseSettings,
    CaseSpec,
    case_folder_name,
    case_key,
    process_case,
    resolve_path,
    seeds_and_roi,
)
from .config import StudyConfig, load_config

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
LOCK_FILE = ".spinemets-run.lock"
RUN_FORMAT = 1
ProgressCallback = Callable[[int, int], None]


class OutputFolderError(InputError):
    """The output folder cannot be used (not writable, or holds another run)."""


@dataclass
class RunPlan:
    """A checked run: config, cases and where outputs go."""

    config: StudyConfig
    manifest: Path
    manifest_sha256: str
    out: Path
    specs: list[CaseSpec]
    settings: CaseSettings
    manifest_columns: list[str]
    values: dict[str, dict[str, str]]
    """case_id -> manifest value columns (everything but paths)."""
    raw_rows: list[dict[str, str]]
    resumed: bool = False

    @property
    def identity(self) -> dict[str, str]:
        return {"config_sha256": self.config.digest(), "manifest_sha256": self.manifest_sha256}


@dataclass
class RunResult:
    """What a run produced (paths relative to ``out``)."""

    out: Path
    report: Path | None
    cases: int
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    resumed: bool = False
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- checks
def _utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def check_output_folder(out: Path, identity: Mapping[str, str], overwrite: bool) -> bool:
    """Refuse unusable output folders before any work; True when resuming the same run."""
    probe_dir = out if out.exists() else next((p for p in out.parents if p.exists()), Path("/"))
    if out.exists() and not out.is_dir():
        raise OutputFolderError(str(out), "exists and is not a folder")
    if not probe_dir.is_dir():
        raise OutputFolderError(str(out), f"cannot be created: {probe_dir} is a file, not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise OutputFolderError(str(out), f"is not writable ({probe_dir} does not allow writing)")
    if not out.exists() or not any(p.name != LOCK_FILE for p in out.iterdir()):
        return False
    run_file = out / RUN_FILE
    previous: dict[str, Any] | None = None
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(run_file.read_text(encoding="utf-8"))
    if not isinstance(previous, dict):
        raise OutputFolderError(str(out), "is not empty and holds no SpineMets run (no run.json); "
                                "choose a new or empty folder (it is never overwritten, even with --overwrite)")
    same = all(previous.get(k) == v for k, v in identity.items())
    if same and not overwrite:
        return True
    if not overwrite:
        changed = [k for k, v in identity.items() if previous.get(k) != v]
        raise OutputFolderError(str(out), f"holds a run with a different {' and '.join(c.split('_')[0] for c in changed)}; "
                                "use --overwrite to replace it or choose another folder")
    _clear_run(out)
    return False


def _clear_run(out: Path) -> None:
    """Remove a previous run's outputs (only a folder with run.json reaches here)."""
    logger.warning("--overwrite: removing the previous run in %s", out)
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def clean_temporaries(out: Path) -> int:
    """Delete temporary files left by an interrupted run (atomic writes' ``.*.part*`` and ``.*.old``)."""
    removed = 0
    if not out.is_dir():
        return 0
    for path in sorted(out.rglob(".*"), key=lambda p: -len(p.parts)):
        name = path.name
        if ".part" in name or name.endswith(".old"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run", removed)
    return removed


def _feature_settings(config: StudyConfig) -> Any:
    from SpineMetsClassifierLib.features.case import CaseSettings as FeatureSettings

    f = config["features"]
    return FeatureSettings(params_path=f["params"], sequences=tuple(f["sequences"]) if f["sequences"] else None,
                           label=1, shell_mm=float(f["shell_mm"]), radiomics=bool(f["radiomics"]),
                           quantitative=bool(f["quantitative"]), segmentation=bool(f["segmentation"]),
                           reference=f["reference"])


def _case_settings(config: StudyConfig) -> CaseSettings:
    from dataclasses import replace as dc_replace

    fs = _feature_settings(config)
    fs = dc_replace(fs, anatomy_labels=tuple(sorted(fs.labels().items())))
    params_sha = ""
    if fs.radiomics:
        from SpineMetsClassifierLib.features.cohort import quiet_radiomics
        from SpineMetsClassifierLib.features.radiomics_features import RadiomicsExtractor

        try:
            with quiet_radiomics():
                extractor = RadiomicsExtractor(fs.params_path)  # a bad parameter file fails here, before any work
        except InputError as exc:
            raise InputError("features.params", exc.problem) from None
        params_sha = extractor.params_sha256
        fs = dc_replace(fs, params_path=str(extractor.params_path.resolve()))
    seg = config["segmentation"]
    return CaseSettings(method=seg["method"], seg_sequences=tuple(seg["sequences"]) if seg["sequences"] else None,
                        region_growing=tuple(sorted(seg["region_growing"].items())), unet_model=seg["unet_model"],
                        feature_settings=fs, params_sha256=params_sha)


def _read_rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), [dict(r) for r in reader]


def plan_run(manifest: str | os.PathLike[str], config: str | os.PathLike[str] | Mapping[str, Any] | StudyConfig,
             out: str | os.PathLike[str], overwrite: bool = False) -> RunPlan:
    """Check config, manifest and output folder; build the case tasks. No work, no writes."""
    from SpineMetsCore.manifest import read_manifest

    study = config if isinstance(config, StudyConfig) else load_config(config)
    manifest_path = Path(manifest)
    rows = read_manifest(manifest_path, check_files=True)
    if not rows:
        raise InputError(str(manifest_path), "has no case rows")
    columns, raw_rows = _read_rows(manifest_path)
    base = manifest_path.resolve().parent
    seg = study["segmentation"]
    method = seg["method"]
    mask_column = seg["mask_column"]
    reference_column = seg["reference_column"]
    if reference_column == "auto":
        reference_column = "mask" if method != "mask" and "mask" in columns else None
    if reference_column is not None and reference_column not in columns:
        raise InputError(str(manifest_path), f"has no column {reference_column!r} (segmentation.reference_column)")
    if method == "mask" and mask_column not in columns:
        raise InputError(str(manifest_path), f"has no column {mask_column!r} with the masks (segmentation.mask_column)")
    if method == "region_growing" and not any(c in columns for c in PIPELINE_COLUMNS[:2]):
        raise InputError(str(manifest_path), "needs seeds for region growing: a 'seed_ras' column (R,A,S; several "
                         "separated by ';') or a 'seeds_file' column (Slicer .mrk.json)")
    for i, task in enumerate(study["tasks"]):
        for key, column in (("label", task["label"]), ("split.column", task["split"]["column"])):
            if column and column not in columns:
                raise InputError(f"tasks[{i}].{key}", f"column {column!r} is not in the manifest {manifest_path} "
                                 f"(columns: {columns})")
    wanted = list(study["features"]["sequences"] or []) + list(seg["sequences"] or [])
    settings = _case_settings(study)
    problems: list[str] = []
    specs: list[CaseSpec] = []
    values: dict[str, dict[str, str]] = {}
    for line, (row, raw) in enumerate(zip(rows, raw_rows, strict=True), start=2):
        what = f"{manifest_path} line {line} (case '{row.case_id}')"
        try:
            seeds: list[Any] = []
            roi = None
            if method == "region_growing":
                seeds, roi = seeds_and_roi(raw, base, what)
                if not seeds:
                    raise InputError(what, "has no seed ('seed_ras' or 'seeds_file') for region growing")
            missing = [s for s in wanted if s not in row.images]
            if missing:
                raise InputError(what, f"has no image for sequence(s) {sorted(set(missing))}")
            if not row.images:
                raise InputError(what, "has no image")
            mask = None
            if method == "mask":
                text = (raw.get(mask_column) or "").strip()
                if not text:
                    raise InputError(f"{what}, column '{mask_column}'", "is empty (segmentation method 'mask')")
                mask = str(resolve_path(text, base))
            reference = None
            if reference_column:
                text = (raw.get(reference_column) or "").strip()
                reference = str(resolve_path(text, base)) if text else None
            segment = (raw.get("segment") or "").strip() or seg["segment"]
            spec = CaseSpec(case_id=row.case_id, folder=case_folder_name(row.case_id),
                            images=tuple((s, str(p)) for s, p in row.images.items()), mask=mask,
                            anatomy=str(row.anatomy) if row.anatomy else None,
                            seeds_ras=tuple(tuple(p) for p in seeds), roi=roi, segment=segment, reference=reference)
            specs.append(replace(spec, key=case_key(spec, settings)))
        except InputError as exc:
            problems.append(str(exc))
        values[row.case_id] = {k: v for k, v in row.values.items()}
    if problems:
        raise InputError(str(manifest_path), f"{len(problems)} row problem(s): " + "; ".join(problems[:10])
                         + (" ..." if len(problems) > 10 else ""))
    plan = RunPlan(config=study, manifest=manifest_path.resolve(), manifest_sha256=sha256_file(manifest_path),
                   out=Path(out), specs=specs, settings=settings, manifest_columns=columns, values=values,
                   raw_rows=raw_rows)
    plan.resumed = check_output_folder(plan.out, plan.identity, overwrite)
    return plan


# ----------------------------------------------------------------------------- execution
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.admin.tick.limit": "60s",
    "distributed.worker.memory.terminate": False,
    "logging.distributed": "error",
    # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers. Any explicit trim threshold switches
    # off glibc's dynamic mmap threshold, so every array over 128 KiB becomes a fresh mmap: ~8x the
    # page faults and ~30 % more CPU per case than the same code in a plain process.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # The statistical profiler samples every worker thread's stack every 10 ms; nobody reads it here.
    "distributed.worker.profile.enabled": False,
    # Health checks, memory and system monitors wake every process 10-50 times a second for the
    # dashboard's sake: an idle 2-worker pool used 0.07 CPU-s per second, 0.015 at these intervals.
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Dask settings of the pipeline's own LocalCluster (an existing ``--scheduler`` cluster keeps its own)."""


class WorkerPool:
    """The pipeline's Dask workers, started once and reused by every cohort call on it.

    Start-up (process spawn, imports, the worker side's radiomics extractor) is paid once per worker
    and in parallel, not once per call: a session that runs several cohorts (a study, the benchmarks,
    desktop Slicer) keeps one pool. ``scheduler`` connects to an existing cluster instead; workers of
    an own LocalCluster are single-threaded processes (ITK, BLAS and OpenMP at one thread each, so N
    workers use N cores) that die with this process (:mod:`.worker_guard`). No dashboard is served.
    """

    def __init__(self, workers: int = 2, scheduler: str | None = None) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.cluster: Any = None
        self.prepared: set[str] = set()
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError("--scheduler", f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
            return
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError("--workers", f"must be a positive integer for a worker pool, got {workers!r}")
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.core"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).getEffectiveLevel()))
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            # dashboard_address=None switches the dashboard off, but the scheduler still serves its HTTP
            # routes on 8787 (and warns when that port is taken): give them a free local port instead.
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                        silence_logs=logging.ERROR, preload=["SpineMetsApp.pipeline.worker_guard"],
                                        worker_class="distributed.Nanny")
            try:
                self.client = Client(self.cluster)
            except BaseException:
                self.cluster.close()
                raise

    def executor(self) -> Any:
        """A :class:`concurrent.futures.Executor` on the workers (e.g. for ``extract_cohort(executor=...)``),
        their ITK set to one thread so values equal the in-process path's."""
        from .worker_guard import one_itk_thread

        if "itk" not in self.prepared:
            self.client.run(one_itk_thread)
            self.prepared.add("itk")
        return self.client.get_executor(pure=False)

    def prepare(self, settings: CaseSettings) -> None:
        """Build the per-worker objects a case needs (imports, radiomics extractor) on every worker, once."""
        from .cases import prepare_worker

        token = _worker_token(settings)
        if token in self.prepared:
            return
        self.client.run(prepare_worker, settings)
        self.prepared.add(token)

    def close(self) -> None:
        """Stop the workers (an existing cluster is only disconnected from)."""
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _worker_token(settings: CaseSettings) -> str:
    """What identifies the worker-side objects of ``settings`` (extractor parameters, U-Net model)."""
    fs = settings.feature_settings
    return json.dumps([settings.method, settings.unet_model, fs.radiomics, fs.params_path, settings.params_sha256])


def run_cases(specs: Sequence[CaseSpec], settings: CaseSettings, out: Path, workers: int = 2,
              scheduler: str | None = None, progress: ProgressCallback | None = None,
              pool: WorkerPool | None = None) -> list[dict[str, Any]]:
    """Outcomes of every case (manifest order): finished ones skipped, the rest computed.

    ``pool``: a running :class:`WorkerPool` to use (and leave running); otherwise one is started for
    this call (``workers`` processes or ``scheduler``), or with ``workers=0`` the cases run here.
    """
    from .cases import load_finished

    outcomes: dict[str, dict[str, Any]] = {}
    todo: list[CaseSpec] = []
    for spec in specs:
        done = load_finished(out / "cases" / spec.folder, spec.key)
        if done is not None:
            outcomes[spec.case_id] = {"case_id": spec.case_id, "status": "cached", "record": done}
        else:
            todo.append(spec)
    total = len(specs)
    if progress is not None:
        progress(len(outcomes), total)
    if todo:
        logger.info("%d case(s) to compute, %d already finished", len(todo), total - len(todo))
    if todo and (pool is None and workers == 0 and not scheduler):
        for spec in todo:
            outcomes[spec.case_id] = process_case(spec, settings, str(out))
            if progress is not None:
                progress(len(outcomes), total)
    elif todo:
        with contextlib.ExitStack() as stack:
            if pool is None:
                pool = stack.enter_context(WorkerPool(workers, scheduler))
            _run_on_pool(pool, todo, settings, out, outcomes, lambda: progress(len(outcomes), total) if progress else None)
    return [outcomes[s.case_id] for s in specs]


def _run_on_pool(pool: WorkerPool, todo: Sequence[CaseSpec], settings: CaseSettings, out: Path,
                 outcomes: dict[str, dict[str, Any]], tick: Callable[[], None]) -> None:
    """The cases on the pool's workers: only paths and the small settings travel, never images."""
    from distributed import as_completed

    client = pool.client
    pool.prepare(settings)
    [settings_future] = client.scatter([settings], broadcast=True, hash=False)  # sent once, not per case
    target = str(out.resolve())
    # Task keys name the case and its output folder: two cohorts on one pool never share a key.
    where = hashlib.sha256(target.encode()).hexdigest()[:8]
    futures = {client.submit(process_case, spec, settings_future, target, pure=False,
                             key=f"spinemets-case-{spec.folder}-{spec.key[:12]}-{where}"): spec for spec in todo}
    try:
        for future in as_completed(list(futures)):
            spec = futures[future]
            try:
                outcomes[spec.case_id] = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: a worker died on this case
                outcomes[spec.case_id] = {"case_id": spec.case_id, "status": "failed", "stage": "worker",
                                          "error": f"{type(exc).__name__}: {exc}"}
            tick()
    finally:
        client.cancel([*futures, settings_future])


def _write_run_file(plan: RunPlan, status: str, extra: Mapping[str, Any] | None = None) -> None:
    data = {"spinemets_run": RUN_FORMAT, **plan.identity, "status": status, "config_name": plan.config.name,
            "config_source": plan.config.source, "manifest": str(plan.manifest), "updated_utc": _utc(),
            "cases": len(plan.specs), **(extra or {})}
    write_text_atomic(plan.out / RUN_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")


def execute(plan: RunPlan, workers: int = 2, scheduler: str | None = None,
            progress: ProgressCallback | None = None, pool: WorkerPool | None = None) -> RunResult:
    """Run a checked plan: cases (on ``pool`` when given), cohort tables, study stage, report."""
    started = time.perf_counter()
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        return _execute(plan, out, started, workers, scheduler, progress, pool)


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """One run per output folder at a time (the lock is the kernel's: a killed run releases it)."""
    import fcntl

    handle = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputFolderError(str(out), "another spinemets run is writing to this folder") from None
        yield
    finally:
        handle.close()


def _execute(plan: RunPlan, out: Path, started: float, workers: int, scheduler: str | None,
             progress: ProgressCallback | None, pool: WorkerPool | None = None) -> RunResult:
    from . import report as report_mod
    from . import studies as studies_mod
    from . import study as study_mod

    clean_temporaries(out)
    if plan.resumed:
        logger.warning("resuming the run in %s (same config and manifest): finished cases are kept", out)
    _write_run_file(plan, "running")
    import yaml

    write_text_atomic(out / "config.yaml", yaml.safe_dump(plan.config.values, sort_keys=False))
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    plan = studies_mod.before_cases(plan)
    outcomes = run_cases(plan.specs, plan.settings, out, workers, scheduler, progress, pool)
    timings["cases"] = time.perf_counter() - mark
    mark = time.perf_counter()
    tables = study_mod.cohort_tables(plan, outcomes)
    tables = studies_mod.before_study(plan, tables)
    study = study_mod.run_study(plan, tables)
    study["study_stage"] = studies_mod.after_study(plan, tables, study)
    timings["study"] = time.perf_counter() - mark
    mark = time.perf_counter()
    report = report_mod.write_report(plan, tables, study)
    timings["report"] = time.perf_counter() - mark
    logger.info("timings (s): %s", ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    failed = {o["case_id"]: o.get("error", "") for o in outcomes if o["status"] == "failed"}
    result = RunResult(out=out, report=report, cases=len(outcomes),
                       computed=[o["case_id"] for o in outcomes if o["status"] == "ok"],
                       cached=[o["case_id"] for o in outcomes if o["status"] == "cached"], failed=failed,
                       resumed=plan.resumed, seconds=time.perf_counter() - started, summary=study.get("summary", {}))
    _write_run_file(plan, "complete", {"failed_cases": sorted(failed), "report": "report.html",
                                       "timings_s": {k: round(v, 2) for k, v in timings.items()}})
    clean_temporaries(out)
    return result


def run_pipeline(manifest: str | os.PathLike[str], config: str | os.PathLike[str] | Mapping[str, Any],
                 out: str | os.PathLike[str], workers: int = 2, scheduler: str | None = None,
                 overwrite: bool = False, progress: ProgressCallback | None = None,
                 pool: WorkerPool | None = None) -> RunResult:
    """The Python API of ``spinemets run`` (also what the headless-Slicer example calls).

    ``pool``: a running :class:`WorkerPool` to reuse across runs (``workers``/``scheduler`` then unused).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InputError("--workers", f"must be a non-negative integer, got {workers!r}")
    plan = plan_run(manifest, config, out, overwrite=overwrite)
    return execute(plan, workers=workers, scheduler=scheduler, progress=progress, pool=pool)
