"""Bad-input corpus for SpineMets, generated at test time from a tiny phantom (nothing large committed).

:func:`build_corpus` writes, under one folder, a small phantom cohort and every
kind of broken input a user sends us: damaged image files, images that read
but mean nothing, broken masks, spreadsheet accidents in manifests and feature
tables, outputs that exist or cannot be written. :func:`run_batch` drives many
``spinemets`` invocations through the CLI entry point in one interpreter (so
the corpus runs in seconds, not one Python start-up per case), capturing each
invocation's own stdout/stderr at the file-descriptor level, so raw C++/VTK
output would be caught too. Run as ``python badinputs.py batch IN.json OUT.json``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import sys
import tempfile
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

TRACEBACK = "Traceback (most recent call last)"
PHANTOM_SIZE = (32, 40, 10)


@dataclass
class Invocation:
    """One CLI call of the corpus and what it must produce."""

    name: str
    argv: list[str]
    expect_in_stderr: list[str]
    """Substrings the error output must contain (the input's name, the reason)."""
    exit_codes: tuple[int, ...] = (2,)
    guarded: list[str] = field(default_factory=list)
    """Files/folders that must be byte-identical afterwards (or still absent)."""


def digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, of every file in a folder, or 'absent'."""
    p = Path(path)
    if not p.exists():
        return "absent"
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        h.update(str(f.relative_to(p)).encode())
        if f.is_file():
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# ----------------------------------------------------------------------------------
# Corpus files
# ----------------------------------------------------------------------------------
def make_cohort(folder: Path, cases: int = 2, seed: int = 5) -> Path:
    from SpineMetsPhantom import PhantomConfig, write_cohort

    return write_cohort(folder, n_cases=cases, seed=seed, config=PhantomConfig(size=PHANTOM_SIZE), fmt="nii.gz")


def _like(reference: sitk.Image, array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def _truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def bad_images(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Broken intensity images: name -> (path, a phrase the error must contain)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.ReadImage(str(good))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    out: dict[str, tuple[Path, str]] = {}

    def write(name: str, img: sitk.Image, compress: bool = True) -> Path:
        path = folder / name
        sitk.WriteImage(img, str(path), compress)
        return path

    full_gz = write("full.nii.gz", image)
    out["truncated_nii_gz"] = (_truncate(full_gz, folder / "truncated.nii.gz"), "truncated")
    full_nii = write("full.nii", image, compress=False)
    out["truncated_nii"] = (_truncate(full_nii, folder / "truncated.nii"), "truncated")
    full_nrrd = write("full.nrrd", image)
    out["truncated_nrrd_gzip"] = (_truncate(full_nrrd, folder / "truncated_gz.nrrd"), "truncated")
    raw_nrrd = write("full_raw.nrrd", image, compress=False)
    out["truncated_nrrd_raw"] = (_truncate(raw_nrrd, folder / "truncated_raw.nrrd"), "truncated")
    raw_mha = write("full.mha", _like(image, array), compress=False)
    out["truncated_mha"] = (_truncate(raw_mha, folder / "truncated.mha"), "truncated")
    garbage = folder / "garbage.nii.gz"
    garbage.write_bytes(b"this is not an image\n" * 40)
    out["garbage_nii_gz"] = (garbage, "gzip")
    gz_garbage = folder / "gzipped_text.nii.gz"
    gz_garbage.write_bytes(gzip.compress(b"hello\n" * 200))
    out["gzipped_text"] = (gz_garbage, "cannot be read")
    empty = folder / "empty.nii.gz"
    empty.write_bytes(b"")
    out["empty_file"] = (empty, str(empty))
    nan = array.copy()
    nan[2, 5, 5] = np.nan
    out["nan_voxels"] = (write("nan.nrrd", _like(image, nan)), "NaN")
    inf = array.copy()
    inf[3, 6, 6] = np.inf
    out["inf_voxels"] = (write("inf.mha", _like(image, inf)), "infinite")  # NIfTI writers drop Inf
    out["blank_zero"] = (write("blank.nii.gz", _like(image, np.zeros_like(array))), "blank")
    out["blank_constant"] = (write("constant.nrrd", _like(image, np.full_like(array, 812.0))), "blank")
    flat = sitk.GetImageFromArray(array[array.shape[0] // 2][np.newaxis])
    flat.SetSpacing(image.GetSpacing())
    out["single_slice"] = (write("single_slice.nii.gz", flat), "2-D")
    plane = sitk.GetImageFromArray(array[array.shape[0] // 2])
    out["two_d"] = (write("two_d.nrrd", plane), "2-D")
    vector = sitk.Compose(image, image, image)
    out["vector"] = (write("vector.nrrd", vector), "components")
    text = folder / "notes.txt"
    text.write_text("T2 image is on the PACS\n")
    out["wrong_extension"] = (text, "extension")
    out["missing_file"] = (folder / "does_not_exist.nii.gz", "does not exist")
    empty_dir = folder / "empty_series_folder"
    empty_dir.mkdir(exist_ok=True)
    out["folder_without_dicom"] = (empty_dir, "no DICOM series")
    return out


def bad_masks(folder: Path, good_mask: Path) -> dict[str, tuple[Path, str]]:
    """Broken lesion masks: name -> (path, phrase)."""
    folder.mkdir(parents=True, exist_ok=True)
    mask = sitk.ReadImage(str(good_mask))
    array = sitk.GetArrayFromImage(mask)
    out: dict[str, tuple[Path, str]] = {}

    def write(name: str, img: sitk.Image) -> Path:
        path = folder / name
        sitk.WriteImage(img, str(path), True)
        return path

    out["mask_empty"] = (write("mask_empty.nii.gz", _like(mask, np.zeros_like(array))), "no labelled voxel")
    out["mask_full"] = (write("mask_full.nii.gz", _like(mask, np.ones_like(array))), "inverted")
    far = sitk.Image(mask)
    far.SetOrigin(tuple(o + 5000.0 for o in mask.GetOrigin()))
    out["mask_other_grid"] = (write("mask_far.nii.gz", far), "does not overlap")
    fractional = array.astype(np.float32) * 0.5
    out["mask_fractional"] = (write("mask_fractional.nii.gz", _like(mask, fractional)), "fractional")
    negative = array.astype(np.int16) * -1
    out["mask_negative"] = (write("mask_negative.nii.gz", _like(mask, negative)), "negative")
    out["mask_truncated"] = (_truncate(good_mask, folder / "mask_truncated.nii.gz"), "truncated")
    return out


def manifest_rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    import csv

    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_manifest(path: Path, columns: list[str], rows: list[dict[str, str]], *, bom: bool = False,
                   crlf: bool = False, delimiter: str = ",", encoding: str = "utf-8") -> Path:
    newline = "\r\n" if crlf else "\n"
    lines = [delimiter.join(columns)] + [delimiter.join(str(r.get(c, "")) for c in columns) for r in rows]
    data = (newline.join(lines) + newline).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def absolute_rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Manifest rows with every path made absolute (so variants can live elsewhere)."""
    columns, rows = manifest_rows(manifest)
    for row in rows:
        for c in ("T1", "T2", "STIR", "T1CE", "mask", "anatomy"):
            if row.get(c):
                row[c] = str((manifest.parent / row[c]).resolve())
    return columns, rows


def bad_manifests(folder: Path, manifest: Path) -> dict[str, tuple[Path, str]]:
    """Manifest accidents: name -> (path, phrase)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns, rows = absolute_rows(manifest)
    out: dict[str, tuple[Path, str]] = {}
    renamed = [("t2" if c == "T2" else c) for c in columns]
    moved = [{("t2" if k == "T2" else k): v for k, v in r.items()} for r in rows]
    out["misspelled_t2"] = (write_manifest(folder / "misspelled.csv", renamed, moved), "did you mean 'T2'")
    out["no_t1_column"] = (write_manifest(folder / "no_t1.csv", [c for c in columns if c != "T1"], rows), "'T1'")
    out["duplicate_case"] = (write_manifest(folder / "duplicate.csv", columns, [rows[0], rows[0]]), "duplicate case_id")
    out["semicolons"] = (write_manifest(folder / "semicolon.csv", columns, rows, delimiter=";"), "semicolon")
    latin = [dict(r, site="Zürich") for r in rows]
    out["latin1"] = (write_manifest(folder / "latin1.csv", columns, latin, encoding="latin-1"), "UTF-8")
    missing = [dict(r, T2=str(folder / "gone_T2.nii.gz")) for r in rows]
    out["missing_image"] = (write_manifest(folder / "missing_image.csv", columns, missing), "gone_T2.nii.gz")
    out["header_only"] = (write_manifest(folder / "header_only.csv", columns, []), "no case rows")
    flair = [dict(r, flair=r["T2"]) for r in rows]
    out["unknown_path_column"] = (write_manifest(folder / "flair.csv", [*columns, "flair"], flair), "column 'flair'")
    empty_cell = [dict(rows[0], T2="")] + rows[1:]
    out["empty_t2_cell"] = (write_manifest(folder / "empty_cell.csv", columns, empty_cell), "column 'T2': empty")
    no_id = [c if c != "case_id" else "Case ID" for c in columns]
    moved_id = [{("Case ID" if k == "case_id" else k): v for k, v in r.items()} for r in rows]
    out["case_id_spelling"] = (write_manifest(folder / "case_id.csv", no_id, moved_id), "did you mean 'case_id'")
    binary = folder / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    out["binary_file"] = (binary, "UTF-8")
    return out


def feature_tables(folder: Path) -> dict[str, tuple[Path, str]]:
    """Feature-table accidents for ``train``: name -> (path, phrase)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    n = 24
    site = np.array(["lung", "kidney"] * (n // 2))
    frame = pd.DataFrame({"case_id": [f"c{i:02d}" for i in range(n)], "error": "", "qc_flags": "", "site": site,
                          "f1": rng.normal(size=n) + (site == "lung"), "f2": rng.normal(size=n)})
    out: dict[str, tuple[Path, str]] = {}
    good = folder / "good.csv"
    frame.to_csv(good, index=False)
    out["good"] = (good, "")
    inf = frame.copy()
    inf.loc[[4, 9], "f2"] = np.inf
    inf.to_csv(folder / "inf.csv", index=False)
    out["inf_values"] = (folder / "inf.csv", "column 'f2' has infinite value(s) in row 5 (case_id c04)")
    failed = frame.copy()
    failed["error"] = "case failed"
    failed[["f1", "f2"]] = np.nan
    failed.to_csv(folder / "all_failed.csv", index=False)
    out["all_failed"] = (folder / "all_failed.csv", "every row failed feature extraction")
    frame.drop(columns=["site"]).to_csv(folder / "no_label.csv", index=False)
    out["no_label"] = (folder / "no_label.csv", "site")
    (folder / "empty.csv").write_text("")
    out["empty_table"] = (folder / "empty.csv", "empty.csv")
    out["missing_table"] = (folder / "nope.csv", "nope.csv")
    return out


# ----------------------------------------------------------------------------------
# Batch driver: many CLI invocations, one interpreter
# ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _captured_fds():
    """Redirect fds 1 and 2 (Python and C++ output alike) into temporary files."""
    sys.stdout.flush()
    sys.stderr.flush()
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    saved = [os.dup(1), os.dup(2)]
    os.dup2(files[0].fileno(), 1)
    os.dup2(files[1].fileno(), 2)
    texts: list[str] = []
    try:
        yield texts
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for f in files:
            f.seek(0)
            texts.append(f.read().decode("utf-8", errors="replace"))
            f.close()


def run_batch(invocations: list[dict], current: Path | None = None) -> list[dict]:
    """Run each invocation through ``SpineMetsApp.cli.main``; record exit code, output and guard digests.

    ``current`` receives the name of the running invocation, so a hard crash (an
    abort in C++) is reported with the input that caused it.
    """
    from SpineMetsApp.cli import main

    results = []
    for item in invocations:
        if current is not None:
            current.write_text(item["name"], encoding="utf-8")
        before = {g: digest(g) for g in item.get("guarded", [])}
        with _captured_fds() as texts:
            try:
                code = main(list(item["argv"]))
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException:  # noqa: BLE001 - what the interpreter would print
                traceback.print_exc()
                code = -1
        after = {g: digest(g) for g in item.get("guarded", [])}
        results.append({**item, "code": code, "stdout": texts[0], "stderr": texts[1],
                        "changed": [g for g in before if before[g] != after[g]]})
    return results


def invocation_dicts(invocations: list[Invocation]) -> list[dict]:
    return [asdict(i) for i in invocations]


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "batch":
        sys.exit("usage: badinputs.py batch IN.json OUT.json")
    items = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    out = Path(sys.argv[3])
    out.write_text(json.dumps(run_batch(items, out.with_suffix(".current")), indent=1), encoding="utf-8")
