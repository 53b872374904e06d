"""Scores on held-out real text (the quick before/after check every training run prints)."""

from __future__ import annotations

import numpy as np

from .data import HeldoutSet


def retrieval_scores(queries: np.ndarray, documents: np.ndarray, k: int = 10) -> dict[str, float]:
    """Query i's one relevant document is document i. Cosine similarity; nDCG@k, MRR@k, recall@1."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    d = documents / np.linalg.norm(documents, axis=1, keepdims=True).clip(1e-12)
    sims = q @ d.T
    rank = (sims > np.diag(sims)[:, None]).sum(1)  # 0 = ranked first
    hit = rank < k
    return {
        f"ndcg@{k}": float(np.mean(np.where(hit, 1.0 / np.log2(rank + 2), 0.0))),
        f"mrr@{k}": float(np.mean(np.where(hit, 1.0 / (rank + 1), 0.0))),
        "recall@1": float(np.mean(rank == 0)),
    }


def knn_accuracy(embeddings: np.ndarray, labels: list[str], k: int = 10) -> float:
    """Leave-one-out k-nearest-neighbour (cosine) majority-vote accuracy."""
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    names, y = np.unique(np.asarray(labels), return_inverse=True)
    nn = np.argsort(-sims, axis=1)[:, :k]
    votes = np.zeros((len(y), len(names)))
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[nn].ravel()), 1.0)
    return float(np.mean(votes.argmax(1) == y))


def heldout_score(encoder, data: HeldoutSet, batch_size: int = 32, show_progress_bar: bool | None = None) -> dict:
    """Description -> passage retrieval (nDCG@10) and topic kNN accuracy on held-out Wikipedia articles."""
    q = encoder.encode(data.queries, batch_size=batch_size, show_progress_bar=show_progress_bar)
    d = encoder.encode(data.documents, batch_size=batch_size, show_progress_bar=show_progress_bar)
    scores = {f"retrieval_{k}": v for k, v in retrieval_scores(q, d).items()}
    scores["topic_knn_acc"] = knn_accuracy(d, data.topics)
    scores["mean"] = float(np.mean([scores["retrieval_ndcg@10"], scores["topic_knn_acc"]]))
    return scores
