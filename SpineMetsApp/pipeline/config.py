"""The study config of ``spinemets run``: schema, defaults, documentation and validation.

A study config is a YAML file (or the name of a shipped one in ``SpineMetsApp/configs``)
with the sections below. :data:`SCHEMA` is the single source: ``spinemets run --help``,
``docs/pipeline.md`` and the validator are all generated from it, so a key cannot be
documented and unknown at the same time. Every problem names its key path
(``tasks[0].split.method``); unknown keys are errors, with the closest known key suggested.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpineMetsCore.errors import InputError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""Shipped study configs: ``<name>.yaml``, selected by name (``--config demo``)."""

CLASSICAL_CLASSIFIERS: tuple[str, ...] = ("lr", "svm", "rf", "gb", "knn", "nb", "mlp")
SEGMENTATION_METHODS: tuple[str, ...] = ("region_growing", "unet", "mask")
SPLIT_METHODS: tuple[str, ...] = ("cv", "fraction", "column")
MODEL_KINDS: dict[str, str] = {"classical": "scikit-learn pipeline trained by the classical training code"}
"""Model kinds a task may use; other packages (deep models) register theirs with :func:`register_model_kind`."""
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(InputError):
    """A study config problem; ``what`` is the key path (``tasks[0].label``)."""


@dataclass(frozen=True)
class Key:
    """One documented config key."""

    doc: str
    default: Any = None
    kind: str = "any"
    """``str``, ``int``, ``float``, ``bool``, ``list``, ``mapping``, ``section``, ``any``."""
    choices: tuple[Any, ...] = ()
    children: Mapping[str, Key] = field(default_factory=dict)
    """For ``section`` (a mapping with fixed keys) and for ``list`` of sections (``item``)."""
    item: Key | None = None
    nullable: bool = True
    required: bool = False


def _k(doc: str, default: Any = None, kind: str = "any", **kw: Any) -> Key:
    return Key(doc, default, kind, **kw)


MODEL_ENTRY = Key("one model", kind="section", children={
    "name": _k("model name (the `model` column of every table); default `<feature set>-<classifier>`", kind="str"),
    "feature_set": _k("feature-set string (see feature sets) or the name of a `feature_sets` entry", kind="str",
                      required=True, nullable=False),
    "classifier": _k(f"classifier: one of {CLASSICAL_CLASSIFIERS} for kind `classical`", kind="str",
                     required=True, nullable=False),
    "kind": _k("model kind: `classical` (more kinds may be registered, e.g. deep models)", "classical", "str"),
    "options": _k("kind-specific settings passed to the model trainer (free-form mapping)", {}, "mapping"),
})

SPLIT = Key("how cases are split into development and test rows", kind="section", children={
    "method": _k("`cv`: nested cross-validation on every case (out-of-fold predictions are evaluated); "
                 "`fraction`: a stratified random test set of `fraction` of the cases; "
                 "`column`: cases whose `column` value is in `test_values` are the test set (e.g. an external centre)",
                 "cv", "str", choices=SPLIT_METHODS, nullable=False),
    "fraction": _k("test share for method `fraction`", 0.3, "float"),
    "column": _k("manifest column for method `column` (e.g. `centre`)", None, "str"),
    "test_values": _k("values of `column` that mark test cases", ["test"], "list"),
})

TASK = Key("one prediction task", kind="section", children={
    "name": _k("task name (folder name and report heading)", kind="str", required=True, nullable=False),
    "label": _k("manifest column holding the class label", kind="str", required=True, nullable=False),
    "positive": _k("positive class of a binary task (default: the second class in sorted order)", None, "str"),
    "feature_sets": _k("named feature sets: `{name: feature-set string}`; feature-set strings use the grammar of "
                       "`spinemets train --feature-set` (`edf`, `radiomics`, `quantitative`, `segmentation`, "
                       "`clinical`, `deep`, `all`, patterns, `+`/`-`). `all` means every computed feature: manifest "
                       "columns (ids, labels, paths, metadata) enter only when named or through `edf`/`clinical`",
                       {"radiomics": "radiomics+quantitative+segmentation"}, "mapping"),
    "classifiers": _k(f"classifiers trained on every feature set: names from {CLASSICAL_CLASSIFIERS} or `all`",
                      ["lr"], "list"),
    "models": _k("explicit model list (instead of feature_sets x classifiers): entries with "
                 "`name`, `feature_set`, `classifier`, `kind`, `options`", None, "list", item=MODEL_ENTRY),
    "split": SPLIT,
    "cv_folds": _k("outer cross-validation folds", 5, "int"),
    "inner_folds": _k("inner (tuning) folds", 3, "int"),
    "grid": _k("hyper-parameter grid: `default`, `small` or `none` (grids are trimmed to the cohort size)",
               "small", "str", choices=("default", "small", "none")),
    "scoring": _k("scikit-learn scorer used for tuning", "neg_log_loss", "str"),
    "class_weight": _k("`balanced` or null", "balanced", "str"),
    "topk": _k("top-k reported for multi-class tasks (k < number of classes)", 3, "int"),
    "reference_model": _k("model that the others are compared with (DeLong); default: the best by AUC", None, "str"),
})

SCHEMA: dict[str, Key] = {
    "name": _k("study name (report title); default: the config file name", None, "str"),
    "description": _k("free text shown at the top of the report", "", "str"),
    "synthetic": _k("`auto` (synthetic when the manifest has a `phantom_version` column or a model card says so), "
                    "`true` or `false`: controls the 'synthetic data - not clinical' banner", "auto", "any",
                    choices=("auto", True, False)),
    "seed": _k("master seed: CV folds, estimators, bootstrap and SHAP subsampling", 0, "int"),
    "segmentation": Key("per-case lesion segmentation", kind="section", children={
        "method": _k("`region_growing` (seeds/ROI from the manifest: `seed_ras`, `seeds_file`, `roi_*`), "
                     "`unet` (a U-Net model package) or `mask` (an existing labelmap or `.seg.nrrd` named in the "
                     "manifest)", "region_growing", "str", choices=SEGMENTATION_METHODS, nullable=False),
        "sequences": _k("sequences used by region growing (default: every sequence of the case)", None, "list"),
        "region_growing": _k("region-growing parameters (names as in `spinemets segment --param`)", {}, "mapping"),
        "unet_model": _k("U-Net model package (folder or .zip); default: the shipped demo model. "
                         "Relative paths are relative to the config file", None, "str"),
        "mask_column": _k("manifest column of the existing mask for method `mask`", "mask", "str"),
        "segment": _k("segment name to use from a `.seg.nrrd` (method `mask`; a manifest column `segment` "
                      "overrides it per case); default: every segment", None, "str"),
        "reference_column": _k("manifest column with reference masks for Dice; `auto`: `mask` when the method is "
                               "not `mask`; null: no Dice", "auto", "str"),
    }),
    "features": Key("per-case feature extraction (the features package)", kind="section", children={
        "radiomics": _k("PyRadiomics features per sequence", True, "bool"),
        "quantitative": _k("quantitative EDF counterparts `q_*` (needs the `anatomy` column for marrow references)",
                           True, "bool"),
        "segmentation": _k("segmentation features `seg_*`", True, "bool"),
        "params": _k("PyRadiomics parameter file (default: the shipped `mri_default.yaml`)", None, "str"),
        "sequences": _k("sequences to extract from (default: every sequence of the case)", None, "list"),
        "shell_mm": _k("peritumoural shell thickness for extra radiomics (0: none)", 0.0, "float"),
        "reference": _k("signal reference: `normal_marrow`, `muscle`, `auto` or null (default rule)", None, "str"),
    }),
    "tasks": _k("prediction tasks (list); empty: segmentation and features only", [], "list", item=TASK),
    "statistics": Key("statistics of every task", kind="section", children={
        "bootstrap": _k("bootstrap replicates for CIs (class-stratified)", 1000, "int"),
        "conf_level": _k("confidence level", 0.95, "float"),
        "calibration_bins": _k("calibration bins: `auto` (about n/10, 3..10) or an integer", "auto", "any"),
        "table1": _k("Table-1 columns (default: the task's EDF/clinical manifest columns that exist)", None, "list"),
        "dca": _k("decision curves (binary tasks)", True, "bool"),
    }),
    "explain": Key("SHAP explanations", kind="section", children={
        "enabled": _k("explain models with SHAP", True, "bool"),
        "models": _k("`best` (the best model of each task), `all`, or a list of model names", "best", "any"),
        "max_cases": _k("cases explained per model (a seeded subset when there are more)", 50, "int"),
    }),
    "predict": Key("final-model predictions for every case (the predict hand-off)", kind="section", children={
        "enabled": _k("apply each task's best final model package to every successful case", True, "bool"),
    }),
}

_PYTYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list, tuple),
    "mapping": (dict,), "section": (dict,),
}


def register_model_kind(kind: str, description: str) -> None:
    """Allow ``kind`` in model entries (the trainer is registered in :mod:`.study`)."""
    MODEL_KINDS[kind] = description


def defaults(schema: Mapping[str, Key] = SCHEMA) -> dict[str, Any]:
    """The full default config."""
    out: dict[str, Any] = {}
    for name, key in schema.items():
        out[name] = defaults(key.children) if key.kind == "section" else copy.deepcopy(key.default)
    return out


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_value(path: str, key: Key, value: Any) -> Any:
    if value is None:
        if not key.nullable or key.required:
            raise ConfigError(path, "must not be empty")
        return None
    if key.kind in _PYTYPES:
        types = _PYTYPES[key.kind]
        bad = not isinstance(value, types) or (key.kind in ("int", "float") and isinstance(value, bool))
        if bad:
            raise ConfigError(path, f"must be a {key.kind}, got {value!r}")
    if key.choices and value not in key.choices:
        raise ConfigError(path, f"must be one of {list(key.choices)}, got {value!r}")
    if key.kind == "section":
        return _merge(path, key.children, value)
    if key.kind == "list" and key.item is not None:
        return [_check_value(f"{path}[{i}]", key.item, v) for i, v in enumerate(value)]
    if key.kind == "float":
        return float(value)
    if key.kind == "list":
        return list(value)
    return copy.deepcopy(value)


def _merge(prefix: str, schema: Mapping[str, Key], given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in given if k not in schema]
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(where, f"unknown key{_suggest(unknown[0], schema)}; known keys here: {sorted(schema)}")
    out: dict[str, Any] = {}
    for name, key in schema.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in given:
            if key.required:
                raise ConfigError(path, "is required")
            out[name] = defaults(key.children) if key.kind == "section" else copy.deepcopy(key.default)
            continue
        out[name] = _check_value(path, key, given[name])
    return out


@dataclass
class StudyConfig:
    """A validated config: the resolved dict plus where it came from."""

    values: dict[str, Any]
    source: str
    base_dir: Path

    @property
    def name(self) -> str:
        return str(self.values["name"])

    def digest(self) -> str:
        """SHA-256 of the resolved config (the run's identity together with the manifest)."""
        return hashlib.sha256(json.dumps(self.values, sort_keys=True, default=str).encode()).hexdigest()

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def _positive_int(path: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}, got {value}")


def _check_semantics(values: dict[str, Any], base_dir: Path) -> None:
    """Checks beyond types: names, ranges, files, model lists."""
    seg = values["segmentation"]
    if seg["region_growing"]:
        from SpineMetsSegmentLib.region_growing import RegionGrowingParameters

        try:
            RegionGrowingParameters.from_dict(seg["region_growing"])
        except InputError as exc:
            raise ConfigError("segmentation.region_growing", exc.problem) from None
    if seg["unet_model"]:
        path = _resolve(seg["unet_model"], base_dir)
        if not path.exists():
            raise ConfigError("segmentation.unet_model", f"model package {path} does not exist")
        seg["unet_model"] = str(path)
    feats = values["features"]
    if feats["params"]:
        path = _resolve(feats["params"], base_dir)
        if not path.is_file():
            raise ConfigError("features.params", f"parameter file {path} does not exist")
        feats["params"] = str(path)
    if feats["shell_mm"] < 0:
        raise ConfigError("features.shell_mm", "must be >= 0")
    if feats["reference"] not in (None, "normal_marrow", "muscle", "auto"):
        raise ConfigError("features.reference", f"must be normal_marrow, muscle, auto or null, got {feats['reference']!r}")
    _positive_int("seed", values["seed"], 0)
    stats = values["statistics"]
    _positive_int("statistics.bootstrap", stats["bootstrap"], 0)
    if not 0.5 <= stats["conf_level"] < 1:
        raise ConfigError("statistics.conf_level", f"must be within [0.5, 1), got {stats['conf_level']}")
    bins = stats["calibration_bins"]
    if bins != "auto" and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 2):
        raise ConfigError("statistics.calibration_bins", f"must be 'auto' or an integer >= 2, got {bins!r}")
    _positive_int("explain.max_cases", values["explain"]["max_cases"])
    models_opt = values["explain"]["models"]
    if not (models_opt in ("best", "all") or (isinstance(models_opt, list) and all(isinstance(m, str) for m in models_opt))):
        raise ConfigError("explain.models", f"must be 'best', 'all' or a list of model names, got {models_opt!r}")
    names: set[str] = set()
    for i, task in enumerate(values["tasks"]):
        where = f"tasks[{i}]"
        if not _NAME_RE.match(task["name"]):
            raise ConfigError(f"{where}.name", f"{task['name']!r} must be letters, digits, '_', '-', '.' (a folder name)")
        if task["name"] in names:
            raise ConfigError(f"{where}.name", f"duplicate task name {task['name']!r}")
        names.add(task["name"])
        _positive_int(f"{where}.cv_folds", task["cv_folds"], 2)
        _positive_int(f"{where}.inner_folds", task["inner_folds"], 2)
        _positive_int(f"{where}.topk", task["topk"])
        split = task["split"]
        if split["method"] == "fraction" and not 0 < split["fraction"] < 1:
            raise ConfigError(f"{where}.split.fraction", f"must be between 0 and 1, got {split['fraction']}")
        if split["method"] == "column" and not split["column"]:
            raise ConfigError(f"{where}.split.column", "is required for split method 'column'")
        split["test_values"] = [str(v) for v in split["test_values"]]
        if task["class_weight"] not in (None, "balanced"):
            raise ConfigError(f"{where}.class_weight", f"must be 'balanced' or null, got {task['class_weight']!r}")
        for fs_name, spec in task["feature_sets"].items():
            if not isinstance(spec, str) or not spec.strip():
                raise ConfigError(f"{where}.feature_sets.{fs_name}", "must be a non-empty feature-set string")
        task["models"] = _expand_models(task, where)


def _expand_models(task: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The task's model list: explicit ``models`` or ``feature_sets`` x ``classifiers``."""
    if task["models"]:
        models = []
        for j, entry in enumerate(task["models"]):
            item = dict(entry)
            if item["kind"] not in MODEL_KINDS:
                raise ConfigError(f"{where}.models[{j}].kind", f"unknown model kind {item['kind']!r}; known: {sorted(MODEL_KINDS)}")
            if item["kind"] == "classical" and item["classifier"] not in CLASSICAL_CLASSIFIERS:
                raise ConfigError(f"{where}.models[{j}].classifier",
                                  f"unknown classifier {item['classifier']!r}{_suggest(item['classifier'], CLASSICAL_CLASSIFIERS)}; "
                                  f"choose from {CLASSICAL_CLASSIFIERS}")
            fs = item["feature_set"]
            item["feature_set_name"] = fs if fs in task["feature_sets"] else fs
            item["feature_spec"] = task["feature_sets"].get(fs, fs)
            item["name"] = item["name"] or f"{fs}-{item['classifier']}"
            models.append(item)
    else:
        classifiers: list[str] = []
        for j, name in enumerate(task["classifiers"]):
            if name == "all":
                classifiers.extend(CLASSICAL_CLASSIFIERS)
            elif name in CLASSICAL_CLASSIFIERS:
                classifiers.append(name)
            else:
                raise ConfigError(f"{where}.classifiers[{j}]", f"unknown classifier {name!r}{_suggest(name, CLASSICAL_CLASSIFIERS)}; "
                                  f"choose from {CLASSICAL_CLASSIFIERS} or 'all'")
        if not task["feature_sets"] or not classifiers:
            raise ConfigError(where, "needs at least one feature set and one classifier (or a `models` list)")
        models = [{"name": f"{fs}-{clf}", "feature_set": fs, "feature_set_name": fs, "feature_spec": spec,
                   "classifier": clf, "kind": "classical", "options": {}}
                  for fs, spec in task["feature_sets"].items() for clf in dict.fromkeys(classifiers)]
    seen: set[str] = set()
    for j, item in enumerate(models):
        if not _NAME_RE.match(item["name"]):
            raise ConfigError(f"{where}.models[{j}].name", f"{item['name']!r} must be letters, digits, '_', '-', '.'")
        if item["name"] in seen:
            raise ConfigError(f"{where}.models[{j}].name", f"duplicate model name {item['name']!r}")
        seen.add(item["name"])
    if task["reference_model"] is not None and task["reference_model"] not in seen:
        raise ConfigError(f"{where}.reference_model", f"{task['reference_model']!r} is not one of the task's models {sorted(seen)}")
    return models


def _resolve(value: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (base_dir / path)


def shipped_configs() -> list[str]:
    """Names of the shipped study configs."""
    return sorted(p.name[: -len(".yaml")] for p in CONFIG_DIR.glob("*.yaml"))


def locate(config: str | os.PathLike[str]) -> Path:
    """A config path, or the shipped config of that name."""
    text = str(config)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise ConfigError(text, "config file does not exist")
        return path
    shipped = CONFIG_DIR / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(text, f"is neither a config file nor a shipped config (shipped: {shipped_configs()})")


def load_config(config: str | os.PathLike[str] | Mapping[str, Any], base_dir: str | os.PathLike[str] | None = None) -> StudyConfig:
    """Read (file, shipped name or mapping) and validate a study config; every problem names its key."""
    if isinstance(config, Mapping):
        raw: Any = dict(config)
        source = "<mapping>"
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        default_name = "study"
    else:
        path = locate(config)
        source = str(path.resolve())
        base = path.resolve().parent
        default_name = path.name.split(".")[0]
        import yaml

        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"cannot be read ({exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), f"is not valid YAML ({str(exc).splitlines()[0]})") from None
        if raw is None:
            raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "must be a mapping of keys (see `spinemets run --help`)")
    values = _merge("", SCHEMA, raw)
    values["name"] = values["name"] or default_name
    _check_semantics(values, base)
    return StudyConfig(values=values, source=source, base_dir=base)


def describe_schema(schema: Mapping[str, Key] = SCHEMA, prefix: str = "", markdown: bool = False) -> list[str]:
    """One line per key: path, default and meaning (for ``--help`` and the docs)."""
    lines: list[str] = []
    for name, key in schema.items():
        path = f"{prefix}.{name}" if prefix else name
        if key.kind == "section":
            lines.append(f"| `{path}` | section | {key.doc} |" if markdown else f"{path}: {key.doc}")
            lines.extend(describe_schema(key.children, path, markdown))
            continue
        default = "required" if key.required else json.dumps(key.default)
        lines.append(f"| `{path}` | {default} | {key.doc} |" if markdown else f"  {path} (default {default}): {key.doc}")
        if key.item is not None:
            lines.extend(describe_schema(key.item.children, f"{path}[]", markdown))
    return lines




from .studies import DEEP_KIND, STUDY_SECTION  # noqa: E402  (the four studies' section lives with their stages)

SCHEMA["study"] = STUDY_SECTION
MODEL_KINDS.setdefault("deep", DEEP_KIND)
