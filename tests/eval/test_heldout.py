"""The held-out split (defined once) and the training run's before/after score with the tie-aware metric."""

import numpy as np
import pytest

from text2token.config import DataConfig
from text2token.eval import heldout, split
from text2token.eval.heldout import HeldoutSet, heldout_score, heldout_set, retrieval_scores
from text2token.eval.split import DEV_SHARE, HELDOUT_FRACTION, eval_split, is_heldout
from text2token.eval.metrics import knn_accuracy


def test_ties_are_not_credited_to_the_relevant_document():
    """All documents score the same: the relevant one is on average in the middle, not first (a strict `>`
    count, as the before/after score once used, gave every query a perfect score here)."""
    q = np.ones((4, 3))
    d = np.ones((4, 3))
    scores = retrieval_scores(q, d)
    assert scores["recall@1"] == pytest.approx(0.25)
    assert scores["mrr@10"] == pytest.approx(np.mean([1, 1 / 2, 1 / 3, 1 / 4]))
    assert scores["ndcg@10"] == pytest.approx(np.mean(1 / np.log2(np.arange(4) + 2)))


def test_untied_retrieval_is_exact():
    d = np.eye(3)
    q = np.array([[1.0, 0, 0], [0.2, 0.1, 0], [0, 0, 1]])  # query 1 ranks its document second
    scores = retrieval_scores(q, d)
    assert scores["recall@1"] == pytest.approx(2 / 3)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_heldout_score_of_an_encoder(tiny_encoder):
    data = HeldoutSet(queries=["a cat", "the market", "light energy", "capital city"],
                      documents=["the cat sat on the mat", "the stock market fell sharply today",
                                 "photosynthesis converts light into chemical energy", "Paris is the capital of France"],
                      topics=["animal", "money", "science", "place"])
    scores = heldout_score(tiny_encoder, data, batch_size=2, show_progress_bar=False)
    q, d = tiny_encoder.encode(data.queries), tiny_encoder.encode(data.documents)
    assert scores == pytest.approx({**{f"retrieval_{k}": v for k, v in retrieval_scores(q, d).items()},
                                    "topic_knn_acc": knn_accuracy(d, data.topics),
                                    "mean": (scores["retrieval_ndcg@10"] + scores["topic_knn_acc"]) / 2})


def test_split_constants_are_the_config_defaults():
    assert DataConfig().heldout_fraction == HELDOUT_FRACTION == 0.1 and DEV_SHARE == 0.3
    titles = [f"Article {i}" for i in range(5000)]
    share = np.mean([is_heldout(t) for t in titles])
    dev = np.mean([eval_split(t) == "dev" for t in titles])
    assert abs(share - HELDOUT_FRACTION) < 0.02 and abs(dev - DEV_SHARE) < 0.03


def test_before_after_articles_are_heldout_dev_and_labelled():
    data = heldout_set(DataConfig(), n_articles=50)
    by_description = {a["description"]: a for a in heldout.heldout_articles("dev")}
    assert len(data.queries) == 50 and all(q in by_description for q in data.queries)
    for q in data.queries:
        a = by_description[q]
        assert is_heldout(a["title"]) and eval_split(a["title"]) == "dev" and split.is_labelled(a)
