"""Data-driven targets: the meaningful tokens of each text, weighted tf x idf, filtered, top-k, normalised.

For text d and token t (counts over the text's own tokens, no prompt, no special tokens):

    w(d, t) = tf(d, t) * idf(t) * allowed(t)
    tf:  raw = count, log = 1 + ln(count), binary = 1
    idf: smooth = ln((1 + N) / (1 + df)) + 1,  bm25 = ln(1 + (N - df + 0.5) / (df + 0.5)),  none = 1
    allowed(t) = not special, not punctuation/whitespace, not a stop word, not a word-continuing fragment
                 or shorter than min_chars, min_df <= df(t), df(t) <= max_df * N
    whole_words: an occurrence counts only if the next token does not continue its word (' Se' of ' Seismic'
                 does not count; ' earthquake' does)
    target(d) = top_k(w(d, .) ** power), normalised to sum 1

N and df are counted over the training corpus (a first streaming pass).
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from ..config import DataDrivenConfig
from .vocab import VocabFilter, word_start_prefix


BPE_CACHE_WORDS = 1 << 18
"""Words whose BPE pieces the target tokenizer keeps (the library's default, 10,000, is full long before a
Wikipedia corpus's ~50k distinct words of 20k texts; a word not cached is merged again every time)."""


def target_backend(tokenizer):
    """A private copy of a fast tokenizer's Rust backend with a ``BPE_CACHE_WORDS`` word cache, or None.

    The copy leaves the caller's tokenizer (and its memory) alone; the cache changes no ids, only time.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.encode_special_tokens = backend.encode_special_tokens
    copy.no_truncation()  # used only while the caller's backend has neither (see _token_ids)
    copy.no_padding()
    resize = getattr(copy.model, "_resize_cache", None)  # BPE only
    if resize is not None:
        resize(BPE_CACHE_WORDS)
    return copy


def _token_ids(tokenizer, texts: Sequence[str], prefix: str, backend=None) -> list[list[int]]:
    """Token ids of ``prefix + text`` per text, no special tokens.

    A fast tokenizer's backend (``backend``, else the tokenizer's own) is called directly
    (``encode_batch_fast``: no offsets, no Python per-text wrapper), which gives the same ids as
    ``tokenizer(texts)`` at about twice the speed; anything else, or a backend with truncation/padding
    switched on, goes through the tokenizer's own call.
    """
    texts = [prefix + t for t in texts] if prefix else list(texts)
    own = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    backend = backend or own
    fast = getattr(backend, "encode_batch_fast", None)
    if fast is not None and own is not None and own.truncation is None and own.padding is None:
        return [e.ids for e in fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def count_matrix(token_ids: list[list[int]], vocab_size: int, keep: np.ndarray | None = None,
                 continues: np.ndarray | None = None) -> sp.csr_matrix:
    """Token counts per text as a CSR matrix [n_texts, V] with sorted column indices.

    ``keep`` (bool [V]) drops the other tokens before counting; ``continues`` (bool [V], the tokens that carry
    on the word before them) drops every occurrence followed by one, so only whole-word tokens count.
    Vectorised: the ids are flattened in C (``itertools.chain``), and each (text, token) pair is counted by
    one ``np.unique`` over ``row * V + id``.
    """
    n = len(token_ids)
    lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=n)
    cols = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    ok = (cols >= 0) & (cols < vocab_size)
    if continues is not None and len(cols) > 1:
        followed = (rows[1:] == rows[:-1]) & ok[1:] & continues[np.where(ok[1:], cols[1:], 0)]
        ok[:-1] &= ~followed
    if keep is not None:
        ok[ok] = keep[cols[ok]]
    pairs, counts = np.unique(rows[ok] * vocab_size + cols[ok], return_counts=True)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs // vocab_size, minlength=n), out=indptr[1:])
    m = sp.csr_matrix((counts.astype(np.float32), (pairs % vocab_size), indptr), shape=(n, vocab_size))
    m.has_sorted_indices = True
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
        self.vocab = vocab or VocabFilter.from_tokenizer(tokenizer, vocab_size, min_chars=cfg.min_chars,
                                                            keep_stopwords=cfg.keep_stopwords)
        self.prefix = word_start_prefix(tokenizer)
        self.backend = target_backend(tokenizer)
        self.df = np.zeros(vocab_size, dtype=np.int64)
        self.n_docs = 0

    def fit(self, chunks: Iterator[Sequence[str]]) -> "DataDrivenTargets":
        for texts in chunks:
            counts = count_matrix(_token_ids(self.tokenizer, texts, self.prefix, self.backend), self.vocab_size)
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
        # tokens that can never be a target (weight 0) are dropped before counting: the same top-k, less work
        token_ids = _token_ids(self.tokenizer, texts, self.prefix, self.backend)
        continues = self.vocab.fragment & ~self.vocab.punct if c.whole_words else None
        counts = count_matrix(token_ids, self.vocab_size, keep=tw != 0, continues=continues)
        tf = counts.data
        if c.tf == "log":
            tf = 1.0 + np.log(tf)
        elif c.tf == "binary":
            tf = np.ones_like(tf)
        weighted = sp.csr_matrix((tf * tw[counts.indices], counts.indices, counts.indptr), shape=counts.shape)
        ids, w = topk_rows(weighted, c.top_k)
        if c.power != 1.0:
            w = w ** c.power
        total = w.sum(1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        return ids, w.astype(np.float32)
