"""Corpus formats beyond .txt / .jsonl: CSV / TSV, Parquet, folders of .txt files, datasets save_to_disk folders."""

import json

import numpy as np
import pytest

from text2token.config import DataConfig
from text2token.data import (CsvTexts, DatasetTexts, LazyTexts, ParquetTexts, TextFolder, load_corpus,
                             open_corpus)
from text2token.errors import Text2TokenError

TEXTS = [f"text number {i}, with a comma" for i in range(50)] + ['a "quoted"\nmulti-line text', "élan vital"]


def _parquet(path, column, values, row_group_size=7, **other):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({column: values, **other}), path, row_group_size=row_group_size)
    return path


def _dataset(path, **columns):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict(columns).save_to_disk(str(path))
    return path


def _csv(path, rows, header=("id", "text"), delimiter=","):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _same(corpus, texts):
    """Every way of reading gives ``texts``: iteration, index, slice, take, subset."""
    assert isinstance(corpus, LazyTexts) and len(corpus) == len(texts)
    assert list(corpus) == texts
    assert corpus[3] == texts[3] and corpus[-1] == texts[-1] and corpus[2:9] == texts[2:9]
    order = np.random.default_rng(0).permutation(len(texts))
    assert corpus.take(order) == [texts[i] for i in order]
    assert list(corpus.subset(order[:10])) == [texts[i] for i in order[:10]]


def test_csv_and_tsv(tmp_path):
    _same(open_corpus(_csv(tmp_path / "c.csv", [(i, t) for i, t in enumerate(TEXTS)])), TEXTS)
    _same(open_corpus(_csv(tmp_path / "c.tsv", [(i, t) for i, t in enumerate(TEXTS)], delimiter="\t")), TEXTS)


def test_parquet_reads_by_row_group(tmp_path):
    corpus = open_corpus(_parquet(tmp_path / "c.parquet", "text", TEXTS, id=list(range(len(TEXTS)))))
    assert isinstance(corpus, ParquetTexts) and corpus._file.num_row_groups == 8
    _same(corpus, TEXTS)


def test_dataset_folder_and_dataset_dict(tmp_path):
    corpus = open_corpus(_dataset(tmp_path / "ds", text=TEXTS, label=list(range(len(TEXTS)))))
    assert isinstance(corpus, DatasetTexts)
    _same(corpus, TEXTS)
    datasets = pytest.importorskip("datasets")
    train, test = datasets.Dataset.from_dict({"text": TEXTS}), datasets.Dataset.from_dict({"text": ["other"]})
    datasets.DatasetDict({"test": test, "train": train}).save_to_disk(str(tmp_path / "dd"))
    assert list(open_corpus(tmp_path / "dd")) == TEXTS  # the train split
    datasets.DatasetDict({"a": train, "b": test}).save_to_disk(str(tmp_path / "ab"))
    with pytest.raises(Text2TokenError, match="splits a, b"):
        open_corpus(tmp_path / "ab")
    assert list(open_corpus(tmp_path / "ab" / "b")) == ["other"]


def test_folder_of_txt_files_in_sorted_order(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second\n")
    (folder / "a.txt").write_text("  first text\nover two lines\n")
    (folder / "sub" / "c.txt").write_text("third")
    (folder / "notes.md").write_text("not a text file")
    (folder / ".hidden.txt").write_text("left out")
    corpus = open_corpus(folder)
    assert isinstance(corpus, TextFolder)
    assert list(corpus) == ["first text\nover two lines", "second", "third"]
    assert corpus.subset([2, 0]).take([0, 1]) == ["third", "first text\nover two lines"]


def test_text_field_option_for_each_format(tmp_path):
    texts = TEXTS[:5]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"body": t, "text": 1}) + "\n" for t in texts))
    files = [tmp_path / "c.jsonl", _csv(tmp_path / "c.csv", [(t, "x") for t in texts], header=("body", "text")),
             _parquet(tmp_path / "c.parquet", "body", texts), _dataset(tmp_path / "ds", body=texts)]
    for path in files:
        assert list(open_corpus(path, text_field="body")) == texts, path
        assert list(load_corpus(DataConfig(corpus=str(path), text_field="body"))) == texts


def test_load_corpus_subsamples_any_format(tmp_path):
    path = _parquet(tmp_path / "c.parquet", "text", TEXTS)
    sub = load_corpus(DataConfig(corpus=str(path), max_texts=10, seed=3))
    keep = np.sort(np.random.default_rng(3).choice(len(TEXTS), 10, replace=False))
    assert isinstance(sub, ParquetTexts) and list(sub) == [TEXTS[i] for i in keep]


def _error(path, **kw) -> str:
    with pytest.raises(Text2TokenError) as err:
        open_corpus(path, **kw)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_csv_errors_name_the_row_and_line(tmp_path):
    rows = [(i, t) for i, t in enumerate(TEXTS[:20])]
    rows[16] = (16, "   ")
    path = _csv(tmp_path / "corpus.csv", rows[:1] + [(0, "two\nlines")] + rows[1:])
    assert f"{path} row 18 (line 20): empty text field 'text'" in _error(path)
    assert len(CsvTexts(path, skip_bad_lines=True)) == 20
    assert "missing column 'body' (columns: id, text)" in _error(path, text_field="body")
    short = tmp_path / "short.csv"
    short.write_text("id,text\n1,ok\n2\n")
    assert "row 2 (line 3): no value for column 'text'" in _error(short)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,text\n1,ok\n2,\xff\xfe\n3,nul\x00here\n")
    assert "row 2 (line 3): not valid UTF-8" in _error(bad)
    assert list(CsvTexts(bad, skip_bad_lines=True)) == ["ok"]
    (tmp_path / "empty.csv").write_text("id,text\n")
    assert "no texts" in _error(tmp_path / "empty.csv")


def test_parquet_errors(tmp_path):
    values = TEXTS[:20]
    values[16] = ""
    path = _parquet(tmp_path / "corpus.parquet", "text", values)
    assert f"{path} row 17: empty text field 'text'" in _error(path)
    assert len(ParquetTexts(path, skip_bad_lines=True)) == 19
    assert "missing column 'body' (columns: text)" in _error(path, text_field="body")
    nulls = _parquet(tmp_path / "n.parquet", "text", ["ok", None, "nul\x00"])
    assert "row 2: no value in text field 'text'" in _error(nulls)
    assert list(ParquetTexts(nulls, skip_bad_lines=True)) == ["ok"]
    ints = _parquet(tmp_path / "i.parquet", "text", [1, 2])
    assert "column 'text' holds int64, not text" in _error(ints)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    assert "not a readable Parquet file" in _error(tmp_path / "junk.parquet")


def test_dataset_errors(tmp_path):
    path = _dataset(tmp_path / "ds", text=["ok", "  ", "fine"], label=[0, 1, 2])
    assert f"{path} row 2: empty text field 'text'" in _error(path)
    assert list(DatasetTexts(path, skip_bad_lines=True)) == ["ok", "fine"]
    assert "missing column 'body' (columns: text, label)" in _error(path, text_field="body")
    (path / "data-00000-of-00001.arrow").unlink()
    assert "datasets files missing: data-00000-of-00001.arrow" in _error(path)


def test_folder_and_format_errors(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    assert "no .txt files" in _error(folder)
    (folder / "a.txt").write_text("fine")
    (folder / "b.txt").write_bytes(b"\xff\xfe")
    assert f"{folder / 'b.txt'}: not valid UTF-8" in _error(folder)
    assert list(TextFolder(folder, skip_bad_lines=True)) == ["fine"]
    (tmp_path / "c.xlsx").write_bytes(b"")
    assert "unknown corpus format '.xlsx'" in _error(tmp_path / "c.xlsx")
    assert "not found" in _error(tmp_path / "missing.parquet")
