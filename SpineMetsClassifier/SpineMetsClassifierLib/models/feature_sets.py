"""Feature sets: which columns of a features table a model uses, chosen by name.

The studies compare models that differ only in their inputs (EDF model vs
radiomics, Rad-M vs CRad-M), so the feature set is one string on the command
line. Grammar: terms joined by ``+`` (or ``,``); the union of the terms, minus
the terms written with a leading ``-``, taken in table column order. A term is

===================  =========================================================
``edf``              the items of the shipped EDF schema
                     (:data:`SpineMetsCore.conventions.EDF_ITEMS`: age, sex,
                     region, level, n_involved_vertebrae, t1/t2/stir/t1ce_signal,
                     fracture, posterior_element_involvement,
                     soft_tissue_extension, extension_type, margin, pattern,
                     homogeneity) and columns starting ``edf_``; the
                     non-contrast form of seed 000 is ``edf+-t1ce_signal``
``clinical``         ``age``, ``sex`` and columns starting ``clinical_`` or ``clin_``
``radiomics``        PyRadiomics features as the features package names them:
                     ``<sequence>[-peri<N>mm]_<image type>_<class>_<feature>``
                     (image type ``original``, ``wavelet-LLH``, ``log-sigma-…``,
                     ``square``, …; class ``firstorder``, ``glcm``, …), lesion
                     shape ``shape_<feature>`` / ``shape2D_<feature>``, and
                     columns starting ``rad_``
``quantitative``     computed EDF counterparts ``q_*`` (signal ratios, height loss)
``segmentation``     segmentation features ``seg_*``
``deep``             deep-learning features: columns starting ``deep_`` or ``dl_``
``all``              every column except the id, label and split columns,
                     ``prov_*``, ``diagnostics_*`` and ``error``
``re:<regex>``       columns matching the regular expression (``re.search``)
``T2_original_*``    a shell-style pattern (``*``, ``?``, ``[...]``)
``@list.txt``        a file with one term per line (``#`` comments)
``age``              an exact column name (must exist)
``-<term>``          remove what ``<term>`` matches (e.g. ``radiomics+-T1CE_*``)
===================  =========================================================

Examples: ``edf`` (seed 000 EDF model), ``radiomics`` (Rad-M), ``radiomics+age``
(CRad-M), ``clinical+radiomics``, ``edf+T2_original_firstorder_*``,
``radiomics+-T1CE_*`` (non-contrast radiomics only).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from SpineMetsCore.conventions import EDF_ITEMS
from SpineMetsCore.errors import InputError

CLINICAL_ITEMS: tuple[str, ...] = ("age", "sex")

_RADIOMICS_TYPES = r"(original|wavelet(-[HL]{2,3})?|log-sigma-[0-9-]+mm-[23]D|square|squareroot|logarithm|exponential|gradient|lbp-[0-9A-Za-z-]+)"
_RADIOMICS_CLASSES = r"(firstorder|shape|shape2D|glcm|glrlm|glszm|gldm|ngtdm)"
RADIOMICS_RE = re.compile(rf"(^|_){_RADIOMICS_TYPES}_{_RADIOMICS_CLASSES}_[A-Za-z0-9]+$")
SHAPE_RE = re.compile(r"^shape(2D)?_[A-Za-z0-9]+$")
NEVER_FEATURES_PREFIXES = ("diagnostics_", "prov_")
NEVER_FEATURES = ("error",)


def _in_group(group: str, column: str) -> bool:
    if column.startswith(NEVER_FEATURES_PREFIXES) or column in NEVER_FEATURES:
        return False
    if group == "edf":
        return column in EDF_ITEMS or column.startswith("edf_")
    if group == "clinical":
        return column in CLINICAL_ITEMS or column.startswith(("clinical_", "clin_"))
    if group == "radiomics":
        return column.startswith("rad_") or bool(RADIOMICS_RE.search(column) or SHAPE_RE.match(column))
    if group == "quantitative":
        return column.startswith("q_")
    if group == "segmentation":
        return column.startswith("seg_")
    if group == "deep":
        return column.startswith(("deep_", "dl_"))
    if group == "all":
        return True
    raise KeyError(group)


GROUPS: tuple[str, ...] = ("edf", "clinical", "radiomics", "quantitative", "segmentation", "deep", "all")


def split_terms(spec: str) -> list[str]:
    """Terms of a feature-set string, with ``@file`` lists expanded."""
    terms: list[str] = []
    for raw in re.split(r"[+,]", spec):
        term = raw.strip()
        if not term:
            continue
        if term.startswith("@"):
            path = Path(term[1:])
            if not path.is_file():
                raise InputError("--feature-set", f"feature list file {path} not found")
            lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            terms.extend(split_terms("+".join(line for line in lines if line)))
        else:
            terms.append(term)
    if not terms:
        raise InputError("--feature-set", f"no feature terms in {spec!r}")
    return terms


def _matches(term: str, column: str) -> bool:
    if term.lower() in GROUPS:
        return _in_group(term.lower(), column)
    if term.startswith("re:"):
        return re.search(term[3:], column) is not None
    if any(ch in term for ch in "*?["):
        return fnmatch.fnmatchcase(column, term)
    return column == term


def select_features(spec: str | Sequence[str], columns: Iterable[str], exclude: Iterable[str] = (),
                    metadata: Iterable[str] = ()) -> list[str]:
    """Columns chosen by ``spec`` (a string or a list of terms), in table order, minus ``exclude``.

    ``metadata``: the table's non-feature columns (ids, labels, paths, manifest metadata, as its
    provenance lists them): ``all`` never selects them; a term that names them (``age``, ``edf``,
    ``clinical``, a pattern) does. Every term must match at least one column, so a typo in a
    column name or a radiomics table without the expected prefix is reported, not skipped.
    """
    terms = split_terms(spec) if isinstance(spec, str) else [t for s in spec for t in split_terms(s)]
    excluded = set(exclude)
    meta = set(metadata) - excluded
    if meta:
        named = {c for t in terms if not t.startswith("-") and t.lower() != "all" for c in meta if _matches(t, c)}
        excluded |= meta - named
    candidates = [str(c) for c in columns if str(c) not in excluded]
    chosen: set[str] = set()
    removed: set[str] = set()
    unmatched = []
    for raw in terms:
        negate = raw.startswith("-") and len(raw) > 1
        term = raw[1:] if negate else raw
        if term.startswith("re:"):
            try:
                re.compile(term[3:])
            except re.error as exc:
                raise InputError("--feature-set", f"bad regular expression {term!r} ({exc})") from None
        hits = [c for c in candidates if _matches(term, c)]
        if not hits:
            unmatched.append(raw)
        (removed if negate else chosen).update(hits)
    if unmatched:
        raise InputError("--feature-set", f"term(s) {unmatched} match no feature column "
                         f"(excluded: {sorted(excluded)}; columns: {candidates[:30]}{' ...' if len(candidates) > 30 else ''})")
    selected = [c for c in candidates if c in chosen and c not in removed]
    if not selected:
        raise InputError("--feature-set", f"{spec!r} leaves no feature column")
    return selected
