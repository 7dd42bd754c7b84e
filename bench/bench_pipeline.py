#!/usr/bin/env python3
"""``spinemets run`` per-case stage: Dask throughput and per-case overhead, as ratios in one run.

Figures (same phantom cohort, same process run):

* ``overhead_ratio``: the pipeline's per-case tasks run serially in this process
  (``workers=0``: markups parsing, case key, atomic writes of ``lesion.nrrd`` and
  ``result.json``) against the raw library calls they make (read the images,
  ``grow_region``, ``extract_case``) in a plain loop. Goal <= 1.15.
* ``dask_speedup``: the same cases on the pipeline's own long-lived 2-worker pool
  (:class:`~SpineMetsApp.pipeline.runner.WorkerPool`, started and prepared once: imports and
  extractor; ``pool_start_s`` and ``pool_prepare_s`` are those fixed costs) against the serial
  pipeline, two runs each in the order serial, pool, pool, serial;
  ``machine_parallel_speedup`` is the control (two processes vs one on pure CPU work, pool
  start-up excluded), the mean of one measurement before and one after the pool runs. Goal:
  ``dask_speedup_vs_control = dask_speedup / machine_parallel_speedup >= 0.9``.
  ``dask_cold_speedup`` (what one ``spinemets run --workers 2`` costs, pool start-up included)
  is reported without a goal: on a small cohort the start-up is a visible share.

Values are identical in every run and equal to the raw loop's (checked). Prints one JSON line; exit 1 when a goal is missed.
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

from controls import machine_parallel_speedup  # noqa: E402  (bench/, the script's own folder)

N_CASES = 16
OVERHEAD_GOAL = 1.15
SPEEDUP_FRACTION_GOAL = 0.9
CONFIG = {"segmentation": {"method": "region_growing"}, "features": {"radiomics": True}}


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


def _same(a: dict, b: dict) -> bool:
    """Same keys and values (NaN equal to NaN)."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


def main() -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from SpineMetsApp.pipeline.democohort import write_demo_cohort
    from SpineMetsApp.pipeline.runner import WorkerPool, plan_run, run_cases

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        manifest = write_demo_cohort(tmp / "cohort", cases=N_CASES, seed=1)
        load_before = os.getloadavg()[0]
        plans = {name: plan_run(manifest, CONFIG, tmp / name) for name in ("serial", "serial2", "warm", "warm2", "cold")}
        start = time.perf_counter()
        raw = raw_loop(plans["serial"])
        raw_s = time.perf_counter() - start
        seconds: dict[str, float] = {}
        outcomes: dict[str, list] = {}

        def timed(name: str, **kwargs) -> None:
            plan = plans[name]
            start = time.perf_counter()
            outcomes[name] = run_cases(plan.specs, plan.settings, tmp / name, **kwargs)
            seconds[name] = time.perf_counter() - start

        # Serial and pooled runs alternate (A B B A) between two controls, so a change of load
        # during the run weighs on both sides alike.
        timed("serial", workers=0)
        controls = [machine_parallel_speedup()]
        start = time.perf_counter()
        with WorkerPool(2) as pool:
            pool_start_s = time.perf_counter() - start
            start = time.perf_counter()
            pool.prepare(plans["warm"].settings)  # imports and extractor, on both workers at once
            prepare_s = time.perf_counter() - start
            timed("warm", pool=pool)
            timed("warm2", pool=pool)
        timed("serial2", workers=0)
        controls.append(machine_parallel_speedup())
        timed("cold", workers=2)  # what one `spinemets run --workers 2` pays: pool start-up included
        serial = outcomes["serial"]
        identical = all(_same(s["record"]["features"], json.loads(json.dumps(raw[s["case_id"]], default=float)))
                        and all(_same(s["record"]["features"], outcomes[name][i]["record"]["features"])
                                for name in ("serial2", "warm", "warm2", "cold"))
                        for i, s in enumerate(serial))
        serial_s = seconds["serial"] + seconds["serial2"]
        dask_s = seconds["warm"] + seconds["warm2"]
        overhead = seconds["serial"] / raw_s
        speedup = serial_s / dask_s
        control = sum(controls) / len(controls)
        per_case_s = serial_s / (2 * N_CASES)
        result = {
            "cases": N_CASES,
            "raw_loop_s": round(raw_s, 2), "pipeline_serial_s": [round(seconds[k], 2) for k in ("serial", "serial2")],
            "pipeline_dask2_s": [round(seconds[k], 2) for k in ("warm", "warm2")],
            "pipeline_dask2_cold_s": round(seconds["cold"], 2), "dask_cold_speedup": round(serial_s / 2 / seconds["cold"], 3),
            "pool_start_s": round(pool_start_s, 2), "pool_prepare_s": round(prepare_s, 2),
            "cold_fixed_cost_s": round(seconds["cold"] - dask_s / 2, 2), "serial_per_case_s": round(per_case_s, 3),
            "overhead_ratio": round(overhead, 3), "overhead_goal": OVERHEAD_GOAL,
            "dask_speedup": round(speedup, 3), "machine_parallel_speedup": round(control, 3),
            "machine_parallel_speedup_before_after": [round(c, 3) for c in controls],
            "dask_speedup_vs_control": round(speedup / control, 3), "dask_speedup_vs_control_goal": SPEEDUP_FRACTION_GOAL,
            "dask_speedup_goal": round(SPEEDUP_FRACTION_GOAL * control, 3),
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
