"""The ``spinemets`` subcommands, one file per concern.

:data:`COMMANDS` is the one table of subcommands: the command file that defines
it and the one-line help shown by ``spinemets --help``. The command files are
imported only when one of their commands is dispatched (``--help`` of the whole
command imports none of them), so a light command never pays for pandas,
scikit-learn, torch or SHAP.

Each command file has ``register(subparsers)``, which adds its commands with
``help=COMMANDS[name].help``.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "phantom": Command("phantom", "write a synthetic multi-sequence spine MRI cohort + manifest.csv"),
    "demo": Command("demo", "run the end-to-end demo: a phantom cohort through `spinemets run --config demo`"),
    "run": Command("run", "run a whole study from a manifest: segment, features, train, evaluate, explain, report"),
    "segment": Command("segmentation", "segment a lesion (seeded region growing or a U-Net model package) into a .seg.nrrd"),
    "seg-metrics": Command(
        "segmentation", "Dice, Jaccard, HD95, mean surface distance and volume difference (or a reader study)"
    ),
    "train-seg": Command(
        "segmentation", "train a U-Net lesion segmentation model from a manifest CSV; writes a model package"
    ),
    "features": Command(
        "features", "extract radiomic, expert-derived and segmentation features of a cohort into one table"
    ),
    "stats": Command("statistics", "study statistics (DeLong, bootstrap, calibration, DCA, evaluate)"),
    "train": Command("models", "train a classifier (or all seven) and write a model package"),
    "predict": Command("models", "apply a model package: per-class probabilities and top-k labels"),
    "explain": Command("models", "SHAP explanation: global ranking, beeswarm, per-case waterfall"),
    "upgrade-model": Command("packages", "re-save an old model package in the current checksummed format"),
    "train-dl": Command("deep", "train a MONAI ResNet classifier (2-D slices or 3-D crops) from a manifest"),
    "predict-dl": Command("deep", "apply a deep classifier package: the same predictions table as 'predict'"),
    "deep-features": Command("deep", "penultimate-layer deep features per case (dl_000, ...) for fusion models"),
}


def command_help(name: str) -> str:
    """The one-line help of subcommand ``name`` (used by each command file's ``register``)."""
    return COMMANDS[name].help
