"""Atomic writes: a reader sees the old file/directory or the complete new one, never a half-written one."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import Text2TokenError


def _make_readable(root: Path) -> None:
    """The usual permissions (mkdtemp creates an owner-only directory)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary directory beside ``path``; when the block succeeds it replaces ``path``.

    On an exception the temporary directory is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        _make_readable(tmp)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yields a temporary name beside ``path``; the block fsyncs what it wrote there, then it is renamed to
    ``path``. On any error the temporary file is removed; an OSError becomes one line naming ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise Text2TokenError(f"cannot write {path} ({_reason(path, e)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[object], None]) -> None:
    """Calls ``write(f)`` on a temporary binary file, fsyncs it, then renames it to ``path``."""
    with _replacing(Path(path)) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_digest(named_tensors, extra: object = None) -> str:
    """sha256 hex digest of ``(name, tensor)`` pairs (torch or numpy): name, dtype, shape and raw bytes of each,
    in the order given, then ``extra`` as key-sorted JSON. The one weight hasher (targets, MTEB, scripts)."""
    import hashlib
    import json

    import numpy as np

    h = hashlib.sha256()
    for name, tensor in named_tensors:
        if hasattr(tensor, "detach"):  # torch: raw bytes through a uint8 view (bfloat16 has no numpy dtype)
            import torch

            t = tensor.detach().to("cpu").contiguous()
            dtype, shape = str(t.dtype).replace("torch.", ""), tuple(t.shape)
            data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        else:
            arr = np.ascontiguousarray(tensor)
            dtype, shape, data = str(arr.dtype), tuple(arr.shape), arr.tobytes()
        h.update(f"{name}|{dtype}|{shape}".encode())
        h.update(data)
    if extra is not None:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


@contextmanager
def atomic_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype="float32") -> Iterator[object]:
    """Yields a writable memory-mapped ``.npy`` (``np.lib.format.open_memmap``) at a temporary name beside
    ``path``; when the block succeeds it is flushed, fsynced and renamed to ``path``, else removed.

    The file's blocks are allocated first (``posix_fallocate``): a full disk is an error here, not a SIGBUS
    when a page of the map is written later.
    """
    import numpy as np

    with _replacing(Path(path)) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        with open(tmp, "r+b") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, array.offset + array.nbytes)
        yield array
        array.flush()
        del array
        with open(tmp, "r+b") as f:
            os.fsync(f.fileno())


def _reason(path: Path, e: OSError) -> str:
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else None
    reason = e.strerror or str(e)
    if free is not None and free < (1 << 20) and "space" not in reason.lower():
        reason += f"; {free} bytes free: the disk is full"
    return reason
