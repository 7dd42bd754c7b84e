"""``spinemets stats ...``: DeLong, bootstrap, calibration, DCA, evaluate.

``register(subparsers)`` adds one ``stats`` subcommand (with sub-subcommands
``delong``, ``bootstrap``, ``calibration``, ``dca``, ``evaluate``). Every leaf
parser sets ``func`` (and the alias ``handler``) to a callable
``(argparse.Namespace) -> int`` exit code, and ``command_label`` (``stats delong``)
for the error line of :func:`SpineMetsApp.cli.main`.

Results go to stdout (JSON, or CSV for ``dca``); errors are
:class:`~SpineMetsCore.stats.StatsInputError` (a ``SpineMetsError``) naming the
bad column or value, reported by the CLI as one stderr line with exit code 2.

CSV reading: every cell is read as text; empty cells and NA/NaN/null/None
are missing.  A truth value matches ``--positive`` when the stripped texts are
equal or both parse to the same number (so ``1`` matches ``1.0``); all other
non-missing truth values are controls.  Missing truth or score values are an
error unless ``--dropna`` (complete cases, like pROC's ``na.rm = TRUE``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from SpineMetsClassifierLib.evaluation.evaluate import (
    DEFAULT_PROB_PREFIX,
    evaluate_predictions,
    label_column,
    numeric_column,
    read_table,
)

from SpineMetsCore.fileio import atomic_path
from SpineMetsCore.stats import (
    BINARY_METRICS,
    DEFAULT_N_BOOT,
    MissingValueError,
    StatsInputError,
    bootstrap_metric,
    calibration_summary,
    decision_curve,
    delong_auc,
    delong_roc_test,
    delong_roc_test_unpaired,
    json_safe,
    parse_threshold_spec,
    roc_direction,
)
from SpineMetsCore.stats._common import sorted_labels

from . import command_help

__all__ = ["register"]

logger = logging.getLogger(__name__)

EXIT_OK = 0


# --------------------------------------------------------------------------- helpers
def _same_label(value: str, target: str) -> bool:
    if value == target:
        return True
    try:
        return float(value) == float(target)
    except ValueError:
        return False


def _positive_mask(labels: np.ndarray, truth: str, positive: str | None) -> tuple[np.ndarray, str]:
    """Case indicator for non-missing ``labels``; default positive = second sorted level (pROC/dcurves)."""
    present = [v for v in labels if v is not None]
    if positive is None:
        uniq = sorted_labels(present)
        if len(uniq) != 2:
            raise StatsInputError(truth, f"has {len(uniq)} distinct values {uniq[:10]}; give --positive")
        positive = str(uniq[1])
        logger.info("%s: using %r as the positive class (second of the sorted levels)", truth, positive)
    target = str(positive).strip()
    mask = np.array([v is not None and _same_label(v, target) for v in labels], dtype=bool)
    if not mask.any():
        raise StatsInputError(truth, f"positive value {positive!r} does not occur "
                              f"(values: {sorted_labels(present)[:10]})")
    return mask, target


def _complete(columns: dict[str, np.ndarray], dropna: bool) -> np.ndarray:
    """Rows where every named column is present; raise naming the column unless ``dropna``."""
    keep = np.ones(len(next(iter(columns.values()))), dtype=bool)
    for name, values in columns.items():
        if values.dtype == object:
            miss = np.array([v is None for v in values], dtype=bool)
        else:
            miss = np.isnan(values)
        if miss.any() and not dropna:
            raise MissingValueError(name, f"{int(miss.sum())} missing value(s) (first at data row "
                                    f"{int(np.argmax(miss)) + 1}); use --dropna to drop incomplete rows")
        keep &= ~miss
    if not keep.any():
        raise StatsInputError(", ".join(columns), "no complete rows")
    return keep


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Record the warnings a statistic raises, so its JSON lists them (errors: the CLI's policy)."""
    def wrapped(args: argparse.Namespace) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args._warnings = caught
            return handler(args)
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _warning_texts(args: argparse.Namespace) -> list[str]:
    texts = list(dict.fromkeys(str(w.message) for w in getattr(args, "_warnings", [])))
    for t in texts:
        logger.warning(t)
    return texts


def long_to_wide(df: Any, model_column: str, id_column: str, truth: str, scores: list[str]) -> tuple[Any, list[str]]:
    """A long predictions table (one row per case and model, as ``spinemets run`` and ``train --classifier all``
    write it) as a wide one: one score column per model, rows paired by ``id_column``.

    ``scores``: the probability column (``prob_<class>``) and, optionally, the two model names
    (``--score prob_x --score modelA --score modelB``); without names the table must hold exactly two models.
    """
    for column in (model_column, id_column, truth):
        if column not in df.columns:
            raise StatsInputError(column, f"column not found (columns: {list(df.columns)})")
    if len(scores) not in (1, 3):
        raise StatsInputError("--score", "with --model-column give the probability column, optionally followed by "
                              "two model names (--score prob_x [--score modelA --score modelB])")
    column = scores[0]
    if column not in df.columns:
        raise StatsInputError(column, f"score column not found (columns: {list(df.columns)})")
    models = list(dict.fromkeys(df[model_column]))
    chosen = scores[1:] if len(scores) == 3 else models
    if len(chosen) != 2:
        raise StatsInputError(model_column, f"holds {len(models)} models {models[:10]}; name two: "
                              f"--score {column} --score A --score B")
    missing = [m for m in chosen if m not in models]
    if missing:
        raise StatsInputError(model_column, f"model(s) {missing} not found (models: {models[:20]})")
    parts = []
    for model in chosen:
        part = df[df[model_column] == model]
        if part[id_column].duplicated().any():
            raise StatsInputError(id_column, f"duplicate ids for model {model!r}")
        parts.append(part.set_index(id_column))
    common = [i for i in parts[0].index if i in set(parts[1].index)]
    if not common:
        raise StatsInputError(id_column, f"models {chosen} share no case id")
    a, b = parts[0].loc[common], parts[1].loc[common]
    if not (a[truth].to_numpy() == b[truth].to_numpy()).all():
        raise StatsInputError(truth, f"models {chosen} disagree on the truth of some ids")
    import pandas as pd

    wide = pd.DataFrame({id_column: common, truth: a[truth].to_numpy(), chosen[0]: a[column].to_numpy(),
                         chosen[1]: b[column].to_numpy()})
    return wide, list(chosen)


# --------------------------------------------------------------------------- handlers
@_run
def _cmd_delong(args: argparse.Namespace) -> int:
    """DeLong test of two ROC curves (pROC roc.test conventions)."""
    if len(args.score) != 2 and not args.model_column:
        raise StatsInputError("--score", f"give exactly two --score columns, got {len(args.score)}")
    df = read_table(args.csv)
    if args.model_column:
        df, args.score = long_to_wide(df, args.model_column, args.id_column, args.truth, args.score)
    a_name, b_name = args.score
    if a_name == b_name:
        raise StatsInputError("--score", "the two --score columns must differ")
    labels = label_column(df, args.truth)
    a = numeric_column(df, a_name)
    b = numeric_column(df, b_name)
    if not args.unpaired:
        keep = _complete({args.truth: labels, a_name: a, b_name: b}, args.dropna)
        y, pos = _positive_mask(labels[keep], args.truth, args.positive)
        res = delong_roc_test(y, a[keep], b[keep], direction=args.direction, alternative=args.alternative,
                              conf_level=args.conf_level, names=(a_name, b_name), truth_name=args.truth)
        ya, sa, yb, sb = y, a[keep], y, b[keep]
    else:
        # Unpaired: rows with a value in score A form curve A, rows with a value in B form curve B.
        ka, kb = ~np.isnan(a), ~np.isnan(b)
        for nm, k in ((a_name, ka), (b_name, kb)):
            if not k.any():
                raise MissingValueError(nm, "no non-empty values")
        _complete({args.truth: labels[ka | kb]}, args.dropna)
        ka &= np.array([v is not None for v in labels])
        kb &= np.array([v is not None for v in labels])
        _, pos = _positive_mask(labels[ka | kb], args.truth, args.positive)
        ya, _ = _positive_mask(labels[ka], args.truth, pos)
        yb, _ = _positive_mask(labels[kb], args.truth, pos)
        sa, sb = a[ka], b[kb]
        res = delong_roc_test_unpaired(ya, sa, yb, sb, direction=args.direction, alternative=args.alternative,
                                       conf_level=args.conf_level, names=(a_name, b_name),
                                       truth_names=(args.truth, args.truth))
    ci_a = delong_auc(ya, sa, direction=res.direction1, conf_level=args.conf_level, score_name=a_name,
                      truth_name=args.truth)
    ci_b = delong_auc(yb, sb, direction=res.direction2, conf_level=args.conf_level, score_name=b_name,
                      truth_name=args.truth)
    _emit_json({
        "auc": {a_name: res.auc1, b_name: res.auc2},
        "auc_ci": {a_name: list(ci_a.ci), b_name: list(ci_b.ci)},
        "auc_se": {a_name: ci_a.se, b_name: ci_b.se},
        "z": res.statistic,
        "p": res.p_value,
        "diff": res.difference,
        "diff_se": res.se,
        "diff_ci": list(res.ci),
        "statistic_name": res.statistic_name,
        "df": res.df,
        "alternative": res.alternative,
        "paired": res.paired,
        "method": res.method,
        "conf_level": res.conf_level,
        "direction": {a_name: res.direction1, b_name: res.direction2},
        "n_cases": {a_name: res.n_cases[0], b_name: res.n_cases[1]},
        "n_controls": {a_name: res.n_controls[0], b_name: res.n_controls[1]},
        "positive": pos,
        "warnings": _warning_texts(args),
    })
    return EXIT_OK


@_run
def _cmd_bootstrap(args: argparse.Namespace) -> int:
    """Stratified bootstrap CI of one binary metric."""
    df = read_table(args.csv)
    labels = label_column(df, args.truth)
    s = numeric_column(df, args.score)
    keep = _complete({args.truth: labels, args.score: s}, args.dropna)
    y, pos = _positive_mask(labels[keep], args.truth, args.positive)
    direction = args.direction or ("auto" if args.metric == "auc" else "<")
    res = bootstrap_metric(y, s[keep], args.metric, threshold=args.threshold, direction=direction,
                           n_boot=args.n, seed=args.seed, conf_level=args.conf_level, method=args.ci_method,
                           score_name=args.score, truth_name=args.truth)
    out = {"metric": args.metric, "estimate": res.estimate, "ci": list(res.ci), "n": res.n_boot,
           "seed": res.seed, "method": res.method, "stratified": res.stratified,
           "conf_level": res.conf_level, "n_valid": res.n_valid, "n_obs": int(y.size),
           "n_cases": int(y.sum()), "n_controls": int((~y).sum()), "positive": pos}
    if args.metric == "auc":
        if direction == "auto":
            direction = roc_direction(s[keep][y], s[keep][~y])
        out["direction"] = direction
    elif args.metric != "brier":
        out["threshold"] = args.threshold
        out["direction"] = direction
    out["warnings"] = _warning_texts(args)
    _emit_json(out)
    return EXIT_OK


@_run
def _cmd_calibration(args: argparse.Namespace) -> int:
    """Brier, rms val.prob intercept/slope, citl and Hosmer-Lemeshow."""
    df = read_table(args.csv)
    labels = label_column(df, args.truth)
    s = numeric_column(df, args.score)
    keep = _complete({args.truth: labels, args.score: s}, args.dropna)
    y, pos = _positive_mask(labels[keep], args.truth, args.positive)
    out = calibration_summary(y, s[keep], g=args.groups, n_bins=args.bins, strategy=args.strategy,
                              conf_level=args.conf_level, truth_name=args.truth, proba_name=args.score)
    out["positive"] = pos
    out["score"] = args.score
    out["warnings"] = list(dict.fromkeys(out.get("warnings", []) + _warning_texts(args)))
    _emit_json(out)
    return EXIT_OK


@_run
def _cmd_dca(args: argparse.Namespace) -> int:
    """Decision curve table (dcurves conventions) as CSV."""
    df = read_table(args.csv)
    labels = label_column(df, args.truth)
    s = numeric_column(df, args.score)
    keep = _complete({args.truth: labels, args.score: s}, args.dropna)
    y, _ = _positive_mask(labels[keep], args.truth, args.positive)
    thresholds = parse_threshold_spec(args.thresholds)
    table = decision_curve(y, s[keep], thresholds=thresholds, prevalence=args.prevalence, nper=args.nper,
                           strict=args.strict, truth_name=args.truth, risk_name=args.score)
    _warning_texts(args)
    if args.out:
        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False)
    else:
        table.to_csv(sys.stdout, index=False)
    return EXIT_OK


@_run
def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a predictions table; write metrics.json, figures and report.html to --out."""
    df = read_table(args.predictions)
    thresholds = parse_threshold_spec(args.thresholds) if args.thresholds else None
    result = evaluate_predictions(
        df, args.truth, prob_prefix=args.prob_prefix, topk=args.topk, positive=args.positive,
        n_boot=args.n_boot, seed=args.seed, conf_level=args.conf_level, ci_method=args.ci_method,
        hl_groups=args.hl_groups, calibration_bins=args.calibration_bins, thresholds=thresholds,
        model_column=args.model_column, id_column=args.id_column, reference_model=args.reference_model,
        out_dir=args.out, figures=not args.no_figures)
    out = Path(args.out)
    _emit_json({"out": str(out), "metrics_json": str(out / "metrics.json"),
                "report": None if args.no_figures else str(out / "report.html"),
                "models": list(result["models"]) if "models" in result else None,
                "warnings": list(dict.fromkeys(result.get("warnings", []) + _warning_texts(args)))})
    return EXIT_OK


# --------------------------------------------------------------------------- parsers
def _level(text: str) -> float:
    v = float(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return v


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return v


def _leaf(sub: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=(handler.__doc__ or help_text))
    p.set_defaults(func=handler, handler=handler, command_label=f"stats {name}")
    return p


def register(subparsers: Any) -> None:
    """Add the ``stats`` subcommand (and its sub-subcommands) to an argparse subparsers object."""
    stats = subparsers.add_parser("stats", help=command_help("stats"),
                                  description="Study statistics following pROC, sklearn, rms, "
                                              "ResourceSelection and dcurves conventions.")
    sub = stats.add_subparsers(dest="stats_command", metavar="{delong,bootstrap,calibration,dca,evaluate}")
    sub.required = True

    p = _leaf(sub, "delong", _cmd_delong, "DeLong test of two ROC curves (pROC roc.test)")
    p.add_argument("--csv", required=True, help="input CSV")
    p.add_argument("--truth", required=True, help="truth column")
    p.add_argument("--positive", required=True, help="truth value of the cases (all other values are controls)")
    p.add_argument("--score", required=True, action="append", help="score column; give twice (A then B)")
    p.add_argument("--unpaired", action="store_true",
                   help="unpaired test: rows with a value in score A form curve A, rows with a value in B form curve B")
    p.add_argument("--alternative", default="two-sided", choices=["two-sided", "greater", "less"],
                   help="'greater': AUC(A) > AUC(B)")
    p.add_argument("--direction", default="auto", choices=["auto", "<", ">"],
                   help="pROC direction; auto = '<' if median(controls) <= median(cases), per curve")
    p.add_argument("--conf-level", type=_level, default=0.95)
    p.add_argument("--dropna", action="store_true", help="drop rows with a missing truth or score")
    p.add_argument("--model-column", default=None,
                   help="long format (one row per case and model, e.g. spinemets run's predictions.csv): the column "
                        "naming the model; then --score is the probability column, optionally followed by two model "
                        "names, and rows are paired by --id-column")
    p.add_argument("--id-column", default="case_id", help="case id column pairing the models (long format)")

    p = _leaf(sub, "bootstrap", _cmd_bootstrap, "stratified bootstrap CI of a binary metric")
    p.add_argument("--csv", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--score", required=True)
    p.add_argument("--metric", default="auc", choices=list(BINARY_METRICS))
    p.add_argument("--n", type=_positive_int, default=DEFAULT_N_BOOT, help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--positive", default=None,
                   help="truth value of the cases (default: the second of the two sorted truth values)")
    p.add_argument("--threshold", type=float, default=0.5, help="test-positive if score >= threshold")
    p.add_argument("--direction", default=None, choices=["auto", "<", ">"],
                   help="default: auto for auc, '<' (higher score = case) otherwise")
    p.add_argument("--conf-level", type=_level, default=0.95)
    p.add_argument("--ci-method", default="percentile", choices=["percentile", "bca"])
    p.add_argument("--dropna", action="store_true")

    p = _leaf(sub, "calibration", _cmd_calibration, "calibration: Brier, intercept/slope, citl, Hosmer-Lemeshow")
    p.add_argument("--csv", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--positive", required=True)
    p.add_argument("--score", required=True, help="predicted probability of the positive class")
    p.add_argument("--groups", type=_positive_int, default=10, help="Hosmer-Lemeshow groups g")
    p.add_argument("--bins", type=_positive_int, default=10, help="calibration-curve bins")
    p.add_argument("--strategy", default="quantile", choices=["quantile", "uniform"])
    p.add_argument("--conf-level", type=_level, default=0.95)
    p.add_argument("--dropna", action="store_true")

    p = _leaf(sub, "dca", _cmd_dca, "decision curve analysis (dcurves)")
    p.add_argument("--csv", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--positive", required=True)
    p.add_argument("--score", required=True, help="predicted risk of the positive class")
    p.add_argument("--thresholds", default="0.01:0.99:0.01", help="start:stop:step or a comma list")
    p.add_argument("--prevalence", type=float, default=None, help="population prevalence (case-control data)")
    p.add_argument("--nper", type=float, default=1.0, help="net interventions avoided per this many patients")
    p.add_argument("--strict", dest="strict", action="store_true", default=True,
                   help="test-positive only if risk > threshold (the default)")
    p.add_argument("--inclusive", dest="strict", action="store_false",
                   help="test-positive if risk >= threshold, as dcurves' source code does")
    p.add_argument("--out", default=None, help="write the CSV here instead of stdout")
    p.add_argument("--dropna", action="store_true")

    p = _leaf(sub, "evaluate", _cmd_evaluate, "evaluate a predictions table (metrics.json, figures, report.html)")
    p.add_argument("--predictions", required=True, help="CSV with a truth column and <prefix><class> columns")
    p.add_argument("--truth", required=True)
    p.add_argument("--topk", type=_positive_int, default=3)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--prob-prefix", default=DEFAULT_PROB_PREFIX)
    p.add_argument("--positive", default=None, help="positive class for two-class problems")
    p.add_argument("--n-boot", type=_positive_int, default=DEFAULT_N_BOOT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conf-level", type=_level, default=0.95)
    p.add_argument("--ci-method", default="percentile", choices=["percentile", "bca"])
    p.add_argument("--hl-groups", type=_positive_int, default=10)
    p.add_argument("--calibration-bins", type=_positive_int, default=10)
    p.add_argument("--thresholds", default=None, help="DCA thresholds start:stop:step (default 0.01:0.99:0.01)")
    p.add_argument("--model-column", default=None, help="column naming the model of each row (long format)")
    p.add_argument("--id-column", default=None, help="case id column pairing rows of different models")
    p.add_argument("--reference-model", default=None, help="model the others are compared to (default: first)")
    p.add_argument("--no-figures", action="store_true")

