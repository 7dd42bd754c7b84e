"""The study report: ``report.html`` (self-contained: figures inlined as base64 PNG) plus
every figure as PNG and SVG in ``figures/`` and the tables as CSV.

Sections: synthetic-data banner (when inputs or models are synthetic), run summary,
segmentation summary (volumes, Dice against reference masks, failures), then per task:
cohort Table 1, model comparison (metrics with CIs first), ROC with DeLong p, top-k (only
where k < number of classes), per-class F1/recall, calibration (bins suited to n, a caveat
for small n), decision curves (binary), SHAP summary, per-case predictions; finally
provenance (versions, config, seeds, manifest and model hashes). Figures are drawn with
matplotlib's object API (no pyplot), legends placed beside or below the axes so they
never hide a curve, and files carry no time stamps, so a rerun writes identical bytes.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from SpineMetsCore.fileio import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from .runner import RunPlan

logger = logging.getLogger(__name__)

BANNER = "Synthetic data \u2014 not clinical. Models and figures come from a synthetic phantom and say nothing about patients."
SMALL_N = 100


# ----------------------------------------------------------------------------- figures
def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


class Figures:
    """Writes figures to ``figures/`` (PNG + SVG) and remembers their PNG bytes for inlining."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.png: dict[str, bytes] = {}

    def save(self, fig: Any, name: str) -> str:
        import matplotlib

        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        data = buffer.getvalue()
        with atomic_path(self.folder / f"{name}.png") as tmp:
            tmp.write_bytes(data)
        with matplotlib.rc_context({"svg.hashsalt": "spinemets", "svg.fonttype": "none"}):
            svg = io.StringIO()
            fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        write_text_atomic(self.folder / f"{name}.svg", svg.getvalue())
        self.png[name] = data
        return name


def _legend_below(ax: Any, fig: Any, n: int) -> None:
    """Legend under the axes (never over a curve), one entry per line; the layout makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower left", fontsize=8, frameon=False, ncol=1)


def _legend_right(ax: Any, fig: Any) -> None:
    """Legend right of the axes (never over a curve); the layout makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def model_color(models: Sequence[str], model: str) -> str:
    """The same colour for a model in every figure of a task."""
    return f"C{list(models).index(model) % 10}" if model in models else "C9"


def roc_figure(long: pd.DataFrame, label: str, classes: Sequence[str], positive: str | None,
               evaluation: Mapping[str, Any], figs: Figures, name: str) -> str | None:
    """Binary: every model's ROC with AUC (CI) and DeLong p vs the reference; multi-class:
    the reference model's one-vs-rest curves."""
    from SpineMetsCore.stats.metrics import roc_curve_points

    reference = evaluation["reference_model"]
    models = list(evaluation["models"])
    pvals = {c["model"]: c.get("delong", {}) for c in evaluation.get("comparisons", [])}
    fig = _figure(5.6, 5.6 + 0.2 * max(len(models), len(classes)))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.75", lw=1, ls="--")
    if positive is not None:
        for model in models:
            sub = long[long["model"] == model]
            y = sub[label].astype(str).to_numpy() == positive
            fpr, tpr, _ = roc_curve_points(y, sub[f"prob_{positive}"].astype(float).to_numpy())
            m = evaluation["models"][model]["metrics"].get(f"auc[{positive}]", {})
            text = f"{model}: AUC {m.get('estimate', float('nan')):.3f}"
            if m.get("ci") and all(v is not None for v in m["ci"]):
                text += f" ({m['ci'][0]:.3f}\u2013{m['ci'][1]:.3f})"
            if model == reference:
                text += " [reference]"
            else:
                p = (pvals.get(model, {}).get(positive) or {}).get("p_value")
                if p is not None:
                    text += ", DeLong p " + ("< 0.001" if p < 0.001 else f"= {p:.3f}")
            ax.step(fpr, tpr, where="post", lw=1.8, color=model_color(models, model), label=text)
        title = f"ROC, positive class '{positive}'"
    else:
        sub = long[long["model"] == reference]
        truth = sub[label].astype(str).to_numpy()
        for i, c in enumerate(classes):
            y = truth == c
            if y.all() or not y.any():
                continue
            fpr, tpr, _ = roc_curve_points(y, sub[f"prob_{c}"].astype(float).to_numpy())
            m = evaluation["models"][reference]["metrics"].get(f"auc[{c}]", {})
            ax.step(fpr, tpr, where="post", lw=1.6, color=f"C{i % 10}",
                    label=f"{c}: AUC {m.get('estimate', float('nan')):.3f}")
        title = f"ROC one-vs-rest, {reference}"
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 \u2212 specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_title(title, fontsize=10)
    _legend_below(ax, fig, len(models))
    return figs.save(fig, name)


def topk_figure(evaluation: Mapping[str, Any], n_classes: int, topk: int, figs: Figures, name: str) -> str | None:
    """Top-k accuracy per model for k < number of classes (k = number of classes is always 1)."""
    ks = [k for k in range(1, min(topk, n_classes - 1) + 1)]
    if n_classes <= 2 or not ks:
        return None
    models = list(evaluation["models"])
    fig = _figure(max(5.5, 1.1 * len(models) + 2.5), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(ks)
    x = np.arange(len(models))
    for i, k in enumerate(ks):
        vals, lo, hi = [], [], []
        for model in models:
            m = evaluation["models"][model]["metrics"].get(f"top{k}_accuracy", {})
            est = m.get("estimate", np.nan)
            ci = m.get("ci") or [est, est]
            vals.append(est)
            lo.append(est - ci[0])
            hi.append(ci[1] - est)
        ax.bar(x + (i - (len(ks) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=3,
               label=f"top-{k}", color=f"C{i}")
    ax.set_xticks(x, models, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Accuracy (true class among top k)")
    ax.set_title(f"Top-k accuracy (95% CI), {n_classes} classes", fontsize=10)
    _legend_right(ax, fig)
    return figs.save(fig, name)


def calibration_figure(long: pd.DataFrame, label: str, classes: Sequence[str], positive: str | None,
                       reference: str, bins: int, figs: Figures, name: str, models: Sequence[str]) -> str | None:
    """Reliability diagram (quantile bins) of every model (binary) or the reference model per class."""
    from SpineMetsCore.stats.calibration import calibration_curve

    fig = _figure(6.6, 5.6)
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 1])
    ax = fig.add_subplot(grid[0])
    hx = fig.add_subplot(grid[1], sharex=ax)
    ax.plot([0, 1], [0, 1], color="0.75", ls="--", lw=1, label="ideal")
    entries: list[tuple[str, np.ndarray, np.ndarray, str]] = []
    if positive is not None:
        for model in models:
            sub = long[long["model"] == model]
            entries.append((str(model), sub[label].astype(str).to_numpy() == positive,
                            sub[f"prob_{positive}"].astype(float).to_numpy(), model_color(models, model)))
    else:
        sub = long[long["model"] == reference]
        for i, c in enumerate(classes):
            entries.append((f"{reference}: {c}", sub[label].astype(str).to_numpy() == c,
                            sub[f"prob_{c}"].astype(float).to_numpy(), f"C{i % 10}"))
    drawn = 0
    for text, y, p, color in entries:
        if y.all() or not y.any():
            continue
        try:
            curve = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        except ValueError:
            continue
        ax.plot(curve["mean_predicted"], curve["fraction_positive"], marker="o", ms=4, lw=1.4, color=color, label=text)
        hx.hist(p, bins=20, range=(0, 1), color=color, histtype="step", lw=1.4)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Observed fraction")
    ax.set_title(f"Calibration ({bins} quantile bins)", fontsize=10)
    _legend_right(ax, fig)
    hx.set_xlabel("Predicted probability")
    hx.set_ylabel("cases")
    return figs.save(fig, name)


def dca_figure(long: pd.DataFrame, label: str, positive: str, figs: Figures, name: str,
               models: Sequence[str]) -> str | None:
    """Net benefit of every model with treat-all / treat-none."""
    from SpineMetsCore.stats.dca import decision_curve

    fig = _figure(7.0, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    top = 0.05
    first = True
    for model in models:
        sub = long[long["model"] == model]
        y = sub[label].astype(str).to_numpy() == positive
        curve = decision_curve(y, sub[f"prob_{positive}"].astype(float).to_numpy(),
                               thresholds=np.round(np.arange(0.01, 1.0, 0.01), 2))
        if first:
            ax.plot(curve["threshold"], curve["net_benefit_all"], color="0.45", lw=1.2, label="treat all")
            ax.axhline(0, color="0.2", lw=1.0, ls=":", label="treat none")
            top = max(top, float(np.nanmax(curve["net_benefit_all"])))
            first = False
        ax.plot(curve["threshold"], curve["net_benefit_model"], color=model_color(models, model), lw=1.6,
                label=str(model))
        top = max(top, float(np.nanmax(curve["net_benefit_model"])))
    ax.set_ylim(-0.1 * top, 1.15 * top)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Threshold probability")
    ax.set_ylabel("Net benefit")
    ax.set_title(f"Decision curves, positive class '{positive}'", fontsize=10)
    _legend_right(ax, fig)
    return figs.save(fig, name)


def shap_figure(importance: pd.DataFrame, model: str, explainer: str, n_cases: int, figs: Figures, name: str,
                top: int = 15) -> str:
    """Mean |SHAP| of the most important features (mean over classes), largest on top."""
    shown = importance.head(top).iloc[::-1]
    labels = [str(f) if len(str(f)) <= 42 else str(f)[:39] + "..." for f in shown["feature"]]
    fig = _figure(7.0, 1.4 + 0.28 * len(shown))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(shown)), shown["mean_abs_shap"], color="C0")
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.set_xlabel("mean |SHAP value| (mean over classes)")
    ax.set_title(f"SHAP: {model} ({explainer} explainer, {n_cases} cases)", fontsize=10)
    return figs.save(fig, name)


def segmentation_figure(seg: pd.DataFrame, figs: Figures) -> str | None:
    """Segmented vs reference lesion volume (identity line), coloured by Dice."""
    ok = seg[seg["status"] == "ok"] if "status" in seg.columns else seg
    if "reference_volume_ml" not in ok.columns or ok["reference_volume_ml"].isna().all():
        return None
    fig = _figure(5.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ref = ok["reference_volume_ml"].astype(float)
    vol = ok["volume_ml"].astype(float)
    dice = ok["dice"].astype(float)
    points = ax.scatter(ref, vol, c=dice, cmap="viridis", vmin=0, vmax=1, s=28, edgecolor="0.3", lw=0.4)
    hi = float(np.nanmax([ref.max(), vol.max()])) * 1.08
    ax.plot([0, hi], [0, hi], color="0.6", ls="--", lw=1)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("Reference lesion volume (mL)")
    ax.set_ylabel("Segmented volume (mL)")
    ax.set_title(f"Segmentation vs reference (n = {len(ok)}, median Dice {np.nanmedian(dice):.3f})", fontsize=10)
    fig.colorbar(points, ax=ax, label="Dice")
    return figs.save(fig, "segmentation_volumes")


# ----------------------------------------------------------------------------- html
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "\u2013"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame | None, max_rows: int | None = None, cls: str = "") -> str:
    if frame is None or frame.empty:
        return "<p class='muted'>none</p>"
    shown = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in shown.itertuples(index=False))
    more = "" if max_rows is None or len(frame) <= max_rows else \
        f"<p class='muted'>{len(frame) - max_rows} more row(s) in the CSV file.</p>"
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _img(figs: Figures, name: str | None, alt: str) -> str:
    if not name:
        return ""
    data = base64.b64encode(figs.png[name]).decode("ascii")
    return (f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(alt)} (figures/{name}.png, .svg)</figcaption></figure>")


def _ci(estimate: Any, lo: Any, hi: Any) -> str:
    if estimate is None or (isinstance(estimate, float) and not np.isfinite(estimate)):
        return "\u2013"
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{estimate:.3f}"
    return f"{estimate:.3f} ({lo:.3f}\u2013{hi:.3f})"


def comparison_html(table: pd.DataFrame) -> str:
    """Metrics as 'estimate (CI)' cells, the p-value against the reference last."""
    metrics = [c for c in table.columns if f"{c}_ci_low" in table.columns]
    rows = []
    for _, r in table.iterrows():
        row: dict[str, Any] = {"model": r["model"], "n": int(r["n"])}
        for m in metrics:
            row[m] = _ci(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"])
        p = r.get("p_vs_reference")
        row[f"p vs {r['reference']}"] = "reference" if r["model"] == r["reference"] else \
            ("\u2013" if p is None or not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}"))
        row["features"] = r.get("n_features")
        rows.append(row)
    return _table(pd.DataFrame(rows), cls="metrics")


def per_class_table(evaluation: Mapping[str, Any], classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall and F1 (with CIs) per model and class, one row each."""
    rows = []
    for model, res in evaluation["models"].items():
        for c in classes:
            row: dict[str, Any] = {"model": model, "class": c}
            for metric in ("precision", "recall", "f1"):
                m = res["metrics"].get(f"{metric}[{c}]")
                row[metric] = _ci(m["estimate"], *(m.get("ci") or [None, None])) if m else "\u2013"
            rows.append(row)
    return pd.DataFrame(rows)


STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0.2em} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
h3{margin-top:1.3em}
.banner{background:#b00020;color:#fff;font-weight:bold;padding:10px 14px;border-radius:4px;margin:12px 0}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:6px 10px;margin:8px 0}
.muted{color:#777;font-size:0.9em}
table{border-collapse:collapse;margin:8px 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2} tbody tr:nth-child(even){background:#fafafa}
table.metrics td{white-space:nowrap}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.8em;color:#666}
pre{background:#f6f6f6;padding:8px;font-size:0.8em;overflow-x:auto}
.grid{display:flex;flex-wrap:wrap;align-items:flex-start}
"""


def write_report(plan: RunPlan, tables: Mapping[str, Any], study: Mapping[str, Any]) -> Path:
    """Write ``report.html`` and ``figures/``; return the report path."""
    from SpineMetsCore.tables import library_versions

    out = plan.out
    figs = Figures(out / "figures")
    config = plan.config
    seg: pd.DataFrame = tables["segmentation"]
    failures: pd.DataFrame = tables["failures"]
    synthetic = config["synthetic"] is True or (config["synthetic"] == "auto" and (
        tables["synthetic_data"] or any(r.get("card", {}).get("synthetic_training_data")
                                        for t in study["tasks"].values() for r in t.get("models", {}).values())))
    parts: list[str] = [f"<h1>{html.escape(config.name)}: SpineMets study report</h1>"]
    if synthetic:
        parts.append(f"<div class='banner'>{html.escape(BANNER)}</div>")
    if config["description"]:
        parts.append(f"<p>{html.escape(config['description'])}</p>")
    n_ok = int((seg["status"] == "ok").sum()) if "status" in seg.columns else len(seg)
    parts.append("<h2>Run</h2>")
    parts.append(_table(pd.DataFrame([
        {"item": "cases in manifest", "value": len(plan.specs)},
        {"item": "cases segmented and measured", "value": n_ok},
        {"item": "failed cases", "value": len(failures)},
        {"item": "segmentation method", "value": plan.settings.method},
        {"item": "tasks", "value": ", ".join(t["name"] for t in config["tasks"]) or "none"},
    ])))

    parts.append("<h2>Segmentation</h2>")
    ok = seg[seg["status"] == "ok"] if "status" in seg.columns else seg
    summary_rows = []
    if not ok.empty:
        vol = ok["volume_ml"].astype(float)
        summary_rows.append({"quantity": "lesion volume (mL)", "median": float(vol.median()),
                             "IQR": f"{vol.quantile(0.25):.3f}\u2013{vol.quantile(0.75):.3f}",
                             "min": float(vol.min()), "max": float(vol.max())})
        if "dice" in ok.columns and ok["dice"].notna().any():
            d = ok["dice"].astype(float)
            summary_rows.append({"quantity": "Dice vs reference lesion", "median": float(d.median()),
                                 "IQR": f"{d.quantile(0.25):.3f}\u2013{d.quantile(0.75):.3f}",
                                 "min": float(d.min()), "max": float(d.max())})
    parts.append(_table(pd.DataFrame(summary_rows)))
    parts.append("<p class='muted'>Dice is measured against the reference lesion(s) that the segmentation overlaps "
                 "(column <code>dice</code>) and against every reference lesion (<code>dice_all_lesions</code>) in "
                 "segmentation.csv.</p>" if "dice" in seg.columns else "<p class='muted'>No reference masks: no Dice.</p>")
    parts.append(_img(figs, segmentation_figure(seg, figs), "Segmented vs reference volume"))
    parts.append("<h3>Failed cases</h3>" + _table(failures))

    for name, res in study["tasks"].items():
        parts.append(_task_section(name, res, figs, plan))

    parts.append((study.get("study_stage") or {}).get("html", ""))
    parts.append(_provenance(plan, study, library_versions()))
    body = "\n".join(parts)
    document = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(config.name)} "
                f"- SpineMets report</title><style>{STYLE}</style></head><body>{body}</body></html>\n")
    target = out / "report.html"
    write_text_atomic(target, document)
    logger.info("report written to %s", target)
    return target


def _task_section(name: str, res: Mapping[str, Any], figs: Figures, plan: RunPlan) -> str:
    task = res["task"]
    summary = res["summary"]
    label = task["label"]
    classes = [str(c) for c in summary["classes"]]
    heading = f"Task {html.escape(name)}" + ("" if label == name else f" (label: {html.escape(label)})")
    parts = [f"<h2>{heading}</h2>"]
    counts = ", ".join(f"{html.escape(c)}: {n}" for c, n in summary["class_counts"].items())
    parts.append(f"<p>n = {summary['n']} cases with features and a label ({counts}); "
                 f"split: {html.escape(task['split']['method'])}; {summary['cv_folds']} outer / "
                 f"{summary['inner_folds']} inner folds; seed {plan.config['seed']}.</p>")
    parts.append("<h3>Cohort (Table 1)</h3>" + _table(res.get("table1")))
    if summary.get("model_failures"):
        parts.append("<h3>Models that could not be trained</h3>" + _table(pd.DataFrame(summary["model_failures"])))
    if "evaluation" not in res:
        parts.append("<p class='note'>No model was trained for this task.</p>")
        return "\n".join(parts)
    evaluation = res["evaluation"]
    n_classes = len(classes)
    positive = (task["positive"] or classes[1]) if n_classes == 2 else None
    where = "test set" if summary["evaluation_set"] == "test" else "out-of-fold predictions of nested cross-validation"
    parts.append(f"<h3>Model comparison</h3><p class='muted'>Evaluated on the {where} (n = {summary['n_evaluated']}); "
                 f"{plan.config['statistics']['bootstrap']} class-stratified bootstrap replicates, "
                 f"{plan.config['statistics']['conf_level']:.0%} CIs; p: DeLong test of AUC against the reference "
                 f"model{' (multi-class: bootstrap test of macro AUC)' if n_classes > 2 else ''}.</p>")
    parts.append(comparison_html(res["comparison"]))
    long = pd.read_csv(res["dir"] / "predictions.csv", dtype={label: str, "case_id": str})
    safe = name.replace("/", "_")
    grid = ["<div class='grid'>"]
    grid.append(_img(figs, roc_figure(long, label, classes, positive, evaluation, figs, f"{safe}_roc"), "ROC"))
    grid.append(_img(figs, topk_figure(evaluation, n_classes, int(task["topk"]), figs, f"{safe}_topk"),
                     "Top-k accuracy"))
    grid.append(_img(figs, calibration_figure(long, label, classes, positive, summary["reference_model"],
                                              summary["calibration_bins"], figs, f"{safe}_calibration",
                                              list(evaluation["models"])),
                     "Calibration"))
    if positive is not None and plan.config["statistics"]["dca"]:
        grid.append(_img(figs, dca_figure(long, label, positive, figs, f"{safe}_dca", list(evaluation["models"])),
                         "Decision curves"))
    grid.append("</div>")
    parts.extend(grid)
    if summary["n_evaluated"] < SMALL_N:
        parts.append(f"<p class='note'>Calibration from {summary['n_evaluated']} cases in "
                     f"{summary['calibration_bins']} bins is imprecise: each point rests on about "
                     f"{max(1, summary['n_evaluated'] // summary['calibration_bins'])} cases.</p>")
    parts.append("<h3>Per-class F1 and recall</h3>" + _table(per_class_table(evaluation, classes), cls="metrics"))
    for model, info in (res.get("explain") or {}).items():
        parts.append(f"<h3>SHAP: {html.escape(model)}</h3>")
        if "error" in info:
            parts.append(f"<p class='note'>SHAP failed: {html.escape(info['error'])}</p>")
            continue
        parts.append(_img(figs, shap_figure(info["importance"], model, info["explainer"], info["n_cases"], figs,
                                            f"{safe}_shap_{model}"), "SHAP summary"))
        parts.append(f"<p class='muted'>Per-case SHAP values and the per-class ranking: "
                     f"tasks/{html.escape(name)}/explain/{html.escape(model)}/shap_cases.csv, shap_global.csv.</p>")
    parts.append(f"<h3>Per-case predictions ({html.escape(summary['reference_model'])})</h3>")
    ref = long[long["model"] == summary["reference_model"]]
    cols = ["case_id", label, "predicted", *[f"prob_{c}" for c in classes]]
    parts.append(_table(ref[[c for c in cols if c in ref.columns]], max_rows=60))
    return "\n".join(parts)


def _provenance(plan: RunPlan, study: Mapping[str, Any], versions: Mapping[str, str]) -> str:
    import yaml

    rows = [{"item": "manifest", "value": str(plan.manifest)},
            {"item": "manifest sha256", "value": plan.manifest_sha256},
            {"item": "config", "value": plan.config.source},
            {"item": "config sha256 (resolved)", "value": plan.config.digest()},
            {"item": "seed", "value": plan.config["seed"]}]
    models = []
    for task, res in study["tasks"].items():
        for model, r in res.get("models", {}).items():
            card = r.get("card", {})
            payload = card.get("payload") or card.get("model_file") or {}
            models.append({"task": task, "model": model, "kind": r.get("kind", "classical"),
                           "package": str(Path(r["package"]).relative_to(plan.out)),
                           "payload sha256": payload.get("sha256", ""),
                           "synthetic training data": bool(card.get("synthetic_training_data"))})
    note = ("<p class='muted'>Model packages (card + checksummed payload) differ byte-wise between runs (creation "
            "time; skops serialisation): compare predictions, not hashes, across runs.</p>")
    return ("<h2>Provenance</h2>" + _table(pd.DataFrame(rows)) + "<h3>Models</h3>" + _table(pd.DataFrame(models)) + note
            + "<h3>Versions</h3>" + _table(pd.DataFrame([{"library": k, "version": v} for k, v in versions.items()]))
            + "<h3>Resolved config</h3><pre>" + html.escape(yaml.safe_dump(plan.config.values, sort_keys=False))
            + "</pre>")
