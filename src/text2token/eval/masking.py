"""Key-word masking for suite v2: a query and its relevant document share no content word.

A *content word* is a token of letters/digits, at least 2 characters, not an English stop word
(scikit-learn's list). Two words are the same if their *forms* meet: a crude suffix stem of the word, plus the
stems of its base forms in WordNet's exception lists (``ran`` -> ``run``, ``geese`` -> ``goose``). The stem is
deliberately simple; it only has to treat both sides alike.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

MASK = "___"
_TOKEN = re.compile(r"[^\W_]+")
_SUFFIXES = ("ing", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """``running``, ``runs`` -> ``run``; ``baked``, ``bake`` -> ``bak``; ``studies`` -> ``study``."""
    w = word.lower()
    if len(w) > 4 and w.endswith(("ies", "ied")):
        return w[:-3] + "y"
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":  # running -> runn -> run
        w = w[:-1]
    if len(w) >= 4 and w.endswith("e"):
        w = w[:-1]
    return w


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@lru_cache(maxsize=1)
def _exceptions() -> dict[str, tuple[str, ...]]:
    from .suite_data import wordnet_exceptions

    return wordnet_exceptions()


def is_content(token: str) -> bool:
    return len(token) >= 2 and token.lower() not in _stop_words()


def forms(token: str) -> set[str]:
    """The comparable forms of one token: its stem and its WordNet base forms' stems."""
    low = token.lower()
    return {stem(low), *(stem(base) for base in _exceptions().get(low, ()))}


def content_forms(text: str) -> set[str]:
    """Every form of every content word of ``text``."""
    return {f for tok in _TOKEN.findall(text) if is_content(tok) for f in forms(tok)}


def mask_words(text: str, keys: Iterable[str] | set[str]) -> tuple[str, int]:
    """``text`` with each content word whose forms meet ``keys`` replaced by ``___``; returns (text, masks)."""
    keys = set(keys)
    count = 0

    def repl(m: re.Match) -> str:
        nonlocal count
        tok = m.group(0)
        if is_content(tok) and forms(tok) & keys:
            count += 1
            return MASK
        return tok

    return _TOKEN.sub(repl, text), count


def shares_content(a: str, b: str) -> bool:
    """Whether two texts share a content word (the ``___`` mask is not a word)."""
    return bool(content_forms(a) & content_forms(b))
