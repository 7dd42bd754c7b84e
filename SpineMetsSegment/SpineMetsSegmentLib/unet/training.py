"""Headless U-Net training from a manifest CSV, ending in a model package.

Cases are preprocessed with exactly the functions inference uses (working grid,
normalisation), then MONAI dictionary transforms crop patches around lesions and
background and augment them; slice-wise (2-D) training draws slices with lesion and
without in ``pos_neg_ratio`` too, so a target covering 0.1 % of the voxels (most
slices empty) is still seen in most batches. The loss is cross-entropy + Dice of
the foreground channels over the whole batch (by default: the background channel
and empty patches would otherwise reward predicting nothing); after each
validation the weights with the best mean validation Dice are kept, and those
(not the last ones) are written. With the same seed, data and thread count the
run is repeatable to the bit on CPU: ``monai.utils.set_determinism``, a seeded
torch generator for shuffling and seeded transform random states.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore import dataio
from SpineMetsCore.errors import InputError
from SpineMetsCore.manifest import CaseRow, read_manifest
from SpineMetsCore.progress import ProgressCallback

from .inference import DEFAULT_OVERLAP, select_device, sliding_window_logits
from .network import build_network, unet_spec
from .package import load_model_package, write_model_package
from .preprocessing import TENSOR_AXES, prepare_images, prepare_label

logger = logging.getLogger(__name__)

DEFAULT_LABELS: tuple[dict[str, Any], ...] = ({"value": 1, "name": "lesion", "color": [230, 51, 51]},)
DEFAULT_PATCH = {3: (64, 64, 16), 2: (96, 96, 1)}



@dataclass
class TrainingConfig:
    """Everything that defines a training run (recorded in the model card)."""

    sequences: tuple[str, ...] = ("T1", "T2", "STIR")
    dim: int = 3
    patch_size: tuple[int, int, int] | None = None
    """Voxels along image axes (i, j, k); k must be 1 for ``dim=2``. Default 64,64,16 (3-D) or 96,96,1."""
    spacing: tuple[float | None, float | None, float | None] | None = None
    """Working spacing (mm, axes i, j, k); None: the training cases' median (2-D keeps the slice spacing)."""
    epochs: int = 50
    batch_size: int = 4
    samples_per_case: int = 2
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[Any, ...] | None = None
    num_res_units: int = 1
    normalisation: dict[str, Any] = field(default_factory=lambda: {"method": "zscore", "clip": 5.0})
    labels: tuple[dict[str, Any], ...] = DEFAULT_LABELS
    pos_neg_ratio: tuple[float, float] = (2.0, 1.0)
    """Patch centres on lesion vs background voxels; 2-D also draws slices with vs without lesion so."""
    balance_slices: bool = True
    """2-D: draw slices with and without lesion in ``pos_neg_ratio`` (False: every slice alike)."""
    dice_include_background: bool = False
    """Count the background channel in the Dice term (it dominates sparse targets: off by default)."""
    dice_batch: bool = True
    """Dice over the whole batch rather than per patch (a patch without lesion has no foreground Dice)."""
    augment: bool = True
    seed: int = 0
    val_fraction: float = 0.2
    val_interval: int = 1
    overlap: float = DEFAULT_OVERLAP
    sw_batch_size: int = 4
    min_component_ml: float = 0.0
    force_cpu: bool = False
    name: str = "SpineMets lesion U-Net"
    version: str = "1.0.0"
    task: str = "spinal lesion segmentation (MRI)"
    synthetic_training_data: bool | None = None
    """None: true when every manifest row carries a phantom_version (SpineMets phantom)."""
    data_description: str = ""

    def resolved_patch(self) -> tuple[int, int, int]:
        patch = tuple(int(p) for p in (self.patch_size or DEFAULT_PATCH[self.dim]))
        if len(patch) == 2:
            patch = (*patch, 1)
        if len(patch) != 3 or any(p < 1 for p in patch):
            raise InputError("patch size", f"needs 3 positive integers (i, j, k), got {self.patch_size}")
        if self.dim == 2 and patch[2] != 1:
            raise InputError("patch size", f"a 2-D (slice-wise) model needs k = 1, got {patch}")
        return patch  # type: ignore[return-value]


@dataclass
class TrainingResult:
    """What a run produced; ``summary()`` is the JSON the CLI prints."""

    out: Path
    card: dict[str, Any]
    best_val_dice: float | None
    best_epoch: int
    seconds: float
    history: list[dict[str, float]]

    def summary(self) -> dict[str, Any]:
        return {
            "model": str(self.out),
            "best_validation_dice": self.best_val_dice,
            "best_epoch": self.best_epoch,
            "epochs": len(self.history),
            "train_cases": len(self.card["training_data"]["train_cases"]),
            "validation_cases": len(self.card["training_data"]["validation_cases"]),
            "input_sequences": self.card["input_sequences"],
            "spatial_dims": self.card["network"]["args"]["spatial_dims"],
            "device": self.card["training"]["device"],
            "seconds": round(self.seconds, 1),
            "synthetic_training_data": self.card["synthetic_training_data"],
            "weights_sha256": self.card["payload"]["sha256"],
        }


@dataclass
class _Case:
    case_id: str
    image: np.ndarray  # (C, K, J, I) float32
    label: np.ndarray  # (1, K, J, I) uint8 channel indices


def split_cases(case_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Random case-level split; at least one case on each side when there are two or more."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError("validation fraction", f"must be in [0, 1), got {val_fraction}")
    ids = list(case_ids)
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    else:
        n_val = 0
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    train = [c for c in ids if c not in set(val)]
    return train, val


def _label_channels(mask: np.ndarray, labels: Sequence[Mapping[str, Any]], what: str) -> np.ndarray:
    """Mask values -> network channel indices (one label: any non-zero value is it)."""
    if len(labels) == 1:
        return (mask > 0).astype(np.uint8)
    out = np.zeros(mask.shape, dtype=np.uint8)
    known = {int(lab["value"]): i + 1 for i, lab in enumerate(labels)}
    unknown = sorted(set(np.unique(mask).tolist()) - set(known) - {0})
    if unknown:
        raise InputError(what, f"has label value(s) {unknown[:10]} not among the model labels {sorted(known)}")
    for value, channel in known.items():
        out[mask == value] = channel
    return out


def _median_spacing(rows: Sequence[CaseRow], first_sequence: str) -> list[float]:
    spacings = []
    for row in rows:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(row.images[first_sequence]))
        try:
            reader.ReadImageInformation()
            spacings.append(reader.GetSpacing())
        except RuntimeError:
            spacings.append(dataio.read_image(row.images[first_sequence]).GetSpacing())
    return [float(v) for v in np.median(np.array(spacings), axis=0)]


def load_cases(
    rows: Sequence[CaseRow],
    config: TrainingConfig,
    spacing: Sequence[float | None],
    orientation: Sequence[float] | None,
) -> list[_Case]:
    """Read, preprocess and label every row (kept in memory: training reads each many times)."""
    cases = []
    for row in rows:
        images = {seq: dataio.read_image(row.images[seq]) for seq in config.sequences}
        prepared = prepare_images(images, config.sequences, spacing, config.normalisation, orientation)
        if row.mask is None:
            raise InputError(f"case '{row.case_id}'", "has no mask")
        mask = dataio.read_image(row.mask)
        label = prepare_label(mask, prepared.working, what=str(row.mask))
        cases.append(_Case(row.case_id, prepared.array, _label_channels(label, config.labels, str(row.mask))[None]))
    return cases


def _slices(cases: Sequence[_Case]) -> list[dict[str, np.ndarray]]:
    """2-D training items: every k-slice of every case."""
    items = []
    for case in cases:
        for k in range(case.image.shape[1]):
            items.append({"image": np.ascontiguousarray(case.image[:, k]), "label": np.ascontiguousarray(case.label[:, k])})
    return items


def slice_sampling_weights(items: Sequence[Mapping[str, np.ndarray]], pos_neg_ratio: Sequence[float]) -> np.ndarray | None:
    """Per-slice draw probabilities giving lesion and lesion-free slices the pos:neg share.

    None when either kind is missing (then every slice is drawn alike, as before).
    """
    pos, neg = (float(v) for v in pos_neg_ratio)
    if pos < 0 or neg < 0 or pos + neg <= 0:
        raise InputError("pos_neg_ratio", f"needs two non-negative numbers, not both 0, got {tuple(pos_neg_ratio)}")
    has_fg = np.array([bool(np.any(item["label"] > 0)) for item in items])
    n_fg = int(has_fg.sum())
    if n_fg == 0 or n_fg == len(items):
        return None
    share_fg = pos / (pos + neg)
    logger.info("slice sampling: %d of %d slice(s) show lesion, drawn %.0f %% of the time", n_fg, len(items), 100 * share_fg)
    weights = np.where(has_fg, share_fg / n_fg, (1.0 - share_fg) / (len(items) - n_fg))
    return weights / weights.sum()


def build_transforms(config: TrainingConfig, patch: Sequence[int]) -> Any:
    """MONAI train transforms: pad, lesion/background patch sampling, augmentation."""
    from monai import transforms as mt

    keys = ["image", "label"]
    # tensors are (C, K, J, I); 2-D items are (C, J, I) slices
    spatial = [patch[1], patch[0]] if config.dim == 2 else list(reversed(patch))
    pos, neg = config.pos_neg_ratio
    steps: list[Any] = [
        mt.SpatialPadd(keys, spatial_size=spatial),
        mt.RandCropByPosNegLabeld(
            keys, label_key="label", spatial_size=spatial, pos=pos, neg=neg,
            num_samples=1 if config.dim == 2 else config.samples_per_case,
        ),
    ]
    if config.augment:
        flip_axes = [0] if config.dim == 2 else [0, 1]  # image axis j; and k in 3-D (phantom: S-I, L-R)
        steps += [mt.RandFlipd(keys, prob=0.5, spatial_axis=a) for a in flip_axes]
        steps += [
            mt.RandAffined(
                keys, prob=0.25, rotate_range=(0.15,) if config.dim == 2 else (0.15, 0.0, 0.0),  # in the (i, j) plane
                scale_range=0.1, mode=("bilinear", "nearest"), padding_mode="zeros",
            ),
            mt.RandScaleIntensityd("image", factors=0.15, prob=0.5),
            mt.RandShiftIntensityd("image", offsets=0.15, prob=0.5),
            mt.RandGaussianNoised("image", prob=0.25, std=0.05),
        ]
    steps.append(mt.EnsureTyped(keys, track_meta=False))
    return mt.Compose(steps)


def dice_per_label(pred: np.ndarray, target: np.ndarray, n_labels: int) -> list[float]:
    """Dice of each foreground channel index (1 when both are empty)."""
    out = []
    for c in range(1, n_labels + 1):
        p, t = pred == c, target == c
        denom = int(p.sum()) + int(t.sum())
        out.append(1.0 if denom == 0 else 2.0 * int(np.logical_and(p, t).sum()) / denom)
    return out


def evaluate(net: Any, cases: Sequence[_Case], config: TrainingConfig, patch: Sequence[int], device: Any) -> list[list[float]]:
    """Per-case, per-label Dice of full sliding-window predictions on the working grid."""
    net.eval()
    scores = []
    for case in cases:
        logits = sliding_window_logits(net, case.image, patch, config.dim, config.overlap, config.sw_batch_size, device)
        pred = logits[0].argmax(dim=0).numpy()
        scores.append(dice_per_label(pred, case.label[0], len(config.labels)))
    return scores


def _synthetic(rows: Sequence[CaseRow], config: TrainingConfig) -> bool:
    if config.synthetic_training_data is not None:
        return bool(config.synthetic_training_data)
    return bool(rows) and all((row.values.get("phantom_version") or "").strip() for row in rows)


def _phantom_versions(rows: Sequence[CaseRow]) -> dict[str, list[str]]:
    """Phantom generator version(s) of synthetic manifests (the data changes with them)."""
    versions = sorted({(row.values.get("phantom_version") or "").strip() for row in rows} - {""})
    return {"phantom_version": versions} if versions else {}


def train_model(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: TrainingConfig | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train on the manifest's cases and write a model package to ``out`` (atomically)."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    config = config or TrainingConfig()
    if config.dim not in (2, 3):
        raise InputError("dim", f"must be 2 or 3, got {config.dim}")
    if config.epochs < 1:
        raise InputError("epochs", f"must be >= 1, got {config.epochs}")
    if not config.sequences:
        raise InputError("sequences", "at least one input sequence is required")
    patch = config.resolved_patch()
    rows = read_manifest(manifest, required_sequences=tuple(config.sequences), require_mask=True)
    if not rows:
        raise InputError(str(manifest), "has no cases")
    started = time.perf_counter()
    set_determinism(seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    train_ids, val_ids = split_cases([r.case_id for r in rows], config.val_fraction, config.seed)
    by_id = {r.case_id: r for r in rows}
    train_rows = [by_id[c] for c in train_ids]
    spacing = list(config.spacing) if config.spacing is not None else _median_spacing(train_rows, config.sequences[0])
    if config.dim == 2 and config.spacing is None:
        spacing[2] = None  # slice-wise: keep each case's slice spacing
    if len(spacing) != 3:
        raise InputError("spacing", f"needs 3 values (i, j, k), got {spacing}")
    orientation = list(dataio.read_image(train_rows[0].images[config.sequences[0]]).GetDirection())
    logger.info("loading %d training and %d validation case(s)", len(train_ids), len(val_ids))
    train_cases = load_cases(train_rows, config, spacing, orientation)
    val_cases = load_cases([by_id[c] for c in val_ids], config, spacing, orientation)

    device = select_device(config.force_cpu)
    labels = [dict(lab) for lab in config.labels]
    spec = unet_spec(config.dim, len(config.sequences), len(labels) + 1, config.channels, config.strides, config.num_res_units)
    torch.manual_seed(config.seed)
    net = build_network(spec, what="network from the training settings").to(device)

    items = _slices(train_cases) if config.dim == 2 else [{"image": c.image, "label": c.label} for c in train_cases]
    transforms = build_transforms(config, patch)
    transforms.set_random_state(seed=config.seed)
    weights = slice_sampling_weights(items, config.pos_neg_ratio) if config.dim == 2 and config.balance_slices else None
    if weights is None:
        loader = DataLoader(Dataset(items, transforms), batch_size=config.batch_size, shuffle=True, num_workers=0, generator=generator)
    else:
        # as many draws per epoch as there are slices, lesion slices over-represented (seeded: repeatable)
        sampler = torch.utils.data.WeightedRandomSampler(
            torch.as_tensor(weights, dtype=torch.double), num_samples=len(items), replacement=True, generator=generator,
        )
        loader = DataLoader(Dataset(items, transforms), batch_size=config.batch_size, sampler=sampler, num_workers=0)
    loss_fn = DiceCELoss(
        to_onehot_y=True, softmax=True, include_background=config.dice_include_background, batch=config.dice_batch,
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs, eta_min=config.learning_rate * 0.02)

    history: list[dict[str, float]] = []
    best_dice: float | None = None
    best_epoch = config.epochs
    best_state = None
    best_per_case: list[list[float]] = []
    for epoch in range(1, config.epochs + 1):
        net.train()
        losses = []
        with warnings.catch_warnings():
            # slices/patches without lesion: MONAI warns that it cannot balance classes (expected)
            warnings.filterwarnings("ignore", message=".*unable to generate class balanced samples.*")
            batches = list(loader)
        for batch in batches:
            x, y = batch["image"].to(device), batch["label"].to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else math.nan}
        if val_cases and (epoch % config.val_interval == 0 or epoch == config.epochs):
            per_case = evaluate(net, val_cases, config, patch, device)
            dice = float(np.mean(per_case))
            record["val_dice"] = dice
            if best_dice is None or dice > best_dice:
                best_dice, best_epoch, best_per_case = dice, epoch, per_case
                best_state = copy.deepcopy(net.state_dict())
        history.append(record)
        log = logger.info if "val_dice" in record else logger.debug
        log("epoch %d/%d: %s", epoch, config.epochs, ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch"))
        if progress is not None:
            progress(epoch, config.epochs)
    if best_state is None:
        best_state = net.state_dict()
    seconds = time.perf_counter() - started

    card = _model_card(
        config, manifest, rows, train_ids, val_ids, labels, spacing, orientation, patch, spec,
        best_per_case, best_epoch,
        training={
            "config": _jsonable(asdict(config)),
            "loss": (
                f"monai.losses.DiceCELoss(softmax, one-hot, include_background={config.dice_include_background},"
                f" batch={config.dice_batch})"
            ),
            "optimiser": "AdamW + cosine annealing",
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "seconds": round(seconds, 1),
            "history": history,
        },
    )
    out_path = write_model_package(out, card, best_state)
    final = load_model_package(out_path).card
    return TrainingResult(out_path, final, best_dice, best_epoch, seconds, history)


def _model_card(
    config: TrainingConfig,
    manifest: str | os.PathLike[str],
    rows: Sequence[CaseRow],
    train_ids: list[str],
    val_ids: list[str],
    labels: list[dict[str, Any]],
    spacing: list[float | None],
    orientation: list[float],
    patch: Sequence[int],
    spec: dict[str, Any],
    best_per_case: list[list[float]],
    best_epoch: int,
    training: dict[str, Any],
) -> dict[str, Any]:
    """The model card of a finished run (checksum and versions are added by the writer)."""
    val_metrics: dict[str, Any] = {"split": f"random {len(val_ids)}-case split of the manifest (seed {config.seed})", "n_cases": len(val_ids)}
    if best_per_case:
        per_label = np.mean(np.array(best_per_case), axis=0)
        val_metrics.update({
            "mean_dice": round(float(np.mean(best_per_case)), 4),
            "dice": {lab["name"]: round(float(d), 4) for lab, d in zip(labels, per_label, strict=True)},
            "per_case_dice": {cid: round(float(np.mean(d)), 4) for cid, d in zip(val_ids, best_per_case, strict=True)},
            "best_epoch": best_epoch,
            "grid": "model working grid",
        })
    synthetic = _synthetic(rows, config)
    return {
        "name": config.name,
        "version": config.version,
        "task": config.task,
        "description": (
            f"MONAI UNet ({config.dim}-D{' slice-wise' if config.dim == 2 else ''}) on {', '.join(config.sequences)}."
            + (" Trained on synthetic phantom data: not clinically valid." if synthetic else "")
        ),
        "labels": labels,
        "input_sequences": list(config.sequences),
        "spacing": spacing,
        "orientation": orientation,
        "patch_size": list(patch),
        "tensor_axes": TENSOR_AXES,
        "normalisation": dict(config.normalisation),
        "network": spec,
        "inference": {"overlap": config.overlap, "sw_batch_size": config.sw_batch_size, "mode": "gaussian"},
        "postprocessing": {"argmax": True, "min_component_ml": config.min_component_ml},
        "training_data": {
            "manifest": Path(manifest).name,
            "description": config.data_description or f"{len(rows)} case(s) from {Path(manifest).name}",
            "n_cases": len(rows),
            "train_cases": train_ids,
            "validation_cases": val_ids,
            **_phantom_versions(rows),
        },
        "validation_metrics": val_metrics,
        "synthetic_training_data": synthetic,
        "seed": config.seed,
        "training": training,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
