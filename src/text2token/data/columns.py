"""Columnar corpora read with pyarrow: Parquet files (by row group) and Hugging Face ``datasets`` folders written
by ``save_to_disk`` (their Arrow files memory-mapped, as ``datasets`` itself does)."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import Text2TokenError
from .lazy import LazyTexts, bad_text, text_problem

log = logging.getLogger(__name__)

ROW_GROUP_CACHE_BYTES = 256 << 20  # decoded Parquet text columns kept for random access


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        raise Text2TokenError("Parquet and datasets corpora need pyarrow (pip install pyarrow)") from None
    return pa, pc


def _bad_rows(array) -> np.ndarray:
    """Positions in a string array whose text is null, blank or holds a NUL byte (vectorised)."""
    pa, pc = _pa()
    filled = pc.fill_null(array, "")
    bad = pc.or_(pc.or_(pc.is_null(array), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(filled)), 0)),
                 pc.match_substring(filled, "\x00"))
    return np.flatnonzero(bad.to_numpy(zero_copy_only=False))


class ColumnTexts(LazyTexts):
    """One text column of a table, checked batch by batch when opened; keeps the good rows' numbers (8 bytes a
    text). Rows are counted from 1 in errors (row n is ``dataset[n - 1]``)."""

    _arrays = ("rows",)

    def __init__(self, path: Path, field: str, columns: list[str], types: dict, batches, skip: bool):
        self.path, self.field = path, field
        if field not in columns:
            raise Text2TokenError(f"{path}: missing column {field!r} (columns: {', '.join(columns)}); "
                                  "set data.text_field")
        pa, _ = _pa()
        kind = types[field]
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise Text2TokenError(f"{path}: column {field!r} holds {kind}, not text")
        keep, skipped = [], 0
        for start, array in batches:
            try:
                array.validate(full=True)  # invalid UTF-8 among others
            except pa.ArrowInvalid as e:
                raise Text2TokenError(f"{path} rows {start + 1}-{start + len(array)}: unreadable text ({e})") from None
            bad = _bad_rows(array)
            for b in bad:
                bad_text(f"{path} row {start + b + 1}", text_problem(array[int(b)].as_py(), field), skip, "rows")
            skipped += len(bad)
            good = np.ones(len(array), dtype=bool)
            good[bad] = False
            keep.append(start + np.flatnonzero(good))
        if skipped:
            log.warning("%s: skipped %d bad row(s)", path, skipped)
        self.rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
        if not len(self.rows):
            raise Text2TokenError(f"{path}: no texts (no rows)")


class ParquetTexts(ColumnTexts):
    """A Parquet file's text column; read one row group at a time (decoded groups cached up to 256 MiB)."""

    def __init__(self, path: str | Path, text_field: str = "text", skip_bad_lines: bool = False):
        pa, _ = _pa()
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise Text2TokenError(f"input file not found: {path}")
        try:
            self._file = pq.ParquetFile(path, memory_map=True)
        except (pa.ArrowException, OSError) as e:
            raise Text2TokenError(f"{path}: not a readable Parquet file ({e})") from None
        schema = self._file.schema_arrow
        sizes = [self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)]
        self._offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._cache = OrderedDict()
        types = {f.name: f.type for f in schema}
        batches = ((int(self._offsets[g]), self._group(g, path, text_field)) for g in range(len(sizes)))
        super().__init__(path, text_field, schema.names, types, batches, skip_bad_lines)

    def _group(self, g: int, path: Path | None = None, field: str | None = None):
        """Row group ``g``'s text column (cached)."""
        if g in self._cache:
            self._cache.move_to_end(g)
            return self._cache[g]
        pa, _ = _pa()
        try:
            array = self._file.read_row_group(g, columns=[field or self.field]).column(0).combine_chunks()
        except (pa.ArrowException, OSError) as e:
            raise Text2TokenError(f"{path or self.path} row group {g}: unreadable ({e})") from None
        self._cache[g] = array
        while len(self._cache) > 1 and sum(a.nbytes for a in self._cache.values()) > ROW_GROUP_CACHE_BYTES:
            self._cache.popitem(last=False)
        return array

    def take(self, indices) -> list[str]:
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        groups = np.searchsorted(self._offsets, rows, side="right") - 1
        out = [None] * len(rows)
        for g in np.unique(groups):
            where = np.flatnonzero(groups == g)
            values = self._group(int(g)).take(rows[where] - self._offsets[g]).to_pylist()
            for k, v in zip(where, values):
                out[k] = v
        return out


def dataset_arrow_files(path: Path) -> list[Path]:
    """The Arrow files of a ``save_to_disk`` folder (one split), from its state.json."""
    state_file = path / "state.json"
    try:
        files = [path / f["filename"] for f in json.loads(state_file.read_text(encoding="utf-8"))["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Text2TokenError(f"{state_file}: unreadable datasets state ({e})") from None
    missing = [f.name for f in files if not f.is_file()]
    if missing or not files:
        raise Text2TokenError(f"{path}: datasets files missing: {', '.join(missing) or 'none listed'}")
    return files


def dataset_split(path: Path) -> Path:
    """A DatasetDict folder's split: the only one, or ``train``."""
    try:
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Text2TokenError(f"{path / 'dataset_dict.json'}: unreadable ({e})") from None
    if len(splits) != 1 and "train" not in splits:
        raise Text2TokenError(f"{path}: a DatasetDict with splits {', '.join(splits)}; "
                              f"set data.corpus to one of them ({path}/<split>)")
    split = splits[0] if len(splits) == 1 else "train"
    if len(splits) > 1:
        log.info("%s: using the train split (of %s)", path, ", ".join(splits))
    return path / split


class DatasetTexts(ColumnTexts):
    """The text column of a ``datasets`` folder (``Dataset.save_to_disk``); its Arrow files are memory-mapped,
    so the texts stay in the page cache, not in this process's memory."""

    def __init__(self, path: str | Path, text_field: str = "text", skip_bad_lines: bool = False):
        pa, _ = _pa()
        path = Path(path)
        if (path / "dataset_dict.json").is_file():
            path = dataset_split(path)
        tables = []
        for f in dataset_arrow_files(path):
            try:
                tables.append(pa.ipc.open_stream(pa.memory_map(str(f))).read_all())
            except (pa.ArrowException, OSError) as e:
                raise Text2TokenError(f"{f}: not a readable Arrow file ({e})") from None
        schema = tables[0].schema
        self._column = None
        if text_field in schema.names:
            self._column = pa.chunked_array([c for t in tables for c in t.column(text_field).chunks],
                                            type=schema.field(text_field).type)
        types = {f.name: f.type for f in schema}
        super().__init__(path, text_field, schema.names, types, self._batches(), skip_bad_lines)

    def _batches(self):
        start = 0
        for chunk in (self._column.chunks if self._column is not None else []):
            yield start, chunk
            start += len(chunk)

    def take(self, indices) -> list[str]:
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        return self._column.take(rows).to_pylist()


def is_dataset_folder(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
