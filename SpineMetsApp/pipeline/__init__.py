"""``spinemets run``: one command from a manifest of images to a study report.

Python API (the CLI and the headless-Slicer example call the same function)::

    from SpineMetsApp.pipeline import run_pipeline
    result = run_pipeline("cohort/manifest.csv", "demo", "study_out", workers=2)
    print(result.report)

Modules: :mod:`.config` (schema, validation), :mod:`.cases` (per-case segment + features),
:mod:`.runner` (checks, the Dask worker pool, resume), :mod:`.study` (train, evaluate,
explain, predict), :mod:`.report` (HTML report), :mod:`.worker_guard` (no orphan workers).
"""

from .config import ConfigError, StudyConfig, load_config
from .runner import OutputFolderError, RunResult, WorkerPool, plan_run, run_pipeline

__all__ = ["ConfigError", "OutputFolderError", "RunResult", "StudyConfig", "WorkerPool", "load_config", "plan_run",
           "run_pipeline"]
