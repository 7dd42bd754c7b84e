"""Study-specific stages of ``spinemets run`` for the four published studies (config key ``study``).

The generic pipeline (segment, features, train, evaluate, SHAP, report) covers most of each
study; this module adds only what a study needs beyond it, in three hooks the runner calls:

- :func:`before_cases` (study D): train the fat-metaplasia U-Net on the development cases'
  reference masks (and, with ``unet_cv_folds``, a cross-validated Dice), then point the
  per-case segmentation at it;
- :func:`before_study` (study C's DRad-M): train a deep network on the development cases and
  add its penultimate-layer embedding ``dl_*`` to the feature table, so a fusion model trains
  with the classical code (feature set ``radiomics+dl_*``);
- :func:`after_study`: the study's own tables (``study/*.csv``) and report section: A's
  top-1/2/3 metrics, per-site F1/recall, DeLong EDF vs DL, cohort tests by split and SHAP
  ranges; B's accuracies and the segmentation's pixel accuracy; C's AUCs with CIs per
  evaluation set, DeLong between model families, calibration and decision curves; D's Dice
  (CV, internal, external), the segmentation-based classifier (AUC with CI per set) and a
  simulated reader study.

It also registers the ``deep`` model kind (a MONAI ResNet trained by
:mod:`SpineMetsClassifierLib.deep`) when nothing else has. Every section shows the paper's
figures beside the phantom's and says that phantom numbers are not the paper's results.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError, SpineMetsError
from SpineMetsCore.fileio import atomic_path, write_text_atomic
from SpineMetsCore.tables import write_table_csv

from .config import Key, _k

if TYPE_CHECKING:
    from .runner import RunPlan

logger = logging.getLogger(__name__)

STUDY_KINDS: tuple[str, ...] = ("a", "b", "c", "d")
DEEP_KIND = ("MONAI ResNet classifier (SpineMetsClassifierLib.deep) trained on the segmented cases of the task's "
             "development rows; `options`: DeepConfig fields (arch, dims, width, epochs, sequences ...)")
DISCLAIMER = ("Phantom figures come from synthetic data generated to resemble the study design; they are not the "
              "paper's results and say nothing about clinical performance.")

STUDY_SECTION = Key("study-specific stages of the four published studies (see docs/studies.md)", kind="section",
                    children={
    "kind": _k("`a` (primary site), `b` (metastasis vs primary bone tumour), `c` (solitary primary vs metastasis, "
               "two centres), `d` (sacroiliac fat metaplasia, axSpA) or null (no study stage)", None, "str",
               choices=STUDY_KINDS),
    "split_column": _k("manifest column with the development/test split", "split", "str"),
    "development_values": _k("split values used for training (the rest is evaluated)",
                             ["development", "train", "validation"], "list"),
    "evaluation_sets": _k("split values evaluated separately (C: internal_validation, external_test; "
                          "D: internal_test, external_test); empty: the task's test set as one", [], "list"),
    "deep_features": _k("study C's DRad-M: settings of the network whose embedding becomes `dl_*` feature columns "
                        "(fields of `SpineMetsClassifierLib.deep.DeepConfig`, e.g. arch, width, epochs, sequences); "
                        "null: none", None, "mapping"),
    "unet": _k("study D: U-Net training settings (fields of `SpineMetsSegmentLib.unet.training.TrainingConfig`); "
               "null: use `segmentation.unet_model` as given", None, "mapping"),
    "unet_cv_folds": _k("study D: folds of the cross-validated U-Net Dice on the development cases (0: none)", 0,
                        "int"),
    "classifier_features": _k("study D: segmentation features of the axSpA classifier",
                              ["fm_volume_ml", "fm_components", "fm_t1_ratio", "fm_stir_ratio"], "list"),
    "reader_study": _k("study D: simulated readers `{name: {skill: Dice-like skill 0..1, trust: share of "
                       "model-proposed voxels adopted}}`; null: none", None, "mapping"),
    "pixel_accuracy_margin_mm": _k("study B: margin (mm) of the box around the reference lesion in which pixel "
                                   "accuracy is measured", 10.0, "float"),
})

PAPER: dict[str, dict[str, Any]] = {
    "a": {"title": "Primary site of spinal metastases from non-contrast MRI",
          "reference": "J Magn Reson Imaging 2025, doi 10.1002/jmri.29720",
          "design": "514 patients (development 360, test 154); EDF model vs ResNet50 on T1, T2, STIR",
          "figures": [("top-3 accuracy, EDF", 0.88), ("top-3 accuracy, DL", 0.69), ("AUC, EDF", 0.80),
                      ("AUC, DL", 0.71), ("kidney F1, EDF", 0.94), ("kidney F1, DL", 0.76),
                      ("thyroid recall, DL", 0.80), ("thyroid recall, EDF", 0.20)],
          "shap": {"sex": (-0.57, 0.68), "age": (-0.48, 0.98), "t1_signal": (-0.29, 0.72),
                   "fracture": (-0.76, 0.25)}},
    "b": {"title": "Spinal metastasis vs primary malignant spinal bone tumour on contrast-enhanced MRI",
          "reference": "J Bone Oncol 2023, doi 10.1016/j.jbo.2023.100498",
          "design": "region growing on CE-MRI; radiomics model vs improved U-Net + Inception-ResNet features",
          "figures": [("accuracy, radiomics", 0.74), ("accuracy, deep model (mean)", 0.98),
                      ("pixel accuracy of the segmentation", 0.980)]},
    "c": {"title": "Solitary primary spinal tumour vs solitary spinal metastasis",
          "reference": "clinical-radiomics multiparametric MRI study (two centres)",
          "design": "510 patients: training 328, internal validation 82, external test 100; Rad-M, DRad-M, CRad-M "
                    "x seven classifiers",
          "figures": [("AUC CRad-M (LR), internal", 0.909), ("AUC CRad-M (LR), external", 0.824)],
          "notes": "CRad-M better than Rad-M and DRad-M (p < 0.05); deep features added nothing significant."},
    "d": {"title": "Fat metaplasia on sacroiliac-joint MRI and axial spondyloarthritis",
          "reference": "Insights Imaging 2024, doi 10.1186/s13244-024-01659-y",
          "design": "706 patients; centre 1 train 455 / validation 64 / internal test 129; centre 2 external 58",
          "figures": [("Dice, internal cross-validation", 0.8186), ("Dice, external", 0.8544),
                      ("AUC, internal", 0.876), ("AUC, external", 0.799),
                      ("resident Dice unassisted -> assisted", "0.757 -> 0.829 (p < 0.05)"),
                      ("expert Dice unassisted -> assisted", "0.850 -> 0.857 (n.s.)")]},
}


# ----------------------------------------------------------------------------- deep model kind
def train_deep(frame: pd.DataFrame, model: Mapping[str, Any], task: Mapping[str, Any], *, seed: int,
               columns: list[str], out_dir: Path, synthetic: bool | None, **_: Any) -> dict[str, Any]:
    """Trainer of model kind ``deep``: a MONAI ResNet on the segmented cases (same split as the task).

    ``options`` are :class:`SpineMetsClassifierLib.deep.DeepConfig` fields (``arch``, ``dims``,
    ``width``, ``epochs``, ``sequences`` ...). Needs a ``column`` split (the deep network keeps its
    own validation share of the development cases for early stopping).
    """
    from SpineMetsClassifierLib.deep import train_deep_classifier

    split = task["split"]
    if split["method"] != "column":
        raise InputError(f"model {model['name']}", "deep models need a `column` split (development vs test rows)")
    run_dir = out_dir.parents[3]  # <run>/tasks/<task>/models/<model>
    sub = _sub_manifest(run_dir, frame["case_id"].astype(str).tolist(), out_dir.parent / f"{model['name']}_cases.csv")
    options = dict(model.get("options") or {})
    options.setdefault("seed", seed)
    result = train_deep_classifier(sub, task["label"], out_dir, overwrite=True, split_column=split["column"],
                                   test_values=tuple(split["test_values"]), synthetic_training_data=synthetic,
                                   topk=int(task["topk"]), **options)
    predictions = result.test_predictions
    if predictions is None:
        raise SpineMetsError(f"deep model {model['name']}: no test cases")
    predictions = predictions.drop(columns=[c for c in ("error",) if c in predictions.columns]).assign(set="test")
    card = dict(result.card)
    return {"predictions": predictions, "card": card, "package": result.out, "kind": "deep", "cv_metrics": {},
            "test_metrics": card.get("test_metrics")}


def _sub_manifest(run_dir: Path, case_ids: Sequence[str], target: Path) -> Path:
    """The run's segmented manifest restricted to ``case_ids``, with absolute paths."""
    source = run_dir / "segmented_manifest.csv"
    if not source.is_file():
        raise InputError(str(source), "segmented manifest of the run is missing (deep models read it)")
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame = frame[frame["case_id"].isin(set(case_ids)) & (frame["mask"].str.strip() != "")].copy()
    frame["mask"] = [str((run_dir / m).resolve()) if not Path(m).is_absolute() else m for m in frame["mask"]]
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return target


def register() -> None:
    """Register the ``deep`` trainer unless another package already did (idempotent)."""
    from . import study as study_mod

    if "deep" not in study_mod.TRAINERS:
        study_mod.register_trainer("deep", train_deep, DEEP_KIND)


# ----------------------------------------------------------------------------- helpers
def _kind(plan: RunPlan) -> str | None:
    section = plan.config.values.get("study") or {}
    return section.get("kind")


def _section(plan: RunPlan) -> dict[str, Any]:
    return dict(plan.config.values.get("study") or {})


def _study_dir(plan: RunPlan) -> Path:
    path = plan.out / "study"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _manifest_frame(plan: RunPlan) -> pd.DataFrame:
    frame = pd.DataFrame(plan.raw_rows).astype(str)
    base = plan.manifest.parent
    for column in ("T1", "T2", "STIR", "T1CE", "mask", "anatomy"):
        if column in frame.columns:
            frame[column] = [str((base / p).resolve()) if p and not Path(p).is_absolute() else p for p in frame[column]]
    return frame


def _write_manifest(frame: pd.DataFrame, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return target


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2013"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return html.escape(str(value))


def _p(value: Any) -> str:
    """A p-value as a reader expects it (``< 0.001`` rather than ``0.000``)."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        return "\u2013"
    if not math.isfinite(p):
        return "\u2013"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_text(value: Any) -> str:
    """``p < 0.001`` or ``p = 0.123``."""
    text = _p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _ci(est: Any, lo: Any, hi: Any) -> str:
    if est is None or (isinstance(est, float) and not math.isfinite(est)):
        return "\u2013"
    return f"{_fmt(est)} ({_fmt(lo)}\u2013{_fmt(hi)})"


def _html_table(frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return "<p class='muted'>(none)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metric(res: Mapping[str, Any], key: str) -> tuple[float, float, float]:
    m = (res.get("metrics") or {}).get(key)
    if not m:
        return (math.nan, math.nan, math.nan)
    return (float(m["estimate"]), float(m["ci"][0]), float(m["ci"][1]))


# ----------------------------------------------------------------------------- hook 1: before the cases
def before_cases(plan: RunPlan) -> RunPlan:
    """Study D: train the U-Net on the development cases, segment every case with it.

    Absence of fat metaplasia is a finding, not a failure: cases where the U-Net finds none
    are recorded in ``study/unet_segmentation.csv`` (volume 0) and leave the generic per-case
    stage, which then measures the found fat metaplasia (method ``mask`` on the U-Net's masks).
    """
    if _kind(plan) != "d" or not _section(plan).get("unet"):
        return plan
    from .cases import case_key

    section = _section(plan)
    package = train_unet(plan, section)
    masks = segment_with_unet(plan, package)
    settings = dataclasses.replace(plan.settings, method="mask", unet_model=str(package))
    specs = []
    for spec in plan.specs:
        if masks.get(spec.case_id):
            moved = dataclasses.replace(spec, mask=masks[spec.case_id], key="")
            specs.append(dataclasses.replace(moved, key=case_key(moved, settings)))
    if not specs:
        logger.warning("study D: the U-Net found fat metaplasia in no case; the per-case stage segments with it "
                       "and records every empty segmentation")
        return dataclasses.replace(plan, settings=dataclasses.replace(plan.settings, method="unet",
                                                                      unet_model=str(package)))
    kept = {s.case_id for s in specs}
    rows = [r for r in plan.raw_rows if (r.get("case_id") or "").strip() in kept]
    logger.info("study D: the U-Net found fat metaplasia in %d of %d case(s)", len(specs), len(plan.specs))
    return dataclasses.replace(plan, settings=settings, specs=specs, raw_rows=rows)


def segment_with_unet(plan: RunPlan, package_path: Path) -> dict[str, str]:
    """U-Net masks of every manifest case in ``study/unet_masks/`` (reused when the model is unchanged)."""
    import SimpleITK as sitk
    from SpineMetsSegmentLib.unet import load_model_package, segment_images

    out = _study_dir(plan) / "unet_masks"
    out.mkdir(parents=True, exist_ok=True)
    package = load_model_package(package_path)
    weights = package.weights_sha256
    table_path = _study_dir(plan) / "unet_segmentation.csv"
    previous: dict[str, dict[str, str]] = {}
    if table_path.is_file():
        old = pd.read_csv(table_path, dtype=str, keep_default_na=False)
        previous = {r["case_id"]: r for r in old.to_dict(orient="records") if r.get("weights_sha256") == weights}
    rows = []
    frame = _manifest_frame(plan)
    for i, row in enumerate(frame.to_dict(orient="records"), start=1):
        case_id = row["case_id"]
        target = out / f"{case_id}.nrrd"
        done = previous.get(case_id)
        if done is None or not target.is_file():
            images = {s: sitk.ReadImage(row[s]) for s in package.input_sequences}
            mask = segment_images(images, package)
            with atomic_path(target) as tmp:
                sitk.WriteImage(mask, str(tmp), useCompression=True)
            voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
            done = {"case_id": case_id, "file": str(target), "voxels": str(voxels), "weights_sha256": weights}
            logger.info("study D: U-Net segmentation %d/%d (%s: %d voxel(s))", i, len(frame), case_id, voxels)
        rows.append(done)
    write_table_csv(pd.DataFrame(rows), table_path)
    return {r["case_id"]: (r["file"] if int(r["voxels"]) > 0 else "") for r in rows}


def _unet_config(section: Mapping[str, Any], seed: int) -> Any:
    from SpineMetsSegmentLib.unet.training import TrainingConfig

    options = dict(section.get("unet") or {})
    for key in ("sequences", "patch_size", "channels", "strides", "spacing"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    options.setdefault("seed", seed)
    options.setdefault("name", "SpineMets fat-metaplasia U-Net (study D phantom)")
    options.setdefault("task", "sacroiliac fat metaplasia segmentation (MRI)")
    options.setdefault("labels", ({"value": 1, "name": "fat_metaplasia", "color": [240, 200, 60]},))
    try:
        return TrainingConfig(**options)
    except TypeError as exc:
        raise InputError("study.unet", f"unknown U-Net training setting ({exc})") from None


def train_unet(plan: RunPlan, section: Mapping[str, Any]) -> Path:
    """Train (or reuse, when the same settings already produced it) the study-D U-Net package."""
    from SpineMetsSegmentLib.unet.training import train_model

    out = _study_dir(plan) / "unet"
    config = _unet_config(section, int(plan.config["seed"]))
    frame = _manifest_frame(plan)
    dev = frame[frame[section["split_column"]].isin([str(v) for v in section["development_values"]])]
    identity = json.dumps({"config": dataclasses.asdict(config), "cases": sorted(dev["case_id"])}, sort_keys=True,
                          default=str)
    stamp = out / "training.json"
    model = out / "model"
    if model.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8") == identity:
        logger.info("study D: reusing the U-Net trained by an earlier run (%s)", model)
        return model
    if model.exists():
        import shutil

        shutil.rmtree(model)
    manifest = _write_manifest(dev, out / "development_manifest.csv")
    logger.info("study D: training the fat-metaplasia U-Net on %d development case(s)", len(dev))
    result = train_model(manifest, model, config)
    write_text_atomic(stamp, identity)
    write_text_atomic(out / "summary.json", json.dumps(result.summary(), indent=2, default=str) + "\n")
    return result.out


def unet_cross_validation(plan: RunPlan, section: Mapping[str, Any], folds: int) -> pd.DataFrame:
    """Per-case Dice of U-Nets trained on k-1 folds of the development cases, tested on the held-out fold."""
    import SimpleITK as sitk
    from SpineMetsSegmentLib.unet import load_model_package, segment_images
    from SpineMetsSegmentLib.unet.training import train_model

    frame = _manifest_frame(plan)
    dev = frame[frame[section["split_column"]].isin([str(v) for v in section["development_values"]])].reset_index(drop=True)
    rng = np.random.default_rng(int(plan.config["seed"]))
    fold_of = np.empty(len(dev), dtype=int)
    fold_of[rng.permutation(len(dev))] = np.arange(len(dev)) % folds
    config = _unet_config(section, int(plan.config["seed"]))
    rows = []
    cv_dir = _study_dir(plan) / "unet_cv"
    for k in range(folds):
        train = dev[fold_of != k]
        test = dev[fold_of == k]
        manifest = _write_manifest(train, cv_dir / f"fold{k}_train.csv")
        target = cv_dir / f"fold{k}_model"
        if target.exists():
            import shutil

            shutil.rmtree(target)
        logger.info("study D: U-Net cross-validation fold %d/%d (%d train, %d test)", k + 1, folds, len(train), len(test))
        package = load_model_package(train_model(manifest, target, config).out)
        for row in test.itertuples(index=False):
            images = {s: sitk.ReadImage(getattr(row, s)) for s in package.input_sequences}
            predicted = segment_images(images, package)
            reference = sitk.ReadImage(row.mask)
            rows.append({"case_id": row.case_id, "fold": k, **_dice_pair(predicted, reference)})
    table = pd.DataFrame(rows)
    write_table_csv(table, _study_dir(plan) / "unet_cv_dice.csv")
    return table


def _dice_pair(predicted: Any, reference: Any) -> dict[str, Any]:
    import SimpleITK as sitk

    p = sitk.GetArrayViewFromImage(predicted) > 0
    r = sitk.GetArrayViewFromImage(reference) > 0
    denom = int(p.sum()) + int(r.sum())
    return {"dice": (2.0 * int((p & r).sum()) / denom) if denom else math.nan,
            "predicted_voxels": int(p.sum()), "reference_voxels": int(r.sum())}


# ----------------------------------------------------------------------------- hook 2: before the study
def before_study(plan: RunPlan, tables: dict[str, Any]) -> dict[str, Any]:
    """Study C: deep features ``dl_*`` from a network trained on the development cases."""
    section = _section(plan)
    if not section.get("deep_features"):
        return tables
    from SpineMetsClassifierLib.deep import deep_features, train_deep_classifier

    out = _study_dir(plan) / "deep_features"
    features: pd.DataFrame = tables["features"]
    ok = features.loc[features["error"].astype(str).str.strip() == "", "case_id"].astype(str).tolist()
    manifest = _sub_manifest(plan.out, ok, out / "cases.csv")
    label = next((t["label"] for t in plan.config["tasks"]), None)
    if label is None:
        raise InputError("study.deep_features", "needs a task (its label trains the feature network)")
    dev_values = {str(v) for v in section["development_values"]}
    split = section["split_column"]
    test_values = sorted({str(v) for v in features[split].astype(str)} - dev_values)
    options = dict(section["deep_features"])
    options.setdefault("seed", int(plan.config["seed"]))
    model_dir = out / "model"
    if model_dir.exists():
        import shutil

        shutil.rmtree(model_dir)
    logger.info("deep features: training the feature network on the development cases (%s)", sorted(dev_values))
    trained = train_deep_classifier(manifest, label, model_dir, overwrite=True, split_column=split,
                                    test_values=tuple(test_values), **options)
    embedding = deep_features(trained.out, manifest, device=options.get("device", "auto"))
    write_table_csv(embedding, out / "dl_features.csv")
    columns = [c for c in embedding.columns if str(c).startswith("dl_")]
    merged = features.merge(embedding[["case_id", *columns]].assign(case_id=lambda d: d["case_id"].astype(str)),
                            on="case_id", how="left")
    tables = dict(tables)
    tables["features"] = merged
    tables["deep_feature_model"] = trained.out
    logger.info("deep features: %d dl_* column(s) added for %d case(s)", len(columns), len(embedding))
    return tables


# ----------------------------------------------------------------------------- hook 3: after the study
def after_study(plan: RunPlan, tables: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    """The study's own tables and report section (``study["study_html"]``)."""
    kind = _kind(plan)
    if kind is None:
        return {}
    section = _section(plan)
    handler = {"a": _study_a, "b": _study_b, "c": _study_c, "d": _study_d}[kind]
    try:
        result = handler(plan, section, tables, study)
    except (SpineMetsError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # the cohort's segmentation, models and report are already computed: keep them, say what failed
        logger.exception("study %s stage failed: %s", kind.upper(), exc)
        result = {"rows": [], "html": f"<p class='note'>The study {kind.upper()} stage failed: "
                                       f"{html.escape(str(exc))}</p>"}
    paper = PAPER[kind]
    table = pd.DataFrame(result.get("rows", []), columns=["figure", "paper", "phantom"])
    write_table_csv(table, _study_dir(plan) / "paper_vs_phantom.csv")
    parts = [f"<h2>Study {kind.upper()}: {html.escape(paper['title'])}</h2>",
             f"<div class='banner'>{html.escape(DISCLAIMER)}</div>",
             f"<p>Paper: {html.escape(paper['reference'])}. Design: {html.escape(paper['design'])}.</p>",
             "<h3>Paper vs phantom</h3>", _html_table(table)]
    if paper.get("notes"):
        parts.append(f"<p class='muted'>Paper: {html.escape(paper['notes'])}</p>")
    parts.append(result.get("html", ""))
    summary = {"kind": kind, "paper_vs_phantom": table.to_dict(orient="records"), **result.get("summary", {})}
    write_text_atomic(_study_dir(plan) / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return {"html": "\n".join(parts), "summary": summary}


def _task(study: Mapping[str, Any], index: int = 0) -> Mapping[str, Any]:
    tasks = list(study["tasks"].values())
    if len(tasks) <= index:
        raise InputError("tasks", f"study stage needs task {index + 1}")
    return tasks[index]


def _models_by_kind(task: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    classical, deep = [], []
    for name, res in task.get("models", {}).items():
        kind = str(res.get("kind") or (res.get("card") or {}).get("kind") or "classical")
        (deep if kind.startswith("deep") else classical).append(name)
    return classical, deep


# ----------------------------------------------------------------------------- study A
def _study_a(plan: RunPlan, section: Mapping[str, Any], tables: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    task = _task(study)
    evaluation = task.get("evaluation")
    if evaluation is None:
        raise SpineMetsError("no model was trained")
    classical, deep = _models_by_kind(task)
    edf = next((m for m in classical if m.lower().startswith("edf")), classical[0] if classical else None)
    dl = deep[0] if deep else None
    classes = [str(c) for c in task["summary"]["classes"]]
    rows_metrics = []
    for name, res in evaluation["models"].items():
        for k in (1, 2, 3):
            row: dict[str, Any] = {"model": name, "top-k": k}
            for metric in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
                row[metric] = _ci(*_metric(res, f"top{k}_{metric}"))
            row["auc_macro_ovr"] = _ci(*_metric(res, "auc_macro_ovr")) if k == 1 else ""
            rows_metrics.append(row)
    metrics_table = pd.DataFrame(rows_metrics)
    write_table_csv(metrics_table, _study_dir(plan) / "topk_metrics.csv")
    per_site = []
    for c in classes:
        row = {"site": c}
        for name, res in evaluation["models"].items():
            row[f"F1 {name}"] = _metric(res, f"f1[{c}]")[0]
            row[f"recall {name}"] = _metric(res, f"recall[{c}]")[0]
        per_site.append(row)
    per_site_table = pd.DataFrame(per_site)
    write_table_csv(per_site_table, _study_dir(plan) / "per_site.csv")
    delong_rows = []
    for comp in evaluation.get("comparisons", []):
        for c, r in comp.get("delong", {}).items():
            delong_rows.append({"reference": comp["reference"], "model": comp["model"], "class": c,
                                "auc_reference": r.get("auc1"), "auc_model": r.get("auc2"), "p_value": r.get("p_value")})
        macro = comp.get("macro_auc_bootstrap_test") or {}
        delong_rows.append({"reference": comp["reference"], "model": comp["model"], "class": "macro (bootstrap)",
                            "auc_reference": macro.get("estimate1", macro.get("auc1")),
                            "auc_model": macro.get("estimate2", macro.get("auc2")), "p_value": macro.get("p_value")})
    delong_table = pd.DataFrame(delong_rows)
    write_table_csv(delong_table, _study_dir(plan) / "delong.csv")
    cohort = _cohort_tests(plan, section, tables)
    shap = _shap_ranges(task, edf)
    ev = evaluation["models"]
    rows = []

    def phantom(model: str | None, key: str) -> str:
        return _ci(*_metric(ev[model], key)) if model in ev else "\u2013"

    for label, value in PAPER["a"]["figures"]:
        which = edf if label.endswith("EDF") else dl
        key = {"top-3 accuracy": "top3_accuracy", "AUC": "auc_macro_ovr", "kidney F1": "f1[kidney]",
               "thyroid recall": "recall[thyroid]"}[label.split(",")[0]]
        rows.append({"figure": label, "paper": value, "phantom": phantom(which, key)})
    p_macro = next((r["p_value"] for r in delong_rows if r["class"] == "macro (bootstrap)"), None)
    rows.append({"figure": "AUC EDF vs DL (p)", "paper": "DeLong, P < 0.05 significant", "phantom": _p(p_macro)})
    for feature, (lo, hi) in PAPER["a"]["shap"].items():
        match = shap[shap["feature"] == feature] if not shap.empty else shap
        value = f"{match['shap_min'].iloc[0]:.2f} to {match['shap_max'].iloc[0]:.2f}" if len(match) else "\u2013"
        rows.append({"figure": f"SHAP range {feature} (EDF)", "paper": f"{lo:.2f} to {hi:.2f}", "phantom": value})
    network = ""
    if dl is not None:
        card = task["models"][dl].get("card") or {}
        net = card.get("network") or {}
        network = (f" ({html.escape(str(net.get('arch', '?')))}, width {html.escape(str((net.get('args') or {}).get('widen_factor', '?')))}, "
                   f"{html.escape(str((card.get('inputs') or {}).get('dims', '?')))}-D; the paper used ResNet50)")
    parts = [f"<p>EDF model: <b>{html.escape(str(edf))}</b>; DL model: <b>{html.escape(str(dl))}</b>{network}; "
             f"same development/test split (column <code>{html.escape(section['split_column'])}</code>).</p>",
             "<h3>Top-1/2/3 metrics with bootstrap CIs (test set)</h3>", _html_table(metrics_table),
             "<h3>Per-site F1 and recall</h3>", _html_table(per_site_table),
             "<h3>DeLong tests (one-vs-rest per site) and bootstrap test of macro AUC</h3>", _html_table(delong_table),
             "<h3>Cohort characteristics by split (Shapiro-Wilk, t / Mann-Whitney U, chi-squared)</h3>",
             _html_table(cohort), "<h3>SHAP ranges of the EDF model</h3>",
             "<p class='muted'>Per feature: the smallest and largest SHAP value (predicted class) over the explained "
             "cases, as the paper reports them.</p>", _html_table(shap)]
    return {"rows": rows, "html": "\n".join(parts),
            "summary": {"edf_model": edf, "dl_model": dl, "delong_macro_p": p_macro}}


def _cohort_tests(plan: RunPlan, section: Mapping[str, Any], tables: Mapping[str, Any]) -> pd.DataFrame:
    from SpineMetsCore.stats import compare_groups

    features: pd.DataFrame = tables["features"]
    split = section["split_column"]
    wanted = [c for c in ("age", "sex", "fracture", "t1_signal", "site", "centre") if c in features.columns]
    if split not in features.columns or not wanted:
        return pd.DataFrame()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = compare_groups(features[[split, *wanted]], split, seed=int(plan.config["seed"]))
    except (SpineMetsError, ValueError) as exc:
        logger.warning("cohort tests by %s failed: %s", split, exc)
        return pd.DataFrame()
    write_table_csv(table, _study_dir(plan) / "cohort_tests.csv")
    return table


def _shap_ranges(task: Mapping[str, Any], model: str | None) -> pd.DataFrame:
    info = (task.get("explain") or {}).get(model or "", {})
    path = (info.get("files") or {}).get("cases")
    if not path or not Path(path).is_file():
        return pd.DataFrame(columns=["feature", "shap_min", "shap_max", "mean_abs_shap"])
    cases = pd.read_csv(path)
    table = (cases.groupby("feature")["shap"].agg(shap_min="min", shap_max="max",
                                                 mean_abs_shap=lambda s: float(np.mean(np.abs(s))))
             .reset_index().sort_values("mean_abs_shap", ascending=False, kind="mergesort"))
    return table.reset_index(drop=True)


# ----------------------------------------------------------------------------- study B
def _study_b(plan: RunPlan, section: Mapping[str, Any], tables: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    task = _task(study)
    evaluation = task.get("evaluation") or {"models": {}}
    classical, deep = _models_by_kind(task)
    pixel = pixel_accuracy(plan, float(section["pixel_accuracy_margin_mm"]))
    acc = {m: _metric(r, "accuracy") for m, r in evaluation["models"].items()}
    rad = next((m for m in classical if m in acc), None)
    dl = next((m for m in deep if m in acc), None)
    rows = [{"figure": "accuracy, radiomics", "paper": 0.74, "phantom": _ci(*acc[rad]) if rad else "\u2013"},
            {"figure": "accuracy, deep model (mean)", "paper": 0.98, "phantom": _ci(*acc[dl]) if dl else "\u2013"},
            {"figure": "pixel accuracy of the segmentation", "paper": 0.980,
             "phantom": _fmt(float(pixel["pixel_accuracy"].mean())) if not pixel.empty else "\u2013"}]
    seg: pd.DataFrame = tables["segmentation"]
    dice = seg["dice"].astype(float) if "dice" in seg.columns else pd.Series(dtype=float)
    rows.append({"figure": "Dice of region growing vs reference (median)", "paper": "not reported",
                 "phantom": _fmt(float(dice.median())) if dice.notna().any() else "\u2013"})
    acc_table = pd.DataFrame([{"model": m, "accuracy": _ci(*v), "kind": "deep" if m in deep else "classical"}
                              for m, v in acc.items()])
    parts = ["<h3>Accuracy per model (test set, bootstrap CIs)</h3>", _html_table(acc_table),
             "<h3>Segmentation pixel accuracy</h3>",
             f"<p class='muted'>Region growing from the manifest seeds; pixel accuracy = share of voxels classified "
             f"correctly (lesion or not) in the reference lesion's box grown by "
             f"{section['pixel_accuracy_margin_mm']:g} mm (the whole image would flatter it).</p>",
             _html_table(pixel.describe().T.reset_index().rename(columns={"index": "quantity"})
                         if not pixel.empty else None)]
    return {"rows": rows, "html": "\n".join(parts)}


def pixel_accuracy(plan: RunPlan, margin_mm: float) -> pd.DataFrame:
    """Per case: voxel accuracy and Dice of the segmentation in a box around the reference lesion."""
    import SimpleITK as sitk

    seg_file = plan.out / "segmented_manifest.csv"
    if not seg_file.is_file():
        return pd.DataFrame()
    rows = []
    for row in pd.read_csv(seg_file, dtype=str, keep_default_na=False).itertuples(index=False):
        mask, reference = getattr(row, "mask", ""), getattr(row, "reference_mask", "")
        if not mask or not reference:
            continue
        predicted = sitk.ReadImage(str(plan.out / mask))
        truth = sitk.ReadImage(reference)
        truth = sitk.Resample(truth, predicted, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        p = sitk.GetArrayViewFromImage(predicted) > 0
        t = sitk.GetArrayViewFromImage(truth) > 0
        if not t.any():
            continue
        pad = np.ceil(margin_mm / np.asarray(predicted.GetSpacing()[::-1])).astype(int)
        idx = np.argwhere(t)
        lo = np.maximum(idx.min(0) - pad, 0)
        hi = np.minimum(idx.max(0) + pad + 1, t.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        rows.append({"case_id": row.case_id, "pixel_accuracy": float((p[box] == t[box]).mean()),
                     "dice": float(2 * (p & t).sum() / max(int(p.sum()) + int(t.sum()), 1))})
    table = pd.DataFrame(rows)
    write_table_csv(table, _study_dir(plan) / "pixel_accuracy.csv")
    return table


# ----------------------------------------------------------------------------- study C
def _per_set_evaluation(plan: RunPlan, section: Mapping[str, Any], task: Mapping[str, Any],
                        tables: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """AUC (bootstrap CI) per model and evaluation set, plus the raw evaluations."""
    from SpineMetsClassifierLib.evaluation.evaluate import evaluate_predictions

    label = task["task"]["label"]
    long = pd.read_csv(task["dir"] / "predictions.csv", dtype={label: str, "case_id": str})
    features: pd.DataFrame = tables["features"]
    split = section["split_column"]
    where = dict(zip(features["case_id"].astype(str), features[split].astype(str), strict=False))
    long["_set"] = long["case_id"].map(where)
    sets = [str(s) for s in section["evaluation_sets"]] or sorted(long["_set"].dropna().unique())
    classes = [str(c) for c in task["summary"]["classes"]]
    positive = task["task"]["positive"] or classes[1]
    stats_cfg = plan.config["statistics"]
    rows, evaluations = [], {}
    for name in sets:
        sub = long[long["_set"] == name].drop(columns=["_set", "set"], errors="ignore")
        if sub.empty or sub[label].nunique() < 2:
            logger.warning("evaluation set %s has fewer than two classes; skipped", name)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = evaluate_predictions(sub, label, topk=1, positive=positive, n_boot=max(int(stats_cfg["bootstrap"]), 1),
                                      seed=int(plan.config["seed"]), conf_level=float(stats_cfg["conf_level"]),
                                      hl_groups=_bins(len(sub) // max(sub["model"].nunique(), 1)),
                                      calibration_bins=_bins(len(sub) // max(sub["model"].nunique(), 1)),
                                      model_column="model", id_column="case_id",
                                      reference_model=task["summary"].get("reference_model"),
                                      out_dir=_study_dir(plan) / f"evaluation_{name}", figures=False)
        evaluations[name] = ev
        for model, res in ev["models"].items():
            est, lo, hi = _metric(res, "auc")
            cal = res.get("calibration") or {}
            rows.append({"set": name, "model": model, "n": res.get("n"), "auc": est, "auc_ci_low": lo,
                         "auc_ci_high": hi, "accuracy": _metric(res, "accuracy")[0],
                         "calibration_slope": _calibration_value(cal, "slope"),
                         "calibration_intercept": _calibration_value(cal, "intercept")})
    table = pd.DataFrame(rows)
    write_table_csv(table, _study_dir(plan) / "auc_by_set.csv")
    return table, evaluations


def _calibration_value(cal: Mapping[str, Any], key: str) -> float:
    """``slope``/``intercept`` of the positive class's logistic calibration (rms val.prob)."""
    if key not in cal and len(cal) == 1:
        cal = next(iter(cal.values())) or {}
    value = cal.get(key)
    if isinstance(value, Mapping):
        value = value.get("estimate")
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _bins(n: int) -> int:
    return int(min(10, max(3, n // 10)))


def _family(name: str) -> str:
    """``CRad-M-lr`` -> ``CRad-M``: model names are ``<feature set>-<classifier>``."""
    return name.rsplit("-", 1)[0] if "-" in name else name


def _study_c(plan: RunPlan, section: Mapping[str, Any], tables: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    from SpineMetsCore.stats.delong import delong_roc_test

    task = _task(study)
    if "evaluation" not in task:
        raise SpineMetsError("no model was trained")
    table, evaluations = _per_set_evaluation(plan, section, task, tables)
    sets = list(evaluations)
    internal = sets[0] if sets else None
    label = task["task"]["label"]
    classes = [str(c) for c in task["summary"]["classes"]]
    positive = task["task"]["positive"] or classes[1]
    best: dict[str, str] = {}
    if internal is not None:
        sub = table[table["set"] == internal]
        for model in sub.sort_values(["auc", "model"], ascending=[False, True], kind="mergesort")["model"]:
            best.setdefault(_family(model), model)
    long = pd.read_csv(task["dir"] / "predictions.csv", dtype={label: str, "case_id": str})
    where = dict(zip(tables["features"]["case_id"].astype(str), tables["features"][section["split_column"]].astype(str),
                     strict=False))
    delong_rows = []
    families = sorted(best)
    for name in sets:
        part = long[long["case_id"].map(where) == name]
        for i, fa in enumerate(families):
            for fb in families[i + 1:]:
                a = part[part["model"] == best[fa]].set_index("case_id")
                b = part[part["model"] == best[fb]].set_index("case_id").reindex(a.index)
                try:
                    r = delong_roc_test(a[label] == positive, a[f"prob_{positive}"], b[f"prob_{positive}"])
                    delong_rows.append({"set": name, "model_1": best[fa], "model_2": best[fb], "auc_1": r.auc1,
                                        "auc_2": r.auc2, "p_value": r.p_value})
                except (SpineMetsError, ValueError) as exc:
                    delong_rows.append({"set": name, "model_1": best[fa], "model_2": best[fb], "p_value": math.nan,
                                        "note": str(exc)})
    delong_table = pd.DataFrame(delong_rows)
    write_table_csv(delong_table, _study_dir(plan) / "delong_families.csv")
    dca = _dca_table(evaluations, [best[f] for f in families])
    rows = []
    crad = next((m for f, m in best.items() if f.lower().startswith("crad")), None)
    for label_text, value in PAPER["c"]["figures"]:
        which = sets[0] if "internal" in label_text else (sets[1] if len(sets) > 1 else None)
        hit = table[(table["set"] == which) & (table["model"] == crad)] if which and crad else pd.DataFrame()
        rows.append({"figure": label_text.replace("(LR)", f"({crad})" if crad else "(LR)"), "paper": value,
                     "phantom": _ci(hit["auc"].iloc[0], hit["auc_ci_low"].iloc[0], hit["auc_ci_high"].iloc[0])
                     if len(hit) else "\u2013"})
    for r in delong_rows:
        rows.append({"figure": f"DeLong {r['model_1']} vs {r['model_2']} ({r['set']})",
                     "paper": "CRad-M > Rad-M, DRad-M (p < 0.05)", "phantom": _p_text(r.get("p_value"))})
    shown = table.assign(auc=[_ci(a, lo, hi) for a, lo, hi in zip(table["auc"], table["auc_ci_low"],
                                                                  table["auc_ci_high"], strict=True)]
                         ).drop(columns=["auc_ci_low", "auc_ci_high"]) if not table.empty else table
    parts = ["<h3>AUC with bootstrap CIs per model and evaluation set</h3>",
             "<p class='muted'>Models are trained on the development rows only; each evaluation set (internal "
             "validation from centre 1, external test from centre 2) is evaluated on its own.</p>", _html_table(shown),
             "<h3>Best classifier per model family and DeLong tests between families</h3>",
             _html_table(pd.DataFrame([{"family": f, "best model (internal AUC)": m} for f, m in best.items()])),
             _html_table(delong_table), "<h3>Decision curves (net benefit at chosen thresholds)</h3>", _html_table(dca),
             "<p class='muted'>Calibration slope/intercept are in the AUC table; calibration and decision-curve "
             "figures over all test rows are in the task section below; per-set outputs in "
             "study/evaluation_&lt;set&gt;/.</p>"]
    return {"rows": rows, "html": "\n".join(parts), "summary": {"best_per_family": best}}


def _dca_table(evaluations: Mapping[str, Any], models: Sequence[str]) -> pd.DataFrame:
    """Net benefit of each model, treat-all and treat-none at a few thresholds, per evaluation set."""
    rows = []
    for name, ev in evaluations.items():
        for model in models:
            curve = (ev["models"].get(model) or {}).get("decision_curve") or []
            points = {round(float(p["threshold"]), 2): p for p in curve if isinstance(p, Mapping)}
            for t in (0.2, 0.4, 0.6):
                p = points.get(t)
                if p is not None:
                    rows.append({"set": name, "model": model, "threshold": t,
                                 "net_benefit": p.get("net_benefit_model"), "treat_all": p.get("net_benefit_all"),
                                 "treat_none": p.get("net_benefit_none")})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- study D
def _study_d(plan: RunPlan, section: Mapping[str, Any], tables: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
    seg_features = segmentation_features(plan)
    split = section["split_column"]
    label = "axspa"
    frame = _manifest_frame(plan)[["case_id", split, label, "centre", "mask"]].merge(seg_features, on="case_id")
    dice = _dice_by_set(frame, section)
    cv = unet_cross_validation(plan, section, int(section["unet_cv_folds"])) if section["unet_cv_folds"] >= 2 else None
    auc_table, predictions = segmentation_classifier(plan, section, frame)
    readers = reader_study(plan, section, frame) if section.get("reader_study") else pd.DataFrame()
    sets = [str(s) for s in section["evaluation_sets"]]
    internal, external = (sets + [None, None])[:2]

    def dice_of(name: str | None) -> str:
        d = dice[dice["set"] == name] if name else pd.DataFrame()
        return f"{d['dice_mean'].iloc[0]:.3f} \u00b1 {d['dice_sd'].iloc[0]:.3f}" if len(d) else "\u2013"

    def auc_of(name: str | None) -> str:
        a = auc_table[auc_table["set"] == name] if name and not auc_table.empty else pd.DataFrame()
        return _ci(a["auc"].iloc[0], a["auc_ci_low"].iloc[0], a["auc_ci_high"].iloc[0]) if len(a) else "\u2013"

    cv_text = (f"{cv['dice'].mean():.3f} \u00b1 {cv['dice'].std(ddof=1):.3f}" if cv is not None and cv["dice"].notna().any()
               else f"not run (unet_cv_folds < 2); internal test: {dice_of(internal)}")
    rows = [{"figure": "Dice, internal cross-validation", "paper": "0.8186 \u00b1 0.0155", "phantom": cv_text},
            {"figure": "Dice, internal test", "paper": "\u2013", "phantom": dice_of(internal)},
            {"figure": "Dice, external", "paper": "0.8544 \u00b1 0.0609", "phantom": dice_of(external)},
            {"figure": "AUC, internal", "paper": "0.876 (0.811\u20130.942)", "phantom": auc_of(internal)},
            {"figure": "AUC, external", "paper": "0.799 (0.696\u20130.902)", "phantom": auc_of(external)}]
    for r in readers.to_dict(orient="records") if not readers.empty else []:
        rows.append({"figure": f"{r['reader']} Dice unassisted -> assisted",
                     "paper": {"resident": "0.757 -> 0.829 (p < 0.05)", "expert": "0.850 -> 0.857 (n.s.)"}.get(
                         r["reader"], "\u2013"),
                     "phantom": f"{r['dice_unassisted']:.3f} -> {r['dice_assisted']:.3f} ({_p_text(r['p_wilcoxon'])})"})
    parts = ["<h3>U-Net Dice by set</h3>",
             "<p class='muted'>Dice per case with fat metaplasia in the reference (a case where the U-Net finds none "
             "scores 0). The U-Net segments every case (study/unet_masks/); cases where it finds no fat metaplasia "
             "count as volume 0 and do not enter the generic per-case stage, whose segmentation summary above "
             f"therefore covers the {int((seg_features['fm_volume_ml'] > 0).sum())} case(s) with fat metaplasia "
             "found (all cases, each recorded as an empty segmentation, when the U-Net found none anywhere).</p>",
             _html_table(dice),
             "<h3>axSpA classifier on the U-Net segmentation (logistic regression)</h3>",
             f"<p class='muted'>Features: {html.escape(', '.join(section['classifier_features']))}; trained on the "
             "development rows, evaluated per set with bootstrap CIs.</p>", _html_table(auc_table)]
    if not readers.empty:
        parts += ["<h3>Reader study (simulated readers)</h3>",
                  "<p class='muted'>Readers are simulated: each reader's unassisted outline is the reference distorted "
                  "by a smooth random field scaled by the reader's skill; with assistance the reader adopts the "
                  "U-Net's proposal where the two disagree with probability 'trust'. Paired Wilcoxon signed-rank "
                  "and t tests per reader (SpineMetsSegmentLib.reader_study).</p>",
                  _html_table(readers.assign(p_wilcoxon=readers["p_wilcoxon"].map(_p),
                                             p_ttest=readers["p_ttest"].map(_p)))]
    return {"rows": rows, "html": "\n".join(parts),
            "summary": {"n_predictions": len(predictions)}}


def segmentation_features(plan: RunPlan) -> pd.DataFrame:
    """Per case, from the U-Net segmentation: FM volume, components, T1/STIR ratios (0 / 1 when none found)."""
    import SimpleITK as sitk
    from scipy import ndimage

    masks = pd.read_csv(_study_dir(plan) / "unet_segmentation.csv", dtype=str, keep_default_na=False)
    found = {r["case_id"]: r["file"] for r in masks.to_dict(orient="records") if int(r["voxels"]) > 0}
    rows = []
    for row in _manifest_frame(plan).to_dict(orient="records"):
        t1 = sitk.ReadImage(row["T1"])
        path = found.get(row["case_id"], "")
        if path:
            mask = sitk.Resample(sitk.ReadImage(path), t1, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                 sitk.sitkUInt8)
            m = sitk.GetArrayViewFromImage(mask) > 0
        else:
            m = np.zeros(sitk.GetArrayViewFromImage(t1).shape, dtype=bool)
        anatomy = sitk.GetArrayFromImage(sitk.ReadImage(row["anatomy"])) if row.get("anatomy") else None
        marrow = np.isin(anatomy, (1, 2)) & ~m if anatomy is not None else ~m
        ratios = {}
        for seq in ("T1", "STIR"):
            if not row.get(seq):
                continue
            arr = sitk.GetArrayFromImage(sitk.ReadImage(row[seq]))
            ratios[seq] = float(arr[m].mean() / arr[marrow].mean()) if m.any() and marrow.any() else 1.0
        voxel_ml = float(np.prod(t1.GetSpacing())) / 1000.0
        rows.append({"case_id": row["case_id"], "fm_volume_ml": float(m.sum()) * voxel_ml,
                     "fm_components": int(ndimage.label(m)[1]) if m.any() else 0,
                     "fm_t1_ratio": ratios.get("T1", 1.0), "fm_stir_ratio": ratios.get("STIR", 1.0),
                     "segmentation_file": path})
    table = pd.DataFrame(rows)
    write_table_csv(table, _study_dir(plan) / "segmentation_features.csv")
    return table


def _dice_by_set(frame: pd.DataFrame, section: Mapping[str, Any]) -> pd.DataFrame:
    import SimpleITK as sitk

    rows = []
    for row in frame.itertuples(index=False):
        reference = sitk.ReadImage(row.mask)
        if not sitk.GetArrayViewFromImage(reference).any():
            continue
        if row.segmentation_file:
            predicted = sitk.Resample(sitk.ReadImage(row.segmentation_file), reference, sitk.Transform(),
                                      sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        else:
            predicted = reference * 0
        rows.append({"case_id": row.case_id, "set": getattr(row, section["split_column"]),
                     **_dice_pair(predicted, reference)})
    per_case = pd.DataFrame(rows)
    if per_case.empty:
        return pd.DataFrame(columns=["set", "n", "dice_mean", "dice_sd"])
    summary = per_case.groupby("set")["dice"].agg(n="count", dice_mean="mean", dice_sd="std").reset_index()
    return summary


def segmentation_classifier(plan: RunPlan, section: Mapping[str, Any], frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Logistic regression on the segmentation features: train on development rows, AUC with CI per set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from SpineMetsCore.stats import bootstrap_metric

    split = section["split_column"]
    columns = list(section["classifier_features"])
    dev = frame[frame[split].isin([str(v) for v in section["development_values"]])]
    y_dev = (dev["axspa"] == "yes").astype(int)
    if y_dev.nunique() < 2:
        raise SpineMetsError("the development rows hold one axSpA class only")
    values = frame[columns].astype(float).copy()
    if "fm_volume_ml" in values.columns:  # volumes are skewed: a log keeps a few large cases from dominating
        values["fm_volume_ml"] = np.log1p(values["fm_volume_ml"])
    x = values.to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
    model.fit(x[frame.index.isin(dev.index)], y_dev)
    proba = model.predict_proba(x)[:, 1]
    predictions = frame[["case_id", split, "axspa"]].assign(prob_yes=proba, prob_no=1.0 - proba)
    write_table_csv(predictions, _study_dir(plan) / "axspa_predictions.csv")
    rows = []
    n_boot = max(int(plan.config["statistics"]["bootstrap"]), 1)
    for name in [str(s) for s in section["evaluation_sets"]]:
        sub = predictions[predictions[split] == name]
        if sub["axspa"].nunique() < 2:
            continue
        r = bootstrap_metric(sub["axspa"].to_numpy(), sub["prob_yes"].to_numpy(), "auc", positive="yes",
                             n_boot=n_boot, seed=int(plan.config["seed"]))
        rows.append({"set": name, "n": len(sub), "n_axspa": int((sub["axspa"] == "yes").sum()), "auc": r.estimate,
                     "auc_ci_low": r.ci_low, "auc_ci_high": r.ci_high})
    table = pd.DataFrame(rows)
    write_table_csv(table, _study_dir(plan) / "axspa_auc.csv")
    return table, predictions


def reader_study(plan: RunPlan, section: Mapping[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Simulated readers outline fat metaplasia without and with the U-Net; paired tests of Dice."""
    import SimpleITK as sitk
    from scipy import ndimage
    from SpineMetsSegmentLib.reader_study import run_reader_study

    sets = [str(s) for s in section["evaluation_sets"]] or sorted(frame[section["split_column"]].unique())
    cases = frame[frame[section["split_column"]].isin(sets)]
    out = _study_dir(plan) / "reader_study"
    out.mkdir(parents=True, exist_ok=True)
    cohort_rows = []
    seed = int(plan.config["seed"])
    for r_index, (reader, spec) in enumerate(sorted(section["reader_study"].items())):
        skill = float(spec.get("skill", 0.8))
        trust = float(spec.get("trust", 0.5))
        for row in cases.itertuples(index=False):
            reference = sitk.ReadImage(row.mask)
            ref = sitk.GetArrayFromImage(reference) > 0
            if not ref.any():
                continue
            rng = np.random.default_rng(np.random.SeedSequence([seed, r_index, int(row.case_id[-4:]) if row.case_id[-4:].isdigit() else 0]))
            spacing = np.asarray(reference.GetSpacing()[::-1])
            inside = ndimage.distance_transform_edt(ref, sampling=spacing)
            outside = ndimage.distance_transform_edt(~ref, sampling=spacing)
            signed = np.where(ref, -inside, outside)
            field = ndimage.gaussian_filter(rng.standard_normal(ref.shape), sigma=(0.7, 2.0, 2.0))
            field /= max(float(field.std()), 1e-6)
            amplitude = 2.5 * (1.0 - skill) / 0.25
            unassisted = signed + amplitude * field + rng.normal(0.0, 0.4 * amplitude) < 0
            if row.segmentation_file:
                model = sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(row.segmentation_file), reference,
                                                             sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                             sitk.sitkUInt8)) > 0
            else:
                model = np.zeros_like(ref)
            adopt = rng.random(ref.shape) < trust
            adopt = ndimage.binary_opening(adopt) | ndimage.binary_closing(adopt) if trust > 0 else adopt
            assisted = np.where((model != unassisted) & adopt, model, unassisted)
            paths = {}
            for name, arr in (("unassisted", unassisted), ("assisted", assisted)):
                image = sitk.GetImageFromArray(arr.astype(np.uint8))
                image.CopyInformation(reference)
                path = out / f"{row.case_id}_{reader}_{name}.nrrd"
                with atomic_path(path) as tmp:
                    sitk.WriteImage(image, str(tmp), useCompression=True)
                paths[name] = path.name
            cohort_rows.append({"case_id": row.case_id, "reader": reader, "reference": row.mask, **paths})
    if not cohort_rows:
        return pd.DataFrame()
    cohort = out / "cohort.csv"
    with atomic_path(cohort) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["case_id", "reader", "reference", "unassisted", "assisted"],
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows(cohort_rows)
    from SpineMetsSegmentLib.metrics import compute_metrics

    def file_metrics(reference: Path, test: Path, _ref_segment: str | None, _segment: str | None) -> Any:
        return compute_metrics(sitk.ReadImage(str(reference)), sitk.ReadImage(str(test)))

    result = run_reader_study(cohort, file_metrics)
    summary = result.summary
    write_table_csv(summary, out / "summary.csv")
    rows = []
    for reader in sorted(section["reader_study"]):
        scope = f"reader {reader}" if len(section["reader_study"]) > 1 else "all readers"
        s = summary[(summary["scope"] == scope) & (summary["metric"] == "dice")]
        if s.empty:
            continue
        s = s.iloc[0]
        rows.append({"reader": reader, "n": int(s["n"]), "dice_unassisted": float(s["mean_unassisted"]),
                     "dice_assisted": float(s["mean_assisted"]), "p_wilcoxon": float(s["wilcoxon_p"]),
                     "p_ttest": float(s["ttest_p"])})
    table = pd.DataFrame(rows)
    write_table_csv(table, _study_dir(plan) / "reader_study.csv")
    return table
