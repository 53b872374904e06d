"""Which Wikipedia articles are held out of training, and which evaluation split each belongs to: defined once.

An article is held out by a stable hash of its title (``HELDOUT_FRACTION`` of them); held-out articles split
again, by another hash, into ``dev`` (the before/after score, the probe, recipe choices) and ``test`` (the
offline suite's reported numbers). The corpus (data.py) leaves the held-out articles out.
"""

from __future__ import annotations

import hashlib

HELDOUT_FRACTION = 0.1  # share of Wikipedia articles never used for training
DEV_SHARE = 0.3  # share of the held-out articles that form the dev split
UNLABELLED_TOPIC = "Uncategorized"


def _bucket(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 10_000


def is_heldout(title: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """A stable split by title hash: the same article is held out on every machine and run."""
    return _bucket(title) < fraction * 10_000


def eval_split(title: str, dev_share: float = DEV_SHARE) -> str:
    """``dev`` or ``test``: stable by title hash, independent of :func:`is_heldout`."""
    return "dev" if _bucket(f"suite-split:{title}") < dev_share * 10_000 else "test"


def is_labelled(article: dict) -> bool:
    """An article the evaluation can use: it has a short description and a real topic."""
    return bool(article["description"] and article["topic"] and article["topic"] != UNLABELLED_TOPIC)
