"""The hidden-label rules of the phantom: who the patient is and how the lesion looks.

This file is documentation for researchers as much as code. Every number that ties
the hidden primary site to something observable is in a table below, and nothing
else in the phantom looks at the site. The rules are *loosely* modelled on the
radiology literature on spinal metastases (and on the cohort of the primary-site
study, J Magn Reson Imaging 2025, doi 10.1002/jmri.29720); they are plausible, not
clinically calibrated. Data generated from them is synthetic and must never be used
to claim clinical performance.

Signal classes are relative to *normal vertebral marrow of the same case* in the same
sequence, measured as the ratio of mean lesion signal to mean normal-marrow signal
(the classes and thresholds are the project's conventions, :mod:`SpineMetsCore.conventions`):

==========  =================================
class       lesion / normal-marrow mean ratio
==========  =================================
``hypo``    < 0.85
``iso``     0.85 .. 1.15
``hyper``   > 1.15
==========  =================================

The generator draws a class for each sequence, then a target ratio well inside that
class (``TARGET_RATIO``), and scales the lesion so that the noise-free mean over the
ground-truth mask hits the target; noise, bias field and partial volume then move the
measured ratio only a little. The ``T1CE`` sequence is a fat-suppressed contrast T1,
so normal fatty marrow is dark and enhancing lesions are bright: every lytic or mixed
deposit enhances (avidly for kidney, thyroid and liver), dense sclerosis does not.
Sclerotic deposits are darker than discs on T1 (ratio 0.12-0.28).

Site rules in brief (the tables below are the full truth):

=============  ========  ===========================  ===================================
site           sex       pattern                      typical appearance
=============  ========  ===========================  ===================================
lung           68 % M    lytic 75 %                   T1 hypo, T2/STIR hyper, fracture
                                                      55 %, soft-tissue extension 50 %
breast         ~all F    lytic 40 / sclerotic 25 /    multiple levels, T2 variable
                         mixed 35 %
prostate       all M     sclerotic 70 %               dark on all sequences, no
                                                      enhancement, oldest, fracture 5 %
kidney         70 % M    lytic 95 %                   hypervascular: avid T1CE, T1 often
                                                      iso/hyper, solitary, expansile
thyroid        30 % M    lytic 95 %                   hypervascular, T1 iso/hyper,
                                                      solitary, younger
liver          80 % M    lytic 90 %                   hypervascular, soft-tissue mass
other          55 % M    lytic 65 %                   nonspecific; T1 hyper 15 % (melanoma)
primary_bone   55 % M    lytic 70 %                   solitary, younger, T2 markedly
                                                      hyper, soft-tissue mass 70 %
=============  ========  ===========================  ===================================

Expert-derived features (EDF) are recorded for the *index lesion* (the largest, mask
label 1). ``INFORMATIVE_EDF`` lists the items whose distribution depends on the site
(``DERIVED_EDF``, a subset, only through the pattern); ``NOISE_EDF`` items are drawn
from one site-independent distribution (pure noise). The two lists partition
``EDF_ITEMS``, the items of the shipped EDF schema (:data:`SpineMetsCore.conventions.EDF_ITEMS`).
The accuracies below were measured on the 14 non-contrast items. With the default prevalences a classifier on the EDF reaches roughly
0.60 top-1 / 0.89 top-3 accuracy (5-fold, 3000 records) against a majority
baseline of 0.33 / 0.62.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from SpineMetsCore.conventions import NO_LESION, SEQUENCES, SIGNAL_CLASSES

# --------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------
SITES: tuple[str, ...] = ("lung", "breast", "kidney", "prostate", "thyroid", "liver", "other")
PRIMARY_BONE = "primary_bone"
"""Site value of cases generated as a primary malignant bone tumour (not in ``SITES``)."""
ALL_SITES: tuple[str, ...] = (*SITES, PRIMARY_BONE)
TUMOUR_CLASSES: tuple[str, ...] = ("metastasis", "primary_bone_tumour")

PATTERNS: tuple[str, ...] = ("lytic", "sclerotic", "mixed")
MARGINS: tuple[str, ...] = ("well-defined", "ill-defined")
HOMOGENEITY: tuple[str, ...] = ("homogeneous", "heterogeneous")
REGIONS: tuple[str, ...] = ("cervical", "thoracic", "lumbar")
EXTENSIONS: tuple[str, ...] = ("none", "epidural", "paraspinal", "both")
YES_NO: tuple[str, ...] = ("no", "yes")
SEXES: tuple[str, ...] = ("F", "M")
NONE = NO_LESION
"""EDF value of lesion items in a lesion-free case."""


# --------------------------------------------------------------------------------------
# EDF items (column names of the record / manifest) and what drives them
# --------------------------------------------------------------------------------------
INFORMATIVE_EDF: tuple[str, ...] = (
    "sex",
    "age",
    "t1_signal",
    "fracture",
    "pattern",
    "n_involved_vertebrae",
    "soft_tissue_extension",
    "t2_signal",
    "stir_signal",
    "t1ce_signal",
    "extension_type",
)
"""Items whose distribution depends on the site (a classifier should rank them high)."""
DERIVED_EDF: tuple[str, ...] = ("t2_signal", "stir_signal")
"""The informative items that depend on the site only through ``pattern`` (redundant
with it, so a model may rank them below ``pattern``)."""
NOISE_EDF: tuple[str, ...] = (
    "region",
    "level",
    "posterior_element_involvement",
    "margin",
    "homogeneity",
)
"""Items drawn identically for every site: pure noise for the site task."""
INFORMATIVE_FOR_TUMOUR_CLASS: tuple[str, ...] = (
    "age",
    "n_involved_vertebrae",
    "soft_tissue_extension",
    "t2_signal",
)
"""Items that separate primary bone tumours from metastases."""
CATEGORICAL_EDF: dict[str, tuple[str, ...]] = {
    "sex": SEXES,
    "region": REGIONS,
    "t1_signal": (*SIGNAL_CLASSES, NONE),
    "t2_signal": (*SIGNAL_CLASSES, NONE),
    "stir_signal": (*SIGNAL_CLASSES, NONE),
    "t1ce_signal": (*SIGNAL_CLASSES, NONE),
    "fracture": YES_NO,
    "posterior_element_involvement": (*YES_NO, NONE),
    "soft_tissue_extension": (*YES_NO, NONE),
    "extension_type": EXTENSIONS,
    "margin": (*MARGINS, NONE),
    "pattern": (*PATTERNS, NONE),
    "homogeneity": (*HOMOGENEITY, NONE),
}
"""Allowed values of categorical EDF items (``level`` is a level name, e.g. ``L3``)."""

# --------------------------------------------------------------------------------------
# Patient: prevalence, age, sex (loosely like the primary-site study: mean age ~59,
# ~57 % male, lung most common)
# --------------------------------------------------------------------------------------
SITE_PREVALENCE: dict[str, float] = {
    "lung": 0.34,
    "breast": 0.16,
    "kidney": 0.10,
    "prostate": 0.12,
    "thyroid": 0.07,
    "liver": 0.07,
    "other": 0.14,
}
AGE_MEAN_SD: dict[str, tuple[float, float]] = {
    "lung": (62.0, 9.0),
    "breast": (53.0, 10.0),
    "kidney": (60.0, 10.0),
    "prostate": (70.0, 7.0),
    "thyroid": (51.0, 13.0),
    "liver": (56.0, 10.0),
    "other": (58.0, 13.0),
    PRIMARY_BONE: (44.0, 17.0),
}
AGE_RANGE: tuple[int, int] = (18, 90)
P_MALE: dict[str, float] = {
    "lung": 0.68,
    "breast": 0.01,
    "kidney": 0.70,
    "prostate": 1.00,
    "thyroid": 0.30,
    "liver": 0.80,
    "other": 0.55,
    PRIMARY_BONE: 0.55,
}

# --------------------------------------------------------------------------------------
# Lesion-level rules
# --------------------------------------------------------------------------------------
N_LESIONS_PROBS: dict[str, tuple[float, float, float]] = {
    # P(1, 2, 3 involved vertebrae in the field of view)
    "lung": (0.40, 0.35, 0.25),
    "breast": (0.25, 0.35, 0.40),
    "kidney": (0.80, 0.15, 0.05),
    "prostate": (0.20, 0.35, 0.45),
    "thyroid": (0.75, 0.20, 0.05),
    "liver": (0.60, 0.30, 0.10),
    "other": (0.50, 0.30, 0.20),
    PRIMARY_BONE: (1.00, 0.00, 0.00),  # solitary by definition
}
PATTERN_PROBS: dict[str, tuple[float, float, float]] = {
    # P(lytic, sclerotic, mixed)
    "lung": (0.75, 0.05, 0.20),
    "breast": (0.40, 0.25, 0.35),
    "kidney": (0.95, 0.00, 0.05),
    "prostate": (0.10, 0.70, 0.20),
    "thyroid": (0.95, 0.00, 0.05),
    "liver": (0.90, 0.02, 0.08),
    "other": (0.65, 0.10, 0.25),
    PRIMARY_BONE: (0.70, 0.10, 0.20),
}
SAME_PATTERN_PROB = 0.7
"""Secondary lesions copy the index lesion's pattern with this probability."""

T1_PROBS_LYTIC: dict[str, tuple[float, float, float]] = {
    # P(hypo, iso, hyper) on T1 for lytic lesions: hypervascular/haemorrhagic kidney and
    # thyroid (and liver) deposits are often T1-iso or -hyper; melanoma ("other") can be
    # T1-hyper. T1 signal is the strongest imaging sign of the site, as in the study.
    "lung": (0.95, 0.05, 0.00),
    "breast": (0.88, 0.12, 0.00),
    "kidney": (0.30, 0.50, 0.20),
    "prostate": (0.90, 0.10, 0.00),
    "thyroid": (0.35, 0.50, 0.15),
    "liver": (0.60, 0.35, 0.05),
    "other": (0.70, 0.15, 0.15),
    PRIMARY_BONE: (0.85, 0.15, 0.00),
}
T1_PROBS_BY_PATTERN: dict[str, tuple[float, float, float]] = {
    "sclerotic": (1.00, 0.00, 0.00),  # mineralised matrix: T1-hypo always
    "mixed": (0.85, 0.15, 0.00),
}
T2_PROBS: dict[str, tuple[float, float, float]] = {
    # P(hypo, iso, hyper) on T2, by pattern (site-independent except primary bone)
    "lytic": (0.03, 0.22, 0.75),
    "sclerotic": (0.85, 0.15, 0.00),
    "mixed": (0.30, 0.40, 0.30),
}
T2_PROBS_PRIMARY_LYTIC: tuple[float, float, float] = (0.00, 0.05, 0.95)
"""Chondroid/notochordal primaries are markedly T2-hyper."""
STIR_PROBS: dict[str, tuple[float, float, float]] = {
    "lytic": (0.00, 0.05, 0.95),
    "sclerotic": (0.70, 0.30, 0.00),
    "mixed": (0.10, 0.30, 0.60),
}
T1CE_PROBS: dict[str, tuple[float, float, float]] = {
    # fat-suppressed post-contrast T1; normal marrow is dark. Non-sclerotic deposits
    # enhance; dense sclerosis does not.
    "lytic": (0.00, 0.00, 1.00),
    "sclerotic": (0.40, 0.60, 0.00),
    "mixed": (0.00, 0.00, 1.00),
}
HYPERVASCULAR_SITES: tuple[str, ...] = ("kidney", "thyroid", "liver")
"""Lytic/mixed deposits of these sites always enhance, and avidly (T1CE ratio 3-4.5)."""

P_FRACTURE: dict[str, float] = {
    # pathological fracture (height loss) of the index vertebra
    "lung": 0.55,
    "breast": 0.30,
    "kidney": 0.40,
    "prostate": 0.05,
    "thyroid": 0.20,
    "liver": 0.45,
    "other": 0.30,
    PRIMARY_BONE: 0.25,
}
P_SOFT_TISSUE: dict[str, float] = {
    # epidural and/or paraspinal extension of the index lesion
    "lung": 0.50,
    "breast": 0.20,
    "kidney": 0.60,
    "prostate": 0.10,
    "thyroid": 0.45,
    "liver": 0.65,
    "other": 0.35,
    PRIMARY_BONE: 0.70,
}
EXTENSION_TYPE_PROBS: tuple[float, float, float] = (0.45, 0.35, 0.20)
"""P(epidural, paraspinal, both) when a lesion extends (site-independent)."""

# Pure-noise items: one distribution for every site.
REGION_PROBS: tuple[float, float, float] = (0.10, 0.50, 0.40)
P_POSTERIOR_ELEMENTS = 0.35
P_ILL_DEFINED = 0.40
P_HETEROGENEOUS = 0.55

LESION_DIAMETER_MM: dict[str, tuple[float, float]] = {
    "metastasis": (10.0, 28.0),
    "primary_bone_tumour": (18.0, 32.0),
}

TARGET_RATIO: dict[str, dict[str, tuple[float, float]]] = {
    # uniform range of the noise-free lesion/marrow mean ratio for each class
    "T1": {"hypo": (0.35, 0.65), "iso": (0.95, 1.05), "hyper": (1.28, 1.50)},
    "T2": {"hypo": (0.40, 0.68), "iso": (0.95, 1.05), "hyper": (1.40, 2.00)},
    "STIR": {"hypo": (0.40, 0.68), "iso": (0.95, 1.05), "hyper": (2.00, 4.50)},
    "T1CE": {"hypo": (0.45, 0.70), "iso": (0.95, 1.05), "hyper": (1.80, 3.00)},
}
SCLEROTIC_HYPO_RATIO: dict[str, tuple[float, float]] = {
    # dense mineralised matrix is nearly signal-free, darker than discs and CSF on T1
    "T1": (0.12, 0.28), "T2": (0.15, 0.35), "STIR": (0.25, 0.50), "T1CE": (0.30, 0.55),
}
AVID_T1CE_RATIO: tuple[float, float] = (3.0, 4.5)
MARKED_T2_RATIO: tuple[float, float] = (1.8, 2.4)

FOCUS_FACTORS: dict[str, dict[str, float]] = {
    # multiplicative signal of internal foci relative to the lesion matrix
    "necrotic": {"T1": 0.85, "T2": 1.4, "STIR": 1.35, "T1CE": 0.45},  # in lytic lesions
    "sclerotic": {"T1": 0.5, "T2": 0.5, "STIR": 0.55, "T1CE": 0.55},  # in mixed/sclerotic
}


def choose(rng: np.random.Generator, values: Sequence[str], probs: Sequence[float]) -> str:
    """One of ``values`` with (unnormalised) probabilities ``probs``."""
    p = np.asarray(probs, dtype=float)
    return str(values[int(rng.choice(len(values), p=p / p.sum()))])


def sample_site(rng: np.random.Generator, prevalence: Mapping[str, float], primary_fraction: float) -> str:
    """Hidden label: primary bone tumour with ``primary_fraction``, else a metastatic site."""
    if rng.random() < primary_fraction:
        return PRIMARY_BONE
    return choose(rng, SITES, [prevalence.get(s, 0.0) for s in SITES])


def sample_patient(rng: np.random.Generator, site: str) -> tuple[int, str]:
    """Age (years, integer) and sex from the site's distributions."""
    mean, sd = AGE_MEAN_SD[site]
    age = int(np.clip(round(rng.normal(mean, sd)), *AGE_RANGE))
    sex = "M" if rng.random() < P_MALE[site] else "F"
    return age, sex


def sample_n_lesions(rng: np.random.Generator, site: str) -> int:
    return 1 + int(rng.choice(3, p=N_LESIONS_PROBS[site]))


def sample_pattern(rng: np.random.Generator, site: str) -> str:
    return choose(rng, PATTERNS, PATTERN_PROBS[site])


def sample_signals(rng: np.random.Generator, site: str, pattern: str) -> tuple[dict[str, str], dict[str, float]]:
    """Per-sequence signal class and noise-free target ratio of one lesion."""
    if pattern == "lytic":
        t1p = T1_PROBS_LYTIC[site]
    else:
        t1p = T1_PROBS_BY_PATTERN[pattern]
    t2p = T2_PROBS_PRIMARY_LYTIC if (site == PRIMARY_BONE and pattern == "lytic") else T2_PROBS[pattern]
    hypervascular = site in HYPERVASCULAR_SITES and pattern != "sclerotic"
    t1cep = (0.0, 0.0, 1.0) if hypervascular else T1CE_PROBS[pattern]
    classes = {
        "T1": choose(rng, SIGNAL_CLASSES, t1p),
        "T2": choose(rng, SIGNAL_CLASSES, t2p),
        "STIR": choose(rng, SIGNAL_CLASSES, STIR_PROBS[pattern]),
        "T1CE": choose(rng, SIGNAL_CLASSES, t1cep),
    }
    if all(c == "iso" for c in classes.values()):
        classes["T1"] = "hypo"  # every lesion must be visible in at least one sequence
    ratios: dict[str, float] = {}
    for seq in SEQUENCES:
        low, high = TARGET_RATIO[seq][classes[seq]]
        if seq == "T1CE" and hypervascular:
            low, high = AVID_T1CE_RATIO
        elif seq == "T2" and site == PRIMARY_BONE and classes[seq] == "hyper":
            low, high = MARKED_T2_RATIO
        elif pattern == "sclerotic" and classes[seq] == "hypo":
            low, high = SCLEROTIC_HYPO_RATIO[seq]
        ratios[seq] = float(rng.uniform(low, high))
    return classes, ratios


def sample_extension(rng: np.random.Generator, site: str, scale: float = 1.0) -> str:
    """Soft-tissue extension type ('none' or a direction); secondary lesions use ``scale=0.5``."""
    if rng.random() >= scale * P_SOFT_TISSUE[site]:
        return "none"
    return choose(rng, EXTENSIONS[1:], EXTENSION_TYPE_PROBS)


def sample_region(rng: np.random.Generator) -> str:
    return choose(rng, REGIONS, REGION_PROBS)
