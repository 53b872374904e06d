"""CSV / TSV files (a text column, found by its header) and folders of .txt files (one text per file)."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import Text2TokenError
from .lazy import LazyTexts, bad_text, text_problem

log = logging.getLogger(__name__)

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
csv.field_size_limit(2**31 - 1)  # a text may be longer than csv's default 128 KiB


def _lines(f, state: dict):
    """The file's lines, decoded; ``state`` tracks the byte position, line number and bad UTF-8."""
    for raw in f:
        state["pos"] += len(raw)
        state["line"] += 1
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            state["bad_utf8"] = True
            yield raw.decode("utf-8", errors="replace")


class CsvTexts(LazyTexts):
    """The ``text_field`` column of a .csv / .tsv file with a header row, read on demand.

    Rows are counted from 1 after the header; errors name the row and the line it starts on. Opening keeps
    each good row's byte offset and length (12 bytes a text); ``texts[i]`` re-reads and parses that row.
    """

    _arrays = ("starts", "lengths")

    def __init__(self, path: str | Path, text_field: str = "text", skip_bad_lines: bool = False):
        self.path, self.field = Path(path), text_field
        self.delimiter = CSV_SUFFIXES[self.path.suffix.lower()]
        if not self.path.is_file():
            raise Text2TokenError(f"input file not found: {self.path}")
        with open(self.path, "rb") as f:
            starts, lengths, skipped = self._scan(f, skip_bad_lines)
        self._set_spans(starts, lengths, skipped, "row(s)", "no rows after the header")

    def _scan(self, f, skip: bool) -> tuple[list, list, int]:
        state = {"pos": 0, "line": 0, "bad_utf8": False}
        reader = csv.reader(_lines(f, state), delimiter=self.delimiter)
        header = self._header(reader, state)
        starts, lengths, skipped, row = [], [], 0, 0
        while True:
            start, line, state["bad_utf8"] = state["pos"], state["line"] + 1, False
            try:
                record = next(reader)
            except StopIteration:
                return starts, lengths, skipped
            except csv.Error as e:
                raise Text2TokenError(f"{self.path} line {state['line']}: not valid CSV ({e})") from None
            row += 1
            problem = "not valid UTF-8" if state["bad_utf8"] else self._problem(record, header)
            if problem is not None:
                bad_text(f"{self.path} row {row} (line {line})", problem, skip, "rows")
                skipped += 1
            else:
                starts.append(start)
                lengths.append(state["pos"] - start)

    def _header(self, reader, state: dict) -> int:
        """The text column's index, from the header row."""
        try:
            header = next(reader)
        except StopIteration:
            raise Text2TokenError(f"{self.path}: no texts (the file is empty)") from None
        except csv.Error as e:
            raise Text2TokenError(f"{self.path} line 1: not valid CSV ({e})") from None
        if state["bad_utf8"]:
            raise Text2TokenError(f"{self.path} line 1: the header is not valid UTF-8")
        header = [h.strip() for h in header]
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]  # a byte order mark
        if self.field not in header:
            raise Text2TokenError(f"{self.path}: missing column {self.field!r} (columns: {', '.join(header)}); "
                                  "set data.text_field")
        self.column = header.index(self.field)
        return len(header)

    def _problem(self, record: list[str], width: int) -> str | None:
        if not record:
            return "empty line"
        if len(record) <= self.column:
            return f"no value for column {self.field!r} (the row has {len(record)} fields, the header {width})"
        return text_problem(record[self.column], self.field)

    def take(self, indices) -> list[str]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            out = []
            for i in indices:
                raw = os.pread(fd, int(self.lengths[i]), int(self.starts[i]))
                record = next(csv.reader(io.StringIO(raw.decode("utf-8")), delimiter=self.delimiter), [])
                if len(record) <= self.column or text_problem(record[self.column], self.field):
                    raise Text2TokenError(f"{self.path} changed since it was opened")
                out.append(record[self.column])
            return out
        finally:
            os.close(fd)


def _read_txt(path: Path) -> tuple[str | None, str | None]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    if "\x00" in text:
        return None, "contains a NUL byte"
    if not text.strip():
        return None, "empty or whitespace-only text"
    return text.strip(), None


class TextFolder(LazyTexts):
    """A folder of .txt files, one text per file (surrounding whitespace dropped), in sorted path order
    (subfolders included, hidden files left out). Opening reads and checks each file once."""

    _arrays = ("files",)

    def __init__(self, path: str | Path, skip_bad_lines: bool = False):
        self.path = Path(path)
        found = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                       if p.suffix.lower() == ".txt" and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(self.path).parts))
        if not found:
            raise Text2TokenError(f"{self.path}: no .txt files in the folder (and not a saved datasets dataset)")
        keep, skipped = [], 0
        for name in found:
            _, problem = _read_txt(self.path / name)
            if problem is not None:
                bad_text(str(self.path / name), problem, skip_bad_lines, "files")
                skipped += 1
            else:
                keep.append(name)
        if skipped:
            log.warning("%s: skipped %d bad file(s)", self.path, skipped)
        if not keep:
            raise Text2TokenError(f"{self.path}: no texts (every .txt file was bad)")
        self.files = np.array(keep, dtype=object)

    def take(self, indices) -> list[str]:
        out = []
        for i in indices:
            text, problem = _read_txt(self.path / self.files[i])
            if problem is not None:
                raise Text2TokenError(f"{self.path / self.files[i]} changed since it was opened ({problem})")
            out.append(text)
        return out
