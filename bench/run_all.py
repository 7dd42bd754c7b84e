#!/usr/bin/env python3
"""Run every ``bench/bench_*.py`` and collect their figures in one JSON file.

Each benchmark compares SpineMets against the raw library (or a plain script)
in the same run and reports ratios (never absolute times as pass/fail), prints
one JSON object as its last stdout line and exits non-zero when a ratio goal is
missed. Each runs in its own process (a crash or a missing dependency fails
that benchmark only, with its error kept). Results go to
``bench/results/<name>.json`` and ``bench/results/results.json`` (or ``--out``);
every ratio is printed next to its goal, with the control figures it was
measured against. ``bench_gpu.py`` runs the GPU section (U-Net and ResNet50
per case) when CUDA is present and reports ``skipped`` with a note otherwise.

    python bench/run_all.py [--out FILE] [--only pipeline,unet] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATIO_WORDS = ("ratio", "speedup", "overhead")
CONTROL_PREFIX = "machine_"
"""Figures measured on the machine itself (e.g. its 2-process speed-up): controls, never ratios with goals."""
CONTROL_WORDS = ("plain", "raw", "control", "baseline", "machine", "library", "sklearn", "shap", "monai", "peak_rss", "input_voxel")


def _goal_for(key: str, result: dict):
    candidates = (f"{key}_goal", key.replace("ratio", "goal"), key.replace("speedup", "speedup_goal"), "goal")
    goal = next((result[g] for g in candidates if g in result and g != key), None)
    if goal is None and isinstance(result.get("goals"), dict):
        goal = next((v for k, v in result["goals"].items() if k in key), None)
    return goal


def _lines(name: str, result: dict) -> list[str]:
    """``name: key = value (goal ...)`` for every ratio-like figure, then its control figures."""
    lines, controls = [], []
    for key, value in result.items():
        if isinstance(value, dict) and any(w in key for w in RATIO_WORDS):
            for sub, v in value.items():
                goal = result.get("goals", {}).get(sub) if isinstance(result.get("goals"), dict) else None
                lines.append(f"{name}: {key}.{sub} = {v}" + (f" (goal {goal})" if goal is not None else ""))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if any(w in key for w in RATIO_WORDS) and "goal" not in key and not key.startswith(CONTROL_PREFIX):
                goal = _goal_for(key, result)
                line = f"{name}: {key} = {value}" + (f" (goal {goal})" if goal is not None else "")
                if key.endswith("_vs_control") and key.removesuffix("_vs_control") in result:
                    line += (f" = {key.removesuffix('_vs_control')} {result[key.removesuffix('_vs_control')]}"
                             f" / control machine_parallel_speedup {result.get('machine_parallel_speedup')}")
                lines.append(line)
            elif any(w in key for w in CONTROL_WORDS) and "goal" not in key:
                controls.append(f"{key}={value}")
    if controls:
        lines.append(f"{name}:   control figures: " + ", ".join(controls))
    return lines


def run_one(script: Path, timeout: float) -> tuple[dict, bool]:
    """(result dict, ok) of one benchmark script run in its own process."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}, False
    sys.stderr.write(proc.stderr[-2000:])
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"error": (proc.stdout[-500:] + proc.stderr[-1500:]).strip() or f"exit status {proc.returncode}"}
    if not isinstance(result, dict):
        result = {"result": result}
    result.setdefault("bench_wall_seconds", round(time.perf_counter() - start, 1))
    return result, proc.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "results.json", help="JSON file of all figures")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (bench_<name>.py)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark before it is stopped")
    args = parser.parse_args(argv)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    scripts = [s for s in sorted(HERE.glob("bench_*.py")) if not wanted or s.stem.removeprefix("bench_") in wanted]
    missing = sorted(wanted - {s.stem.removeprefix("bench_") for s in scripts})
    results: dict[str, dict] = {}
    failed: list[str] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        result, ok = run_one(script, args.timeout)
        results[script.stem] = result
        if not ok:
            failed.append(script.stem)
        (args.out.parent / f"{script.stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        "benchmarks": results,
        "failed": failed,
        "missing": missing,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "cpu_count": os.cpu_count(),
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    for name, result in results.items():
        if result.get("skipped"):
            print(f"{name}: skipped ({result['skipped']})", file=sys.stderr)
            continue
        if "error" in result:
            print(f"{name}: ERROR {result['error'][:300]}", file=sys.stderr)
        for line in _lines(name, result):
            print(line, file=sys.stderr)
    for name in missing:
        print(f"bench_{name}: not found (skipped)", file=sys.stderr)
    print(json.dumps({**summary, "out": str(args.out)}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
