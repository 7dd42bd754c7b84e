"""Headless training of a MONAI ResNet classifier from a manifest, ending in a model package.

Protocol:

1. Inputs: every case's lesion-centred 2-D slices or 3-D crop (:mod:`.inputs`),
   built once and kept in memory.
2. Split: rows whose ``split_column`` is in ``test_values`` are a held-out test
   set (never seen in training or early stopping); the remaining development
   rows are split, stratified by class and seeded, into training and
   validation cases (``val_fraction``).
3. Training: cross-entropy with inverse-frequency class weights (``balanced``,
   for rare primary sites), AdamW, augmentation by random flips, small
   rotations/scalings and per-channel intensity scale/shift (plain torch ops,
   drawn from a seeded generator). 2-D models train on slices with their
   case's label.
4. Early stopping on the validation cases' per-patient log loss (2-D: the mean
   of each case's slice probabilities): the best epoch's weights are kept and
   training stops after ``patience`` epochs without improvement.
5. Package: card (inputs, network, classes, class weights, split, history,
   validation/test metrics, pretrained weights' checksum, seed, synthetic-data
   flag) + safetensors weights + validation/test predictions tables.

Reproducible on CPU: with the same seed, data and thread count two runs give
identical weights (``monai.utils.set_determinism``,
``torch.use_deterministic_algorithms``, seeded generators for shuffling and
augmentation).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore.errors import InputError
from SpineMetsCore.fileio import sha256_file
from SpineMetsCore.manifest import CaseRow, read_manifest
from SpineMetsCore.tables import provenance

from .inference import build_row_input, case_outputs, predictions_table, resolve_device
from .inputs import InputSpec
from .network import EMBEDDING_LAYER, build_network, embedding_size, load_pretrained, network_spec
from .package import load_deep_package, save_deep_package

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
CLASS_WEIGHTS = ("balanced", None)


@dataclass(frozen=True)
class DeepConfig:
    """Everything that defines a training run (recorded in the model card)."""

    label: str
    sequences: tuple[str, ...] = ("T1", "T2", "STIR")
    arch: str = "resnet18"
    dims: int = 2
    n_slices: int = 3
    size: tuple[int, ...] | None = None
    """Network input voxels: (rows, cols) in 2-D, default 64 x 64; (d, h, w) in 3-D, default 32^3."""
    margin: float = 0.5
    min_fov_mm: float = 32.0
    lesion_label: int = 1
    normalisation: Mapping[str, Any] = field(default_factory=lambda: {"method": "zscore", "clip": 5.0})
    width: float = 1.0
    """MONAI ``widen_factor``: 1.0 is the published ResNet; small values give tiny test networks."""
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    val_fraction: float = 0.2
    class_weight: str | None = "balanced"
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    pretrained: str | None = None
    """Local weights file (.safetensors, or a .pt/.pth read tensors-only) to start from; None: from scratch."""
    split_column: str | None = None
    test_values: tuple[str, ...] = ("test",)
    topk: int = 3
    synthetic_training_data: bool | None = None
    """None: true when every manifest row carries a phantom_version (SpineMets phantom)."""
    name: str | None = None

    def input_spec(self) -> InputSpec:
        return InputSpec(
            sequences=tuple(self.sequences), dims=self.dims, n_slices=self.n_slices,
            size=None if self.size is None else tuple(int(s) for s in self.size), margin=self.margin,
            min_fov_mm=self.min_fov_mm, lesion_label=self.lesion_label, normalisation=dict(self.normalisation),
        ).check()

    def check(self) -> DeepConfig:
        for name in ("epochs", "batch_size", "patience", "topk"):
            if int(getattr(self, name)) < 1:
                raise InputError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise InputError("batch_size", "must be >= 2 (batch normalisation needs two samples)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError("val_fraction", f"must be in [0, 1), got {self.val_fraction}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise InputError("class_weight", f"must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        if not self.learning_rate > 0:
            raise InputError("learning_rate", f"must be positive, got {self.learning_rate}")
        if self.pretrained is not None and not Path(self.pretrained).is_file():
            raise InputError("--pretrained", f"weights file {self.pretrained} does not exist")
        self.input_spec()
        network_spec(self.arch, self.dims, len(self.sequences), 2, self.width)
        return self


@dataclass
class DeepTrainResult:
    """What a run produced; ``summary()`` is the JSON the CLI prints."""

    out: Path
    card: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    validation_predictions: pd.DataFrame | None = None
    test_predictions: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        training = self.card["training"]
        return {
            "model": str(self.out),
            "arch": self.card["network"]["arch"],
            "dims": self.card["inputs"]["dims"],
            "classes": self.card["classes"],
            "train_cases": len(training["train_cases"]),
            "validation_cases": len(training["validation_cases"]),
            "test_cases": len(training["test_cases"]),
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "validation_metrics": self.card["validation_metrics"],
            "test_metrics": self.card["test_metrics"],
            "device": training["device"],
            "seconds": round(self.seconds, 1),
            "synthetic_training_data": self.card["synthetic_training_data"],
            "weights_sha256": self.card["payload"]["sha256"],
        }


# ----------------------------------------------------------------------------- data
def label_of(row: CaseRow, label: str) -> str:
    value = (row.values.get(label) or "").strip()
    if not value:
        raise InputError(f"case '{row.case_id}'", f"has no value in label column '{label}'")
    return value


def split_rows(rows: Sequence[CaseRow], config: DeepConfig) -> tuple[list[int], list[int], list[int]]:
    """Indices of training, validation and test rows (see the module docstring)."""
    n = len(rows)
    test = np.zeros(n, dtype=bool)
    if config.split_column:
        if any(config.split_column not in r.values for r in rows):
            raise InputError("--split-column", f"column {config.split_column!r} not in the manifest")
        wanted = {str(v).strip() for v in config.test_values}
        test = np.array([(r.values.get(config.split_column) or "").strip() in wanted for r in rows])
        if not test.any() or test.all():
            raise InputError("--test-value", f"{config.split_column} in {sorted(wanted)} must select some but not all rows "
                             f"(it selects {int(test.sum())} of {n})")
    dev = np.flatnonzero(~test)
    labels = np.array([label_of(rows[i], config.label) for i in dev])
    rng = np.random.default_rng(config.seed)
    val: list[int] = []
    if config.val_fraction > 0:
        for cls in sorted(set(labels)):
            members = dev[labels == cls]
            members = members[rng.permutation(len(members))]
            n_val = int(round(len(members) * config.val_fraction))
            if len(members) >= 2:
                n_val = min(max(n_val, 1), len(members) - 1)
            else:
                n_val = 0
            val.extend(int(i) for i in members[:n_val])
    val_set = set(val)
    train = [int(i) for i in dev if int(i) not in val_set]
    return train, sorted(val), [int(i) for i in np.flatnonzero(test)]


def class_weights(y: np.ndarray, n_classes: int, mode: str | None) -> np.ndarray:
    """Inverse-frequency weights n / (K * n_c) (``balanced``, as scikit-learn), or ones."""
    if mode is None:
        return np.ones(n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1.0)), 0.0)
    return weights


# ----------------------------------------------------------------------------- augmentation
def augment_batch(x: Any, generator: Any, rotate_deg: float = 10.0, scale: float = 0.1,
                  intensity: float = 0.1) -> Any:
    """Random flips, in-plane rotation/scaling and per-channel intensity scale/shift of a batch.

    ``x`` is ``(N, C, H, W)`` or ``(N, C, D, H, W)`` on the CPU; every random
    number comes from ``generator``, so a seed fixes the augmentation.
    """
    import torch
    import torch.nn.functional as F

    x = x.clone()
    n, c = x.shape[:2]
    spatial = x.ndim - 2
    for axis in range(2, x.ndim):
        flip = torch.rand(n, generator=generator) < 0.5
        if flip.any():
            x[flip] = x[flip].flip(axis - 1)
    shape = (n, c) + (1,) * spatial
    gain = 1.0 + (torch.rand(shape, generator=generator) * 2 - 1) * intensity
    offset = (torch.rand(shape, generator=generator) * 2 - 1) * intensity
    x = x * gain + offset
    chosen = torch.rand(n, generator=generator) < 0.5
    if chosen.any():
        k = int(chosen.sum())
        angle = (torch.rand(k, generator=generator) * 2 - 1) * math.radians(rotate_deg)
        zoom = 1.0 + (torch.rand(k, generator=generator) * 2 - 1) * scale
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.zeros(k, spatial, spatial + 1)
        # rotation in the last two axes (the sagittal plane); a 3-D crop keeps its slice axis
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        if spatial == 3:
            theta[:, 2, 2] = 1.0
        sub = x[chosen]
        grid = F.affine_grid(theta.to(sub.dtype), list(sub.shape), align_corners=False)
        x[chosen] = F.grid_sample(sub, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x


def _batches(n: int, batch_size: int, generator: Any) -> list[Any]:
    """Shuffled index batches; a last batch of one sample joins the previous one (batch norm)."""
    import torch

    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = torch.cat([batches[-2], batches.pop()])
    return batches


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch/numpy/random and use deterministic algorithms inside the block (restored after)."""
    import torch
    from monai.utils import set_determinism

    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    set_determinism(seed=seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        set_determinism(seed=None)


# ----------------------------------------------------------------------------- metrics
def _case_metrics(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per-patient log loss and accuracy (AUC when defined) of probabilities ``(n, K)``."""
    if len(y) == 0:
        return {}
    eps = 1e-7
    out = {
        "log_loss": float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0)))),
        "accuracy": float(np.mean(proba.argmax(axis=1) == y)),
    }
    try:
        from sklearn.metrics import roc_auc_score

        if proba.shape[1] == 2:
            out["auc"] = float(roc_auc_score(y, proba[:, 1]))
        elif len(np.unique(y)) == proba.shape[1]:
            out["auc_macro_ovr"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=list(range(proba.shape[1]))))
    except ValueError:
        pass
    return out


# ----------------------------------------------------------------------------- training
def _synthetic(rows: Sequence[CaseRow], config: DeepConfig) -> bool:
    if config.synthetic_training_data is not None:
        return bool(config.synthetic_training_data)
    return bool(rows) and all((row.values.get("phantom_version") or "").strip() for row in rows)


def _config_json(config: DeepConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    return json.loads(json.dumps(data, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def _check_destination(out: Path, overwrite: bool) -> None:
    """Refuse an existing output before hours of training, not after (the writer checks again)."""
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise InputError(str(out), "already exists; pass overwrite=True (--overwrite) to replace it")


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def train_deep_classifier(
    manifest: str | os.PathLike[str],
    label: str,
    out: str | os.PathLike[str],
    config: DeepConfig | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
    **settings: Any,
) -> DeepTrainResult:
    """Train on the manifest's cases and write a model package to ``out`` (atomically).

    An existing package at ``out`` is replaced only with ``overwrite`` (checked
    before training starts).
    ``settings`` override fields of ``config`` (e.g. ``arch="resnet50", dims=3``),
    which is how a YAML pipeline passes them. ``progress(done, total)`` counts
    input building (one step per case) and then epochs.
    """
    import torch

    base = config or DeepConfig(label=label)
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(DeepConfig)})
    if unknown:
        raise InputError("deep training settings", f"unknown setting(s) {unknown}")
    config = dataclasses.replace(base, label=label, **settings).check()
    spec = config.input_spec()
    _check_destination(Path(out), overwrite)
    rows = read_manifest(manifest, required_sequences=tuple(config.sequences), require_mask=True)
    if len(rows) < 2:
        raise InputError(str(manifest), f"needs at least two cases, has {len(rows)}")
    if any(config.label not in r.values for r in rows):
        raise InputError("--label", f"column {config.label!r} not in the manifest")
    labels_all = [label_of(r, config.label) for r in rows]
    train_idx, val_idx, test_idx = split_rows(rows, config)
    classes = sorted({labels_all[i] for i in train_idx + val_idx})
    if len(classes) < 2:
        raise InputError(config.label, f"needs at least two classes among the development cases, found {classes}")
    unseen = sorted({labels_all[i] for i in test_idx} - set(classes))
    if unseen:
        raise InputError(config.label, f"test rows have class(es) {unseen} absent from the development rows")
    code = {c: j for j, c in enumerate(classes)}
    y_all = np.array([code.get(v, -1) for v in labels_all])
    started = time.perf_counter()
    total_steps = len(rows) + config.epochs

    logger.info("building %d-D inputs of %d case(s)", spec.dims, len(rows))
    inputs = []
    for i, row in enumerate(rows):
        inputs.append(build_row_input(row, spec).array)
        if progress is not None:
            progress(i + 1, total_steps)

    device = resolve_device(config.device)
    with deterministic(config.seed):
        generator = torch.Generator().manual_seed(config.seed)
        spec_net = network_spec(config.arch, spec.dims, len(spec.sequences), len(classes), config.width)
        net = build_network(spec_net, what="network from the training settings")
        pretrained = load_pretrained(net, config.pretrained) if config.pretrained else None
        net = net.to(device)
        x_train = torch.from_numpy(np.concatenate([inputs[i] for i in train_idx]))
        y_train = torch.from_numpy(np.concatenate([np.full(len(inputs[i]), y_all[i]) for i in train_idx])).long()
        weights = class_weights(y_all[train_idx], len(classes), config.class_weight)
        loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
        optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        history: list[dict[str, float]] = []
        best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
        best_val: dict[str, float] = {}
        y_val = y_all[val_idx]
        for epoch in range(1, config.epochs + 1):
            net.train()
            losses = []
            for batch in _batches(len(x_train), config.batch_size, generator):
                xb = x_train[batch]
                if config.augment:
                    xb = augment_batch(xb, generator)
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(net(xb.to(device)), y_train[batch].to(device))
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
            record: dict[str, float] = {"epoch": epoch, "loss": float(np.mean(losses))}
            if val_idx:
                proba, _ = case_outputs(net, [inputs[i] for i in val_idx], device)
                metrics = _case_metrics(proba, y_val)
                record.update({f"val_{k}": v for k, v in metrics.items()})
                if metrics["log_loss"] < best_loss - 1e-6:
                    best_loss, best_epoch, stale, best_val = metrics["log_loss"], epoch, 0, metrics
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    stale += 1
            history.append(record)
            elapsed = time.perf_counter() - started
            eta = elapsed / epoch * (config.epochs - epoch)
            logger.info("epoch %d/%d: %s (ETA %.0f s)", epoch, config.epochs,
                        ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch"), eta)
            if progress is not None:
                progress(len(rows) + epoch, total_steps)
            if val_idx and stale >= config.patience:
                logger.info("early stop: no validation improvement for %d epoch(s); best epoch %d", stale, best_epoch)
                break
        if best_state is None:  # no validation cases: the last epoch
            best_state, best_epoch = copy.deepcopy(net.state_dict()), len(history)
        net.load_state_dict(best_state)
        val_proba, _ = case_outputs(net, [inputs[i] for i in val_idx], device)
        test_proba, _ = case_outputs(net, [inputs[i] for i in test_idx], device)
    if progress is not None:
        progress(total_steps, total_steps)
    seconds = time.perf_counter() - started

    ids = [r.case_id for r in rows]
    topk = min(config.topk, len(classes))

    def table(idx: list[int], proba: np.ndarray) -> pd.DataFrame | None:
        if not idx:
            return None
        return predictions_table(classes, config.label, [ids[i] for i in idx], proba, [labels_all[i] for i in idx], topk)

    val_table, test_table = table(val_idx, val_proba), table(test_idx, test_proba)
    test_metrics = _case_metrics(test_proba, y_all[test_idx]) if test_idx else None
    synthetic = _synthetic(rows, config)
    card = _card(config, spec, spec_net, classes, labels_all, ids, train_idx, val_idx, test_idx, weights, history,
                 best_epoch, best_val, test_metrics, pretrained, synthetic, manifest, rows, str(device), seconds,
                 embedding_size(net))
    extra = {"history.csv": _csv_bytes(pd.DataFrame(history))}
    if val_table is not None:
        extra["validation_predictions.csv"] = _csv_bytes(val_table)
    if test_table is not None:
        extra["test_predictions.csv"] = _csv_bytes(test_table)
    path = save_deep_package(out, card, best_state, extra_files=extra, overwrite=overwrite)
    final = load_deep_package(path).card
    logger.info("wrote deep model package %s (best epoch %d, %.1f s)", path, best_epoch, seconds)
    return DeepTrainResult(path, final, history, best_epoch, seconds, val_table, test_table)


def _card(config: DeepConfig, spec: InputSpec, spec_net: dict[str, Any], classes: list[str], labels: list[str],
          ids: list[str], train_idx: list[int], val_idx: list[int], test_idx: list[int], weights: np.ndarray,
          history: list[dict[str, float]], best_epoch: int, best_val: dict[str, float],
          test_metrics: dict[str, float] | None, pretrained: dict[str, Any] | None, synthetic: bool,
          manifest: str | os.PathLike[str], rows: Sequence[CaseRow], device: str, seconds: float,
          n_embedding: int) -> dict[str, Any]:
    """The model card (the package writer adds format, payload checksum and library versions)."""
    from ..models.training import INTENDED_USE

    n_classes = len(classes)
    counts = {c: sum(1 for i in train_idx + val_idx if labels[i] == c) for c in classes}
    versions = sorted({(r.values.get("phantom_version") or "").strip() for r in rows} - {""})
    card: dict[str, Any] = {
        "name": config.name or f"{config.label} ~ {config.arch} {spec.dims}-D ({'+'.join(spec.sequences)})",
        "created_utc": provenance()["created_utc"],
        "task": {"label": config.label, "type": "binary" if n_classes == 2 else "multiclass", "classes": classes,
                 "positive_class": classes[1] if n_classes == 2 else None, "topk": min(config.topk, n_classes)},
        "classes": classes,
        "inputs": spec.to_json(),
        "network": spec_net,
        "aggregation": ("per-patient mean of the slices' softmax probabilities" if spec.dims == 2
                        else "one lesion-centred crop per case"),
        "embedding": {"layer": EMBEDDING_LAYER, "size": n_embedding, "columns": "dl_000, dl_001, ..."},
        "pretrained": pretrained or {"file": None, "note": "trained from scratch (no pretrained weights given)"},
        "training": {
            "config": _config_json(config),
            "manifest": Path(manifest).name,
            "manifest_sha256": sha256_file(manifest),
            "n_cases": len(rows),
            "label_counts": counts,
            "train_cases": [ids[i] for i in train_idx],
            "validation_cases": [ids[i] for i in val_idx],
            "test_cases": [ids[i] for i in test_idx],
            "split": {"validation": f"stratified {config.val_fraction:.0%} of the development cases (seed {config.seed})",
                      "test": ({"column": config.split_column, "values": list(config.test_values)}
                               if config.split_column else None)},
            "class_weights": {c: round(float(w), 6) for c, w in zip(classes, weights, strict=True)},
            "loss": "cross-entropy" + (" with inverse-frequency class weights" if config.class_weight else ""),
            "optimiser": f"AdamW (lr {config.learning_rate}, weight decay {config.weight_decay}), batch {config.batch_size}",
            "augmentation": ("random flips, in-plane rotation +-10 deg and scaling +-10 % (p 0.5), per-channel "
                             "intensity scale and shift +-0.1" if config.augment else "none"),
            "early_stopping": {"monitor": "validation per-patient log loss", "patience": config.patience,
                               "best_epoch": best_epoch, "epochs_run": len(history)},
            "device": device,
            "seconds": round(seconds, 1),
            "history": history,
            **({"phantom_version": versions} if versions else {}),
        },
        "validation_metrics": {"n_cases": len(val_idx), "best_epoch": best_epoch, **best_val},
        "test_metrics": test_metrics,
        "seed": config.seed,
        "synthetic_training_data": bool(synthetic),
        "intended_use": INTENDED_USE,
    }
    return card  # the synthetic-data warning is derived from the flag on every load (SpineMetsCore.packages)
