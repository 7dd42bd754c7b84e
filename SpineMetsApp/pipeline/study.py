"""The study stage of ``spinemets run``: cohort tables, then per task train, evaluate, explain, predict.

Everything here runs in the main process after the per-case tasks, on the tables they
produced, with the project's own code: training (:mod:`SpineMetsClassifierLib.models.training`),
statistics (:mod:`SpineMetsCore.stats`, :mod:`SpineMetsClassifierLib.evaluation`), SHAP (:mod:`...models.explain`) and
inference (:mod:`...models.inference`). Outputs per task in ``tasks/<task>/``:
``models/<model>/`` (model packages), ``predictions.csv`` (long format, ``model`` column;
out-of-fold predictions for ``cv``, test-set predictions otherwise), ``comparison.csv``
(one row per model, metrics with CIs), ``evaluation/`` (``stats evaluate`` outputs),
``table1.csv``, ``explain/<model>/`` and ``predict_<model>.csv``; ``model_failures.csv``
when a model could not be trained (the other models go on).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError, SpineMetsError
from SpineMetsCore.fileio import write_text_atomic
from SpineMetsCore.tables import provenance, write_table_csv

from .cases import PIPELINE_COLUMNS
from .config import MODEL_KINDS

if TYPE_CHECKING:
    from .runner import RunPlan

logger = logging.getLogger(__name__)

TABLE1_DEFAULT = ("age", "sex", "centre", "region", "field_strength")
CONTINUOUS_TESTS = ("t-test", "Mann-Whitney", "ANOVA", "Kruskal-Wallis")
"""Names of the statistics package's tests for continuous variables (the others compare counts)."""
ModelTrainer = Callable[..., dict[str, Any]]
TRAINERS: dict[str, ModelTrainer] = {}
"""Model kind -> trainer; ``classical`` is built in, deep models register theirs."""


def register_trainer(kind: str, trainer: ModelTrainer, description: str = "") -> None:
    """Register a trainer for a model kind (see :func:`train_classical` for the contract)."""
    from .config import register_model_kind

    register_model_kind(kind, description or kind)
    TRAINERS[kind] = trainer


# ----------------------------------------------------------------------------- cohort tables
def _numeric_if_possible(column: pd.Series) -> pd.Series:
    from SpineMetsClassifierLib.features.cohort import _numeric_if_possible as convert

    return convert(column)


def cohort_tables(plan: RunPlan, outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``features.csv``, ``segmentation.csv``, ``failures.csv`` and ``segmented_manifest.csv``."""
    out = plan.out
    value_columns = [c for c in plan.manifest_columns
                     if c in next(iter(plan.values.values()), {}) and c not in PIPELINE_COLUMNS]
    records, seg_rows, failures = [], [], []
    for spec, outcome in zip(plan.specs, outcomes, strict=True):
        values = {c: plan.values[spec.case_id].get(c, "") for c in value_columns}
        if outcome["status"] == "failed":
            failures.append({"case_id": spec.case_id, "stage": outcome.get("stage", ""), "error": outcome["error"]})
            records.append({"case_id": spec.case_id, "error": outcome["error"], **values})
            seg_rows.append({"case_id": spec.case_id, "status": "failed", "method": plan.settings.method,
                             "error": outcome["error"]})
            continue
        record = outcome["record"]
        records.append({"case_id": spec.case_id, "error": "", **values, **record["features"]})
        seg_rows.append({"case_id": spec.case_id, "status": "ok", **record["segmentation"], "error": ""})
    features = pd.DataFrame.from_records(records)
    for column in value_columns:
        features[column] = _numeric_if_possible(features[column])
    non_feature = ["case_id", "error", *value_columns]
    synthetic = "phantom_version" in plan.manifest_columns
    prov = provenance(operation="spinemets run: per-case features", manifest=str(plan.manifest),
                      manifest_sha256=plan.manifest_sha256, config_sha256=plan.config.digest(),
                      settings=plan.settings.as_dict(), non_feature_columns=non_feature,
                      synthetic_data=synthetic, failed=[f["case_id"] for f in failures])
    prov.pop("created_utc", None)  # a rerun must give identical files
    write_table_csv(features, out / "features.csv", prov)
    segmentation = pd.DataFrame.from_records(seg_rows)
    write_table_csv(segmentation, out / "segmentation.csv")
    failure_table = pd.DataFrame.from_records(failures, columns=["case_id", "stage", "error"])
    write_table_csv(failure_table, out / "failures.csv")
    manifest_rows = []
    ok = {s.case_id: s for s in plan.specs}
    status = {o["case_id"]: o for o in outcomes}
    base = plan.manifest.parent
    for raw in plan.raw_rows:
        row = dict(raw)
        case_id = (row.get("case_id") or "").strip()
        for column in ("T1", "T2", "STIR", "T1CE", "anatomy", "seeds_file", "roi_file"):
            if row.get(column):
                path = Path(row[column])
                row[column] = str(path if path.is_absolute() else (base / path).resolve())
        reference = row.get("reference_mask") or row.get("mask", "")
        if reference and not Path(reference).expanduser().is_absolute():
            reference = str((base / reference).resolve())
        row["reference_mask"] = reference
        failed = status[case_id]["status"] == "failed"
        row["mask"] = "" if failed else f"cases/{ok[case_id].folder}/lesion.nrrd"
        manifest_rows.append(row)
    write_table_csv(pd.DataFrame(manifest_rows), out / "segmented_manifest.csv")
    if failures:
        logger.warning("%d case(s) failed (see %s): %s", len(failures), out / "failures.csv",
                       ", ".join(f["case_id"] for f in failures[:10]))
    return {"features": features, "segmentation": segmentation, "failures": failure_table,
            "non_feature_columns": non_feature, "value_columns": value_columns, "synthetic_data": synthetic}


# ----------------------------------------------------------------------------- helpers
def feature_columns(spec: str, frame: pd.DataFrame, metadata: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Columns of a feature-set string; manifest columns only when a term other than ``all`` names them."""
    from SpineMetsClassifierLib.models.feature_sets import select_features

    return select_features(spec, frame.columns, exclude=exclude, metadata=metadata)


def calibration_bins(n: int, setting: Any) -> int:
    """About ten cases per bin, 3 to 10 bins (``auto``), or the configured number."""
    if setting != "auto":
        return int(setting)
    return int(min(10, max(3, n // 10)))


def _split_args(task: Mapping[str, Any]) -> dict[str, Any]:
    split = task["split"]
    if split["method"] == "cv":
        return {"split": "cv"}
    if split["method"] == "fraction":
        return {"split": "random", "test_size": float(split["fraction"])}
    return {"split": "column", "split_column": split["column"], "test_values": tuple(split["test_values"])}


def _primary(n_classes: int) -> str:
    return "auc" if n_classes == 2 else "auc_macro_ovr"


def _adapted_folds(y: np.ndarray, cv_folds: int, inner_folds: int) -> tuple[int, int]:
    """Folds that the smallest class allows (never more folds than cases of a class)."""
    _, counts = np.unique(y, return_counts=True)
    smallest = int(counts.min())
    outer = max(2, min(cv_folds, smallest))
    inner = max(2, min(inner_folds, (smallest * (outer - 1)) // outer))
    return outer, inner


# ----------------------------------------------------------------------------- training
def train_classical(frame: pd.DataFrame, model: Mapping[str, Any], task: Mapping[str, Any], *, seed: int,
                    columns: list[str], metadata: Sequence[str], out_dir: Path, synthetic: bool | None) -> dict[str, Any]:
    """Train one classical model; write its package; return predictions and card.

    Contract of a trainer: return ``{"predictions": DataFrame (case_id, <label>, prob_<class>...,
    set), "card": dict, "package": Path}``; raise ``SpineMetsError`` for a model that cannot be trained.
    """
    from SpineMetsClassifierLib.models.training import TrainConfig, save_training, train_model

    label = task["label"]
    config = TrainConfig(label=label, feature_set=model["feature_spec"], classifier=model["classifier"],
                         metadata_columns=tuple(metadata), cv_folds=task["cv_folds"],
                         inner_folds=task["inner_folds"], grid=task["grid"], scoring=task["scoring"], seed=seed,
                         class_weight=task["class_weight"], positive=task["positive"], topk=task["topk"],
                         synthetic_training_data=synthetic, **_split_args(task))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_model(frame, config)
    result.card["name"] = f"{label} ~ {model['feature_spec']} ({model['classifier']}) [{model['name']}]"
    package = save_training(result, out_dir)
    from SpineMetsClassifierLib.models.package import read_card

    card = read_card(package)
    if result.test_predictions is not None:
        predictions = result.test_predictions.assign(set="test")
    else:
        predictions = result.cv_predictions.drop(columns=["fold"]).assign(set="cv")
    return {"predictions": predictions, "card": card, "package": package,
            "cv_metrics": result.cv_metrics, "test_metrics": result.test_metrics}


TRAINERS["classical"] = train_classical


def _label_frame(features: pd.DataFrame, task: Mapping[str, Any], where: str) -> pd.DataFrame:
    """Rows usable for a task: extraction succeeded and the label is present (the others named)."""
    label = task["label"]
    failed = features["error"].astype(str).str.strip() != ""
    if failed.any():
        logger.warning("task %s: %d case(s) without features excluded: %s", where, int(failed.sum()),
                       ", ".join(features.loc[failed, "case_id"].astype(str).head(10)))
    frame = features.loc[~failed]
    missing = frame[label].isna() | (frame[label].astype(str).str.strip() == "")
    if missing.any():
        logger.warning("task %s: %d case(s) without a %r label excluded: %s", where, int(missing.sum()), label,
                       ", ".join(frame.loc[missing, "case_id"].astype(str).head(10)))
        frame = frame.loc[~missing]
    frame = frame.copy()
    frame[label] = frame[label].astype(str).str.strip()
    return frame.reset_index(drop=True)


def run_study(plan: RunPlan, tables: Mapping[str, Any]) -> dict[str, Any]:
    """Train, evaluate, explain and predict every task of the config."""
    config = plan.config
    out = plan.out
    results: dict[str, Any] = {"tasks": {}, "summary": {}}
    for t, task in enumerate(config["tasks"]):
        name = task["name"]
        logger.info("task %s: label %r, %d model(s)", name, task["label"], len(task["models"]))
        results["tasks"][name] = run_task(plan, tables, task, out / "tasks" / name, f"tasks[{t}] ({name})")
        results["summary"][name] = results["tasks"][name].get("summary", {})
    return results


def run_task(plan: RunPlan, tables: Mapping[str, Any], task: dict[str, Any], task_dir: Path, where: str) -> dict[str, Any]:
    """One task: models, evaluation with CIs and DeLong, Table 1, SHAP, predictions."""
    config = plan.config
    seed = int(config["seed"])
    stats_cfg = config["statistics"]
    features: pd.DataFrame = tables["features"]
    frame = _label_frame(features, task, where)
    label = task["label"]
    y = frame[label].to_numpy()
    classes = sorted(set(y))
    if len(classes) < 2:
        raise InputError(f"{where}.label", f"column {label!r} has fewer than two classes among the usable cases ({classes})")
    task = dict(task)
    folds = _adapted_folds(y, task["cv_folds"], task["inner_folds"])
    if folds != (task["cv_folds"], task["inner_folds"]):
        logger.warning("task %s: %d outer / %d inner folds (the smallest class has %d usable cases)",
                       task["name"], folds[0], folds[1], int(min((y == c).sum() for c in classes)))
    task["cv_folds"], task["inner_folds"] = folds
    synthetic = None if config["synthetic"] == "auto" else bool(config["synthetic"])
    if synthetic is None and tables["synthetic_data"]:
        synthetic = True
    metadata = [c for c in tables["non_feature_columns"] if c != "case_id"]
    exclude = ["case_id", "error", label] + ([task["split"]["column"]] if task["split"]["column"] else [])
    trained: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, str]] = []
    for model in task["models"]:
        try:
            columns = feature_columns(model["feature_spec"], frame, metadata, exclude)
            trainer = TRAINERS.get(model["kind"])
            if trainer is None:
                raise InputError(f"{where}: model {model['name']}", f"no trainer for kind {model['kind']!r} "
                                 f"(known: {sorted(MODEL_KINDS)})")
            logger.info("task %s: training %s (%d features)", task["name"], model["name"], len(columns))
            trained[model["name"]] = trainer(frame, model, task, seed=seed, columns=columns, metadata=metadata,
                                             out_dir=task_dir / "models" / model["name"], synthetic=synthetic)
            trained[model["name"]]["n_features"] = len(columns)
            trained[model["name"]]["kind"] = model["kind"]
        except (SpineMetsError, ValueError) as exc:
            logger.warning("task %s: model %s failed: %s", task["name"], model["name"], exc)
            failures.append({"model": model["name"], "error": str(exc)})
    write_table_csv(pd.DataFrame(failures, columns=["model", "error"]), task_dir / "model_failures.csv")
    summary: dict[str, Any] = {"label": label, "classes": classes, "n": int(len(frame)),
                               "class_counts": {str(c): int((y == c).sum()) for c in classes},
                               "cv_folds": task["cv_folds"], "inner_folds": task["inner_folds"],
                               "model_failures": failures}
    out: dict[str, Any] = {"task": task, "summary": summary, "dir": task_dir, "models": trained}
    out["table1"] = _table1(frame, task, stats_cfg, plan, task_dir)
    if not trained:
        logger.warning("task %s: no model could be trained", task["name"])
        return out
    n_classes = len(classes)
    primary = _primary(n_classes)
    score = {m: (r["cv_metrics"] or {}).get(primary, float("nan")) for m, r in trained.items()}
    best = max(trained, key=lambda m: (np.nan_to_num(score[m], nan=-1.0), -list(trained).index(m)))
    reference = task["reference_model"] if task["reference_model"] in trained else best
    summary["best_model"] = best
    summary["reference_model"] = reference
    long = pd.concat([r["predictions"].assign(model=m) for m, r in trained.items()], ignore_index=True)
    long = long[["model", *[c for c in long.columns if c != "model"]]]
    prov = provenance(operation="spinemets run: predictions", task=task["name"], label=label,
                      note="out-of-fold (nested CV) predictions for split 'cv', test-set predictions otherwise")
    prov.pop("created_utc", None)
    write_table_csv(long, task_dir / "predictions.csv", prov)
    n_eval = int(long[long["model"] == reference].shape[0])
    bins = calibration_bins(n_eval, stats_cfg["calibration_bins"])
    summary["calibration_bins"] = bins
    summary["evaluation_set"] = str(long["set"].iloc[0])
    summary["n_evaluated"] = n_eval
    from SpineMetsClassifierLib.evaluation.evaluate import evaluate_predictions

    positive = task["positive"] if task["positive"] is not None else (classes[1] if n_classes == 2 else None)
    evaluation = evaluate_predictions(
        long.drop(columns=["set"]), label, topk=min(task["topk"], n_classes), positive=positive,
        n_boot=max(int(stats_cfg["bootstrap"]), 1), seed=seed, conf_level=float(stats_cfg["conf_level"]),
        hl_groups=bins, calibration_bins=bins, model_column="model", id_column="case_id",
        reference_model=reference, out_dir=task_dir / "evaluation", figures=False)
    logger.info("task %s: evaluation done", task["name"])
    out["evaluation"] = evaluation
    out["comparison"] = comparison_table(evaluation, trained, summary, n_classes)
    write_table_csv(out["comparison"], task_dir / "comparison.csv")
    out["explain"] = _explain(config, trained, frame, task, best, task_dir, tables)
    logger.info("task %s: SHAP done", task["name"])
    if config["predict"]["enabled"] and trained[best].get("kind", "classical") == "classical":
        out["predict"] = _predict(trained[best], best, features, task, task_dir, tables, long)
    write_text_atomic(task_dir / "summary.json", json.dumps(summary, indent=2, default=str, sort_keys=True) + "\n")
    return out


def comparison_table(evaluation: Mapping[str, Any], trained: Mapping[str, Any], summary: Mapping[str, Any],
                     n_classes: int) -> pd.DataFrame:
    """One row per model: the headline metrics with bootstrap CIs, then DeLong p against the reference."""
    keys = (["auc", "accuracy", "sensitivity", "specificity", "f1_macro", "brier"] if n_classes == 2 else
            ["auc_macro_ovr", "top1_accuracy", "top2_accuracy", "top3_accuracy", "f1_macro", "recall_macro", "brier"])
    reference = evaluation["reference_model"]
    pvals: dict[str, Any] = {}
    for comp in evaluation.get("comparisons", []):
        delong = comp.get("delong", {})
        if n_classes == 2:
            entry = next(iter(delong.values()), {})
            pvals[comp["model"]] = entry.get("p_value")
        else:
            pvals[comp["model"]] = (comp.get("macro_auc_bootstrap_test") or {}).get("p_value")
    rows = []
    for name, res in evaluation["models"].items():
        metrics = res["metrics"]
        row: dict[str, Any] = {"model": name, "n": int(res.get("n", summary.get("n_evaluated", 0)))}
        for key in keys:
            if key in metrics:
                m = metrics[key]
                row[key] = m["estimate"]
                row[f"{key}_ci_low"] = m["ci"][0]
                row[f"{key}_ci_high"] = m["ci"][1]
        row["p_vs_reference"] = None if name == reference else pvals.get(name)
        row["reference"] = reference
        row["n_features"] = trained[name].get("n_features")
        rows.append(row)
    table = pd.DataFrame(rows)
    primary = "auc" if n_classes == 2 else "auc_macro_ovr"
    if primary in table.columns:
        table = table.sort_values([primary, "model"], ascending=[False, True], kind="mergesort")
    return table.reset_index(drop=True)


def _table1(frame: pd.DataFrame, task: Mapping[str, Any], stats_cfg: Mapping[str, Any], plan: RunPlan,
            task_dir: Path) -> pd.DataFrame | None:
    from SpineMetsCore.stats import compare_groups

    label = task["label"]
    wanted = stats_cfg["table1"] if stats_cfg["table1"] is not None else [c for c in TABLE1_DEFAULT if c in frame.columns]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InputError("statistics.table1", f"column(s) {missing} are not in the manifest")
    wanted = [c for c in wanted if c != label]
    if not wanted:
        return None
    try:
        tests = compare_groups(frame[[label, *wanted]], label, seed=int(plan.config["seed"]))
    except (SpineMetsError, ValueError) as exc:
        logger.warning("Table 1 of task %s failed: %s", task["name"], exc)
        return None
    table = describe_groups(frame, label, wanted, tests)
    write_table_csv(table, task_dir / "table1.csv")
    return table


def describe_groups(frame: pd.DataFrame, label: str, variables: Sequence[str], tests: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per class n, median [IQR] (continuous) or counts (%) per level, then the test and its p-value."""
    classes = sorted(frame[label].astype(str).unique())
    groups = {c: frame[frame[label].astype(str) == c] for c in classes}
    rows: list[dict[str, Any]] = [{"variable": "n", **{c: str(len(g)) for c, g in groups.items()}, "test": "", "p": None}]
    by_variable = {str(r["variable"]): r for r in tests.to_dict("records")}
    for variable in variables:
        test = by_variable.get(variable, {})
        continuous = any(word in str(test.get("test", "")) for word in CONTINUOUS_TESTS)
        row: dict[str, Any] = {"variable": variable}
        for c, g in groups.items():
            values = g[variable]
            if continuous:
                v = pd.to_numeric(values, errors="coerce").dropna()
                row[c] = f"{v.median():.4g} [{v.quantile(0.25):.4g}\u2013{v.quantile(0.75):.4g}]" if len(v) else ""
            else:
                counts = values.astype(str).value_counts()
                row[c] = ", ".join(f"{k}: {n} ({100 * n / max(len(values), 1):.0f}%)" for k, n in sorted(counts.items()))
        row["test"] = test.get("test", "")
        row["p"] = test.get("p")
        rows.append(row)
    return pd.DataFrame(rows, columns=["variable", *classes, "test", "p"])


def _explain(config: Any, trained: Mapping[str, Any], frame: pd.DataFrame, task: Mapping[str, Any], best: str,
             task_dir: Path, tables: Mapping[str, Any]) -> dict[str, Any]:
    cfg = config["explain"]
    if not cfg["enabled"]:
        return {}
    chosen = [best] if cfg["models"] == "best" else list(trained) if cfg["models"] == "all" else \
        [m for m in cfg["models"] if m in trained]
    out: dict[str, Any] = {}
    from SpineMetsClassifierLib.models.explain import explain, global_importance, write_explanations
    from SpineMetsClassifierLib.models.package import load_package

    for name in chosen:
        if trained[name].get("kind", "classical") != "classical":
            continue  # SHAP here is the classical models' (the deep-model kinds explain themselves)
        try:
            package = load_package(trained[name]["package"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = explain(package, frame, max_cases=int(cfg["max_cases"]), seed=int(config["seed"]),
                                 ignore_extra=True)
                written = write_explanations(result, task_dir / "explain" / name, package, beeswarm_classes=[])
            out[name] = {"files": {k: str(v) for k, v in written.items()}, "importance": global_importance(result),
                         "explainer": result.explainer, "n_cases": len(result.case_ids)}
        except (SpineMetsError, ValueError) as exc:
            logger.warning("SHAP of %s failed: %s", name, exc)
            out[name] = {"error": str(exc)}
    return out


def _predict(trained: Mapping[str, Any], name: str, features: pd.DataFrame, task: Mapping[str, Any], task_dir: Path,
             tables: Mapping[str, Any], long: pd.DataFrame) -> dict[str, Any]:
    """The best final model applied to every case's feature row (the features -> predict hand-off)."""
    from SpineMetsClassifierLib.models.inference import predict_table
    from SpineMetsClassifierLib.models.package import load_package

    package = load_package(trained["package"])
    table = predict_table(package, features, topk=min(int(task["topk"]), len(package.classes)), ignore_extra=True)
    table.insert(1, "model", name)
    path = write_table_csv(table, task_dir / f"predict_{name}.csv")
    return {"path": path, "table": table}


def _register_study_kinds() -> None:
    """The ``deep`` trainer of :mod:`.studies` (unless another package registered one first)."""
    from .studies import register

    register()


_register_study_kinds()
