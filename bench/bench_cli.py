#!/usr/bin/env python3
"""CLI start-up: ``spinemets --help`` and ``spinemets segment --help`` vs ``python -c "import numpy"``.

Commands are imported only when dispatched, so asking for help must cost about as
much as starting Python with numpy, not the seconds pandas, scikit-learn, torch or
SHAP take to import. Each command runs in a fresh interpreter, best of REPEATS
wall-clock times. Goals: ``--help`` <= 1.5 x bare numpy start, ``segment --help``
(which loads SimpleITK for its argument parsers) <= 4 x. Prints one JSON object;
exits 1 if a goal is missed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5
GOALS = {"help": 1.5, "segment_help": 4.0}


def best_time(argv: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    paths = [str(ROOT), str(ROOT / "SpineMetsSegment"), str(ROOT / "SpineMetsClassifier")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    py = sys.executable
    baseline = best_time([py, "-c", "import numpy"], env)
    seconds = {
        "help": best_time([py, "-m", "SpineMetsApp.cli", "--help"], env),
        "segment_help": best_time([py, "-m", "SpineMetsApp.cli", "segment", "--help"], env),
    }
    ratios = {name: t / baseline for name, t in seconds.items()}
    ok = all(ratios[name] <= goal for name, goal in GOALS.items())
    print(json.dumps({"baseline_import_numpy_s": round(baseline, 3), "seconds": {k: round(v, 3) for k, v in seconds.items()},
                      "ratios": {k: round(v, 2) for k, v in ratios.items()}, "goals": GOALS, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
