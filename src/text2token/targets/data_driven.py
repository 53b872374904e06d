"""Data-driven targets: the meaningful tokens of each text, weighted tf x idf, filtered, top-k, normalised.

For text d and token t (counts over the text's own tokens, no prompt, no special tokens):

    w(d, t) = tf(d, t) * idf(t) * allowed(t)
    tf:  raw = count, log = 1 + ln(count), binary = 1
    idf: smooth = ln((1 + N) / (1 + df)) + 1,  bm25 = ln(1 + (N - df + 0.5) / (df + 0.5)),  none = 1
    allowed(t) = not special, not punctuation/whitespace, not a stop word, not a word-continuing fragment
                 or shorter than min_chars, min_df <= df(t), df(t) <= max_df * N
    target(d) = top_k(w(d, .) ** power), normalised to sum 1

N and df are counted over the training corpus (a first streaming pass).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from ..config import DataDrivenConfig
from .vocab import VocabFilter, word_start_prefix


def _token_ids(tokenizer, texts: Sequence[str], prefix: str) -> list[list[int]]:
    return tokenizer([prefix + t for t in texts], add_special_tokens=False)["input_ids"]


def count_matrix(token_ids: list[list[int]], vocab_size: int) -> sp.csr_matrix:
    """Token counts per text as a CSR matrix [n_texts, V] (duplicates summed by scipy)."""
    lengths = np.fromiter((len(r) for r in token_ids), dtype=np.int64, count=len(token_ids))
    cols = np.fromiter((t for r in token_ids for t in r), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(token_ids)), lengths)
    keep = cols < vocab_size
    m = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                      shape=(len(token_ids), vocab_size))
    m.sum_duplicates()
    return m


def topk_rows(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of a CSR matrix -> (ids int32 [n, k] padded with 0, values float32 [n, k] padded 0)."""
    m = m.tocsr(copy=True)
    m.eliminate_zeros()
    n = m.shape[0]
    ids = np.zeros((n, k), dtype=np.int32)
    vals = np.zeros((n, k), dtype=np.float32)
    if m.nnz == 0:
        return ids, vals
    rows = np.repeat(np.arange(n), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))  # by row, then weight desc, then token id (stable ties)
    rank = np.arange(m.nnz) - m.indptr[rows[order]]
    sel = rank < k
    ids[rows[order][sel], rank[sel]] = m.indices[order][sel]
    vals[rows[order][sel], rank[sel]] = m.data[order][sel]
    return ids, vals


def idf_weights(df: np.ndarray, n_docs: int, kind: str) -> np.ndarray:
    df = df.astype(np.float64)
    if kind == "smooth":
        return np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    if kind == "bm25":
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))
    if kind == "none":
        return np.ones_like(df)
    raise ValueError(f"unknown idf {kind!r}")


class DataDrivenTargets:
    """Fitted document frequencies + filter; ``transform(texts)`` gives the sparse top-k targets."""

    def __init__(self, tokenizer, vocab_size: int, cfg: DataDrivenConfig, vocab: VocabFilter | None = None):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.cfg = cfg
        self.vocab = vocab or VocabFilter.from_tokenizer(tokenizer, vocab_size, min_chars=cfg.min_chars)
        self.prefix = word_start_prefix(tokenizer)
        self.df = np.zeros(vocab_size, dtype=np.int64)
        self.n_docs = 0

    def fit(self, chunks: Iterator[Sequence[str]]) -> "DataDrivenTargets":
        for texts in chunks:
            counts = count_matrix(_token_ids(self.tokenizer, texts, self.prefix), self.vocab_size)
            self.df += np.bincount(counts.indices, minlength=self.vocab_size)
            self.n_docs += len(texts)
        return self

    def token_weights(self) -> np.ndarray:
        """idf(t) * allowed(t) as one float vector [V] (0 = never a target)."""
        c = self.cfg
        allowed = self.vocab.allowed(c.remove_special, c.remove_punctuation, c.remove_stopwords, c.remove_fragments)
        allowed &= self.df >= c.min_df
        allowed &= self.df <= c.max_df * max(self.n_docs, 1)
        return (idf_weights(self.df, max(self.n_docs, 1), c.idf) * allowed).astype(np.float32)

    def transform(self, texts: Sequence[str], token_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        c = self.cfg
        tw = self.token_weights() if token_weights is None else token_weights
        counts = count_matrix(_token_ids(self.tokenizer, texts, self.prefix), self.vocab_size)
        if c.tf == "log":
            counts.data = 1.0 + np.log(counts.data)
        elif c.tf == "binary":
            counts.data = np.ones_like(counts.data)
        weighted = sp.csr_matrix(counts.multiply(tw[None, :]))
        ids, w = topk_rows(weighted, c.top_k)
        if c.power != 1.0:
            w = w ** c.power
        total = w.sum(1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        return ids, w.astype(np.float32)
