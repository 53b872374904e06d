"""Scores of embeddings, pure functions used by every caller (suite, training's before/after, probe, search).

Ranking has one definition, :func:`rank_metrics`: one relevant candidate per query, ties broken at random *in
expectation* (a relevant candidate tied with ``t`` others scores the mean of the metric over the ``t + 1``
positions). A strict ``>`` would hand every tie to the relevant candidate and bias scores upward.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp


def normalize_rows(x):
    """L2-normalised rows (dense or scipy sparse), float32."""
    from sklearn.preprocessing import normalize

    return normalize(x.astype(np.float32))


def cosine(a, b) -> np.ndarray:
    """Cosine similarities [len(a), len(b)] as a dense array."""
    sims = normalize_rows(a) @ normalize_rows(b).T
    return sims.toarray() if sp.issparse(sims) else np.asarray(sims)


def rank_metrics(above: np.ndarray, tied: np.ndarray, n_candidates: int, k: int = 10,
                 per_query: bool = False) -> dict:
    """nDCG@k, MRR@k, MAP (= MRR without cut-off), recall@1 and recall@k, averaged over queries
    (``per_query``: one array of values per metric instead).

    ``above[i]``: candidates scored strictly higher than query i's relevant one; ``tied[i]``: candidates with the
    same score, the relevant one included (>= 1).
    """
    above = np.asarray(above, dtype=np.int64)
    tied = np.maximum(np.asarray(tied, dtype=np.int64), 1)
    pos = np.arange(n_candidates + 1, dtype=float)  # 0 = first
    at_position = {f"ndcg@{k}": np.where(pos < k, 1.0 / np.log2(pos + 2), 0.0),
                   f"mrr@{k}": np.where(pos < k, 1.0 / (pos + 1), 0.0),
                   "map": 1.0 / (pos + 1),
                   "recall@1": (pos == 0).astype(float),
                   f"recall@{k}": (pos < k).astype(float)}
    out = {}
    for name, at in at_position.items():  # mean over positions above .. above + tied - 1, by cumulative sums
        cum = np.concatenate([[0.0], np.cumsum(at)])
        values = (cum[above + tied] - cum[above]) / tied
        out[name] = values if per_query else float(np.mean(values))
    return out


def rank_counts(sims: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: candidates scored above its relevant one, and those tied with it (itself included)."""
    relevant = np.asarray(relevant)
    target = sims[np.arange(len(relevant)), relevant]
    return (sims > target[:, None]).sum(1), (sims == target[:, None]).sum(1)


def ranking_score(sims: np.ndarray, relevant: np.ndarray, k: int = 10, per_query: bool = False) -> dict:
    """Rank metrics of a score matrix [queries, candidates]; ``relevant[i]`` is query i's relevant column.
    A ``-inf`` candidate is not ranked (an excluded or padded column)."""
    above, tied = rank_counts(sims, relevant)
    return rank_metrics(above, tied, int(np.isfinite(sims).sum(1).max()), k, per_query)


def knn_accuracy(embeddings: np.ndarray, labels: Sequence[str], k: int = 10) -> float:
    """Leave-one-out k-nearest-neighbour (cosine) majority-vote accuracy (k at most the other texts)."""
    k = max(1, min(k, len(labels) - 1))
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    names, y = np.unique(np.asarray(labels), return_inverse=True)
    nn = np.argsort(-sims, axis=1)[:, :k]
    votes = np.zeros((len(y), len(names)))
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[nn].ravel()), 1.0)
    return float(np.mean(votes.argmax(1) == y))


def classification_score(x, labels: Sequence[str], folds: int = 5, seed: int = 0, items: bool = False) -> dict:
    """Stratified k-fold logistic regression on frozen embeddings (standardised per fold): accuracy, macro-F1
    (``items``: also ``correct``, each text's out-of-fold prediction right or wrong)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    acc, f1 = [], []
    correct = np.zeros(len(y), dtype=bool)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        clf = make_pipeline(StandardScaler(with_mean=not sp.issparse(x)), LogisticRegression(max_iter=2000))
        clf.fit(x[train], y[train])
        pred = clf.predict(x[test])
        correct[test] = pred == y[test]
        acc.append(accuracy_score(y[test], pred))
        f1.append(f1_score(y[test], pred, average="macro"))
    out = {"accuracy": float(np.mean(acc)), "f1": float(np.mean(f1))}
    return {**out, "correct": correct} if items else out


def clustering_score(x, labels: Sequence[str], seeds: int = 3, items: bool = False) -> dict:
    """k-means (k = number of labels) on unit vectors, v-measure against the labels, mean over seeds
    (``items``: also ``assignments``, one cluster id array per seed)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    x = normalize_rows(x)
    k = len(set(labels))
    assignments = [KMeans(k, n_init=5, random_state=s).fit_predict(x) for s in range(seeds)]
    out = {"v_measure": float(np.mean([v_measure_score(labels, a) for a in assignments]))}
    return {**out, "assignments": assignments} if items else out


def pair_score(sims: np.ndarray, labels: np.ndarray) -> dict:
    """Pair classification from cosine similarity: average precision (MTEB's main metric) and best accuracy."""
    from sklearn.metrics import average_precision_score

    best = max(np.mean((sims >= t) == labels.astype(bool)) for t in np.unique(sims))
    return {"ap": float(average_precision_score(labels, sims)), "accuracy": float(best)}
