"""Evaluate a predictions table: metrics with CIs, comparisons, figures and an HTML page.

Predictions table convention: one row per case, a truth column holding the
class label and one probability column per class named ``<prefix><class>``
(default prefix ``prob_``, e.g. ``prob_metastasis``); the class labels are the
column suffixes and every truth value must be one of them.  Optionally a
``model_column`` stacks several models' predictions (long format) and an
``id_column`` pairs the rows of different models.

Output directory (written atomically, see :func:`write_evaluation_dir`):
``metrics.json`` (all numbers), ``metrics.csv`` (flat metric table),
``dca.csv`` (binary problems), ``roc.png``, ``confusion_matrix.png``,
``calibration.png``, ``decision_curve.png`` (binary), ``topk.png`` and
``report.html`` (self-contained, images embedded).
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore.conventions import MISSING_VALUES
from SpineMetsCore.fileio import atomic_merge_dir
from SpineMetsCore.stats._common import (
    MissingValueError,
    SingleClassError,
    StatsInputError,
    as_probability_array,
    json_safe,
)
from SpineMetsCore.stats.bootstrap import (
    DEFAULT_N_BOOT,
    bootstrap_auc_difference_test,
    bootstrap_classification_metrics,
)
from SpineMetsCore.stats.calibration import calibration_curve, calibration_summary
from SpineMetsCore.stats.dca import decision_curve
from SpineMetsCore.stats.delong import delong_auc, delong_roc_test, delong_roc_test_unpaired
from SpineMetsCore.stats.metrics import _positive_index, class_ranks, confusion_matrix, encode_truth, roc_curve_points

__all__ = [
    "DEFAULT_PROB_PREFIX",
    "MISSING_TOKENS",
    "read_table",
    "numeric_column",
    "label_column",
    "probability_columns",
    "evaluate_predictions",
    "write_evaluation_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_PROB_PREFIX = "prob_"
MISSING_TOKENS = frozenset({*(v.lower() for v in MISSING_VALUES), "none"})
"""Missing cells of a predictions table: the project's tokens plus ``None`` (a predictions
table has no EDF ``none`` category, and Python writers spell a missing label ``None``)."""


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV with every cell as text, so labels like ``01`` or ``1`` survive unchanged."""
    p = Path(path)
    if not p.is_file():
        raise StatsInputError(str(path), "file not found")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StatsInputError(str(path), f"cannot read CSV: {exc}") from None


def _missing_mask(series: pd.Series) -> np.ndarray:
    return np.array([v is None or (isinstance(v, float) and np.isnan(v))
                     or str(v).strip().lower() in MISSING_TOKENS for v in series], dtype=bool)


def numeric_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """Column as float; empty/NA cells become NaN, any other non-number raises naming the cell."""
    if column not in df.columns:
        raise StatsInputError(column, f"column not found (columns: {list(df.columns)})")
    s = df[column]
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float)
    miss = _missing_mask(s)
    out = np.full(len(s), np.nan)
    for i, (v, m) in enumerate(zip(s.tolist(), miss, strict=False)):
        if m:
            continue
        try:
            out[i] = float(str(v).strip())
        except ValueError:
            raise StatsInputError(column, f"non-numeric value {v!r} at data row {i + 1}") from None
    return out


def label_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """Column as stripped text labels; empty/NA cells become None."""
    if column not in df.columns:
        raise StatsInputError(column, f"column not found (columns: {list(df.columns)})")
    s = df[column]
    miss = _missing_mask(s)
    return np.array([None if m else str(v).strip() for v, m in zip(s.tolist(), miss, strict=False)], dtype=object)


def probability_columns(columns: Sequence[str], prefix: str = DEFAULT_PROB_PREFIX) -> list[tuple[str, str]]:
    """``[(class, column), ...]`` for columns named ``<prefix><class>``, in table order."""
    pairs = [(str(c)[len(prefix):], str(c)) for c in columns
             if str(c).startswith(prefix) and len(str(c)) > len(prefix)]
    if len(pairs) < 2:
        raise StatsInputError(f"{prefix}*", f"need at least two probability columns named '{prefix}<class>'; "
                              f"found {[c for _, c in pairs]}")
    return pairs


def _complete_truth(labels: np.ndarray, truth: str) -> None:
    miss = np.array([v is None for v in labels])
    if miss.any():
        raise MissingValueError(truth, f"{int(miss.sum())} row(s) with an empty truth label "
                                f"(first at data row {int(np.argmax(miss)) + 1})")


def _metric_table(boot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"estimate": r.estimate, "ci": [r.ci_low, r.ci_high]} for k, r in boot.items()}


def _evaluate_one(labels: np.ndarray, proba: np.ndarray, classes: list[str], *, truth: str,
                  positive: Hashable | None, topk: int, n_boot: int, seed: int | None,
                  conf_level: float, ci_method: str, hl_groups: int, calibration_bins: int,
                  calibration_strategy: str, thresholds: Any,
                  notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numbers for one model plus the raw material of its figures."""
    codes = encode_truth(labels, classes, truth)
    present = np.unique(codes)
    if present.size < 2:
        raise SingleClassError(truth, f"only one class present ({classes[int(present[0])]!r})")
    absent = [classes[j] for j in range(len(classes)) if j not in set(present.tolist())]
    if absent:
        notes.append(f"classes never observed in '{truth}': {absent}; their AUC (and the macro AUC) is undefined")
    pos = _positive_index(classes, positive)
    boot = _boot(codes, proba, classes, topk, pos, n_boot, seed, conf_level, ci_method, truth, notes)
    res: dict[str, Any] = {
        "n": int(codes.size),
        "classes": classes,
        "class_counts": {c: int((codes == j).sum()) for j, c in enumerate(classes)},
        "positive_class": None if pos is None else classes[pos],
        "metrics": _metric_table(boot),
    }
    art: dict[str, Any] = {"codes": codes, "proba": proba, "classes": classes, "pos": pos}

    roc_classes = [pos] if pos is not None else list(range(len(classes)))
    delong: dict[str, Any] = {}
    for j in roc_classes:
        y = codes == j
        if y.sum() < 2 or (~y).sum() < 2:
            delong[classes[j]] = None
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d = delong_auc(y, proba[:, j], direction="<", conf_level=conf_level,
                           score_name=f"prob[{classes[j]}]", truth_name=truth)
        notes.extend(str(w.message) for w in caught)
        delong[classes[j]] = d.to_dict()
    res["auc_delong"] = delong

    cm = confusion_matrix(codes, proba, list(range(len(classes))), truth_name=truth)
    res["confusion_matrix"] = {"labels": classes, "rows": "truth", "columns": "predicted (argmax)",
                               "matrix": cm.tolist()}

    calib: dict[str, Any] = {}
    curves: dict[str, pd.DataFrame] = {}
    for j in roc_classes:
        y = codes == j
        if y.all() or not y.any():
            continue
        calib[classes[j]] = calibration_summary(y, proba[:, j], g=hl_groups, n_bins=calibration_bins,
                                                strategy=calibration_strategy, conf_level=conf_level,
                                                proba_name=f"prob[{classes[j]}]")
        notes.extend(calib[classes[j]]["warnings"])
        notes.extend(f"calibration of {classes[j]!r}: {err}" for err in calib[classes[j]]["errors"].values())
        curves[classes[j]] = calibration_curve(y, proba[:, j], n_bins=calibration_bins,
                                               strategy=calibration_strategy)
    res["calibration"] = calib
    art["calibration_curves"] = curves

    if pos is not None:
        dca = decision_curve(codes == pos, proba[:, pos], thresholds=thresholds)
        res["decision_curve"] = dca.to_dict(orient="records")
        art["dca"] = dca

    k_max = min(topk, len(classes))
    ranks = class_ranks(proba)
    art["topk"] = {k: {c: float(((ranks[codes == j, j]) < k).mean()) if (codes == j).any() else float("nan")
                       for j, c in enumerate(classes)} for k in range(1, k_max + 1)}
    art["topk_overall"] = {k: float((ranks[np.arange(codes.size), codes] < k).mean())
                           for k in range(1, k_max + 1)}
    return res, art


def _boot(codes: np.ndarray, proba: np.ndarray, classes: list[str], topk: int, pos: int | None,
          n_boot: int, seed: int | None, conf_level: float, ci_method: str, truth: str,
          notes: list[str]) -> dict[str, Any]:
    """Bootstrap on integer class codes, then name the per-class keys by class."""
    idx_classes = list(range(len(classes)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = bootstrap_classification_metrics(codes, proba, idx_classes, topk=topk, positive=pos,
                                               n_boot=n_boot, seed=seed, conf_level=conf_level,
                                               method=ci_method, truth_name=truth)
    notes.extend(str(w.message) for w in caught)
    out = {}
    for key, val in raw.items():
        m = re.fullmatch(r"(.*)\[(\d+)\]", key)
        out[f"{m.group(1)}[{classes[int(m.group(2))]}]" if m else key] = val
    return out


def _model_arrays(df: pd.DataFrame, truth: str, pairs: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    labels = label_column(df, truth)
    _complete_truth(labels, truth)
    cols = []
    for _, col in pairs:
        vals = numeric_column(df, col)
        cols.append(as_probability_array(vals, col))
    return labels, np.column_stack(cols)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "model"


def _compare(ref: str, other: str, data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
             classes: list[str], pos: int | None, *, n_boot: int, seed: int | None, conf_level: float,
             notes: list[str]) -> dict[str, Any]:
    """Reference model vs another: DeLong (paired when rows can be matched) and bootstrap macro AUC.

    ``data`` maps model -> (integer-coded truth, probabilities, ids or None).
    """
    la, pa, ida = data[ref]
    lb, pb, idb = data[other]
    paired, how = False, "unpaired (different cases)"
    if ida is not None and idb is not None:
        sa = pd.Series(np.arange(ida.size), index=ida)
        sb = pd.Series(np.arange(idb.size), index=idb)
        if sa.index.has_duplicates or sb.index.has_duplicates:
            raise StatsInputError("id_column", "duplicate ids within a model")
        common = sa.index.intersection(sb.index)
        if common.size == ida.size == idb.size:
            ia, ib = sa[common].to_numpy(), sb[common].to_numpy()
            if not np.array_equal(la[ia], lb[ib]):
                raise StatsInputError("truth", f"models {ref!r} and {other!r} disagree on the truth of some ids")
            la, pa, lb, pb = la[ia], pa[ia], lb[ib], pb[ib]
            paired, how = True, "paired by id"
    elif la.size == lb.size and np.array_equal(la, lb):
        paired, how = True, "paired by row order (same truth sequence); give id_column to pair explicitly"
    out: dict[str, Any] = {"reference": ref, "model": other, "paired": paired, "pairing": how}
    targets = [pos] if pos is not None else list(range(len(classes)))
    per_class: dict[str, Any] = {}
    for j in targets:
        c = classes[j]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if paired:
                    r = delong_roc_test(la == j, pa[:, j], pb[:, j], direction="<",
                                        conf_level=conf_level, names=(f"{ref}[{c}]", f"{other}[{c}]"))
                else:
                    r = delong_roc_test_unpaired(la == j, pa[:, j], lb == j, pb[:, j], direction="<",
                                                 conf_level=conf_level, names=(f"{ref}[{c}]", f"{other}[{c}]"))
            notes.extend(str(w.message) for w in caught)
            per_class[c] = r.to_dict()
        except StatsInputError as exc:
            per_class[c] = {"error": str(exc)}
    out["delong"] = per_class
    if paired and pos is None:
        try:
            bt = bootstrap_auc_difference_test(la, pa, pb, list(range(len(classes))), n_boot=n_boot,
                                               seed=seed, conf_level=conf_level)
            out["macro_auc_bootstrap_test"] = bt.to_dict()
        except StatsInputError as exc:
            out["macro_auc_bootstrap_test"] = {"error": str(exc)}
    return out


def evaluate_predictions(df: pd.DataFrame, truth: str, *, prob_prefix: str = DEFAULT_PROB_PREFIX,
                         topk: int = 3, positive: Hashable | None = None, n_boot: int = DEFAULT_N_BOOT,
                         seed: int | None = 0, conf_level: float = 0.95, ci_method: str = "percentile",
                         hl_groups: int = 10, calibration_bins: int = 10,
                         calibration_strategy: str = "quantile", thresholds: Any = None,
                         model_column: str | None = None, id_column: str | None = None,
                         reference_model: str | None = None, out_dir: str | os.PathLike[str] | None = None,
                         figures: bool = True) -> dict[str, Any]:
    """Evaluate one model (or several, with ``model_column``) and optionally write the outputs.

    Returns the dict written to ``metrics.json``: per model ``metrics`` (every
    :func:`classification_metrics` value with a stratified-bootstrap CI),
    ``auc_delong`` (DeLong CI per one-vs-rest class), ``confusion_matrix``,
    ``calibration`` and, for two classes, ``decision_curve``; with several
    models also ``comparisons`` of each model against the reference (first
    model unless ``reference_model``).
    """
    if truth not in df.columns:
        raise StatsInputError(truth, f"truth column not found (columns: {list(df.columns)})")
    pairs = probability_columns(list(df.columns), prob_prefix)
    classes = [c for c, _ in pairs]
    if len(set(classes)) != len(classes):
        raise StatsInputError(f"{prob_prefix}*", "duplicate class names in probability columns")
    if int(topk) < 1:
        raise StatsInputError("topk", f"must be >= 1, got {topk}")
    settings = {"n_boot": int(n_boot), "seed": seed, "conf_level": conf_level, "ci_method": ci_method,
                "bootstrap": "stratified by true class", "topk": int(topk), "prob_prefix": prob_prefix,
                "truth": truth, "hl_groups": hl_groups, "calibration_bins": calibration_bins,
                "calibration_strategy": calibration_strategy}
    notes: list[str] = []
    common = {"truth": truth, "positive": positive, "topk": int(topk), "n_boot": n_boot, "seed": seed,
              "conf_level": conf_level, "ci_method": ci_method, "hl_groups": hl_groups,
              "calibration_bins": calibration_bins, "calibration_strategy": calibration_strategy,
              "thresholds": thresholds}
    conventions = {
        "predicted_class": "argmax of probabilities; ties -> first class column",
        "precision/recall/f1": "sklearn, zero_division=0; macro = unweighted mean; weighted by support",
        "auc": "one-vs-rest Mann-Whitney AUC per class (sklearn roc_auc_score ovr); macro = mean",
        "auc_delong": "pROC ci.auc(method='delong'), direction '<'",
        "ci": "percentile (or BCa) CI of a class-stratified bootstrap (pROC boot.stratified=TRUE)",
        "topk": "top-k recall[c] = P(c in top k | truth c); top-k precision[c] = P(truth c | c in top k); "
                "top-k f1 = harmonic mean",
        "calibration": "rms::val.prob Intercept/Slope; citl = offset-model intercept; "
                       "Hosmer-Lemeshow as ResourceSelection::hoslem.test",
        "decision_curve": "dcurves: test-positive if risk >= threshold; NIA per patient (nper=1)",
    }

    if model_column is None:
        labels, proba = _model_arrays(df, truth, pairs)
        res, art = _evaluate_one(labels, proba, classes, notes=notes, **common)
        result = {**res, "settings": settings, "conventions": conventions}
        arts = {"": art}
    else:
        models_col = label_column(df, model_column)
        if any(m is None for m in models_col):
            raise MissingValueError(model_column, "empty model name")
        names = list(dict.fromkeys(models_col.tolist()))
        ref = reference_model if reference_model is not None else names[0]
        if ref not in names:
            raise StatsInputError("reference_model", f"{ref!r} is not one of the models {names}")
        ordered = [ref] + [m for m in names if m != ref]
        models: dict[str, Any] = {}
        arts = {}
        data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        for name in ordered:
            sub = df[models_col == name].reset_index(drop=True)
            labels, proba = _model_arrays(sub, truth, pairs)
            ids = label_column(sub, id_column) if id_column else None
            if ids is not None and any(v is None for v in ids):
                raise MissingValueError(id_column, f"empty id in model {name!r}")
            data[name] = (encode_truth(labels, classes, truth), proba, ids)
            model_notes: list[str] = []
            models[name], arts[name] = _evaluate_one(labels, proba, classes, notes=model_notes, **common)
            notes.extend(f"{name}: {n}" for n in model_notes)
        pos = arts[ref]["pos"]
        comparisons = [_compare(ref, m, data, classes, pos, n_boot=n_boot, seed=seed,
                                conf_level=conf_level, notes=notes) for m in ordered[1:]]
        result = {"models": models, "reference_model": ref, "comparisons": comparisons,
                  "settings": {**settings, "model_column": model_column, "id_column": id_column},
                  "conventions": conventions}
    result["warnings"] = list(dict.fromkeys(notes))
    result = json_safe(result)
    if out_dir is not None:
        write_evaluation_dir(out_dir, lambda d: _write_all(d, result, arts, figures, n_boot, seed, conf_level))
        result["out_dir"] = str(out_dir)
    return result


def _flat_rows(result: dict[str, Any]) -> pd.DataFrame:
    rows = []
    models = result.get("models") or {"": result}
    for name, res in models.items():
        for metric, v in res["metrics"].items():
            rows.append({"model": name, "metric": metric, "estimate": v["estimate"],
                         "ci_low": v["ci"][0], "ci_high": v["ci"][1]})
    df = pd.DataFrame(rows, columns=["model", "metric", "estimate", "ci_low", "ci_high"])
    return df if "models" in result else df.drop(columns="model")


def _write_all(d: Path, result: dict[str, Any], arts: dict[str, Any], figures: bool, n_boot: int,
               seed: int | None, conf_level: float) -> None:
    from . import figures as fg

    table = _flat_rows(result)
    table.to_csv(d / "metrics.csv", index=False)
    images: dict[str, Path] = {}
    multi = "models" in result
    for name, art in arts.items():
        sub = d / _safe_name(name) if multi else d
        sub.mkdir(exist_ok=True)
        res = result["models"][name] if multi else result
        if "dca" in art:
            art["dca"].to_csv(sub / "dca.csv", index=False)
        if not figures:
            continue
        tag = f"{name}: " if multi else ""
        classes, codes, proba, pos = art["classes"], art["codes"], art["proba"], art["pos"]
        targets = [pos] if pos is not None else list(range(len(classes)))
        curves = []
        n_band = min(int(n_boot), 500)
        for j in targets:
            y = codes == j
            if y.all() or not y.any():
                continue
            fpr, tpr, _ = roc_curve_points(y, proba[:, j])
            band = fg.roc_ci_band(y, proba[:, j], n_boot=n_band, seed=seed, conf_level=conf_level)
            est = res["metrics"].get(f"auc[{classes[j]}]", {})
            curves.append({"label": classes[j], "fpr": fpr, "tpr": tpr, "auc": est.get("estimate", np.nan),
                           "auc_ci": est.get("ci"), "band": band})
        if curves:
            images[f"{tag}ROC (one-vs-rest; bands: bootstrap 95% CI of sensitivity)"] = fg.plot_roc_curves(
                curves, sub / "roc.png", title=f"{tag}ROC")
        cm = np.array(res["confusion_matrix"]["matrix"])
        images[f"{tag}Confusion matrix"] = fg.plot_confusion_matrix(cm, classes, sub / "confusion_matrix.png",
                                                                    title=f"{tag}Confusion matrix")
        if art["calibration_curves"]:
            probs = {classes[j]: proba[:, j] for j in targets}
            images[f"{tag}Calibration"] = fg.plot_calibration(art["calibration_curves"], sub / "calibration.png",
                                                              probabilities=probs, title=f"{tag}Calibration")
        if "dca" in art:
            images[f"{tag}Decision curve"] = fg.plot_decision_curves({classes[pos]: art["dca"]},
                                                                     sub / "decision_curve.png",
                                                                     title=f"{tag}Decision curve")
        images[f"{tag}Top-k recall"] = fg.plot_topk(art["topk"], sub / "topk.png", overall=art["topk_overall"],
                                                    title=f"{tag}Top-k recall")
    if figures and multi:
        ref = result["reference_model"]
        first = arts[ref]
        targets = [first["pos"]] if first["pos"] is not None else list(range(len(first["classes"])))
        for j in targets:
            c = first["classes"][j]
            curves = []
            for name, art in arts.items():
                y = art["codes"] == j
                if y.all() or not y.any():
                    continue
                fpr, tpr, _ = roc_curve_points(y, art["proba"][:, j])
                est = result["models"][name]["metrics"].get(f"auc[{c}]", {})
                pval = None
                for comp in result["comparisons"]:
                    if comp["model"] == name:
                        pval = (comp["delong"].get(c) or {}).get("p_value")
                curves.append({"label": name, "fpr": fpr, "tpr": tpr, "auc": est.get("estimate", np.nan),
                               "auc_ci": est.get("ci"), "p_value": pval,
                               "p_label": f"DeLong p vs {ref}"})
            if curves:
                images[f"ROC comparison, class {c}"] = fg.plot_roc_curves(
                    curves, d / f"roc_compare_{_safe_name(c)}.png", title=f"ROC, class {c}")
    if figures:
        notes = [f"Bootstrap: {n_boot} class-stratified replicates, seed {seed}, {conf_level:.0%} CIs."]
        notes += result.get("warnings", [])
        fg.write_html_report(d / "report.html", title="SpineMets model evaluation",
                             images={k: str(v) for k, v in images.items()}, table=table, notes=notes)
        result["figures"] = {k: str(Path(v).relative_to(d)) for k, v in images.items()}
        result["figures"]["report"] = "report.html"
    (d / "metrics.json").write_text(json.dumps(json_safe(result), indent=2, allow_nan=False), encoding="utf-8")


def write_evaluation_dir(out_dir: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Run ``writer(staging_dir)`` then publish its files into ``out_dir`` atomically.

    :func:`SpineMetsCore.fileio.atomic_merge_dir` with ``metrics.json`` moved last, so a
    reader that sees the new ``metrics.json`` sees complete outputs; files of an earlier
    run that the new run does not produce are left in place; on any error ``out_dir`` is
    left untouched.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StatsInputError(str(out_dir), "exists and is not a directory")
    with atomic_merge_dir(out, last=("metrics.json",)) as staging:
        writer(staging)
    return out
