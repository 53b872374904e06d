"""The shared shape of a file corpus: a read-only list of texts that stays on disk."""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Sequence

import numpy as np

from ..errors import Text2TokenError

BLOCK = 4096  # texts read together when iterating
log = logging.getLogger(__name__)


class LazyTexts(Sequence):
    """Texts read on demand. A subclass checks every text when it opens and keeps one small numpy array per
    text (named in ``_arrays``, e.g. byte offsets or row numbers); it implements :meth:`take`."""

    _arrays: tuple[str, ...] = ()

    def take(self, indices) -> list[str]:
        """The texts at ``indices`` (positions in this corpus), as a list, in that order."""
        raise NotImplementedError

    def _set_spans(self, starts: list, lengths: list, skipped: int, what: str, empty: str) -> None:
        """Keeps the byte spans of a scanned file's texts; warns about skipped ones, refuses a file with none."""
        if skipped:
            log.warning("%s: skipped %d bad %s", self.path, skipped, what)
        if not starts:
            raise Text2TokenError(f"{self.path}: no texts ({empty})")
        self.starts = np.array(starts, dtype=np.uint64)
        self.lengths = np.array(lengths, dtype=np.uint32)

    def subset(self, indices) -> "LazyTexts":
        """The texts at ``indices``, in that order (no copy of any text)."""
        out = copy.copy(self)
        indices = np.asarray(indices, dtype=np.int64)
        for name in self._arrays:
            setattr(out, name, getattr(self, name)[indices])
        return out

    def __len__(self) -> int:
        return len(getattr(self, self._arrays[0]))

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(range(*key.indices(len(self))))
        i = operator.index(key)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"text index {key} out of range ({len(self)} texts)")
        return self.take([i])[0]

    def __iter__(self):
        for start in range(0, len(self), BLOCK):
            yield from self.take(range(start, min(start + BLOCK, len(self))))


def bad_text(where: str, problem: str, skip: bool, what: str = "lines") -> None:
    """Stops on a bad text (one line naming where and what), unless bad texts are skipped."""
    if not skip:
        raise Text2TokenError(f"{where}: {problem} (use --skip-bad-lines to skip such {what})")


def text_problem(value, field: str) -> str | None:
    """What is wrong with one text read from a column or field ``field``, or None."""
    if value is None:
        return f"no value in text field {field!r}"
    if not isinstance(value, str):
        return f"text field {field!r} is a {type(value).__name__}, not a string"
    if "\x00" in value:
        return "contains a NUL byte"
    if not value.strip():
        return f"empty text field {field!r}"
    return None
