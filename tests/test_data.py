import pytest

from text2token.config import DataConfig
import numpy as np

from text2token.data import TextFile, load_corpus, read_texts, split_passages, wiki_articles
from text2token.errors import Text2TokenError
from text2token.eval.heldout import heldout_set
from text2token.eval.split import is_heldout


def test_split_passages_keeps_sentences_and_limits_words():
    text = "One two three. Four five six seven. Eight nine. " + " ".join(["w"] * 12) + "."
    passages = split_passages(text, max_words=6)
    assert passages[0] == "One two three."
    assert all(len(p.split()) <= 6 for p in passages)
    assert " ".join(passages).split() == text.split()


def test_read_txt_and_jsonl(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("first text\nsecond text\n")
    assert read_texts(txt) == ["first text", "second text"]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"text": "hello there"}\n{"text": "general kenobi", "id": 2}\n')
    assert read_texts(jsonl) == ["hello there", "general kenobi"]


@pytest.mark.parametrize("name, content, problem", [
    ("e.txt", b"", "empty"),
    ("w.txt", b"ok\n   \nok\n", ":2: empty or whitespace-only"),
    ("u.txt", b"ok\n\xff\xfe bad\n", ":2: not valid UTF-8"),
    ("n.txt", b"ok\nnul\x00here\n", ":2: contains a NUL byte"),
    ("j.jsonl", b'{"text": "ok"}\nnot json\n', ":2: not valid JSON"),
    ("k.jsonl", b'{"text": "ok"}\n{"body": "x"}\n', ':2: has no "text" field'),
])
def test_bad_lines_name_the_line(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    for reader in (read_texts, TextFile):
        with pytest.raises(Text2TokenError) as err:
            reader(path)
        assert problem in str(err.value)


def test_skip_bad_lines(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"good one\n\n\xffbad\ngood two\n")
    assert read_texts(path, skip_bad_lines=True) == ["good one", "good two"]


def test_missing_file():
    with pytest.raises(Text2TokenError, match="not found"):
        read_texts("/nonexistent/corpus.txt")


def test_heldout_articles_never_in_training_corpus():
    cfg = DataConfig(corpus="wiki", passage_words=40, heldout_fraction=0.1)
    train = set(load_corpus(cfg))
    held = heldout_set(cfg, n_articles=10_000)
    assert len(held.documents) > 200  # the dev part of the held-out articles; the test part is the offline suite's
    assert not train & set(held.documents)
    heldout_titles = {a["title"] for a in wiki_articles() if is_heldout(a["title"], 0.1)}
    train_titles = {a["title"] for a in wiki_articles()} - heldout_titles
    assert 0.07 < len(heldout_titles) / len(wiki_articles()) < 0.13
    assert train_titles and not train_titles & heldout_titles


def test_max_texts_is_seeded_subsample():
    a = load_corpus(DataConfig(max_texts=50, seed=1))
    b = load_corpus(DataConfig(max_texts=50, seed=1))
    c = load_corpus(DataConfig(max_texts=50, seed=2))
    assert a == b and a != c and len(a) == 50


@pytest.mark.parametrize("name, content", [
    ("c.txt", "first text\nsecond, with ünïcode ✓\n\nthird\r\n  fourth  \nlast without newline"),
    ("c.jsonl", '{"text": "hello there"}\nnot json\n{"text": "gen\\u00e9ral kenobi", "id": 2}\n{"text": "a\\nb"}\n'),
])
def test_text_file_equals_the_list(tmp_path, name, content):
    """The lazily read corpus gives the same texts as read_texts, by index, slice, iteration and subset."""
    from text2token.model.encoder import check_texts
    from text2token.targets.store import texts_fingerprint

    path = tmp_path / name
    path.write_bytes(content.encode())
    listed = read_texts(path, skip_bad_lines=True)
    lazy = TextFile(path, skip_bad_lines=True)
    assert len(lazy) == len(listed) and list(lazy) == listed
    assert [lazy[i] for i in range(len(lazy))] == listed and lazy[-1] == listed[-1]
    assert lazy[1:3] == listed[1:3] and lazy[np.int64(0)] == listed[0]
    assert texts_fingerprint(lazy) == texts_fingerprint(listed), "byte-identical fingerprint"
    assert check_texts(lazy) is lazy, "already checked: passed through, not copied into a list"
    pick = np.array([2, 0]) if len(listed) > 2 else np.array([1, 0])
    assert list(lazy.subset(pick)) == [listed[i] for i in pick]
    with pytest.raises(IndexError):
        lazy[len(lazy)]


def test_load_corpus_of_a_file_is_lazy_and_subsamples_like_a_list(tmp_path):
    path = tmp_path / "big.txt"
    texts = [f"text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(200)]
    path.write_text("\n".join(texts) + "\n")
    full = load_corpus(DataConfig(corpus=str(path)))
    assert isinstance(full, TextFile) and list(full) == texts
    sub = load_corpus(DataConfig(corpus=str(path), max_texts=30, seed=3))
    keep = np.sort(np.random.default_rng(3).choice(200, 30, replace=False))
    assert isinstance(sub, TextFile) and list(sub) == [texts[i] for i in keep]
