"""Synthetic multi-sequence spine MRI phantom: the test, demo and benchmark data.

No patient data of the studies SpineMets reproduces is public, so this generator
makes sagittal T1 / T2 / STIR / contrast-T1 studies of a cervical, thoracic or lumbar
segment with 0-3 lesions whose appearance follows a hidden label (primary site, or a
primary bone tumour), plus clinical variables, expert-derived features, lesion and
anatomy label maps. Everything is deterministic from a seed. Data from it is
synthetic: a model trained on it says nothing about patients.

Quick use::

    from SpineMetsPhantom import generate_case, write_cohort
    case = generate_case(seed=7)                  # in memory, SimpleITK images
    manifest = write_cohort("out", n_cases=20, seed=0)

Module map: :mod:`.signal_rules` (site -> appearance and EDF rules, read this first),
:mod:`.anatomy` (normal anatomy and tissue signals), :mod:`.lesions` (lesion shape and
texture), :mod:`.noise` (texture fields, bias, Rician noise), :mod:`.realism` (what
makes real MRI hard to segment: coil bias, blur, heterogeneous lesions, oedema; on by
default since version 2), :mod:`.geometry` (grid
and LPS convention), :mod:`.plan` (all random choices of a case, record-only path),
:mod:`.case` (image formation), :mod:`.cohort` (files and manifest).
"""

from SpineMetsCore.conventions import ANATOMY_LABELS, EDF_ITEMS, SEQUENCES, SIGNAL_THRESHOLDS, signal_class

from .anatomy import BACKGROUND, CANAL, DISC, MUSCLE, NORMAL_MARROW, POSTERIOR_ELEMENTS, VERTEBRAL_BODY
from .case import LesionInfo, PhantomCase, generate_case
from .cohort import FORMATS, MANIFEST_COLUMNS, case_seed, sample_records, write_case, write_cohort
from .config import CENTRES, PhantomConfig
from .geometry import SAGITTAL_DIRECTION
from .plan import PHANTOM_VERSION, RECORD_COLUMNS, sample_record
from .signal_rules import (
    ALL_SITES,
    CATEGORICAL_EDF,
    DERIVED_EDF,
    INFORMATIVE_EDF,
    INFORMATIVE_FOR_TUMOUR_CLASS,
    NOISE_EDF,
    PRIMARY_BONE,
    SITE_PREVALENCE,
    SITES,
)

__all__ = [
    "ALL_SITES", "ANATOMY_LABELS", "BACKGROUND", "CANAL", "CATEGORICAL_EDF", "CENTRES", "DERIVED_EDF", "DISC",
    "EDF_ITEMS", "FORMATS", "INFORMATIVE_EDF", "INFORMATIVE_FOR_TUMOUR_CLASS", "LesionInfo", "MANIFEST_COLUMNS",
    "MUSCLE", "NOISE_EDF", "NORMAL_MARROW", "PHANTOM_VERSION", "POSTERIOR_ELEMENTS", "PRIMARY_BONE", "PhantomCase",
    "PhantomConfig", "RECORD_COLUMNS", "SAGITTAL_DIRECTION", "SEQUENCES", "SIGNAL_THRESHOLDS", "SITES",
    "SITE_PREVALENCE", "VERTEBRAL_BODY", "case_seed", "generate_case", "sample_record", "sample_records",
    "signal_class", "write_case", "write_cohort",
]
