"""The held-out Wikipedia articles of a split (eval/split.py) and the training run's before/after score on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data import split_passages, wiki_articles
from ..errors import Text2TokenError
from .split import HELDOUT_FRACTION, eval_split, is_heldout, is_labelled

if TYPE_CHECKING:
    from ..config import DataConfig

RETRIEVAL_KEYS = ("ndcg@10", "mrr@10", "recall@1")  # what the before/after score reports of retrieval


def heldout_articles(split: str, fraction: float = HELDOUT_FRACTION) -> list[dict]:
    """The labelled held-out articles of ``split`` (``dev`` or ``test``), in title order."""
    return [a for a in wiki_articles() if is_heldout(a["title"], fraction) and is_labelled(a)
            and eval_split(a["title"]) == split]


@dataclass
class HeldoutSet:
    """Held-out Wikipedia articles: description -> lead passage retrieval, and topics for kNN."""

    queries: list[str]
    documents: list[str]
    topics: list[str]


def heldout_set(cfg: "DataConfig", n_articles: int, seed: int = 0) -> HeldoutSet:
    """``n_articles`` dev articles (seeded sample): the training run's before/after score and the probe."""
    if cfg.corpus == "wiki" and cfg.heldout_fraction <= 0:
        raise Text2TokenError("eval needs held-out articles: set data.heldout_fraction > 0 or eval.enabled=false")
    fraction = cfg.heldout_fraction if cfg.corpus == "wiki" else HELDOUT_FRACTION
    pool = heldout_articles("dev", fraction)  # the test part belongs to the offline suite (text2token eval)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(pool), min(n_articles, len(pool)), replace=False).tolist())
    chosen = [pool[i] for i in pick]
    return HeldoutSet(queries=[a["description"] for a in chosen],
                      documents=[split_passages(a["extract"], cfg.passage_words)[0] for a in chosen],
                      topics=[a["topic"] for a in chosen])


def retrieval_scores(queries: np.ndarray, documents: np.ndarray) -> dict[str, float]:
    """Query i's one relevant document is document i: the tie-aware rank metrics of cosine similarity."""
    from .metrics import cosine, ranking_score

    scores = ranking_score(cosine(queries, documents), np.arange(len(queries)))
    return {k: scores[k] for k in RETRIEVAL_KEYS}


def heldout_score(encoder, data: HeldoutSet, batch_size: int = 32, show_progress_bar: bool | None = None) -> dict:
    """Description -> passage retrieval and topic kNN accuracy on held-out Wikipedia articles."""
    from .metrics import knn_accuracy

    q = encoder.encode(data.queries, batch_size=batch_size, show_progress_bar=show_progress_bar)
    d = encoder.encode(data.documents, batch_size=batch_size, show_progress_bar=show_progress_bar)
    scores = {f"retrieval_{k}": v for k, v in retrieval_scores(q, d).items()}
    scores["topic_knn_acc"] = knn_accuracy(d, data.topics)
    scores["mean"] = float(np.mean([scores["retrieval_ndcg@10"], scores["topic_knn_acc"]]))
    return scores
