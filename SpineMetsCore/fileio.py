"""Atomic file output: nothing is ever left half-written.

Writers produce a sibling temporary file and rename it over the target only
after the write succeeded, so an interrupted batch never leaves a truncated
NRRD that a later run would mistake for a finished case.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def compound_suffix(path: str | os.PathLike[str]) -> str:
    """Return the lower-case extension including double ones (``.nii.gz``, ``.seg.nrrd``)."""
    name = Path(path).name.lower()
    for ext in (".seg.nrrd", ".nii.gz", ".seg.nhdr"):
        if name.endswith(ext):
            return ext
    return Path(name).suffix


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    The temporary name keeps the target's (compound) extension because ITK and
    MRML writers choose the format from it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = compound_suffix(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the result the permissions a plain open() would (umask applies).
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
            os.replace(tmp, target)
            shutil.rmtree(backup)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def atomic_merge_dir(target: str | os.PathLike[str], last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a staging directory whose files are published into ``target`` when the block succeeds.

    Unlike :func:`atomic_dir` (which replaces the whole folder), an existing ``target`` keeps
    files the new run does not produce: each staged file is moved in with ``os.replace``
    (atomic per file), the names in ``last`` (relative paths, e.g. ``metrics.json``) after all
    others, so a reader that sees the new marker file sees complete outputs. A missing or empty
    ``target`` is replaced by the staging directory in one rename. On error nothing is published.
    """
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700; publish with normal permissions
    try:
        yield staging
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if not out.exists():
            os.replace(staging, out)
            return
        order = {Path(name): i for i, name in enumerate(last)}
        files = sorted((p for p in staging.rglob("*") if p.is_file()),
                       key=lambda p: (order.get(p.relative_to(staging), -1), str(p)))
        for f in files:
            destination = out / f.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically (UTF-8) and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (model cards record weights and model files this way)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large weights do not fill memory."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
