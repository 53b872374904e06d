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
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from safetensors.numpy import load_file, save
from tqdm.auto import tqdm

from ..errors import Text2TokenError
from ..files import atomic_write

MANIFEST = "manifest.json"


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


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_manifest(directory: Path, manifest: dict) -> None:
    data = json.dumps(manifest, indent=1).encode()
    atomic_write(directory / MANIFEST, lambda f: f.write(data))


class TargetStore:
    """Read access to a complete store: ``get(text_indices) -> (ids, weights)``."""

    def __init__(self, directory: Path, manifest: dict, verify: bool = True):
        self.directory = Path(directory)
        self.manifest = manifest
        self.width = manifest["width"]
        index, ids, weights = [], [], []
        for shard in manifest["shards"]:
            path = self.directory / shard["file"]
            if verify and (not path.is_file() or _sha256_file(path) != shard["sha256"]):
                raise Text2TokenError(f"target shard {path} is missing or corrupted (checksum mismatch); "
                                      f"delete {self.directory} to rebuild it")
            data = load_file(str(path))
            index.append(data["text_index"])
            ids.append(data["ids"])
            weights.append(data["weights"])
        self.text_index = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
        self.ids = np.concatenate(ids) if ids else np.zeros((0, self.width), dtype=np.int32)
        self.weights = np.concatenate(weights) if weights else np.zeros((0, self.width), dtype=np.float32)
        if len(self.text_index) and np.any(np.diff(self.text_index) <= 0):
            raise Text2TokenError(f"target store {self.directory}: text indices are not increasing")

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
        return self.ids[pos], self.weights[pos]

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
              info: dict | None = None, desc: str = "targets", show_progress: bool = True) -> "TargetStore":
        """Builds (or resumes building) the store of ``transform(texts(i, j))`` over ``text_index``.

        ``texts(i, j)`` returns the texts of ``text_index[i:j]``; ``transform`` maps texts to
        ``(ids [n, width], weights [n, width])``.
        """
        directory = Path(directory)
        text_index = np.asarray(text_index, dtype=np.int64)
        existing = cls.open(directory, fingerprint)
        if existing is not None:
            return existing
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
        # keep the shards that verify; rebuild from the first that does not
        good = []
        for shard in manifest["shards"]:
            path = directory / shard["file"]
            if not path.is_file() or _sha256_file(path) != shard["sha256"]:
                break
            good.append(shard)
        manifest["shards"] = good
        start = sum(s["rows"] for s in good)
        n = len(text_index)
        with tqdm(total=n, initial=start, desc=desc, unit="text", disable=not show_progress) as bar:
            while start < n:
                end = min(start + shard_size, n)
                ids, weights = transform(texts(start, end))
                if ids.shape != (end - start, width) or weights.shape != ids.shape:
                    raise ValueError(f"target transform returned {ids.shape}, expected {(end - start, width)}")
                name = f"shard-{len(manifest['shards']):05d}.safetensors"
                data = save({"text_index": np.ascontiguousarray(text_index[start:end]),
                             "ids": np.ascontiguousarray(ids, dtype=np.int32),
                             "weights": np.ascontiguousarray(weights, dtype=np.float32)})
                atomic_write(directory / name, lambda f: f.write(data))
                manifest["shards"].append({"file": name, "rows": end - start, "sha256": _sha256_file(directory / name)})
                _write_manifest(directory, manifest)
                bar.update(end - start)
                start = end
        manifest["complete"] = True
        _write_manifest(directory, manifest)
        return cls(directory, manifest)
