"""The frozen-layer cache: the hidden states entering the first trainable layer, computed once per text.

With ``train.method: top_layers`` the layers below the trainable ones never change, so the states entering the
first trainable layer depend only on the text's tokens (given the backbone, attention mode and precision,
which key the cache directory). They are captured whenever the bottom runs anyway (the model-derived target
pass, a training step's forward) and later steps over the same tokens run the top layers alone
(``model/partial.py``). Rows are keyed by a digest of their token ids, so stages, epochs and resumed runs share
them. ``train.frozen_cache`` names the dtype they are kept in (``none``: off).

Layout of ``<run>/cache/frozen-<fingerprint>/``::

    blocks.jsonl     one line per complete block: file, sha256, keys, lengths
    block-00000.npy  [sum of the block's lengths, hidden] in the cache dtype (memory-mapped when read)

A block file is written atomically before its line is appended, so a line names a complete file; a torn last
line or a block whose checksum fails is dropped on opening. The cache stops growing at ``train.frozen_cache_gb``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, sha256_file
from ..model.partial import decoder_layers, layer_inputs, start_at
from ..model.precision import resolve_autocast
from ..targets.store import fingerprint

log = logging.getLogger(__name__)

INDEX = "blocks.jsonl"
BLOCK_ROWS = 256  # texts per block file
DTYPES = {"float16": np.float16, "bfloat16": None, "float32": np.float32}  # bf16: stored as raw uint16


def row_key(ids: torch.Tensor) -> str:
    """The digest of one text's real token ids."""
    return hashlib.blake2b(ids.to(torch.int64).cpu().numpy().tobytes(), digest_size=12).hexdigest()


def _to_numpy(states: torch.Tensor, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return states.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    with np.errstate(over="ignore"):  # float16 overflow is checked (and the row skipped) by the caller
        return states.float().numpy().astype(DTYPES[dtype])


def _to_torch(rows: np.ndarray, dtype: str) -> torch.Tensor:
    if dtype == "bfloat16":
        return torch.from_numpy(np.array(rows).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(rows))


class FrozenCache:
    """States entering layer ``layer``, one row per token, for every text seen so far."""

    def __init__(self, directory: Path, layer: int, dtype: str, max_bytes: int):
        self.dir, self.layer, self.dtype, self.max_bytes = Path(directory), layer, dtype, max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._where: dict[str, tuple[int, int, int]] = {}  # key -> (block, first row, length)
        self._blocks: list[np.ndarray] = []
        self._pending: dict[str, np.ndarray] = {}
        self.bytes = 0
        self.hits = self.misses = self.skipped = self.overflowed = 0
        self._open()

    def _open(self) -> None:
        index, lines = self.dir / INDEX, []
        raw = index.read_text(encoding="utf-8").splitlines() if index.is_file() else []
        for line in raw:
            try:
                entry = json.loads(line)
                ok = sha256_file(self.dir / entry["file"]) == entry["sha256"]
            except (ValueError, KeyError, OSError):
                ok = False
            if ok:
                self._register(entry)
                lines.append(line)
        if len(lines) != len(raw):
            log.warning("frozen-layer cache %s: dropped %d damaged block(s)", self.dir, len(raw) - len(lines))
            atomic_write(index, lambda f: f.write("".join(x + "\n" for x in lines).encode()))
        named = {json.loads(x)["file"] for x in lines}
        for orphan in self.dir.glob("block-*.npy"):
            if orphan.name not in named:
                orphan.unlink()

    def _register(self, entry: dict) -> None:
        block = np.load(self.dir / entry["file"], mmap_mode="r")
        number, start = len(self._blocks), 0
        self._blocks.append(block)
        self.bytes += block.nbytes
        for key, length in zip(entry["keys"], entry["lengths"]):
            self._where[key] = (number, start, length)
            start += length

    def __contains__(self, key: str) -> bool:
        return key in self._where or key in self._pending

    def __len__(self) -> int:
        return len(self._where) + len(self._pending)

    def keys(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[str]:
        """One key per row of a right-padded batch."""
        lengths = attention_mask.sum(1).tolist()
        return [row_key(input_ids[r, :n]) for r, n in enumerate(lengths)]

    def _rows(self, key: str) -> np.ndarray:
        if key in self._pending:
            return self._pending[key]
        block, start, length = self._where[key]
        return self._blocks[block][start:start + length]

    def get(self, keys: list[str], width: int, dtype: torch.dtype, device) -> torch.Tensor:
        """The cached states of ``keys`` as a right-padded [B, width, H] batch (zeros past each text)."""
        out = torch.zeros((len(keys), width, self.hidden_size), dtype=dtype)
        for r, key in enumerate(keys):
            rows = _to_torch(self._rows(key), self.dtype)
            out[r, : len(rows)] = rows.to(dtype)
        self.hits += len(keys)
        return out.to(device)

    @property
    def hidden_size(self) -> int:
        first = next(iter(self._pending.values()), None)
        return (first if first is not None else self._blocks[0]).shape[1]

    def add(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor) -> None:
        """Keeps the states of every row not cached yet (a layer-input hook's sink)."""
        lengths = attention_mask.sum(1).tolist()
        for r, n in enumerate(lengths):
            if not bool(attention_mask[r, :n].all()):
                self.skipped += 1  # not right-padded: its rows are not a prefix
                continue
            key = row_key(input_ids[r, :n])
            if key in self:
                continue
            rows = _to_numpy(states[r, :n].cpu(), self.dtype)
            if self.dtype == "float16" and not np.isfinite(rows).all():
                self._overflow()  # beyond float16's range: computed each time instead
                continue
            self._pending[key] = rows
        if len(self._pending) >= BLOCK_ROWS:
            self.flush()

    def _overflow(self) -> None:
        if not self.overflowed:
            log.warning("frozen-layer cache: this backbone's states exceed float16's range (Gemma's do); those "
                        "texts are recomputed each step. Set train.frozen_cache: bfloat16 to cache them.")
        self.overflowed += 1
        self.skipped += 1

    def flush(self) -> None:
        """Writes the pending rows as one block (nothing when the cache is full)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        block = np.concatenate(list(pending.values()))
        if self.bytes + block.nbytes > self.max_bytes:
            return
        name = f"block-{len(self._blocks):05d}.npy"
        atomic_write(self.dir / name, lambda f: np.save(f, block))
        entry = {"file": name, "sha256": sha256_file(self.dir / name), "keys": list(pending),
                 "lengths": [len(v) for v in pending.values()]}
        with open(self.dir / INDEX, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._register(entry)

    def capturing(self, model: torch.nn.Module):
        """A context in which every full forward pass of ``model`` adds its rows to the cache."""
        return layer_inputs(model, self.layer, self.add)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.parent.is_dir() and not any(self.dir.parent.iterdir()):
            self.dir.parent.rmdir()


# ------------------------------------------------------------------------------------------- the run's cache
def open_frozen_cache(cfg, run_dir: Path, model: torch.nn.Module, world: int, backbone_fp: dict):
    """The run's cache, or None where it does not apply (off, nothing frozen, several processes)."""
    t = cfg.train
    if t.frozen_cache == "none" or t.method != "top_layers":
        return None
    n_layers = len(decoder_layers(model))
    if t.top_layers >= n_layers:
        return None
    if world > 1:
        log.info("frozen-layer cache off: it runs in one process only (%d here)", world)
        return None
    layer = n_layers - t.top_layers
    fp = fingerprint("frozen", backbone_fp, {"layer": layer, "attention": cfg.model.attention,
                                            "autocast": resolve_autocast(t.autocast, next(model.parameters()).device),
                                            "dtype": t.frozen_cache,
                                            "model_dtype": cfg.model.dtype})
    return FrozenCache(run_dir / "cache" / f"frozen-{fp[:12]}", layer, t.frozen_cache,
                       int(t.frozen_cache_gb * (1 << 30)))


def pooled(run, local: dict) -> torch.Tensor:
    """The pooled embeddings of a micro-batch, from the cache when every row is in it."""
    enc, cache = run.encoder, run.frozen_cache
    if cache is None:
        return enc.forward(**local)
    ids, mask = local["input_ids"], local["attention_mask"]
    keys = cache.keys(ids, mask)
    if all(k in cache for k in keys):
        states = cache.get(keys, ids.shape[1], enc.model.dtype, enc.device)
        with start_at(enc.model, cache.layer):
            return enc.forward(None, mask, inputs_embeds=states)
    cache.misses += len(keys)
    with cache.capturing(enc.model):
        return enc.forward(ids, mask)
