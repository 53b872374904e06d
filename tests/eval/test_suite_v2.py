"""Suite v2: masking, task construction invariants (held-out only, dev/test disjoint, no shared key word,
hard negatives), the exclusion rule of retrieval, and the bootstrap."""

import numpy as np
import pytest

from text2token.eval import bootstrap
from text2token.eval.masking import MASK, content_forms, mask_words, shares_content, stem
from text2token.eval.suite import SUITE_VERSION, Task, load_suite, suite_texts

V2_TASKS = {
    "wiki-topic-classification": "classification", "wiki-topic-clustering": "clustering",
    "wiki-masked-retrieval": "retrieval", "wiki-pool-retrieval": "retrieval", "wiki-hard-reranking": "reranking",
    "wordnet-usage-retrieval": "retrieval", "wordnet-sense-reranking": "reranking",
    "wordnet-lexname-classification": "classification", "wordnet-lexname-clustering": "clustering",
    "wordnet-sense-pairs": "pair_classification", "polarity-classification": "classification",
    "uncertainty-classification": "classification",
}


@pytest.fixture(scope="module")
def v2():
    return {split: {t.name: t for t in load_suite(split, version=2)} for split in ("dev", "test")}


# ------------------------------------------------------------------------------------------- masking
def test_stem_and_mask_treat_inflections_alike():
    assert stem("running") == stem("run") and stem("studies") == stem("study") and stem("baked") == stem("bake")
    text, n = mask_words("The Lisbon earthquake: he ran, Lisbon's ships sank.", content_forms("Lisbon earthquakes run"))
    assert text == f"The {MASK} {MASK}: he {MASK}, {MASK}'s ships sank." and n == 4  # 'ran' via WordNet's verb.exc
    assert not shares_content("an electronic memory device", f"a {MASK} and the CPU")
    assert shares_content("the device", "devices fail")
    assert not shares_content("the of and", "the of and")  # stop words are not content words


# ------------------------------------------------------------------------------------------- construction
def test_v2_is_the_default_with_its_tasks(v2):
    assert SUITE_VERSION == 2
    assert [t.name for t in load_suite("dev")] == list(v2["dev"])
    for split in ("dev", "test"):
        assert {n: t.type for n, t in v2[split].items()} == V2_TASKS
        for task in v2[split].values():
            assert all(isinstance(t, str) and t.strip() for t in task.texts), task.name


def test_pools_are_large_and_dev_test_disjoint(v2):
    dev, test = v2["dev"], v2["test"]
    assert len(dev["wiki-masked-retrieval"].documents) >= 700 and len(test["wiki-masked-retrieval"].documents) >= 1900
    assert len(dev["wordnet-usage-retrieval"].documents) >= 1300
    assert not set(suite_texts(list(dev.values()))) & set(suite_texts(list(test.values())))


def test_wikipedia_pool_is_held_out_articles_of_its_split(v2):
    from text2token.data import load_corpus
    from text2token.config import DataConfig
    from text2token.eval.split import eval_split, is_heldout
    from text2token.eval.suite_tasks_v2 import wiki_pool

    corpus = set(load_corpus(DataConfig()))
    for split in ("dev", "test"):
        arts, docs, owner = wiki_pool(split)
        assert all(is_heldout(a["title"]) and eval_split(a["title"]) == split for a in arts)
        assert len(owner) == len(docs) and not corpus & set(docs)
        assert not corpus & set(suite_texts(list(v2[split].values())))


def _pairs(task: Task):
    """(query text, relevant document text) of a retrieval, reranking or pair task."""
    if task.type == "retrieval":
        return [(task.texts[q], task.texts[task.documents[r]]) for q, r in zip(task.queries, task.relevant)]
    if task.type == "reranking":
        return [(task.texts[q], task.texts[task.documents[c[0]]]) for q, c in zip(task.queries, task.candidates)]
    return [(task.texts[q], task.texts[d]) for q, d, y in zip(task.queries, task.documents, task.pair_labels) if y]


@pytest.mark.parametrize("name", ["wiki-masked-retrieval", "wiki-hard-reranking", "wordnet-usage-retrieval",
                                  "wordnet-sense-reranking", "wordnet-sense-pairs"])
def test_no_query_shares_a_content_word_with_its_document(v2, name):
    for split in ("dev", "test"):
        pairs = _pairs(v2[split][name])
        assert len(pairs) >= 150
        shared = [(q, d) for q, d in pairs if shares_content(q, d)]
        assert not shared, f"{name} {split}: {len(shared)} queries share a word, e.g. {shared[0]}"


def test_pool_retrieval_is_the_masked_task_with_the_passages_as_written(v2):
    for split in ("dev", "test"):
        masked, plain = v2[split]["wiki-masked-retrieval"], v2[split]["wiki-pool-retrieval"]
        assert (plain.queries, plain.documents, plain.relevant, plain.exclude) == (
            masked.queries, masked.documents, masked.relevant, masked.exclude)
        docs = [plain.texts[d] for d in plain.documents]
        assert not any(MASK in d for d in docs) and sum(MASK in masked.texts[d] for d in masked.documents) > 100
        pairs = _pairs(plain)
        assert sum(shares_content(q, d) for q, d in pairs) > len(pairs) / 2, "most queries share a key word"


def test_retrieval_exclusions_and_hard_negatives(v2):
    from text2token.eval.suite_tasks_v2 import RERANK_NEGATIVES

    ret, rer = v2["dev"]["wiki-masked-retrieval"], v2["dev"]["wiki-hard-reranking"]
    assert len(ret.exclude) == len(ret.queries)
    assert all(r not in drop for r, drop in zip(ret.relevant, ret.exclude))
    assert sum(map(len, ret.exclude)) > 100  # lead articles have later passages
    for rel, drop, cand in zip(ret.relevant, ret.exclude, rer.candidates):
        assert cand[0] == rel and len(cand) == 1 + RERANK_NEGATIVES == len(set(cand))
        assert not set(cand) & set(drop)  # negatives come from other articles
    senses = v2["dev"]["wordnet-sense-reranking"]
    assert all(3 <= len(c) <= 6 for c in senses.candidates)


def test_tfidf_cannot_read_the_answer_off_the_words(v2):
    """Masking removes the lexical give-away: TF-IDF, 0.88 nDCG@10 on v1's description retrieval, drops."""
    from text2token.eval.baselines import TfidfModel
    from text2token.eval.suite import run_suite

    task = v2["dev"]["wiki-masked-retrieval"]
    r = run_suite(TfidfModel(), [task], "tfidf", "dev", show_progress_bar=False)["tasks"][task.name]
    assert r["main_score"] < 0.5 and r["n_texts"] == len(task.texts)


# ------------------------------------------------------------------------------------------- scoring
def test_excluded_documents_are_not_ranked():
    task = Task("r", "retrieval", "ndcg@10", "", ["q", "d0", "d1", "d2"], queries=[0], documents=[1, 2, 3],
                relevant=[1], exclude=[[2]])
    vectors = np.array([[1.0, 0], [0.0, 1.0], [0.9, 0.1], [1.0, 0.0]])  # d2 (excluded) beats d1 (relevant)
    assert task.evaluate(vectors)["recall@1"] == 1.0
    task.exclude = [[]]
    assert task.evaluate(vectors)["recall@1"] == 0.0


def _result(tasks: dict) -> dict:
    return {"model": "m", "tasks": {k: {"main_score": bootstrap.statistic(v)[1](np.arange(bootstrap.statistic(v)[0])),
                                        "items": v} for k, v in tasks.items()}}


def test_bootstrap_standard_errors_and_paired_differences():
    rng = np.random.default_rng(0)
    const = {"kind": "mean", "values": [0.5] * 50}
    mixed = {"kind": "mean", "values": rng.integers(0, 2, 400).tolist()}
    assert bootstrap.standard_errors({"a": {"items": const}})["average_se"] == 0.0
    se = bootstrap.standard_errors({"b": {"items": mixed}}, rounds=300)["average_se"]
    assert se == pytest.approx(0.5 / np.sqrt(400), rel=0.2)  # a coin's SE
    ap = {"kind": "ap", "labels": [1, 0] * 50, "sims": rng.random(100).tolist()}
    clusters = {"kind": "v_measure", "labels": ["x", "y"] * 30, "assignments": [[0, 1] * 30, [0, 0] * 30]}
    a = _result({"b": mixed, "ap": ap, "c": clusters})
    assert bootstrap.paired_difference(a, a, rounds=50) == {"difference": 0.0, "se": 0.0, "tasks": ["ap", "b", "c"]}
    better = {"kind": "mean", "values": [1] * 400}
    d = bootstrap.paired_difference(_result({"b": mixed}), _result({"b": better}), rounds=200)
    assert d["difference"] == pytest.approx(1 - np.mean(mixed["values"])) and 0 < d["se"] < 0.05
    with pytest.raises(Exception, match="unknown bootstrap item kind"):
        bootstrap.standard_errors({"x": {"items": {"kind": "median", "values": [1]}}})


def test_bootstrap_statistics_match_sklearn():
    from sklearn.metrics import average_precision_score, v_measure_score

    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.choice(["x", "y", "z"], 60)
        assigned = rng.integers(0, rng.integers(1, 5), 60)
        assert bootstrap.v_measure(labels, assigned) == pytest.approx(v_measure_score(labels, assigned), abs=1e-12)
        y, sims = rng.integers(0, 2, 50), rng.integers(0, 8, 50) / 8.0  # many ties
        assert bootstrap.average_precision(y, sims) == pytest.approx(average_precision_score(y, sims), abs=1e-12)
    assert bootstrap.v_measure(np.array(["a"] * 5), np.zeros(5, int)) == 1.0


def test_run_suite_records_items_and_standard_errors(v2):
    from text2token.eval.baselines import TfidfModel
    from text2token.eval.suite import run_suite

    tasks = [v2["dev"]["wordnet-sense-pairs"], v2["dev"]["wordnet-lexname-clustering"]]
    r = run_suite(TfidfModel(), tasks, "tfidf", "dev", show_progress_bar=False)
    assert r["suite_version"] == 2 and r["average_se"] > 0
    for task in tasks:
        t = r["tasks"][task.name]
        assert t["se"] > 0 and t["items"]["kind"] in ("ap", "v_measure")
        n, stat = bootstrap.statistic(t["items"])
        assert stat(np.arange(n)) == pytest.approx(t["main_score"], abs=1e-3)


def test_compare_table_shows_standard_errors_and_paired_differences(v2):
    from text2token.eval.baselines import TfidfModel
    from text2token.eval.report import comparison_table
    from text2token.eval.suite import run_suite

    task = v2["dev"]["wordnet-sense-pairs"]
    a = run_suite(TfidfModel(), [task], "a", "dev", show_progress_bar=False)
    b = {**a, "model": "b"}
    table = comparison_table([a, b])
    assert "avg se" in table.splitlines()[0]
    assert "- b - a: +0.00 (paired bootstrap SE 0.00, 1 tasks)" in table
