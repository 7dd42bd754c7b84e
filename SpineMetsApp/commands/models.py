"""``spinemets train``, ``spinemets predict`` and ``spinemets explain``.

::

    spinemets train --features F.csv --label site --feature-set edf --classifier lr --out model_dir
    spinemets train --features F.csv --label tumour_class --feature-set radiomics+age --classifier all --out cmp/
    spinemets predict --model model_dir --features row.csv [--out predictions.csv]
    spinemets predict --model model.zip --manifest manifest.csv --out predictions.csv
    spinemets explain --model model_dir --features F.csv --out shap/ [--case case0007]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError

from . import command_help


def _split_values(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _training_config(args: argparse.Namespace, classifier: str) -> Any:
    from SpineMetsClassifierLib.models.pipeline import SelectionConfig
    from SpineMetsClassifierLib.models.training import TrainConfig

    split = args.split
    if split is None:
        split = "column" if args.split_column else "cv"
    selection = SelectionConfig(
        variance_threshold=None if args.no_variance_filter else 0.0,
        correlation_threshold=None if args.correlation_threshold <= 0 else args.correlation_threshold,
        univariate_k=args.univariate_k,
        mrmr_k=args.mrmr_k,
        l1_C=args.l1_c,
    )
    return TrainConfig(
        label=args.label, feature_set=args.feature_set, classifier=classifier, split=split,
        test_size=args.test_size, split_column=args.split_column,
        test_values=_split_values(args.test_value) if args.test_value else ("test",),
        cv_folds=args.cv_folds, inner_folds=args.inner_folds, grid=args.grid, scoring=args.scoring,
        seed=args.seed, class_weight=None if args.class_weight == "none" else args.class_weight,
        selection=selection, id_column=args.id_column, positive=args.positive, topk=args.topk,
        threads=args.threads, synthetic_training_data=True if args.synthetic_training_data else None,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.models.package import read_card
    from SpineMetsClassifierLib.models.schema import read_feature_table
    from SpineMetsClassifierLib.models.training import key_metrics, save_training, train_all, train_model

    from SpineMetsCore.progress import console_progress

    frame = read_feature_table(args.features, text_columns=(args.id_column, args.label, args.split_column or ""))
    update, close = console_progress("train")
    try:
        if args.classifier == "all":
            config = _training_config(args, "lr")
            _, table = train_all(frame, config, out=args.out, progress=update, source=args.features)
            summary: dict[str, Any] = {"out": str(args.out), "comparison": str(Path(args.out) / "comparison.csv"),
                                       "ranking": list(table["model"]),
                                       "models": {r["model"]: str(Path(args.out) / r["model"])
                                                  for r in table.to_dict("records")},
                                       "failed_models": table.attrs.get("failures", {})}
        else:
            config = _training_config(args, args.classifier)
            result = train_model(frame, config, progress=update, source=args.features)
            path = save_training(result, args.out)
            n = len(result.card["classes"])
            summary = {"model": str(path), "classes": result.card["classes"],
                       "cv": key_metrics(result.cv_metrics, n), "test": key_metrics(result.test_metrics, n) or None,
                       "synthetic_training_data": result.card["synthetic_training_data"],
                       "sha256": read_card(path)["payload"]["sha256"]}
    finally:
        close()
    print(json.dumps(summary, indent=2, default=str))
    if summary.get("failed_models"):
        print(f"spinemets train: {len(summary['failed_models'])} classifier(s) failed (see failed_models); "
              "the others were trained", file=sys.stderr)
        return 1
    return 0


def _table_metadata(features: str | None) -> list[str]:
    """Non-feature columns of a features table, from its provenance (``spinemets features`` / ``run`` write them)."""
    from SpineMetsClassifierLib.models.training import non_feature_columns

    return non_feature_columns(features) if features else []


def _cmd_predict(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.models.inference import manifest_features, predict_table
    from SpineMetsClassifierLib.models.package import load_package
    from SpineMetsClassifierLib.models.schema import read_feature_table

    from SpineMetsCore.tables import provenance, write_table_csv

    package = load_package(args.model, expected_sha256=args.sha256)
    if args.features:
        frame = read_feature_table(args.features, text_columns=("case_id", package.id_column, package.label))
        source = args.features
    else:
        from SpineMetsCore.progress import console_progress

        update, close = console_progress("features")
        try:
            frame = manifest_features(package, args.manifest, edf_csv=args.edf, workers=args.workers, progress=update)
        finally:
            close()
        source = args.manifest
    # A table with SpineMets provenance says which columns are not features; its other feature columns
    # (those the model does not use) are ignored. Without provenance every extra column is an error.
    known = _table_metadata(args.features)
    table = predict_table(package, frame, topk=args.topk,
                          ignore_extra=args.ignore_extra_columns or bool(args.manifest) or bool(known),
                          allowed_extra=known, strict_categories=args.strict_categories)
    if package.synthetic_training_data:
        print("spinemets predict: warning: the model was trained on SYNTHETIC data; predictions are not "
              "clinically valid", file=sys.stderr)
    if args.out:
        prov = provenance(operation="predict", model=str(args.model), model_sha256=package.sha256,
                          input=str(source), synthetic_training_data=package.synthetic_training_data, task=package.card["task"])
        write_table_csv(table, args.out, prov)
        print(json.dumps({"predictions": str(args.out), "cases": len(table), "classes": package.classes}))
    else:
        table.to_csv(sys.stdout, index=False, lineterminator="\n")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from SpineMetsClassifierLib.models.explain import explain, ranking, write_explanations
    from SpineMetsClassifierLib.models.package import load_package
    from SpineMetsClassifierLib.models.schema import read_feature_table

    package = load_package(args.model, expected_sha256=args.sha256)
    frame = read_feature_table(args.features, text_columns=("case_id", package.id_column, package.label))
    cases = _split_values(args.case) if args.case else None
    if cases:
        ids = frame[package.id_column].astype(str) if package.id_column in frame.columns else None
        if ids is None:
            raise InputError("--case", f"the features table has no '{package.id_column}' column")
        missing = [c for c in cases if c not in set(ids)]
        if missing:
            raise InputError("--case", f"case(s) {missing} not in {args.features}")
        if args.max_cases is not None and len(frame) > args.max_cases:
            # keep the requested cases in the explained subset
            others = frame[~ids.isin(cases)].sample(n=max(0, args.max_cases - len(cases)), random_state=args.seed)
            frame = frame.loc[sorted(set(frame[ids.isin(cases)].index) | set(others.index))]
    known = _table_metadata(args.features)
    result = explain(package, frame, max_cases=None if cases else args.max_cases, seed=args.seed,
                     ignore_extra=args.ignore_extra_columns or bool(known), allowed_extra=known)
    written = write_explanations(result, args.out, package, cases=cases)
    print(json.dumps({"explainer": result.explainer, "output": result.output, "cases": len(result.case_ids),
                      "ranking": ranking(result)[:10], "files": {k: str(v) for k, v in written.items()}}, indent=2))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add ``train``, ``predict`` and ``explain`` to the ``spinemets`` command."""
    from SpineMetsClassifierLib.models.pipeline import CLASSIFIERS, PARAM_GRIDS

    p = subparsers.add_parser("train", help=command_help("train"),
                              description="Nested stratified CV with hyper-parameter search, final fit and a "
                                          "model package (model.json + skops pipeline).")
    p.add_argument("--features", required=True, help="features CSV (one row per case)")
    p.add_argument("--label", required=True, help="label column (e.g. site, tumour_class)")
    p.add_argument("--feature-set", default="all",
                   help="columns to use: edf, clinical, radiomics, deep, all, names, patterns (T2_original_*), "
                        "re:REGEX or @list.txt, joined with + (default all)")
    p.add_argument("--classifier", required=True, choices=[*CLASSIFIERS, "all"])
    p.add_argument("--out", required=True, help="package folder (or .zip); with 'all', a folder of packages")
    p.add_argument("--split", choices=["cv", "random", "column"], default=None,
                   help="cv (nested CV only), random (stratified hold-out) or column (see --split-column); "
                        "default: column if --split-column is given, else cv")
    p.add_argument("--test-size", type=float, default=0.3, help="hold-out share for --split random (default 0.3)")
    p.add_argument("--split-column", default=None, help="column defining the test rows (e.g. centre, partition)")
    p.add_argument("--test-value", default=None, help="value(s) of --split-column marking test rows, comma separated "
                                                      "(default 'test')")
    p.add_argument("--cv-folds", type=_positive_int, default=5, help="outer CV folds (default 5)")
    p.add_argument("--inner-folds", type=_positive_int, default=3, help="inner (tuning) CV folds (default 3)")
    p.add_argument("--grid", choices=list(PARAM_GRIDS), default="default", help="hyper-parameter grid size")
    p.add_argument("--scoring", default="neg_log_loss", help="scikit-learn scorer for tuning (default neg_log_loss)")
    p.add_argument("--seed", type=int, default=0, help="seed of every split and estimator (default 0)")
    p.add_argument("--class-weight", choices=["balanced", "none"], default="balanced")
    p.add_argument("--no-variance-filter", action="store_true", help="keep constant columns")
    p.add_argument("--correlation-threshold", type=float, default=0.95,
                   help="drop a column with |r| above this with an earlier one; 0 disables (default 0.95)")
    p.add_argument("--univariate-k", type=_positive_int, default=None, help="keep the k best columns by ANOVA F")
    p.add_argument("--mrmr-k", type=_positive_int, default=None, help="keep k columns by mRMR")
    p.add_argument("--l1-c", type=float, default=None, help="L1/LASSO logistic selection with this C")
    p.add_argument("--id-column", default="case_id")
    p.add_argument("--positive", default=None, help="positive class of a binary task (default: the last in order)")
    p.add_argument("--topk", type=_positive_int, default=3)
    p.add_argument("--threads", type=_positive_int, default=None, help="BLAS/OpenMP threads (default SPINEMETS_THREADS or 1)")
    p.add_argument("--synthetic-training-data", action="store_true",
                   help="mark the model as trained on synthetic data (detected automatically for phantom tables)")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("predict", help=command_help("predict"),
                              description="Writes case_id, prob_<class> per class, top1..top3 and predicted.")
    p.add_argument("--model", required=True, help="model package folder or .zip")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", help="features CSV (one row per case)")
    source.add_argument("--manifest", help="manifest CSV: features computed on the fly")
    p.add_argument("--out", default=None, help="predictions CSV (default: CSV on stdout)")
    p.add_argument("--topk", type=_positive_int, default=3)
    p.add_argument("--edf", default=None, help="with --manifest: EDF CSV (case_id + EDF items) merged by case_id")
    p.add_argument("--workers", type=_positive_int, default=1, help="with --manifest: feature worker processes")
    p.add_argument("--sha256", default=None, help="refuse the model unless model.skops has this SHA-256")
    p.add_argument("--ignore-extra-columns", action="store_true",
                   help="ignore columns the model does not use (default: error naming them)")
    p.add_argument("--strict-categories", action="store_true",
                   help="reject category values never seen in training (default: warn)")
    p.set_defaults(func=_cmd_predict)

    p = subparsers.add_parser("explain", help=command_help("explain"))
    p.add_argument("--model", required=True, help="model package folder or .zip")
    p.add_argument("--features", required=True, help="features CSV of the cases to explain")
    p.add_argument("--out", required=True, help="output folder (tables and PNG figures)")
    p.add_argument("--case", default=None, help="case id(s) for waterfall figures, comma separated (default: first)")
    p.add_argument("--max-cases", type=_positive_int, default=200, help="explain at most this many cases (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sha256", default=None, help="refuse the model unless model.skops has this SHA-256")
    p.add_argument("--ignore-extra-columns", action="store_true")
    p.set_defaults(func=_cmd_explain)

