#!/usr/bin/env python3
"""Run every ``bench/bench_*.py`` and collect their JSON results.

Each benchmark compares SpineMets against the raw library in the same run and
reports ratios (never absolute times as pass/fail), prints one JSON object and
exits non-zero when a ratio goal is missed. Results go to ``bench/results/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    results = {}
    failed = []
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    for script in sorted(HERE.glob("bench_*.py")):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-2000:])
        try:
            results[script.stem] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            results[script.stem] = {"error": proc.stdout[-500:]}
        if proc.returncode != 0:
            failed.append(script.stem)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({"benchmarks": results, "failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
