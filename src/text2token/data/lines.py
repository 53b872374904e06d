""".txt (one text per line) and .jsonl (a text field per line) files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import Text2TokenError
from .lazy import LazyTexts, bad_text

LINE_SUFFIXES = (".txt", ".text", ".jsonl", "")


def _parse_line(raw: bytes, jsonl: bool, field: str = "text") -> tuple[str | None, str | None]:
    """One raw line (newline included or not) -> (text, None) or (None, problem)."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    if "\x00" in line:
        return None, "contains a NUL byte"
    text = line
    if jsonl:
        if not line.strip():
            return None, "empty line"
        try:
            obj = json.loads(line)
        except ValueError:
            return None, "not valid JSON"
        if not isinstance(obj, dict) or field not in obj:
            return None, f'has no "{field}" field'
        if not isinstance(obj[field], str):
            return None, f'"{field}" is not a string'
        text = obj[field]
        if "\x00" in text:
            return None, "contains a NUL byte"
    if not text.strip():
        return None, "empty or whitespace-only text"
    return text, None


def _check_text_file(path: Path) -> bool:
    """Whether ``path`` is JSON lines; refuses a missing file or another suffix."""
    if not path.is_file():
        raise Text2TokenError(f"input file not found: {path}")
    jsonl = path.suffix.lower() == ".jsonl"
    if path.suffix.lower() not in LINE_SUFFIXES:
        raise Text2TokenError(f"{path}: expected a .txt (one text per line) or .jsonl file")
    return jsonl


def read_texts(path: str | Path, skip_bad_lines: bool = False, text_field: str = "text") -> list[str]:
    """Texts from a .txt file (one per line) or a .jsonl file (a ``text_field`` field per line).

    A bad line (invalid UTF-8, NUL byte, not JSON, no text field, empty or whitespace-only) is an error naming
    the file and line number, or is skipped with a count when ``skip_bad_lines``.
    """
    return list(TextFile(path, skip_bad_lines=skip_bad_lines, text_field=text_field))


class TextFile(LazyTexts):
    """The texts of a .txt / .jsonl file, read on demand: a list of strings that is not held in memory.

    Opening scans the file once, checks every line (bad ones stop it or are skipped) and keeps where each good
    line starts and how long it is (12 bytes a text); ``texts[i]`` reads line ``i`` (``os.pread``).
    """

    _arrays = ("starts", "lengths")

    def __init__(self, path: str | Path, skip_bad_lines: bool = False, text_field: str = "text"):
        self.path, self.field = Path(path), text_field
        self.jsonl = _check_text_file(self.path)
        starts, lengths, skipped, pos = [], [], 0, 0
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                _, problem = _parse_line(raw, self.jsonl, self.field)
                if problem is not None:
                    bad_text(f"{self.path}:{lineno}", problem, skip_bad_lines)
                    skipped += 1
                else:
                    starts.append(pos)
                    lengths.append(len(raw))
                pos += len(raw)
        self._set_spans(starts, lengths, skipped, "line(s)", "the file is empty")

    def _read(self, fd: int, i: int) -> str:
        raw = os.pread(fd, int(self.lengths[i]), int(self.starts[i]))
        text, problem = _parse_line(raw, self.jsonl, self.field)
        if problem is not None:
            raise Text2TokenError(f"{self.path} changed since it was opened ({problem})")
        return text

    def take(self, indices) -> list[str]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return [self._read(fd, int(i)) for i in indices]
        finally:
            os.close(fd)
