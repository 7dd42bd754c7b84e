#!/usr/bin/env python3
"""Model packages, inference and training vs the raw libraries they wrap, in one run.

Goals (ratios, best of several repeats, same data in the same process):

* ``load_package`` (SHA-256 check, trusted-type scan, skops load, schema and
  background) costs <= 3.0x a bare ``skops.io.loads(data, trusted=...)``: the type
  scan (``get_untrusted_types``) parses the file a second time by design;
* ``predict_table`` on 2000 rows (schema check and coercion, probabilities, ranks,
  top-k table) costs <= 2.5x the bare ``pipeline.predict_proba`` on a ready DataFrame
  (logistic regression, whose prediction is itself only ~25 ms);
* ``train_model`` (nested CV with the stats package's metrics, final fit, model card)
  costs <= 1.25x the same nested CV written with scikit-learn
  (``GridSearchCV`` inside ``cross_val_predict``, then a final ``GridSearchCV.fit``).

Prints one JSON line and exits 1 when a goal is missed; load averages are included
because the machine may be shared.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

LOAD_GOAL = 3.0
PREDICT_GOAL = 2.5
TRAIN_GOAL = 1.25
REPEATS = 30


def best_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    import numpy as np
    import pandas as pd
    import skops.io as sio
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
    from SpineMetsClassifierLib.models.inference import predict_table
    from SpineMetsClassifierLib.models.package import load_package
    from SpineMetsClassifierLib.models.pipeline import build_pipeline, limited_threads, param_grid
    from SpineMetsClassifierLib.models.schema import FeatureSchema
    from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

    from SpineMetsPhantom import EDF_ITEMS, PhantomConfig, sample_records

    logging.basicConfig(level=logging.ERROR)
    load_before = os.getloadavg()
    frame = pd.DataFrame(sample_records(2000, seed=99, config=PhantomConfig(primary_bone_fraction=0.0)))
    dev = frame.iloc[:360].reset_index(drop=True)
    config = TrainConfig(label="site", feature_set="edf", classifier="lr", cv_folds=5, inner_folds=3, grid="small")

    # training: ours vs the same protocol in plain scikit-learn
    ours_train = best_time(lambda: train_model(dev, config), repeats=3)
    result = train_model(dev, config)
    feature_schema = FeatureSchema.infer(dev, list(EDF_ITEMS))
    X_dev = feature_schema.coerce(dev, ignore_extra=True)
    y_dev = dev["site"].astype(str).to_numpy()

    def raw_train() -> None:
        with limited_threads(1):
            def search(seed_offset: int) -> GridSearchCV:
                inner = StratifiedKFold(3, shuffle=True, random_state=seed_offset)
                return GridSearchCV(build_pipeline(feature_schema, "lr"), param_grid("lr", "small"),
                                    scoring="neg_log_loss", cv=inner)
            outer = StratifiedKFold(5, shuffle=True, random_state=0)
            cross_val_predict(search(1), X_dev, y_dev, cv=outer, method="predict_proba")
            search(0).fit(X_dev, y_dev)

    raw_train_time = best_time(raw_train, repeats=3)

    with tempfile.TemporaryDirectory() as tmp:
        path = save_training(result, Path(tmp) / "model")
        data = (path / "model.skops").read_bytes()
        trusted = sio.get_untrusted_types(data=data)
        ours_load = best_time(lambda: load_package(path))
        raw_load = best_time(lambda: sio.loads(data, trusted=trusted))
        package = load_package(path)
        rows = frame[["case_id", *EDF_ITEMS]]
        X = package.schema.coerce(rows, allowed_extra={"case_id"}, unseen="ignore")
        pipeline = package.pipeline
        raw_predict = best_time(lambda: pipeline.predict_proba(X))
        logging.disable(logging.WARNING)  # unseen-category warnings are expected here
        ours_predict = best_time(lambda: predict_table(package, rows))
        table = predict_table(package, rows)
        same = bool(np.array_equal(table.filter(like="prob_").to_numpy(), pipeline.predict_proba(X)))

    ratios = {
        "load_package_vs_skops_loads": ours_load / raw_load,
        "predict_table_vs_predict_proba": ours_predict / raw_predict,
        "train_model_vs_sklearn_nested_cv": ours_train / raw_train_time,
    }
    goals = {
        "load_package_vs_skops_loads": LOAD_GOAL,
        "predict_table_vs_predict_proba": PREDICT_GOAL,
        "train_model_vs_sklearn_nested_cv": TRAIN_GOAL,
    }
    missed = [k for k, v in ratios.items() if v > goals[k]] + ([] if same else ["identical_probabilities"])
    print(json.dumps({
        "benchmark": "models",
        "seconds": {"load_package": ours_load, "skops_loads": raw_load, "predict_table_2000": ours_predict,
                    "predict_proba_2000": raw_predict, "train_model": ours_train, "sklearn_nested_cv": raw_train_time},
        "ratios": ratios,
        "goals": goals,
        "identical_probabilities": same,
        "missed": missed,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
