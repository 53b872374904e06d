"""The MTEB v2 adapter: mteb.evaluate on local in-memory tasks with the tiny encoder, prompts, metadata, CLI."""

from __future__ import annotations

import sys

import pytest

mteb = pytest.importorskip("mteb")

from helpers import assert_one_line_error, run_cli

from text2token.model.encoder import Encoder
from text2token.model.pooling import POOLINGS
from text2token.errors import Text2TokenError
from text2token.eval.mteb import (
    local_classification_task,
    local_retrieval_task,
    to_mteb,
)

TOPICS = {
    "animals": [
        "The cat sat on the warm mat by the fire.",
        "A dog chased the ball across the park.",
        "Zebras and giraffes graze together on the savanna.",
        "The owl hunts mice at night.",
        "Dolphins swim in large groups called pods.",
        "The horse galloped across the open field.",
        "Bees collect nectar from flowers in spring.",
        "A lion rested in the shade of a tree.",
    ],
    "finance": [
        "The stock market fell sharply today.",
        "The central bank raised interest rates again.",
        "Investors sold their shares after the report.",
        "The company reported record profits this quarter.",
        "Inflation pushed the price of bread higher.",
        "The bank approved a loan for the new factory.",
        "Bond yields rose as traders expected more rate hikes.",
        "The currency lost value against the dollar.",
    ],
    "science": [
        "Photosynthesis converts light into chemical energy.",
        "Water boils at one hundred degrees Celsius at sea level.",
        "The electron carries a negative electric charge.",
        "Gravity keeps the planets in orbit around the sun.",
        "DNA stores the genetic instructions of living things.",
        "A prism splits white light into a spectrum of colours.",
        "Volcanoes form where magma reaches the surface.",
        "Atoms bond together to form molecules.",
    ],
}

CORPUS = {
    "paris": {"title": "Paris", "text": "Paris is the capital and largest city of France."},
    "violin": {"title": "Violin", "text": "The violin is a wooden string instrument played with a bow."},
    "volcano": "A volcano is a rupture in the crust of a planet through which lava escapes.",
    "python": "Python is a programming language that emphasises code readability.",
    "everest": "Mount Everest is the highest mountain above sea level, in the Himalayas.",
    "honey": "Honey is a sweet food made by bees from the nectar of flowers.",
}
QUERIES = {
    "q1": "capital of France",
    "q2": "string instrument played with a bow",
    "q3": "where lava comes out of the ground",
    "q4": "a language for writing programs",
    "q5": "tallest mountain in the world",
    "q6": "sweet food made by bees",
}
QRELS = {"q1": {"paris": 1}, "q2": {"violin": 1}, "q3": ["volcano"], "q4": {"python": 1},
         "q5": {"everest": 2, "volcano": 0}, "q6": ["honey"]}


def classification_task(name="LocalTopics"):
    train = [(t, label) for label, texts in TOPICS.items() for t in texts[:5]]
    test = [(t, label) for label, texts in TOPICS.items() for t in texts[5:]]
    return local_classification_task(name, [t for t, _ in train], [y for _, y in train],
                                      [t for t, _ in test], [y for _, y in test])


def retrieval_task(name="LocalFacts", **kwargs):
    return local_retrieval_task(name, QUERIES, CORPUS, QRELS, **kwargs)


@pytest.fixture()
def encode_calls(monkeypatch):
    """Records (prompt template, texts) of every Encoder.encode call."""
    calls = []
    original = Encoder.encode

    def spy(self, texts, *args, **kwargs):
        calls.append((self.settings.prompt, list(texts)))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(Encoder, "encode", spy)
    return calls


def evaluate(model, tasks, **kwargs):
    return mteb.evaluate(model, tasks, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": 8},
                         **kwargs)


def test_evaluate_local_tasks_with_prompts(tiny_encoder, encode_calls):
    prompts = {"Classification": 'Topic of "{text}":', "query": "Query: {text}", "document": "Passage: {text}"}
    model = to_mteb(tiny_encoder, name="text2token/tiny", prompts=prompts)
    assert isinstance(model, mteb.models.EncoderProtocol)
    results = evaluate(model, [classification_task(), retrieval_task()])

    assert not results.exceptions
    scores = {r.task_name: r for r in results.task_results}
    assert set(scores) == {"LocalTopics", "LocalFacts"}
    for result in scores.values():
        split = result.scores["test"][0]
        assert 0.0 <= split["main_score"] <= 1.0
    assert scores["LocalTopics"].scores["test"][0]["main_score"] == scores["LocalTopics"].scores["test"][0]["accuracy"]
    assert scores["LocalFacts"].scores["test"][0]["main_score"] == scores["LocalFacts"].scores["test"][0]["ndcg_at_10"]

    by_prompt = {}
    for prompt, texts in encode_calls:
        by_prompt.setdefault(prompt, []).extend(texts)
    assert set(by_prompt) == set(prompts.values())
    assert sorted(by_prompt["Query: {text}"]) == sorted(QUERIES.values())
    assert "Paris Paris is the capital and largest city of France." in by_prompt["Passage: {text}"]  # title + text
    assert len(by_prompt["Passage: {text}"]) == len(CORPUS)
    assert len(by_prompt['Topic of "{text}":']) == sum(len(v) for v in TOPICS.values())  # train + test
    assert tiny_encoder.settings.prompt == "{text}"  # the caller's encoder is unchanged


def test_default_prompt_priority_and_instructions(tiny_encoder, encode_calls):
    task = retrieval_task(prompt={"query": "Find the article that answers the question."})
    model = to_mteb(tiny_encoder, prompts={"LocalFacts-query": "Instruct: {instruction}\nQuery: {text}",
                                           "Retrieval": "R: {text}", "query": "never used: {text}"})
    q, d = mteb.types.PromptType.query, mteb.types.PromptType.document
    assert model.template_for(task.metadata, q) == "Instruct: Find the article that answers the question.\nQuery: {text}"
    assert model.template_for(task.metadata, d) == "R: {text}"
    assert model.template_for(classification_task().metadata, None) == "{text}"  # no match: the encoder's own

    evaluate(to_mteb(tiny_encoder), [classification_task()])
    assert encode_calls and {p for p, _ in encode_calls} == {"{text}"}


def test_prompted_view_equals_an_encoder_with_that_prompt(tiny, tiny_encoder):
    from dataclasses import replace

    import numpy as np

    model = to_mteb(tiny_encoder, prompts={"query": "Q: {text}"})
    texts = list(QUERIES.values())
    via_view = model.encoder_for("Q: {text}").encode(texts)
    own = Encoder(tiny[0], tiny[1], replace(tiny_encoder.settings, prompt="Q: {text}"), device="cpu").encode(texts)
    np.testing.assert_allclose(via_view, own, atol=1e-6)
    assert not np.allclose(via_view, tiny_encoder.encode(texts))


def test_model_meta_from_encoder(tiny_encoder):
    meta = to_mteb(tiny_encoder, name="text2token/tiny").mteb_model_meta
    n_params = sum(p.numel() for p in tiny_encoder.model.parameters())
    assert (meta.name, meta.embed_dim, meta.max_tokens, meta.n_parameters) == ("text2token/tiny", 32, 32, n_params)
    assert meta.similarity_fn_name.value == "cosine" and meta.open_weights and meta.use_instructions is False
    assert meta.training_datasets == set() and meta.languages == ["eng-Latn"]
    assert len(meta.revision) == 12 and meta.revision == to_mteb(tiny_encoder).mteb_model_meta.revision
    assert to_mteb(tiny_encoder, prompts={"query": "Q: {text}"}).mteb_model_meta.revision != meta.revision
    assert to_mteb(tiny_encoder, revision="local", license="apache-2.0").mteb_model_meta.revision == "local"


def test_results_cache_in_tmp_path_and_loader(tiny_encoder, tiny_dir, tmp_path, encode_calls):
    tiny_encoder.save(tmp_path / "run" / "final")
    model = to_mteb(tiny_encoder, name="text2token/run", path=str(tmp_path / "run" / "final"))
    cache = mteb.ResultCache(cache_path=tmp_path / "results")
    first = mteb.evaluate(model, retrieval_task(), cache=cache, show_progress_bar=False)
    written = list((tmp_path / "results").rglob("LocalFacts.json"))
    assert len(written) == 1 and model.mteb_model_meta.revision in str(written[0])
    n_calls = len(encode_calls)
    again = mteb.evaluate(model, retrieval_task(), cache=cache, show_progress_bar=False)  # from the cache
    assert len(encode_calls) == n_calls
    assert again.task_results[0].get_score() == first.task_results[0].get_score()

    loaded = model.mteb_model_meta.load_model()  # the metadata's loader reloads the saved directory
    assert loaded.mteb_model_meta.revision == model.mteb_model_meta.revision


def test_bad_inputs_are_one_line_errors(tiny_encoder):
    with pytest.raises(Text2TokenError, match="exactly once"):
        to_mteb(tiny_encoder, prompts={"query": "no placeholder"})
    with pytest.raises(Text2TokenError, match="organization/model_name"):
        to_mteb(tiny_encoder, name="tiny")
    with pytest.raises(Text2TokenError, match="unknown ids"):
        local_retrieval_task("Bad", QUERIES, CORPUS, {"q1": {"nowhere": 1}})
    with pytest.raises(Text2TokenError, match="two labels"):
        local_classification_task("Bad", ["a b", "c d"], [0, 0], ["e f"], [0])


def test_cli_unknown_task_is_one_line_error(monkeypatch, capsys, tiny_encoder, tmp_path):
    model_dir = tiny_encoder.save(tmp_path / "model")
    code, _, err = run_cli(monkeypatch, capsys, "mteb", "--model", model_dir, "--tasks", "NoSuchTask",
                           "--output", tmp_path / "out")
    assert_one_line_error(code, err, "NoSuchTask")
    code, _, err = run_cli(monkeypatch, capsys, "mteb", "--model", model_dir, "--tasks", "SciFact",
                           "--benchmark", "MTEB(eng, v2)")
    assert_one_line_error(code, err, "either --tasks or --benchmark")
    code, _, err = run_cli(monkeypatch, capsys, "mteb", "--model", model_dir, "--benchmark", "MTEB(nowhere)")
    assert_one_line_error(code, err, "unknown MTEB benchmark")
    (tmp_path / "prompts.json").write_text('{"query": "no placeholder"}')
    code, _, err = run_cli(monkeypatch, capsys, "mteb", "--model", model_dir, "--tasks", "SciFact",
                           "--prompts", tmp_path / "prompts.json")
    assert_one_line_error(code, err, "'query' must contain")
    assert not (tmp_path / "out").exists()


def test_cli_without_mteb_is_one_line_error(monkeypatch, capsys, tmp_path):
    import text2token

    monkeypatch.delitem(sys.modules, "text2token.eval.mteb", raising=False)
    monkeypatch.delattr(text2token, "mteb_model", raising=False)
    monkeypatch.setitem(sys.modules, "mteb", None)  # import mteb -> ImportError
    code, _, err = run_cli(monkeypatch, capsys, "mteb", "--model", tmp_path, "--tasks", "SciFact")
    assert_one_line_error(code, err, "pip install 'text2token[mteb]'")


def test_empty_texts_in_mteb_data_are_encoded_not_refused(tiny_encoder):
    model = to_mteb(tiny_encoder)
    batches = [{"text": ["the cat sat on the mat", ""]}, {"text": ["   "]}]
    vectors = model.encode(batches, task_metadata=classification_task().metadata, hf_split="test",
                           hf_subset="default")
    assert vectors.shape == (3, 32) and vectors.dtype == "float32"


def test_run_mteb_on_a_saved_model(tiny_encoder, tmp_path):
    from text2token.eval.mteb import run_mteb

    tiny_encoder.save(tmp_path / "runs" / "tiny" / "final")
    rows = run_mteb(tmp_path / "runs" / "tiny" / "final", [classification_task(), retrieval_task()],
                    tmp_path / "results", batch_size=8)
    assert [(r["task"], r["type"], r["metric"]) for r in rows] == [
        ("LocalTopics", "Classification", "accuracy"), ("LocalFacts", "Retrieval", "ndcg_at_10")]
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    assert len(list((tmp_path / "results").rglob("text2token__tiny/*/LocalFacts.json"))) == 1


def test_offline_suite_tasks_run_in_mteb_with_the_same_scores(tiny_encoder):
    """Tasks of the offline suite as local MTEB tasks: mteb.evaluate's nDCG@10 equals the suite's own."""
    from text2token.eval.suite import load_suite, run_suite, to_mteb_task

    suite = {t.name: t for t in load_suite("dev", ["wordnet-definition-retrieval", "polarity-classification"], version=1)}
    retrieval = suite["wordnet-definition-retrieval"]
    tasks = [to_mteb_task(retrieval), to_mteb_task(suite["polarity-classification"])]
    results = {r.task_name: r.scores["test"][0] for r in evaluate(to_mteb(tiny_encoder), tasks).task_results}
    assert set(results) == {"wordnet-definition-retrieval", "polarity-classification"}
    ours = run_suite(tiny_encoder, [retrieval], "tiny", "dev", show_progress_bar=False)
    assert results["wordnet-definition-retrieval"]["ndcg_at_10"] == pytest.approx(
        ours["tasks"]["wordnet-definition-retrieval"]["ndcg@10"], abs=2e-3)
    assert 0.0 <= results["polarity-classification"]["accuracy"] <= 1.0
    with pytest.raises(Text2TokenError, match="no local MTEB version"):
        to_mteb_task(load_suite("dev", ["wordnet-lexname-clustering"], version=1)[0])


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_every_pooling_runs_through_mteb(tiny, pooling):
    """MTEB's nDCG@10 of an encoder with each pooling equals the suite's metric on the encoder's own vectors."""
    import numpy as np

    from text2token.eval.metrics import cosine, ranking_score
    from text2token.model.settings import EncoderSettings

    model, tokenizer = tiny
    enc = Encoder(model, tokenizer, EncoderSettings(pooling=pooling, prompt="{text}", max_length=32), device="cpu")
    docs = [t for texts in TOPICS.values() for t in texts]
    queries = [" ".join(t.split()[:3]) for t in docs]
    task = local_retrieval_task(f"Prefix-{pooling}", {f"q{i}": q for i, q in enumerate(queries)},
                                {f"d{i}": d for i, d in enumerate(docs)}, {f"q{i}": {f"d{i}": 1} for i in range(len(docs))})
    got = evaluate(to_mteb(enc), [task]).task_results[0].scores["test"][0]["ndcg_at_10"]
    want = ranking_score(cosine(enc.encode(queries), enc.encode(docs)), np.arange(len(docs)))["ndcg@10"]
    assert got == pytest.approx(want, abs=1e-3)
