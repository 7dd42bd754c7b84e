"""The U-Net background process: images in, labelmap out, progress as JSON lines.

Desktop Slicer starts it with ``PythonSlicer -m SpineMetsSegmentLib.unet.worker``
(see :mod:`SpineMetsSegmentLib.unet.job`). PythonSlicer is not the application:
it has no ``slicer.app``, no module logics and no Qt, so this process is MRML-free
by design. It imports SimpleITK, numpy, torch, MONAI and safetensors (through the
package loader and inference) and nothing else that Slicer does not bundle: no
``slicer``, no pandas, no tqdm.

Protocol (one JSON object per stdout line, flushed as it happens)::

    {"event": "start", "model": ..., "device": ..., "inputs": [...]}
    {"event": "progress", "done": 3, "total": 12, "fraction": 0.25}
    {"event": "done", "labelmap": ".../labelmap.nii.gz", "labels": [{"value": 1, "name": ..., "color": [...]}],
     "synthetic_training_data": true, "seconds": 1.9}
    {"event": "error", "error": "InputError", "message": ...}        (then exit code 1)

Logging goes to stderr. The labelmap is written atomically, so a cancelled run
never leaves a half-written file that the parent could import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from SpineMetsCore.errors import InputError, SpineMetsError

logger = logging.getLogger(__name__)

LABELMAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")


def emit(stream: TextIO, event: str, **fields: Any) -> None:
    """Write one protocol line and flush (the parent reads line by line)."""
    stream.write(json.dumps({"event": event, **fields}) + "\n")
    stream.flush()


def parse_image_args(values: Sequence[str]) -> dict[str, Path]:
    """``SEQ=PATH`` arguments to a mapping; errors name the bad argument."""
    images: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--image {value}", "expected SEQUENCE=PATH, e.g. T1=t1.nrrd")
        if name in images:
            raise InputError(f"--image {value}", f"sequence '{name}' given twice")
        images[name] = Path(path)
    return images


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m SpineMetsSegmentLib.unet.worker",
        description="Segment one case with a U-Net model package; progress as JSON lines on stdout.",
    )
    parser.add_argument("--image", action="append", required=True, metavar="SEQ=PATH", help="input sequence (repeat)")
    parser.add_argument("--model", required=True, help="model package: folder or .zip (model.json + weights.safetensors)")
    parser.add_argument("--out", required=True, help=f"labelmap to write ({', '.join(LABELMAP_SUFFIXES)})")
    parser.add_argument("--force-cpu", action="store_true", help="run on the CPU even when CUDA is available")
    return parser


def run(
    images: dict[str, Path],
    model: str,
    out: Path,
    force_cpu: bool = False,
    stream: TextIO = sys.stdout,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Segment and write the labelmap; returns the ``done`` event's fields."""
    import SimpleITK as sitk

    from SpineMetsCore.dataio import read_image
    from SpineMetsCore.fileio import atomic_path

    from ..logic import match_sequences
    from .inference import segment_images, select_device
    from .package import load_model_package

    started = clock()
    if not str(out).lower().endswith(LABELMAP_SUFFIXES):
        raise InputError(f"--out {out}", f"a labelmap file must end with one of {LABELMAP_SUFFIXES}")
    package = load_model_package(model)
    chosen = match_sequences(package.input_sequences, list(images), f"model '{model}'")
    loaded = {seq: read_image(images[given]) for seq, given in chosen.items()}
    emit(stream, "start", model=package.name, device=str(select_device(force_cpu)), inputs=list(chosen.values()))

    def progress(done: int, total: int) -> None:
        emit(stream, "progress", done=int(done), total=int(total), fraction=round(done / max(total, 1), 4))

    labelmap = segment_images(loaded, package, force_cpu=force_cpu, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sitk.WriteImage(labelmap, str(tmp), True)
    fields = {
        "labelmap": str(out),
        "labels": package.labels,
        "model": package.name,
        "synthetic_training_data": bool(package.synthetic_training_data),
        "seconds": round(clock() - started, 3),
    }
    emit(stream, "done", **fields)
    return fields


def main(argv: Sequence[str] | None = None, stream: TextIO = sys.stdout) -> int:
    """Entry point; exit code 0 on success, 1 on an error (reported as an ``error`` line)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        run(parse_image_args(args.image), args.model, Path(args.out), args.force_cpu, stream)
    except (SpineMetsError, OSError, ImportError) as exc:
        emit(stream, "error", error=type(exc).__name__, message=str(exc))
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    # First of all, as a process: die with the process that started us (a killed
    # Slicer must not leave a worker holding a network and a volume in memory).
    from SpineMetsCore.processes import die_with_starter

    die_with_starter()
    sys.exit(main())
