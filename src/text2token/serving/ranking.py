"""Ranking pieces of search: hits, the BM25 index, rank fusion, per-row top-k, and the metrics of hit lists."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

RRF_K = 60


@dataclass
class Hit:
    """One search result. ``tokens``: the matched tokens and their contributions to the score
    (sparse/hybrid: query and document vocabulary weights multiplied; bm25: per-term BM25 scores)."""

    rank: int
    id: int
    score: float
    text: str
    tokens: list[tuple[str, float]] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)  # hybrid: this text's rank in each fused list

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tokens"] = [{"token": t, "contribution": c} for t, c in self.tokens]
        return d


# ---------------------------------------------------------------- BM25
def bm25_tokenize(texts: Sequence[str]) -> list[list[str]]:
    """bm25s's default analyser: lower case, words of 2+ characters, English stop words removed."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


def build_bm25(texts: Sequence[str], k1: float = 1.5, b: float = 0.75):
    """A bm25s (Lucene BM25) index of ``texts``."""
    import bm25s

    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(bm25_tokenize(texts), show_progress=False)
    return retriever


# ---------------------------------------------------------------- fusion
def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """RRF: score(d) = sum over rankings of 1 / (k + rank(d)), rank from 1; best first (ties: lower id)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def weighted_fusion(scored: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float]) -> list[tuple[int, float]]:
    """Weighted sum of min-max-normalised scores per list (a text missing from a list gets 0 there)."""
    fused: dict[int, float] = {}
    for hits, weight in zip(scored, weights):
        if not hits:
            continue
        values = np.array([s for _, s in hits], dtype=np.float64)
        low, span = values.min(), values.max() - values.min()
        for (doc, s) in hits:
            norm = (s - low) / span if span > 0 else 1.0
            fused[doc] = fused.get(doc, 0.0) + weight * norm
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def top_k_rows(scores: np.ndarray, k: int, positive_only: bool = False) -> list[list[tuple[int, float]]]:
    """Per row, the k largest (column, score) pairs, best first (ties: lower column)."""
    out = []
    k = min(k, scores.shape[1])
    for row in scores:
        cand = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
        cand = cand[np.lexsort((cand, -row[cand]))]
        out.append([(int(i), float(row[i])) for i in cand if not positive_only or row[i] > 0])
    return out


def retrieval_metrics(results: Sequence[Sequence[Hit]], relevant: Sequence[int], k: int = 10) -> dict[str, float]:
    """One relevant text per query (``relevant[i]``): nDCG@k, recall@k and MRR@k of the hit lists.

    Ties count as in the suite (:func:`text2token.eval.metrics.rank_metrics`): a relevant hit that shares its
    score with other hits gets the mean over the tied positions; one missing from the top k scores 0.
    """
    from ..eval.metrics import rank_metrics

    above, tied = [], []
    for hits, rel in zip(results, relevant):
        top = hits[:k]
        score = next((h.score for h in top if h.id == rel), None)
        above.append(k if score is None else sum(h.score > score for h in top))
        tied.append(1 if score is None else sum(h.score == score for h in top))
    scores = rank_metrics(np.array(above), np.array(tied), k + 1, k)
    return {key: scores[key] for key in (f"ndcg@{k}", f"recall@{k}", f"mrr@{k}")}
