import pytest

from text2token.config import DataConfig
from text2token.data import heldout_set, is_heldout, load_corpus, read_texts, split_passages, wiki_articles
from text2token.errors import Text2TokenError


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
    with pytest.raises(Text2TokenError) as err:
        read_texts(path)
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
    assert len(held.documents) > 300
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
