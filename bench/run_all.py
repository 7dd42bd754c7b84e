#!/usr/bin/env python3
"""Run every ``bench/bench_*.py`` and collect their figures in one JSON file.

Each benchmark compares SpineMets against the raw library in the same run and
reports ratios (never absolute times as pass/fail), prints one JSON object and
exits non-zero when a ratio goal is missed. Results go to ``bench/results/results.json``
(or ``--out``); a short table of every ratio next to its goal is printed on stderr.

    python bench/run_all.py [--out FILE] [--only pipeline,features]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _ratios(name: str, result: dict) -> list[str]:
    """``name: key = value (goal ...)`` for every ratio-like figure of one benchmark."""
    lines = []
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and any(
                word in key for word in ("ratio", "speedup", "overhead")):
            goal = next((result[g] for g in (f"{key}_goal", key.replace("ratio", "goal"), key.replace("speedup", "speedup_goal"))
                         if g in result and g != key), None)
            lines.append(f"{name}: {key} = {value}" + (f" (goal {goal})" if goal is not None else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "results.json", help="JSON file of all figures")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (bench_<name>.py)")
    args = parser.parse_args(argv)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    results = {}
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if wanted and script.stem.removeprefix("bench_") not in wanted:
            continue
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-2000:])
        try:
            results[script.stem] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            results[script.stem] = {"error": proc.stdout[-500:]}
        if proc.returncode != 0:
            failed.append(script.stem)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmarks": results, "failed": failed}, indent=2) + "\n")
    for name, result in results.items():
        for line in _ratios(name, result if isinstance(result, dict) else {}):
            print(line, file=sys.stderr)
    print(json.dumps({"benchmarks": results, "failed": failed, "out": str(args.out)}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
