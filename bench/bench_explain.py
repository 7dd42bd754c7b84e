#!/usr/bin/env python3
"""``spinemets explain --case`` vs the bare SHAP explainer + one figure, paired in one run.

Model: a logistic-regression package (EDF features, phantom records, trained
here). Both sides are fresh processes, alternated, timed by CPU seconds
(user + sys from ``/usr/bin/time -v``):

* ours: ``spinemets explain --model M --features F --case X --out D``
  (package checks, SHAP in the original feature names, tables, one waterfall);
* control (``--control``): ``skops.io.load`` of the same pipeline, scikit-learn's
  transform, ``shap.LinearExplainer`` on the stored background, one
  ``shap.plots.waterfall`` saved as PNG.

Goals: ours <= 1.5 x control for one case; each additional ``--case`` costs
<= 2 s (from 1 vs 6 cases, same process type).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from bench_unet import PATHS, ROOT, _time_v  # noqa: E402  (shared /usr/bin/time -v runner)

GOAL = 1.5
PER_CASE_GOAL_S = 2.0
REPEATS = 3


def control(model_dir: Path, features: Path, case: str, out: Path) -> None:
    """Bare SHAP: load the pipeline, explain one row, draw one waterfall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import shap
    import skops.io as sio

    data = (model_dir / "model.skops").read_bytes()
    pipeline = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    frame = pd.read_csv(features, comment="#")
    background = pd.read_csv(model_dir / "background.csv", comment="#")
    columns = [c for c in background.columns if c in frame.columns]
    row = frame[frame["case_id"].astype(str) == case][columns]
    front, clf = pipeline[:-1], pipeline.named_steps["clf"]
    bg = np.asarray(front.transform(background[columns]), dtype=float)
    explanation = shap.LinearExplainer(clf, shap.maskers.Independent(bg, max_samples=len(bg)))(np.asarray(front.transform(row), dtype=float))
    values = explanation.values[0] if explanation.values.ndim == 2 else explanation.values[0, :, -1]
    base = np.ravel(explanation.base_values)[-1]
    plt.figure()
    shap.plots.waterfall(shap.Explanation(values, base), show=False)
    plt.savefig(out, dpi=110)


def run(repeats: int = REPEATS) -> dict:
    sys.path[:0] = PATHS
    import pandas as pd
    from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

    from SpineMetsPhantom import EDF_ITEMS, PhantomConfig, sample_records

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PATHS + [os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="bench_explain_") as tmp:
        tmp = Path(tmp)
        frame = pd.DataFrame(sample_records(160, seed=13, config=PhantomConfig(primary_bone_fraction=0.0)))
        result = train_model(frame, TrainConfig(label="site", feature_set="edf", classifier="lr", cv_folds=3, inner_folds=2, grid="none", seed=0))
        model = save_training(result, tmp / "model")
        frame[["case_id", *EDF_ITEMS]].to_csv(tmp / "features.csv", index=False)
        ids = [str(c) for c in frame["case_id"].iloc[:6]]

        def ours(cases: list[str], tag: str) -> list[str]:
            return [sys.executable, "-m", "SpineMetsApp.cli", "explain", "--model", str(model), "--features", str(tmp / "features.csv"),
                    "--case", ",".join(cases), "--out", str(tmp / f"ours_{tag}")]

        plain_cmd = [sys.executable, str(Path(__file__).resolve()), "--control", str(model), str(tmp / "features.csv"), ids[0], str(tmp / "control.png")]
        one, six, plain = [], [], []
        for rep in range(repeats):
            order = ("plain", "one", "six") if rep % 2 == 0 else ("six", "one", "plain")
            for which in order:
                if which == "plain":
                    plain.append(_time_v(plain_cmd, env))
                elif which == "one":
                    one.append(_time_v(ours(ids[:1], f"one{rep}"), env))
                else:
                    six.append(_time_v(ours(ids, f"six{rep}"), env))
    cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in (("one", one), ("six", six), ("plain", plain))}
    ratio = cpu["one"] / cpu["plain"]
    per_case = max(0.0, (cpu["six"] - cpu["one"]) / 5)
    return {
        "benchmark": "explain_cli",
        "classifier": "lr",
        "ratio_cpu_explain_one_case_vs_bare_shap": round(ratio, 3),
        "goal": GOAL,
        "additional_case_cpu_s": round(per_case, 3),
        "additional_case_goal_s": PER_CASE_GOAL_S,
        "explain_one_case_cpu_s": round(cpu["one"], 2),
        "explain_six_cases_cpu_s": round(cpu["six"], 2),
        "bare_shap_cpu_s": round(cpu["plain"], 2),
        "bare_shap_wall_s": round(statistics.median(r["wall_s"] for r in plain), 2),
        "explain_one_case_wall_s": round(statistics.median(r["wall_s"] for r in one), 2),
        "explain_peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in one)),
        "bare_shap_peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in plain)),
        "repeats": repeats,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "passed": ratio <= GOAL and per_case <= PER_CASE_GOAL_S,
    }


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--control":
        control(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
        return 0
    result = run()
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    assert ROOT.is_dir()
    sys.exit(main())
