"""The offline evaluation suite: scoring rules, task construction, leakage checks and the eval/compare CLI."""

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp

from text2token.config import DataConfig
from text2token.data import load_corpus
from text2token.eval.suite import (TASK_TYPES, Task, classification_score, clustering_score, load_suite, pair_score,
                              ranking_score, run_suite, suite_texts)
from text2token.eval.baselines import BM25Model, TfidfModel

from helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def test_suite():
    return load_suite("test", version=1)


@pytest.fixture(scope="module")
def dev_suite():
    return load_suite("dev", version=1)


def test_ranking_score_counts_ranks():
    sims = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.3, 0.2, 0.1]])
    s = ranking_score(sims, np.array([0, 1, 2]), k=2)
    assert s["recall@1"] == pytest.approx(1 / 3)
    assert s["mrr@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 3)
    assert s["map"] == pytest.approx((1 + 0.5 + 1 / 3) / 3)


def test_ranking_ties_are_broken_at_random_in_expectation():
    """A model that scores everything 0 (BM25 with no shared word) must not be credited with rank 1."""
    flat = ranking_score(np.zeros((4, 4)), np.arange(4), k=10)
    assert flat["recall@1"] == pytest.approx(0.25)
    assert flat["map"] == pytest.approx(np.mean([1, 1 / 2, 1 / 3, 1 / 4]))
    half = ranking_score(np.array([[1.0, 1.0, 0.0]]), np.array([0]), k=1)  # tied with one other for first
    assert half["recall@1"] == pytest.approx(0.5) and half["ndcg@1"] == pytest.approx(0.5)


def test_classification_and_clustering_see_structure():
    rng = np.random.default_rng(0)
    labels = ["a"] * 30 + ["b"] * 30
    separable = np.vstack([rng.normal(0, 1, (30, 8)) + 6, rng.normal(0, 1, (30, 8)) - 6])
    noise = rng.normal(0, 1, (60, 8))
    assert classification_score(separable, labels)["accuracy"] == 1.0
    assert classification_score(noise, labels)["accuracy"] < 0.8
    assert clustering_score(separable, labels)["v_measure"] > 0.95
    assert clustering_score(noise, labels)["v_measure"] < 0.3
    assert classification_score(sp.csr_matrix(separable), labels)["accuracy"] == 1.0


def test_pair_score():
    assert pair_score(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])) == {"ap": 1.0, "accuracy": 1.0}
    assert pair_score(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0]))["ap"] < 0.6


SUITE_TASKS = {
    "wiki-topic-classification": "classification", "wiki-topic-clustering": "clustering",
    "wiki-description-retrieval": "retrieval", "wiki-topic-reranking": "reranking",
    "wordnet-definition-retrieval": "retrieval", "wordnet-lexname-classification": "classification",
    "wordnet-lexname-clustering": "clustering", "wordnet-definition-pairs": "pair_classification",
    "polarity-classification": "classification", "uncertainty-classification": "classification",
}


def test_suite_has_its_ten_tasks_of_five_types(test_suite):
    assert {t.name: t.type for t in test_suite} == SUITE_TASKS
    assert {t.type for t in test_suite} == set(TASK_TYPES)
    for task in test_suite:
        assert len(task.texts) >= 100, task.name
        assert all(isinstance(t, str) and t.strip() for t in task.texts)
        if task.labels:
            assert len(task.labels) == len(task.texts) and len(set(task.labels)) >= 2


def test_dev_and_test_are_disjoint_and_fixed(test_suite, dev_suite):
    assert not set(suite_texts(test_suite)) & set(suite_texts(dev_suite))
    again = load_suite("test", version=1)
    assert [t.texts for t in again] == [t.texts for t in test_suite]


def test_eval_texts_are_never_training_texts(test_suite, dev_suite):
    """The default training corpus (Wikipedia passages of the non-held-out articles) has no suite text."""
    corpus = set(load_corpus(DataConfig()))
    for task in [*test_suite, *dev_suite]:
        leaked = [t for t in task.texts if t in corpus]
        assert not leaked, f"{task.name}: {len(leaked)} eval texts are in the training corpus, e.g. {leaked[0]!r}"
    # and no held-out article contributes any passage: no wiki task passage's first 60 characters occur in a
    # training passage (short texts, such as the descriptions "U.S. state", are phrases any passage may hold)
    wiki_docs = {t for task in test_suite if task.name.startswith("wiki-") for t in task.texts if len(t) >= 60}
    training = "\n".join(corpus)
    assert len(wiki_docs) >= 100
    assert not [doc for doc in wiki_docs if doc[:60] in training]


def test_run_suite_with_sparse_and_scorer_models(test_suite):
    tasks = [t for t in test_suite if t.name in ("wiki-description-retrieval", "wordnet-lexname-classification")]
    r = run_suite(TfidfModel(), tasks, "tfidf", "test", show_progress_bar=False)
    assert set(r["tasks"]) == {t.name for t in tasks}
    assert 0.3 < r["tasks"]["wiki-description-retrieval"]["main_score"] <= 1.0
    assert r["average"] == pytest.approx(np.mean([v["main_score"] for v in r["tasks"].values()]))
    b = run_suite(BM25Model(), tasks, "bm25", "test", show_progress_bar=False)
    assert set(b["tasks"]) == {"wiki-description-retrieval"}  # BM25 has no vectors for classification
    assert b["tasks"]["wiki-description-retrieval"]["main_score"] > 0.3


def test_reranking_ranks_only_its_candidates():
    task = Task("r", "reranking", "map", "", ["q", "d0", "d1", "d2"], queries=[0], documents=[1, 2, 3],
                candidates=[[0, 1]])
    vectors = np.array([[1.0, 0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.0]])  # d2 is closest but not a candidate
    assert task.evaluate(vectors)["map"] == 1.0


def test_eval_and_compare_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", "baseline:tfidf", "--suite", "v1", "--tasks",
                           "wiki-description-retrieval,polarity-classification", "--output", "a.json")
    assert code == 0, err
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["model"] == "tfidf" and a["split"] == "test" and len(a["tasks"]) == 2 and a["suite_version"] == 1
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", "baseline:bm25", "--suite", "v1", "--tasks",
                           "wiki-description-retrieval,polarity-classification", "--output", "b.json")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "compare", "a.json", "b.json", "--output", "cmp/table")
    assert code == 0, err
    md = (tmp_path / "cmp" / "table.md").read_text()
    assert "| tfidf |" in md and "| bm25 |" in md and "—" in md  # bm25 has no polarity score
    assert (tmp_path / "cmp" / "table.png").stat().st_size > 5000


@pytest.mark.parametrize("n", [3, 13, 25])
def test_comparison_bars_get_distinct_colours(n):
    from text2token.eval.plots import bar_colors

    colors = bar_colors(n)
    assert len(colors) == n and len({tuple(round(v, 4) for v in c) for c in colors}) == n


@pytest.mark.parametrize("args, text", [
    (["eval", "--model", "baseline:nope"], "unknown baseline"),
    (["eval", "--model", "baseline:tfidf", "--tasks", "nope"], "unknown task"),
    (["eval", "--model", "baseline:tfidf", "--split", "train"], "unknown split"),
    (["eval", "--model", "baseline:tfidf", "--suite", "mteb"], "unknown suite"),
    (["eval", "--model", "baseline:tfidf", "--suite", "v3"], "unknown suite"),
    (["compare", "missing.json"], "results file not found"),
])
def test_eval_errors_are_one_line(monkeypatch, capsys, tmp_path, args, text):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, text)


def test_baseline_models(tiny_dir, tiny_encoder, tmp_path):
    from text2token.eval.baselines import load_model
    from text2token.config import DEFAULT_PROMPT

    raw = {name: load_model(f"baseline:{name}", backbone=str(tiny_dir))
           for name in ("mean", "eos", "prompteol", "mean-bidir", "prompteol-bidir")}
    assert (raw["mean"].settings.pooling, raw["mean"].settings.prompt) == ("mean", "{text}")
    for name in ("mean", "prompteol"):  # the -bidir forms differ only in attention, and encode with it
        assert raw[name].settings.attention == "causal"
        assert raw[f"{name}-bidir"].settings == dataclasses.replace(raw[name].settings, attention="bidirectional")
    texts = ["a cat sat on the mat", "stock markets fell sharply today"]
    assert not np.allclose(raw["mean"].encode(texts), raw["mean-bidir"].encode(texts), atol=1e-4)
    assert (raw["eos"].settings.pooling, raw["eos"].settings.prompt) == ("eos", "{text}")
    assert (raw["prompteol"].settings.pooling, raw["prompteol"].settings.prompt) == ("eos", DEFAULT_PROMPT)
    tiny_encoder.save(tmp_path / "run" / "final")
    assert load_model(str(tmp_path / "run")).settings == tiny_encoder.settings  # a run dir means its final/
    minilm = load_model("baseline:minilm")
    v = minilm.encode(["a cat sat on the mat", "stock markets fell"])
    assert v.shape == (2, 384) and abs(float((v[0] ** 2).sum()) - 1.0) < 1e-3  # MiniLM normalises its output


def test_eval_records_the_precision_auto_became(tiny_encoder, tmp_path, monkeypatch, capsys):
    from text2token.model.precision import resolve_precision

    tiny_encoder.save(tmp_path / "model")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", str(tmp_path / "model"), "--suite", "v1",
                           "--tasks", "polarity-classification", "--output", str(tmp_path / "r.json"))
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert (r["precision"], r["precision_requested"]) == (resolve_precision("auto", "cpu"), "auto")
