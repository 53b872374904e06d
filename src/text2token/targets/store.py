"""Sparse target store: top-k token ids + weights per text, in checksummed safetensors shards.

Layout of a store directory::

    manifest.json            fingerprint, width, rows, shard list with sha256 each, complete flag
    shard-00000.safetensors  text_index int64 [r], ids int32 [r, k], weights float32 [r, k]

A store is keyed by a fingerprint of (texts, backbone, target config): the same inputs reuse it, any change
rebuilds it. Shards are written atomically (temp file, fsync, rename) one at a time, so an interrupted build
resumes after the last complete shard, and memory stays bounded by one shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from safetensors.numpy import save
from tqdm.auto import tqdm

from ..errors import Text2TokenError
from ..files import atomic_write, sha256_file

MANIFEST = "manifest.json"


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


def fingerprint(*parts) -> str:
    """sha256 of JSON-serialisable parts (dicts are key-sorted)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def texts_fingerprint(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _write_manifest(directory: Path, manifest: dict) -> None:
    data = json.dumps(manifest, indent=1).encode()
    atomic_write(directory / MANIFEST, lambda f: f.write(data))


def _tensor_layout(path: Path) -> dict[str, tuple[np.dtype, tuple[int, ...], int]]:
    """name -> (dtype, shape, absolute byte offset) of each tensor in a safetensors file (reads the header only)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        out[name] = (np.dtype(_DTYPES[meta["dtype"]]), tuple(meta["shape"]), 8 + n + meta["data_offsets"][0])
    return out


_DTYPES = {"I64": "<i8", "I32": "<i4", "F32": "<f4"}


class TargetStore:
    """Read access to a complete store: ``get(text_indices) -> (ids, weights)``.

    Only the text indices (8 bytes a text) are held in memory; ``get`` reads the asked rows from their shards
    (``os.pread``), so a store of millions of texts costs a few MB of RAM. Every shard's sha256 is checked
    when the store is opened (``verify``), as before.
    """

    def __init__(self, directory: Path, manifest: dict, verify: bool = True):
        self.directory = Path(directory)
        self.manifest = manifest
        self.width = manifest["width"]
        index, self._shards = [], []
        for shard in manifest["shards"]:
            path = self.directory / shard["file"]
            if verify and (not path.is_file() or sha256_file(path) != shard["sha256"]):
                raise Text2TokenError(f"target shard {path} is missing or corrupted (checksum mismatch); "
                                      f"delete {self.directory} to rebuild it")
            layout = _tensor_layout(path)
            dtype, shape, offset = layout["text_index"]
            with open(path, "rb") as f:
                f.seek(offset)
                index.append(np.fromfile(f, dtype=dtype, count=shape[0]).astype(np.int64))
            self._shards.append((path, layout))
        self.text_index = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
        self._starts = np.cumsum([0] + [len(i) for i in index])
        if len(self.text_index) and np.any(np.diff(self.text_index) <= 0):
            raise Text2TokenError(f"target store {self.directory}: text indices are not increasing")

    def _read(self, name: str, pos: np.ndarray) -> np.ndarray:
        """Rows ``pos`` (store positions) of tensor ``name``, read from their shards."""
        dtype = np.int32 if name == "ids" else np.float32
        out = np.zeros((len(pos), self.width), dtype=dtype)
        shard_of = np.searchsorted(self._starts, pos, side="right") - 1
        for s in np.unique(shard_of):
            path, layout = self._shards[s]
            file_dtype, shape, offset = layout[name]
            row_bytes = file_dtype.itemsize * self.width
            which = np.flatnonzero(shard_of == s)
            local = pos[which] - self._starts[s]
            lo, hi = int(local.min()), int(local.max()) + 1
            fd = os.open(path, os.O_RDONLY)
            try:
                if hi - lo <= 4 * len(local) + 64:  # dense request (a whole shard, a sorted run): one read
                    block = np.frombuffer(os.pread(fd, (hi - lo) * row_bytes, offset + lo * row_bytes),
                                          dtype=file_dtype).reshape(hi - lo, self.width)
                    out[which] = block[local - lo]
                else:  # a few scattered rows (a training batch): one read each
                    buf = b"".join(os.pread(fd, row_bytes, offset + int(r) * row_bytes) for r in local)
                    out[which] = np.frombuffer(buf, dtype=file_dtype).reshape(len(which), self.width)
            finally:
                os.close(fd)
        return out

    @property
    def ids(self) -> np.ndarray:
        """All target ids [rows, width], read into memory (for small stores and tests; training uses ``get``)."""
        return self._read("ids", np.arange(len(self)))

    @property
    def weights(self) -> np.ndarray:
        """All target weights [rows, width], read into memory (see ``ids``)."""
        return self._read("weights", np.arange(len(self)))

    def count_empty(self) -> int:
        """How many texts have no target token (all weights 0), read shard by shard."""
        empty = 0
        for s in range(len(self._shards)):
            rows = np.arange(self._starts[s], self._starts[s + 1])
            empty += int((self._read("weights", rows).sum(1) == 0).sum())
        return empty

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def __len__(self) -> int:
        return len(self.text_index)

    def rows(self, text_indices: np.ndarray) -> np.ndarray:
        text_indices = np.asarray(text_indices, dtype=np.int64)
        pos = np.searchsorted(self.text_index, text_indices)
        pos = np.minimum(pos, len(self.text_index) - 1)
        if len(self.text_index) == 0 or np.any(self.text_index[pos] != text_indices):
            raise KeyError("some texts have no targets in this store")
        return pos

    def get(self, text_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = self.rows(text_indices)
        return self._read("ids", pos), self._read("weights", pos)

    @classmethod
    def open(cls, directory: Path, fingerprint: str | None = None) -> "TargetStore | None":
        """The complete store in ``directory`` if its fingerprint matches, else None."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except ValueError:
            return None
        if not manifest.get("complete") or (fingerprint is not None and manifest.get("fingerprint") != fingerprint):
            return None
        return cls(directory, manifest)

    @classmethod
    def build(cls, directory: Path, fingerprint: str, text_index: np.ndarray, texts: Callable[[int, int], list[str]],
              transform: Callable[[list[str]], tuple[np.ndarray, np.ndarray]], width: int, shard_size: int = 4096,
              info: dict | None = None, desc: str = "targets", show_progress: bool = True,
              rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None) -> "TargetStore":
        """Builds (or resumes building) the store of ``transform(texts(i, j))`` over ``text_index``.

        ``texts(i, j)`` returns the texts of ``text_index[i:j]``; ``transform`` maps texts to
        ``(ids [n, width], weights [n, width])``. With ``world > 1`` processes every one calls this with its
        ``rank`` and a ``barrier``: shard ``s`` is built by rank ``s % world``, and the main rank writes the
        manifest (sha256 of every shard, in order) once all exist. The files do not depend on the process count.

        Resuming: shards are written atomically, so a shard file of this (fingerprint, shard size) that exists
        is complete and is kept; the build continues with the missing ones.
        """
        directory = Path(directory)
        text_index = np.asarray(text_index, dtype=np.int64)
        barrier = barrier or (lambda: None)
        if rank == 0 and cls.open(directory, fingerprint) is None:
            cls._prepare(directory, fingerprint, text_index, width, shard_size, info)
        barrier()
        existing = cls.open(directory, fingerprint)
        if existing is not None:
            return existing
        n = len(text_index)
        bounds = [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]
        mine = [s for s in range(len(bounds)) if s % world == rank]
        todo = [s for s in mine if not (directory / shard_name(s)).is_file()]
        rows = lambda shards: sum(bounds[s][1] - bounds[s][0] for s in shards)  # noqa: E731
        with tqdm(total=rows(mine), initial=rows(mine) - rows(todo), desc=desc, unit="text",
                  disable=not show_progress) as bar:
            for s in todo:
                cls._write_shard(directory, s, text_index, *bounds[s], texts, transform, width)
                bar.update(rows([s]))
        barrier()
        if rank == 0:
            manifest = json.loads((directory / MANIFEST).read_text())
            manifest["shards"] = [{"file": shard_name(s), "rows": end - start,
                                   "sha256": sha256_file(directory / shard_name(s))}
                                  for s, (start, end) in enumerate(bounds)]
            manifest["complete"] = True
            _write_manifest(directory, manifest)
        barrier()
        return cls(directory, json.loads((directory / MANIFEST).read_text()))

    @staticmethod
    def _prepare(directory: Path, fingerprint: str, text_index: np.ndarray, width: int, shard_size: int,
                 info: dict | None) -> dict:
        """The manifest of an unfinished build of this fingerprint, or a fresh one in an emptied directory."""
        manifest = None
        if (directory / MANIFEST).is_file():
            try:
                manifest = json.loads((directory / MANIFEST).read_text())
            except ValueError:
                manifest = None
        if manifest is None or manifest.get("fingerprint") != fingerprint or manifest.get("shard_size") != shard_size:
            if directory.exists():
                shutil.rmtree(directory)  # stale: built from other texts, backbone or settings
            directory.mkdir(parents=True)
            manifest = {"fingerprint": fingerprint, "width": width, "rows": int(len(text_index)),
                        "shard_size": shard_size, "shards": [], "complete": False, "info": info or {}}
            _write_manifest(directory, manifest)
        return manifest

    @staticmethod
    def _write_shard(directory: Path, number: int, text_index: np.ndarray, start: int, end: int,
                     texts: Callable[[int, int], list[str]], transform, width: int) -> None:
        ids, weights = transform(texts(start, end))
        if ids.shape != (end - start, width) or weights.shape != ids.shape:
            raise ValueError(f"target transform returned {ids.shape}, expected {(end - start, width)}")
        data = save({"text_index": np.ascontiguousarray(text_index[start:end]),
                     "ids": np.ascontiguousarray(ids, dtype=np.int32),
                     "weights": np.ascontiguousarray(weights, dtype=np.float32)})
        atomic_write(directory / shard_name(number), lambda f: f.write(data))
