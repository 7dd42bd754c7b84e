#!/usr/bin/env python3
"""``spinemets run`` per-case stage: Dask throughput and per-case overhead, as ratios in one run.

Figures (same phantom cohort, same process run):

* ``overhead_ratio``: the pipeline's per-case tasks run serially in this process
  (``workers=0``: markups parsing, case key, atomic writes of ``lesion.nrrd`` and
  ``result.json``) against the raw library calls they make (read the images,
  ``grow_region``, ``extract_case``) in a plain loop. Goal <= 1.15.
* ``dask_speedup``: the same cases on a warm 2-worker Dask cluster (workers started and
  their libraries imported beforehand, as in a long-lived pool or ``--scheduler``) against
  the serial pipeline; ``machine_parallel_speedup`` is the control (two processes vs one on
  pure CPU work, pool start-up excluded, measured just before). Goal:
  ``dask_speedup >= 0.9 * machine_parallel_speedup``. ``dask_cold_speedup`` (what one
  ``spinemets run --workers 2`` costs, cluster start-up and imports included) is reported
  without a goal: below ~40 cases the start-up is a visible share.

Values are identical in all three runs (checked). Prints one JSON line; exit 1 when a goal is missed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("", "SpineMetsSegment", "SpineMetsClassifier")]

N_CASES = 16
OVERHEAD_GOAL = 1.15
SPEEDUP_FRACTION_GOAL = 0.9
CONFIG = {"segmentation": {"method": "region_growing"}, "features": {"radiomics": True}}


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def machine_parallel_speedup(n: int = 6_000_000) -> float:
    """Two processes vs one on identical CPU work, measured now (about 2 on an idle 2-core machine)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    _burn(n)
    _burn(n)
    serial = time.perf_counter() - start
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_burn, [1000, 1000]))
        start = time.perf_counter()
        list(pool.map(_burn, [n, n]))
        parallel = time.perf_counter() - start
    return serial / parallel


def raw_loop(plan) -> dict[str, dict]:
    """The library calls of the pipeline's per-case task, in a plain loop."""
    import SimpleITK as sitk
    from SpineMetsClassifierLib.features.cohort import quiet_radiomics
    from SpineMetsClassifierLib.features.radiomics_features import RadiomicsExtractor

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    fs = plan.settings.feature_settings
    with quiet_radiomics():  # the pipeline silences PyRadiomics' per-call log lines too
        extractor = RadiomicsExtractor(fs.params_path)
        return {spec.case_id: _raw_case(spec, fs, extractor) for spec in plan.specs}


def _raw_case(spec, fs, extractor) -> dict:
    """Read, grow, paste onto the full grid, extract: what a script would do for one case."""
    import SimpleITK as sitk
    from SpineMetsClassifierLib.features.case import extract_case
    from SpineMetsSegmentLib.region_growing import grow_region
    from SpineMetsSegmentLib.seeds import RoiBox

    images = {name: sitk.ReadImage(path) for name, path in spec.images}
    grown = grow_region(images, list(spec.seeds_ras), RoiBox(*spec.roi))
    lesion = sitk.Resample(grown.mask, images[grown.reference_sequence], sitk.Transform(),
                           sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    anatomy = sitk.ReadImage(spec.anatomy)
    return extract_case(images, lesion, anatomy, fs, extractor)


def _warm_up() -> None:
    """Import what a case task needs (paid once per worker in a long-lived pool)."""
    import radiomics.featureextractor  # noqa: F401
    import SpineMetsClassifierLib.features.case  # noqa: F401
    import SpineMetsSegmentLib.region_growing  # noqa: F401

    import SpineMetsApp.pipeline.cases  # noqa: F401


def _same(a: dict, b: dict) -> bool:
    """Same keys and values (NaN equal to NaN)."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


def main() -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from SpineMetsApp.pipeline.democohort import write_demo_cohort
    from SpineMetsApp.pipeline.runner import plan_run, run_cases

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        manifest = write_demo_cohort(tmp / "cohort", cases=N_CASES, seed=1)
        load_before = os.getloadavg()[0]
        serial_plan = plan_run(manifest, CONFIG, tmp / "serial")
        start = time.perf_counter()
        raw = raw_loop(serial_plan)
        raw_s = time.perf_counter() - start
        start = time.perf_counter()
        serial = run_cases(serial_plan.specs, serial_plan.settings, tmp / "serial", workers=0)
        serial_s = time.perf_counter() - start
        control = machine_parallel_speedup()
        warm_plan = plan_run(manifest, CONFIG, tmp / "warm")
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            client.run(_warm_up)
            start = time.perf_counter()
            parallel = run_cases(warm_plan.specs, warm_plan.settings, tmp / "warm", scheduler=cluster.scheduler_address)
            dask_s = time.perf_counter() - start
        dask_plan = plan_run(manifest, CONFIG, tmp / "dask")
        start = time.perf_counter()
        cold = run_cases(dask_plan.specs, dask_plan.settings, tmp / "dask", workers=2)
        cold_s = time.perf_counter() - start
        identical = all(_same(s["record"]["features"], p["record"]["features"])
                        and _same(s["record"]["features"], c["record"]["features"])
                        and _same(s["record"]["features"], json.loads(json.dumps(raw[s["case_id"]], default=float)))
                        for s, p, c in zip(serial, parallel, cold, strict=True))
        overhead = serial_s / raw_s
        speedup = serial_s / dask_s
        result = {
            "cases": N_CASES,
            "raw_loop_s": round(raw_s, 2), "pipeline_serial_s": round(serial_s, 2), "pipeline_dask2_s": round(dask_s, 2),
            "pipeline_dask2_cold_s": round(cold_s, 2), "dask_cold_speedup": round(serial_s / cold_s, 3),
            "overhead_ratio": round(overhead, 3), "overhead_goal": OVERHEAD_GOAL,
            "dask_speedup": round(speedup, 3), "machine_parallel_speedup": round(control, 3),
            "speedup_goal": round(SPEEDUP_FRACTION_GOAL * control, 3),
            "identical_values": identical,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        ok = overhead <= OVERHEAD_GOAL and speedup >= SPEEDUP_FRACTION_GOAL * control and identical
        result["goals_met"] = ok
        print(json.dumps(result))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
