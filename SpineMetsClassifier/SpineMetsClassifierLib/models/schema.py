"""Feature schema: the columns a model takes, in order, with their types.

The schema is inferred from the training table, written into ``model.json`` and
checked on every prediction, so a features row produced by another tool (or an
older version of ours) fails loudly, naming the columns, instead of being
silently mis-aligned. The same coercion runs at training and at inference, so a
category read as ``1`` from one CSV and ``1.0`` from another is the same value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from SpineMetsCore.conventions import pandas_na_values
from SpineMetsCore.errors import InputError

logger = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"

NA_VALUES: tuple[str, ...] = tuple(pandas_na_values())
"""Cells read as missing (the project's tokens, :data:`SpineMetsCore.conventions.MISSING_VALUES`).
``none``/``None`` are *not* missing: ``none`` is an EDF category (lesion-free case) and must
stay a category."""


class FeatureMismatchError(InputError):
    """A features table does not match the model's schema (missing/extra columns, wrong types)."""


@dataclass(frozen=True)
class FeatureSpec:
    """One input column of a model."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == CATEGORICAL:
            out["categories"] = list(self.categories)
        return out


def as_text(value: Any) -> Any:
    """Category value as text; missing stays NaN; ``1.0`` becomes ``"1"`` so CSV round trips agree."""
    if value is None:
        return np.nan
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return np.nan
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    text = str(value).strip()
    return np.nan if text in NA_VALUES else text


def text_values(series: pd.Series) -> np.ndarray:
    """Column as an object array of category text (NaN when missing).

    :func:`as_text` runs once per distinct value (``pandas.factorize``), so a
    2000-row column costs what its handful of categories cost.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = np.array([as_text(u) for u in uniques] + [np.nan], dtype=object)
    return mapped[codes]


def _is_missing(series: pd.Series) -> np.ndarray:
    return pd.isna(text_values(series))


def _numeric_values(series: pd.Series) -> tuple[np.ndarray, list[tuple[int, Any]]]:
    """Float values and the (row, value) cells that are present but not numbers."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float), []
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float), []
    missing = _is_missing(series)
    values = pd.to_numeric(series.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = [(i, series.iloc[i]) for i in np.flatnonzero(~missing & np.isnan(values))]
    return values, bad


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered feature columns with their types (and categories seen in training)."""

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == NUMERIC]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == CATEGORICAL]

    def spec(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @classmethod
    def infer(cls, frame: pd.DataFrame, columns: Sequence[str]) -> FeatureSchema:
        """Numeric if every present value parses as a number (booleans are categories)."""
        specs = []
        empty = []
        for name in columns:
            series = frame[name]
            if pd.isna(text_values(series)).all():
                empty.append(name)
                continue
            numeric = not pd.api.types.is_bool_dtype(series) and not _numeric_values(series)[1]
            if numeric:
                specs.append(FeatureSpec(name, NUMERIC))
            else:
                cats = sorted({v for v in pd.unique(text_values(series)) if isinstance(v, str)})
                specs.append(FeatureSpec(name, CATEGORICAL, tuple(cats)))
        if empty:
            raise InputError("features", f"column(s) without any value cannot be used as features: {empty}")
        return cls(tuple(specs))

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.features]

    @classmethod
    def from_json(cls, items: Iterable[Mapping[str, Any]]) -> FeatureSchema:
        specs = []
        for item in items:
            kind = item.get("type")
            if kind not in (NUMERIC, CATEGORICAL) or not isinstance(item.get("name"), str):
                raise InputError("model.json", f"bad feature entry {dict(item)!r}")
            specs.append(FeatureSpec(item["name"], kind, tuple(str(c) for c in item.get("categories", ()))))
        return cls(tuple(specs))

    def coerce(
        self,
        frame: pd.DataFrame,
        *,
        allowed_extra: Iterable[str] = (),
        ignore_extra: bool = False,
        unseen: str = "warn",
        what: str = "features",
    ) -> pd.DataFrame:
        """The model's columns in order: numeric as float, categories as text, missing as NaN.

        Raises :class:`FeatureMismatchError` naming every missing, unexpected or
        wrongly typed column, all at once. A category value never seen in
        training (``unseen``) is logged (``"warn"``), rejected (``"error"``) or
        passed silently (``"ignore"``); the model encodes it as "none of the known
        categories", which is right for, say, a vertebral level absent from a
        small cohort but wrong for a typo, hence the warning naming it.
        """
        if unseen not in ("warn", "error", "ignore"):
            raise ValueError(f"unseen must be 'warn', 'error' or 'ignore', got {unseen!r}")
        allowed = set(allowed_extra)
        missing = [n for n in self.names if n not in frame.columns]
        extra = [str(c) for c in frame.columns if c not in set(self.names) and c not in allowed]
        problems = []
        if missing:
            problems.append(f"missing column(s) {missing[:20]}" + (f" ... ({len(missing)} in all)" if len(missing) > 20 else ""))
        if extra and not ignore_extra:
            shown = str(extra[:10]) + (f" ... ({len(extra)} in all)" if len(extra) > 10 else "")
            problems.append(f"unexpected column(s) {shown}: not features of this model (drop them, give the table's "
                            "provenance file that lists its non-feature columns, or pass --ignore-extra-columns)")
        if problems:
            expects = str(self.names[:15]) + (f" ... ({len(self.names)} in all)" if len(self.names) > 15 else "")
            raise FeatureMismatchError(what, "; ".join(problems) + f"; the model expects {expects}")
        out: dict[str, Any] = {}
        type_errors = []
        for spec in self.features:
            series = frame[spec.name]
            if spec.kind == NUMERIC:
                values, bad = _numeric_values(series)
                if bad:
                    row, value = bad[0]
                    type_errors.append(f"column '{spec.name}' expects numbers, got {value!r} (row {row + 1}"
                                       f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''})")
                out[spec.name] = values
            else:
                text = text_values(series)
                if unseen != "ignore":
                    known = set(spec.categories)
                    new = sorted({v for v in pd.unique(text) if isinstance(v, str) and v not in known})
                    if new:
                        message = (f"column '{spec.name}' has value(s) {new} never seen in training "
                                   f"(known: {list(spec.categories)})")
                        if unseen == "error":
                            type_errors.append(message)
                        else:
                            logger.warning("%s: %s", what, message)
                out[spec.name] = text
        if type_errors:
            raise FeatureMismatchError(what, "; ".join(type_errors))
        return pd.DataFrame(out, index=frame.index, columns=self.names)


def read_feature_table(path: str | os.PathLike[str], text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a features CSV; ``text_columns`` (ids, labels) are kept as text exactly as written."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(path), "file not found")
    dtypes = {c: str for c in text_columns if c}
    try:
        frame = pd.read_csv(p, keep_default_na=False, na_values=list(NA_VALUES), dtype=dtypes)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(path), f"cannot read CSV ({exc})") from None
    if frame.empty:
        raise InputError(str(path), "has no data rows")
    duplicated = [str(c) for c in frame.columns[frame.columns.duplicated()]]
    if duplicated:
        raise InputError(str(path), f"duplicate column name(s) {duplicated}")
    return frame
