"""Corpora: the built-in Wikipedia passages and the files people have (see :func:`open_corpus`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import Text2TokenError
from .columns import DatasetTexts, ParquetTexts, is_dataset_folder
from .lazy import LazyTexts
from .lines import LINE_SUFFIXES, TextFile, read_texts
from .records import CSV_SUFFIXES, CsvTexts, TextFolder
from .wiki import WIKI_PACKAGE, split_passages, wiki_articles, wiki_passages

__all__ = ["LazyTexts", "TextFile", "CsvTexts", "TextFolder", "ParquetTexts", "DatasetTexts", "open_corpus",
           "load_corpus", "read_texts", "split_passages", "wiki_articles", "wiki_passages", "WIKI_PACKAGE"]

FORMATS = ".txt, .jsonl, .csv, .tsv, .parquet, a folder of .txt files or a datasets save_to_disk folder"


def open_corpus(path: str | Path, text_field: str = "text", skip_bad_lines: bool = False) -> LazyTexts:
    """The texts of a corpus file or folder, read on demand; the format follows from the suffix or the folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise Text2TokenError(f"input file not found: {path}")
    if path.is_dir():
        if is_dataset_folder(path):
            return DatasetTexts(path, text_field, skip_bad_lines)
        return TextFolder(path, skip_bad_lines)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return CsvTexts(path, text_field, skip_bad_lines)
    if suffix in (".parquet", ".pq"):
        return ParquetTexts(path, text_field, skip_bad_lines)
    if suffix in LINE_SUFFIXES:
        return TextFile(path, skip_bad_lines, text_field)
    raise Text2TokenError(f"{path}: unknown corpus format {suffix!r} (expected {FORMATS})")


def load_corpus(cfg: DataConfig) -> list[str] | LazyTexts:
    """The training texts named by ``cfg.corpus``, optionally subsampled to ``max_texts`` (seeded).

    A file corpus is read on demand (millions of texts cost a few MB); the built-in Wikipedia corpus is a list.
    """
    if cfg.corpus == "wiki":
        texts = wiki_passages(cfg.passage_words, cfg.heldout_fraction)
    else:
        texts = open_corpus(cfg.corpus, cfg.text_field, cfg.skip_bad_lines)
    if cfg.max_texts is not None and cfg.max_texts < len(texts):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(texts), cfg.max_texts, replace=False))
        texts = texts.subset(keep) if isinstance(texts, LazyTexts) else [texts[i] for i in keep]
    if not len(texts):
        raise Text2TokenError(f"corpus {cfg.corpus!r} is empty")
    return texts
