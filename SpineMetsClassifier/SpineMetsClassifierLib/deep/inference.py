"""Deep-classifier inference: predictions tables and penultimate-layer features per case.

Predictions come out in the classical models' table format
(:func:`SpineMetsClassifierLib.models.inference.predictions_frame`): ``case_id``,
the truth column when the manifest has the model's label column, one
``prob_<class>`` column per class, ``top1`` .. ``topk`` and ``predicted``; so
``spinemets stats evaluate``, DeLong and the report read DL and classical
predictions alike. A 2-D model's per-patient probabilities are the mean of its
slices' softmax probabilities; its per-patient embedding is the mean of the
slices' embeddings. A case whose input cannot be built (no lesion voxels, a
missing sequence) gets empty probabilities and its message in an ``error``
column, as the classical tables do, instead of stopping a cohort run.

Both table functions return a DataFrame whose ``attrs["provenance"]`` is the
record written next to the CSV (:func:`write_table`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from SpineMetsCore import dataio
from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import sha256_file
from SpineMetsCore.manifest import CaseRow, read_manifest
from SpineMetsCore.tables import provenance, write_table_csv

from .inputs import CaseInput, InputSpec, build_case_input
from .network import EMBEDDING_LAYER, embedding_size, forward_with_embedding
from .package import DeepPackage, load_deep_package

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
FEATURE_PREFIX = "dl_"
ERROR_COLUMN = "error"
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> Any:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device not in DEVICES:
        raise InputError("--device", f"must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "cuda was asked for but torch sees no CUDA device")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def feature_columns(n: int) -> list[str]:
    """``dl_000``, ``dl_001``, ... (more digits when a network has over 1000 features)."""
    width = max(3, len(str(n - 1)))
    return [f"{FEATURE_PREFIX}{i:0{width}d}" for i in range(n)]


def case_images(row: CaseRow, spec: InputSpec) -> tuple[dict[str, sitk.Image], sitk.Image]:
    """The model's sequences and the lesion mask of a manifest row, read from disk."""
    missing = [s for s in spec.sequences if s not in row.images]
    if missing:
        raise InputError(f"case '{row.case_id}'", f"has no image for sequence(s) {missing}")
    if row.mask is None:
        raise InputError(f"case '{row.case_id}'", "has no lesion mask (column 'mask')")
    return {s: dataio.read_image(row.images[s]) for s in spec.sequences}, dataio.read_image(row.mask)


def build_row_input(row: CaseRow, spec: InputSpec) -> CaseInput:
    images, mask = case_images(row, spec)
    return build_case_input(images, mask, spec, what=f"case '{row.case_id}'")


def case_outputs(net: Any, arrays: Sequence[np.ndarray], device: Any, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per-case probabilities ``(n, K)`` and embeddings ``(n, F)``: means over each case's samples."""
    import torch

    if not arrays:
        return np.zeros((0, int(net.fc.out_features))), np.zeros((0, embedding_size(net)))
    owner = np.concatenate([np.full(len(a), i) for i, a in enumerate(arrays)])
    stacked = np.concatenate(arrays, axis=0)
    probs, embeds = [], []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(stacked), batch_size):
            x = torch.from_numpy(stacked[start:start + batch_size]).to(device)
            logits, embedding = forward_with_embedding(net, x)
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            embeds.append(embedding.float().cpu().numpy())
    p, e = np.concatenate(probs), np.concatenate(embeds)
    n = len(arrays)
    proba = np.stack([p[owner == i].mean(axis=0) for i in range(n)]).astype(float)
    embedding = np.stack([e[owner == i].mean(axis=0) for i in range(n)]).astype(float)
    return proba, embedding


def _package(model: str | os.PathLike[str] | DeepPackage) -> DeepPackage:
    return model if isinstance(model, DeepPackage) else load_deep_package(model)


def _manifest_rows(manifest: str | os.PathLike[str], case_ids: Iterable[str] | None) -> list[CaseRow]:
    rows = read_manifest(manifest)
    if case_ids is not None:
        wanted = [str(c) for c in case_ids]
        known = {r.case_id for r in rows}
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise InputError("case ids", f"{unknown[:5]} not in {manifest}")
        rows = [r for r in rows if r.case_id in set(wanted)]
    if not rows:
        raise InputError(str(manifest), "has no cases" + (" among the requested ids" if case_ids is not None else ""))
    return rows


def _run_manifest(pkg: DeepPackage, manifest: str | os.PathLike[str], device: str, progress: Progress | None,
                  batch_size: int, case_ids: Iterable[str] | None = None
                  ) -> tuple[list[CaseRow], np.ndarray, np.ndarray, list[str]]:
    spec = pkg.inputs
    rows = _manifest_rows(manifest, case_ids)
    torch_device = resolve_device(device)
    net = pkg.build_network(torch_device)
    n_classes, n_features = len(pkg.classes), embedding_size(net)
    proba = np.full((len(rows), n_classes), np.nan)
    embedding = np.full((len(rows), n_features), np.nan)
    errors = [""] * len(rows)
    for i, row in enumerate(rows):
        try:
            case = build_row_input(row, spec)
        except InputError as exc:
            logger.warning("%s", exc)
            errors[i] = str(exc)
        else:
            p, e = case_outputs(net, [case.array], torch_device, batch_size)
            proba[i], embedding[i] = p[0], e[0]
        if progress is not None:
            progress(i + 1, len(rows))
    return rows, proba, embedding, errors


def _provenance(pkg: DeepPackage, manifest: str | os.PathLike[str], operation: str, device: str, **extra: Any) -> dict[str, Any]:
    return provenance(
        operation=operation,
        model=str(pkg.source),
        model_name=pkg.name,
        model_weights_sha256=pkg.sha256,
        model_package_digest=pkg.digest,
        manifest=str(Path(manifest).resolve()),
        manifest_sha256=sha256_file(manifest),
        inputs=pkg.card["inputs"],
        network=pkg.card["network"],
        device=device,
        synthetic_data=pkg.synthetic_training_data,
        synthetic_training_data=pkg.synthetic_training_data,
        **extra,
    )


def predictions_table(classes: Sequence[str], label: str, ids: Sequence[str], proba: np.ndarray,
                      truth: Sequence[Any] | None, topk: int = 3, errors: Sequence[str] | None = None,
                      model_name: str | None = None) -> pd.DataFrame:
    """The classical predictions table for per-case probabilities (failed rows: empty, with ``error``)."""
    from ..models.inference import PROB_PREFIX, predictions_frame

    table = predictions_frame(ids, np.nan_to_num(proba), list(classes), int(topk), truth=truth, truth_name=label)
    failed = np.isnan(proba).any(axis=1)
    if failed.any():
        prob_columns = [c for c in table.columns if c.startswith(PROB_PREFIX)]
        rank_columns = [c for c in table.columns if (c.startswith("top") and c[3:].isdigit()) or c == "predicted"]
        table.loc[failed, prob_columns] = np.nan
        table.loc[failed, rank_columns] = ""
        table[ERROR_COLUMN] = list(errors) if errors is not None else ["" for _ in ids]
    if model_name is not None:
        table.insert(1, "model", model_name)
    return table


def _truth(rows: Sequence[CaseRow], label: str) -> list[Any] | None:
    if not rows or not all(label in row.values for row in rows):
        return None
    values = [(row.values.get(label) or "").strip() for row in rows]
    return [v if v else None for v in values]


def predict_deep(
    model: str | os.PathLike[str] | DeepPackage,
    manifest: str | os.PathLike[str],
    *,
    topk: int | None = None,
    device: str = "auto",
    model_name: str | None = None,
    case_ids: Iterable[str] | None = None,
    progress: Progress | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Predictions table for every manifest case, or the ``case_ids`` ones (see the module docstring).

    ``model_name`` adds a ``model`` column (the long format ``stats evaluate
    --model-column model`` compares); the truth column is included when the
    manifest has the model's label column.
    """
    pkg = _package(model)
    rows, proba, _, errors = _run_manifest(pkg, manifest, device, progress, batch_size, case_ids)
    k = int(topk or pkg.card["task"].get("topk", 3))
    table = predictions_table(pkg.classes, pkg.label, [r.case_id for r in rows], proba, _truth(rows, pkg.label), k,
                              errors, model_name)
    table.attrs["provenance"] = _provenance(pkg, manifest, "spinemets predict-dl", device,
                                            aggregation=pkg.card.get("aggregation"), failed=sum(bool(e) for e in errors))
    return table


def deep_features(
    model: str | os.PathLike[str] | DeepPackage,
    manifest: str | os.PathLike[str],
    *,
    device: str = "auto",
    case_ids: Iterable[str] | None = None,
    progress: Progress | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Penultimate-layer embedding per case (all, or the ``case_ids`` ones) as ``case_id`` + ``dl_000`` ... columns.

    Merge it with a radiomics table on ``case_id`` (:func:`merge_feature_tables`)
    and train a classical model with ``--feature-set radiomics+deep`` (study C's
    DRad-M). Cases that failed have empty features and an ``error`` message.
    """
    pkg = _package(model)
    rows, _, embedding, errors = _run_manifest(pkg, manifest, device, progress, batch_size, case_ids)
    columns = feature_columns(embedding.shape[1])
    frame = pd.DataFrame(embedding, columns=columns)
    frame.insert(0, "case_id", [r.case_id for r in rows])
    if any(errors):
        frame[ERROR_COLUMN] = errors
    frame.attrs["provenance"] = _provenance(
        pkg, manifest, "spinemets deep-features", device, layer=EMBEDDING_LAYER, n_features=len(columns),
        naming=f"{FEATURE_PREFIX}<index>: unit <index> of the penultimate layer"
               + ("; 2-D models: mean over the case's slices" if pkg.inputs.dims == 2 else ""),
        failed={r.case_id: e for r, e in zip(rows, errors, strict=True) if e},
    )
    return frame


def merge_feature_tables(base: pd.DataFrame, deep: pd.DataFrame, on: str = "case_id") -> pd.DataFrame:
    """``base`` (e.g. radiomics) with the deep feature columns added by ``on``; every base row must match."""
    if on not in base.columns or on not in deep.columns:
        raise InputError(on, "id column missing from one of the tables to merge")
    features = [c for c in deep.columns if str(c).startswith(FEATURE_PREFIX)]
    if not features:
        raise InputError("deep features", f"no '{FEATURE_PREFIX}*' columns")
    clash = sorted(set(features) & set(base.columns))
    if clash:
        raise InputError("deep features", f"column(s) {clash[:5]} already in the base table")
    if deep[on].duplicated().any():
        raise InputError("deep features", f"duplicate {on} values")
    right = deep[[on, *features]].assign(**{on: deep[on].astype(str)})
    merged = base.assign(**{on: base[on].astype(str)}).merge(right, on=on, how="left", validate="one_to_one")
    missing = merged.loc[merged[features[0]].isna(), on].tolist()
    if missing:
        raise InputError("deep features", f"no (or failed) deep features for {len(missing)} case(s): {missing[:5]}")
    return merged


def write_table(frame: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """CSV (atomic) with its ``<stem>.provenance.json``."""
    prov = dict(frame.attrs.get("provenance") or {})
    prov["output"] = str(Path(out).resolve())
    return write_table_csv(frame, out, prov)


def predict_images(
    model: str | os.PathLike[str] | DeepPackage,
    images: Mapping[str, sitk.Image],
    mask: sitk.Image,
    *,
    device: str = "auto",
) -> dict[str, Any]:
    """One case from in-memory images (the Slicer Logic's entry point).

    Returns ``{"probabilities": {class: p}, "predicted": class, "embedding": [...]}``.
    """
    pkg = _package(model)
    case = build_case_input(images, mask, pkg.inputs)
    torch_device = resolve_device(device)
    proba, embedding = case_outputs(pkg.build_network(torch_device), [case.array], torch_device)
    probs = {c: float(p) for c, p in zip(pkg.classes, proba[0], strict=True)}
    return {"probabilities": probs, "predicted": max(probs, key=probs.get), "embedding": embedding[0].tolist(),
            "slices": case.slices, "synthetic_training_data": pkg.synthetic_training_data}
