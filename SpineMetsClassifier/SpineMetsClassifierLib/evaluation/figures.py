"""Publication figures (PNG) and a self-contained HTML page that embeds them.

Uses matplotlib's object API with the Agg canvas (``Figure`` +
``FigureCanvasAgg``), never ``pyplot``, so importing this module does not
switch the global backend of a host application such as 3D Slicer.

ROC confidence bands are pointwise percentile intervals of the sensitivity at
fixed false-positive rates over stratified bootstrap replicates, the approach
of pROC ``ci.se(roc, specificities = ...)``.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from SpineMetsCore.stats.bootstrap import stratified_bootstrap_indices

__all__ = [
    "roc_ci_band",
    "plot_roc_curves",
    "plot_confusion_matrix",
    "plot_calibration",
    "plot_decision_curves",
    "plot_topk",
    "write_html_report",
]

logger = logging.getLogger(__name__)


def _new_figure(width: float = 5.5, height: float = 5.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Highest sensitivity reached at FPR <= x (empirical step ROC)."""
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return tpr[np.clip(idx, 0, None)]


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="mergesort")
    v, lab = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(v)), v.size - 1]
    tps = np.cumsum(lab)[last]
    fps = np.cumsum(~lab)[last]
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def roc_ci_band(y: np.ndarray, score: np.ndarray, *, n_boot: int = 1000, seed: int | None = 0,
                conf_level: float = 0.95, grid: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise bootstrap CI of sensitivity on an FPR grid (pROC ``ci.se`` style)."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=float)
    grid = np.linspace(0, 1, 101) if grid is None else np.asarray(grid, dtype=float)
    curves = np.empty((int(n_boot), grid.size))
    for b, idx in enumerate(stratified_bootstrap_indices(y, n_boot, seed)):
        f, t = _roc_points(y[idx], s[idx])
        curves[b] = _tpr_at(f, t, grid)
    alpha = 1 - conf_level
    lo, hi = np.quantile(curves, [alpha / 2, 1 - alpha / 2], axis=0)
    return grid, lo, hi


def plot_roc_curves(curves: Sequence[Mapping[str, Any]], path: str | Path, *,
                    title: str = "ROC curves") -> Path:
    """ROC curves with optional CI bands.

    Each mapping needs ``label``, ``fpr``, ``tpr``, ``auc``; optional ``auc_ci``
    (lo, hi), ``band`` (grid, lo, hi) and ``p_value`` (DeLong p shown in the
    legend, e.g. against a reference curve) and ``p_label``.
    """
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for i, c in enumerate(curves):
        color = f"C{i % 10}"
        text = f"{c['label']}: AUC {c['auc']:.3f}"
        if c.get("auc_ci") is not None and all(np.isfinite(c["auc_ci"])):
            text += f" ({c['auc_ci'][0]:.3f}-{c['auc_ci'][1]:.3f})"
        if c.get("p_value") is not None and np.isfinite(c["p_value"]):
            p = c["p_value"]
            text += f", {c.get('p_label', 'DeLong p')} " + ("< 0.001" if p < 0.001 else f"= {p:.3f}")
        if c.get("band") is not None:
            g, lo, hi = c["band"]
            ax.fill_between(g, lo, hi, color=color, alpha=0.15, step="post", lw=0)
        ax.step(c["fpr"], c["tpr"], where="post", color=color, lw=1.8, label=text)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 - specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def plot_confusion_matrix(cm: np.ndarray, classes: Sequence[Any], path: str | Path, *,
                          title: str = "Confusion matrix") -> Path:
    """Counts with row percentages (rows = truth, columns = prediction)."""
    cm = np.asarray(cm)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig = _new_figure(1.2 * k + 2.5, 1.1 * k + 2.0)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n{100 * frac[i, j]:.0f}%", ha="center", va="center",
                    color="white" if frac[i, j] > 0.6 else "black", fontsize=8)
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Truth")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row fraction")
    return _save(fig, path)


def plot_calibration(curves: Mapping[str, pd.DataFrame], path: str | Path, *,
                     probabilities: Mapping[str, np.ndarray] | None = None,
                     title: str = "Calibration") -> Path:
    """Reliability diagram (binned observed vs predicted) with a histogram of predictions."""
    fig = _new_figure(5.5, 6.0)
    ax = fig.add_axes((0.14, 0.32, 0.8, 0.6))
    hx = fig.add_axes((0.14, 0.08, 0.8, 0.15), sharex=ax)
    ax.plot([0, 1], [0, 1], color="0.7", ls="--", lw=1, label="ideal")
    for i, (label, df) in enumerate(curves.items()):
        ax.plot(df["mean_predicted"], df["fraction_positive"], marker="o", ms=4, color=f"C{i % 10}",
                label=str(label))
        if probabilities is not None and label in probabilities:
            hx.hist(probabilities[label], bins=40, range=(0, 1), color=f"C{i % 10}", alpha=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Observed fraction")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7)
    hx.set_xlabel("Predicted probability")
    hx.set_ylabel("n")
    fig.savefig(Path(path), format="png")
    return Path(path)


def plot_decision_curves(curves: Mapping[str, pd.DataFrame], path: str | Path, *,
                         title: str = "Decision curves") -> Path:
    """Net benefit of each model with treat-all and treat-none references (dcurves layout)."""
    fig = _new_figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    first = next(iter(curves.values()))
    ax.plot(first["threshold"], first["net_benefit_all"], color="0.5", lw=1.2, label="Treat all")
    ax.plot(first["threshold"], first["net_benefit_none"], color="0.2", lw=1.2, ls=":", label="Treat none")
    top = 0.0
    for i, (label, df) in enumerate(curves.items()):
        ax.plot(df["threshold"], df["net_benefit_model"], color=f"C{i % 10}", lw=1.8, label=str(label))
        top = max(top, float(np.nanmax(df["net_benefit_model"])), float(np.nanmax(df["net_benefit_all"])))
    ax.set_ylim(-0.05 * max(top, 0.05), 1.1 * max(top, 0.05))
    ax.set_xlabel("Threshold probability")
    ax.set_ylabel("Net benefit")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_topk(recall: Mapping[int, Mapping[str, float]], path: str | Path, *,
              overall: Mapping[int, float] | None = None, title: str = "Top-k recall") -> Path:
    """Grouped bars: per-class top-k recall for k = 1..K (plus overall top-k accuracy)."""
    ks = sorted(recall)
    classes = list(next(iter(recall.values())).keys()) if ks else []
    labels = classes + (["overall"] if overall else [])
    fig = _new_figure(max(5.0, 0.9 * len(labels) + 2), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(ks), 1)
    x = np.arange(len(labels))
    for i, k in enumerate(ks):
        vals = [recall[k][c] for c in classes] + ([overall[k]] if overall else [])
        ax.bar(x + (i - (len(ks) - 1) / 2) * width, vals, width, label=f"top-{k}", color=f"C{i % 10}")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Recall (true class in top k)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "NA"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def write_html_report(path: str | Path, *, title: str, images: Mapping[str, str | Path],
                      table: pd.DataFrame | None = None, notes: Sequence[str] = ()) -> Path:
    """One self-contained HTML file: PNGs embedded as base64 data URIs plus a metrics table."""
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px}"
        "th{background:#eee}img{max-width:100%;margin:0.5em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for note in notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    for caption, img in images.items():
        data = base64.b64encode(Path(img).read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                     f"src='data:image/png;base64,{data}'>")
    if table is not None and len(table):
        parts.append("<h2>Metrics</h2><table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
                     + "</tr>")
        for _, row in table.iterrows():
            parts.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row.tolist()) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
