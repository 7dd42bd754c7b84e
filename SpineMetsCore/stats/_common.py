"""Input validation and small shared helpers for the statistics package.

Every statistic validates its inputs here so that bad data produce an error
naming the offending argument or column instead of a silent number.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "StatsInputError",
    "SingleClassError",
    "MissingValueError",
    "as_binary_truth",
    "as_score_array",
    "as_probability_array",
    "as_label_array",
    "check_same_length",
    "check_conf_level",
    "check_alternative",
    "require_both_classes",
    "sorted_labels",
    "json_safe",
]


class IntervalResult:
    """Mixin for result dataclasses with ``ci_low``/``ci_high``: the ``ci`` pair and a JSON-ready dict."""

    ci_low: float
    ci_high: float

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        d["ci"] = [self.ci_low, self.ci_high]
        return d


class StatsInputError(InputError):
    """Invalid input to a statistic; ``argument`` names the offending argument or column."""

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        super().__init__(argument, problem)


class SingleClassError(StatsInputError):
    """The truth has only one class (or too few of one class) for the statistic."""


class MissingValueError(StatsInputError):
    """A value is NaN/empty where the statistic needs a complete vector."""


ALTERNATIVES = ("two-sided", "greater", "less")


def check_alternative(alternative: str, name: str = "alternative") -> str:
    """Normalise R-style ('two.sided') and scipy-style ('two-sided') spellings."""
    alt = str(alternative).replace(".", "-").replace("_", "-").lower()
    if alt not in ALTERNATIVES:
        raise StatsInputError(name, f"must be one of {ALTERNATIVES}, got {alternative!r}")
    return alt


def check_conf_level(conf_level: float, name: str = "conf_level") -> float:
    """A confidence level strictly between 0 and 1."""
    try:
        level = float(conf_level)
    except (TypeError, ValueError):
        raise StatsInputError(name, f"must be a number in (0, 1), got {conf_level!r}") from None
    if not 0.0 < level < 1.0:
        raise StatsInputError(name, f"must be in (0, 1), got {conf_level!r}")
    return level


def _first_bad(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:5])
    more = "" if idx.size <= 5 else ", ..."
    return f"{idx.size} value(s) at position(s) {shown}{more}"


def as_score_array(values: Any, name: str, allow_inf: bool = False) -> np.ndarray:
    """A 1-D float array without NaN (and without +-inf unless ``allow_inf``)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise StatsInputError(name, "must be numeric") from None
    if arr.ndim != 1:
        raise StatsInputError(name, f"must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise StatsInputError(name, "is empty")
    nan = np.isnan(arr)
    if nan.any():
        raise MissingValueError(name, f"contains NaN/missing: {_first_bad(nan)}")
    if not allow_inf:
        inf = np.isinf(arr)
        if inf.any():
            raise StatsInputError(name, f"contains infinite values: {_first_bad(inf)}")
    return arr


def as_probability_array(values: Any, name: str) -> np.ndarray:
    """A 1-D float array of predicted probabilities, each in [0, 1]."""
    arr = as_score_array(values, name)
    bad = (arr < 0.0) | (arr > 1.0)
    if bad.any():
        raise StatsInputError(name, f"probabilities must lie in [0, 1]: {_first_bad(bad)}")
    return arr


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def as_label_array(values: Any, name: str) -> np.ndarray:
    """A 1-D object array of class labels without missing entries."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise StatsInputError(name, f"must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise StatsInputError(name, "is empty")
    missing = np.array([_is_missing(v) for v in arr], dtype=bool)
    if missing.any():
        raise MissingValueError(name, f"contains missing labels: {_first_bad(missing)}")
    return arr


def as_binary_truth(values: Any, name: str = "y_true", positive: Hashable | None = None) -> np.ndarray:
    """Boolean case indicator (True = case / event).

    With ``positive`` given, a row is a case when its label equals ``positive``
    (every other label is a control).  Without it the labels must already be
    0/1 or boolean, so that the event is never guessed silently.
    """
    labels = as_label_array(values, name)
    if positive is not None:
        if not any(_labels_equal(v, positive) for v in labels):
            raise StatsInputError(name, f"positive value {positive!r} does not occur in the truth")
        return np.array([_labels_equal(v, positive) for v in labels], dtype=bool)
    out = np.empty(labels.size, dtype=bool)
    for i, v in enumerate(labels):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise StatsInputError(
                name, f"labels must be 0/1 or boolean unless 'positive' is given; found {v!r}"
            ) from None
        if f not in (0.0, 1.0):
            raise StatsInputError(
                name, f"labels must be 0/1 or boolean unless 'positive' is given; found {v!r}"
            )
        out[i] = f == 1.0
    return out


def _labels_equal(a: Any, b: Any) -> bool:
    """Label equality that treats 1, 1.0, '1' and True alike (CSV round-trips)."""
    if a == b:
        return True
    return str(a).strip() == str(b).strip()


def require_both_classes(y: np.ndarray, name: str, minimum: int = 1) -> tuple[int, int]:
    """Number of cases and controls; raise SingleClassError if either is below ``minimum``."""
    n_cases = int(np.count_nonzero(y))
    n_controls = int(y.size - n_cases)
    if n_cases < minimum or n_controls < minimum:
        raise SingleClassError(
            name,
            f"needs at least {minimum} case(s) and {minimum} control(s); "
            f"got {n_cases} case(s) and {n_controls} control(s)",
        )
    return n_cases, n_controls


def check_same_length(**arrays: Sequence[Any] | np.ndarray) -> int:
    """All named arrays have the same length; returns it."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise StatsInputError(next(iter(lengths)), f"lengths differ ({detail})")
    return next(iter(lengths.values()))


def sorted_labels(values: Iterable[Any]) -> list[Any]:
    """Unique labels sorted numerically when all are numbers, else as strings.

    This mirrors R's ``levels(as.factor(x))`` ordering used by pROC and dcurves
    to pick the second level as the case/event by default.
    """
    uniq = list(dict.fromkeys(values))
    try:
        return sorted(uniq, key=lambda v: float(v))
    except (TypeError, ValueError):
        return sorted(uniq, key=lambda v: str(v))


def json_safe(obj: Any) -> Any:
    """Recursively convert numpy types to Python and non-finite floats to None.

    Strict JSON has no NaN/Infinity; a null makes the missing value explicit.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj
