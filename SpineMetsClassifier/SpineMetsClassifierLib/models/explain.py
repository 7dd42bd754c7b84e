"""SHAP explanations in the original feature names (seed 000's global ranking and per-case waterfall).

Explainer per classifier (the cheapest exact one the model allows):

=========  =====================  ===========================================
model      explainer              explained output
=========  =====================  ===========================================
lr         ``LinearExplainer``    log-odds (per-class linear score), exact
rf         ``TreeExplainer``      probability (path-dependent Tree SHAP)
gb         ``TreeExplainer``      log-odds (HistGradientBoosting raw score)
others     ``PermutationExplainer``  probability, on the stored background
=========  =====================  ===========================================

Linear and Tree SHAP run on the classifier's inputs (after scaling, one-hot and
selection); each input's values are then summed into the original feature it came
from, so ``t1_signal=hypo`` and ``t1_signal=iso`` become ``t1_signal`` (SHAP values
are additive, so the sum is the feature's contribution; dropped inputs contribute 0).
The permutation explainer works on the original features directly: each EDF item
is masked as a whole (category codes against the background sample stored in the
package), so it never builds impossible one-hot rows.

shap is imported only through :func:`SpineMetsCore.shap_compat.import_shap`
(desktop Slicer shadows shap's ``slicer`` dependency) and figures use the Agg
backend unless pyplot is already running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import atomic_path
from SpineMetsCore.shap_compat import import_shap
from SpineMetsCore.tables import provenance, write_table_csv

from .inference import case_ids, model_input
from .package import ModelPackage
from .pipeline import feature_origins, limited_threads
from .schema import CATEGORICAL, FeatureSchema

logger = logging.getLogger(__name__)

TREE_MODELS = ("rf", "gb")
LINEAR_MODELS = ("lr",)
PERMUTATIONS = 3
"""Antithetic permutations per case for the permutation explainer (shap's own default is 10)."""


@dataclass
class ShapResult:
    """SHAP values of ``n`` cases for every class, in original feature names."""

    values: np.ndarray
    """(n_cases, n_features, n_classes)."""
    base_values: np.ndarray
    """(n_cases, n_classes): expected model output; base + sum(values) = output."""
    data: pd.DataFrame
    case_ids: list[str]
    feature_names: list[str]
    classes: list[str]
    predicted: list[str]
    explainer: str
    output: str
    """``"probability"`` or ``"log-odds"``."""

    def class_index(self, cls: str | None, case: int | None = None) -> int:
        if cls is None:
            if case is None:
                raise ValueError("give a class or a case")
            cls = self.predicted[case]
        if cls not in self.classes:
            raise InputError("class", f"{cls!r} is not one of the model's classes {self.classes}")
        return self.classes.index(cls)


# ----------------------------------------------------------------------------- explainers
def _grouping(origins: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """(n_inputs, n_features) 0/1 matrix summing classifier inputs into original features."""
    g = np.zeros((len(origins), len(names)))
    for i, origin in enumerate(origins):
        g[i, names.index(origin)] = 1.0
    return g


def _as_3d(values: Any, base: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalise shap output to (n, f, K) values and (n, K) base; binary single-score models mirror."""
    v = np.asarray(values, dtype=float)
    b = np.asarray(base, dtype=float)
    if v.ndim == 2:  # one score for the second class (binary log-odds)
        v = np.stack([-v, v], axis=2)
        b = b.reshape(len(v), -1)[:, -1]
        b = np.stack([-b, b], axis=1)
    if b.ndim == 1:
        b = np.tile(b, (len(v), 1))
    if v.shape[2] != n_classes:
        raise ValueError(f"explainer returned {v.shape[2]} outputs for {n_classes} classes")
    return v, b


def _model_space(package: ModelPackage, X: pd.DataFrame, kind: str, shap: Any) -> tuple[np.ndarray, np.ndarray, str]:
    pipeline = package.pipeline
    clf = pipeline.named_steps["clf"]
    front = pipeline[:-1]
    Xt = np.asarray(front.transform(X), dtype=float)
    if kind == "linear":
        bg = np.asarray(front.transform(package.background), dtype=float)
        explanation = shap.LinearExplainer(clf, shap.maskers.Independent(bg, max_samples=len(bg)))(Xt)
        output = "log-odds"
    else:
        explanation = shap.TreeExplainer(clf)(Xt)
        output = "probability" if package.card["classifier"]["name"] == "rf" else "log-odds"
    v, b = _as_3d(explanation.values, explanation.base_values, len(package.classes))
    g = _grouping(feature_origins(pipeline), package.schema.names)
    return np.einsum("nfc,fo->noc", v, g), b, output


class _Codec:
    """Original features <-> float codes (categories as indices) so shap's maskers can mix them."""

    def __init__(self, schema: FeatureSchema, frames: Sequence[pd.DataFrame]) -> None:
        self.schema = schema
        self.levels: dict[str, list[str]] = {}
        for spec in schema.features:
            if spec.kind == CATEGORICAL:
                seen = list(spec.categories)
                for frame in frames:
                    seen.extend(v for v in frame[spec.name] if isinstance(v, str) and v not in seen)
                self.levels[spec.name] = seen

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for name in self.schema.names:
            if name in self.levels:
                lookup = {v: i for i, v in enumerate(self.levels[name])}
                cols.append([float(lookup[v]) if isinstance(v, str) else np.nan for v in frame[name]])
            else:
                cols.append(frame[name].to_numpy(dtype=float))
        return np.column_stack(cols)

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        out = {}
        for j, name in enumerate(self.schema.names):
            if name in self.levels:
                levels = np.asarray(self.levels[name] + [np.nan], dtype=object)
                idx = np.where(np.isnan(codes[:, j]), len(levels) - 1, np.nan_to_num(codes[:, j])).astype(int)
                out[name] = levels[idx]
            else:
                out[name] = codes[:, j]
        return pd.DataFrame(out, columns=self.schema.names)


def _permutation(package: ModelPackage, X: pd.DataFrame, shap: Any, seed: int,
                 background_max: int) -> tuple[np.ndarray, np.ndarray, str]:
    schema = package.schema
    background = package.background
    if len(background) > background_max:
        background = background.sample(n=background_max, random_state=seed)
    codec = _Codec(schema, [background, X])
    pipeline = package.pipeline

    def f(codes: np.ndarray) -> np.ndarray:
        return pipeline.predict_proba(codec.decode(np.asarray(codes, dtype=float)))

    bg = codec.encode(background)
    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)), seed=seed)
    n = len(schema.names)
    explanation = explainer(codec.encode(X), max_evals=PERMUTATIONS * (2 * n + 1), silent=True)
    v, b = _as_3d(explanation.values, explanation.base_values, len(package.classes))
    return v, b, "probability"


def explainer_kind(package: ModelPackage) -> str:
    """``"linear"``, ``"tree"`` or ``"permutation"`` for the package's classifier."""
    name = package.card["classifier"]["name"]
    if name in LINEAR_MODELS:
        return "linear"
    if name in TREE_MODELS:
        return "tree"
    return "permutation"


def explain(
    package: ModelPackage,
    frame: pd.DataFrame,
    *,
    max_cases: int | None = None,
    seed: int = 0,
    ignore_extra: bool = False,
    background_max: int = 50,
    allowed_extra: Sequence[str] = (),
) -> ShapResult:
    """SHAP values of the rows of ``frame`` (at most ``max_cases``, a seeded random subset)."""
    if max_cases is not None and len(frame) > max_cases:
        frame = frame.sample(n=max_cases, random_state=seed).sort_index()
    X = model_input(package, frame, ignore_extra=ignore_extra, allowed_extra=allowed_extra)
    shap = import_shap()
    kind = explainer_kind(package)
    with limited_threads():
        proba = package.pipeline.predict_proba(X)
        values = base = None
        if kind != "permutation":
            try:
                values, base, output = _model_space(package, X, kind, shap)
            except Exception as exc:  # an explainer that does not support this model version
                logger.warning("%s explainer failed (%s); falling back to the permutation explainer", kind, exc)
                kind = "permutation"
        if values is None:
            values, base, output = _permutation(package, X, shap, seed, background_max)
    classes = package.classes
    predicted = [classes[int(i)] for i in np.argmax(proba, axis=1)]
    return ShapResult(values=values, base_values=base, data=X.reset_index(drop=True),
                      case_ids=case_ids(frame, package.id_column), feature_names=package.schema.names,
                      classes=classes, predicted=predicted, explainer=kind, output=output)


# ----------------------------------------------------------------------------- tables
def global_importance(result: ShapResult) -> pd.DataFrame:
    """Mean |SHAP| per feature: overall (mean over classes) and per class, ranked."""
    mean_abs = np.abs(result.values).mean(axis=0)  # (f, K)
    table = pd.DataFrame({"feature": result.feature_names, "mean_abs_shap": mean_abs.mean(axis=1)})
    for k, cls in enumerate(result.classes):
        table[f"mean_abs_shap_{cls}"] = mean_abs[:, k]
    table = table.sort_values(["mean_abs_shap", "feature"], ascending=[False, True]).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def ranking(result: ShapResult, cls: str | None = None) -> list[str]:
    """Features by decreasing mean |SHAP| (overall, or for one class)."""
    table = global_importance(result)
    column = "mean_abs_shap" if cls is None else f"mean_abs_shap_{cls}"
    if column not in table.columns:
        raise InputError("class", f"{cls!r} is not one of the model's classes {result.classes}")
    return list(table.sort_values([column, "feature"], ascending=[False, True])["feature"])


def _display(value: Any) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:g}"
    return str(value)


def case_contributions(result: ShapResult, case: int, cls: str | None = None) -> pd.DataFrame:
    """One case's feature contributions to ``cls`` (default: its predicted class), largest first."""
    k = result.class_index(cls, case)
    row = result.data.iloc[case]
    v = result.values[case, :, k]
    table = pd.DataFrame({
        "feature": result.feature_names,
        "value": [_display(row[f]) for f in result.feature_names],
        "shap": v,
        "abs_shap": np.abs(v),
    }).sort_values(["abs_shap", "feature"], ascending=[False, True]).reset_index(drop=True)
    table.attrs.update({"case_id": result.case_ids[case], "class": result.classes[k],
                        "base_value": float(result.base_values[case, k]), "output": result.output})
    return table


# ----------------------------------------------------------------------------- figures
def _pyplot() -> Any:
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    fig = plt.gcf()
    try:
        fig.tight_layout()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return target


def _numeric_data(result: ShapResult) -> np.ndarray:
    """Feature values for beeswarm colours (category index for categorical features)."""
    cols = []
    for name in result.feature_names:
        s = result.data[name]
        if not pd.api.types.is_numeric_dtype(s):
            cats = sorted({v for v in s if isinstance(v, str)})
            cols.append([float(cats.index(v)) if isinstance(v, str) else np.nan for v in s])
        else:
            cols.append(s.to_numpy(dtype=float))
    return np.column_stack(cols)


def plot_summary(result: ShapResult, path: str | os.PathLike[str], max_display: int = 15) -> Path:
    """Mean |SHAP| per feature, stacked by class (shap's multi-class summary bar plot)."""
    shap = import_shap()
    plt = _pyplot()
    plt.figure()
    shap.summary_plot([result.values[:, :, k] for k in range(len(result.classes))], _numeric_data(result),
                      feature_names=result.feature_names, class_names=result.classes, plot_type="bar",
                      max_display=max_display, show=False)
    plt.xlabel(f"mean |SHAP value| ({result.output})")
    plt.title(f"Mean |SHAP| by class, {len(result.case_ids)} cases")
    return _save(plt, path)


def plot_beeswarm(result: ShapResult, path: str | os.PathLike[str], cls: str, max_display: int = 15) -> Path:
    """Beeswarm of every case's SHAP values for ``cls`` (categories coloured by their index)."""
    shap = import_shap()
    plt = _pyplot()
    k = result.class_index(cls)
    plt.figure()
    shap.summary_plot(result.values[:, :, k], _numeric_data(result), feature_names=result.feature_names,
                      max_display=max_display, show=False, rng=np.random.default_rng(0))
    plt.title(f"SHAP for class '{cls}' ({result.output})")
    return _save(plt, path)


def plot_waterfall(result: ShapResult, case: int, path: str | os.PathLike[str], cls: str | None = None,
                   max_display: int = 10) -> Path:
    """Waterfall of one case's top contributions to ``cls`` (default: the predicted class)."""
    shap = import_shap()
    plt = _pyplot()
    k = result.class_index(cls, case)
    row = result.data.iloc[case]
    explanation = shap.Explanation(
        values=result.values[case, :, k],
        base_values=float(result.base_values[case, k]),
        data=np.array([_display(row[f]) for f in result.feature_names], dtype=object),
        feature_names=result.feature_names,
    )
    plt.figure()
    shap.plots.waterfall(explanation, max_display=max_display, show=False)
    plt.title(f"{result.case_ids[case]}: '{result.classes[k]}' ({result.output})")
    return _save(plt, path)


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def write_explanations(
    result: ShapResult,
    out_dir: str | os.PathLike[str],
    package: ModelPackage | None = None,
    cases: Sequence[str] | None = None,
    beeswarm_classes: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Tables and figures: ``shap_global.csv``, ``shap_cases.csv``, ``shap_summary.png``,
    ``shap_beeswarm_<class>.png`` and ``shap_waterfall_<case>.png`` for ``cases`` (default: the first)."""
    out = Path(out_dir)
    prov = provenance(operation="explain", explainer=result.explainer, output=result.output,
                      n_cases=len(result.case_ids),
                      model=None if package is None else str(package.path),
                      model_sha256=None if package is None else package.sha256,
                      synthetic_training_data=None if package is None else package.synthetic_training_data)
    written = {"global": write_table_csv(global_importance(result), out / "shap_global.csv", prov)}
    per_case = []
    for i, cid in enumerate(result.case_ids):
        t = case_contributions(result, i)
        per_case.append(t.assign(case_id=cid, predicted=result.predicted[i], base_value=t.attrs["base_value"]))
    cases_table = pd.concat(per_case, ignore_index=True)[["case_id", "predicted", "base_value", "feature", "value", "shap"]]
    written["cases"] = write_table_csv(cases_table, out / "shap_cases.csv", prov)
    written["summary"] = plot_summary(result, out / "shap_summary.png")
    if beeswarm_classes is None:
        beeswarm_classes = result.classes[-1:] if len(result.classes) == 2 else result.classes
    for cls in beeswarm_classes:
        written[f"beeswarm_{cls}"] = plot_beeswarm(result, out / f"shap_beeswarm_{_safe_name(cls)}.png", cls)
    wanted = list(cases) if cases is not None else result.case_ids[:1]
    for cid in wanted:
        if cid not in result.case_ids:
            raise InputError("--case", f"case {cid!r} is not among the explained cases")
        i = result.case_ids.index(cid)
        written[f"waterfall_{cid}"] = plot_waterfall(result, i, out / f"shap_waterfall_{_safe_name(cid)}.png")
    return written
