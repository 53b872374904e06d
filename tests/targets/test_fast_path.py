"""The data-driven fast path (private Rust backend with a large BPE cache, vectorised counting and top-k) equals
a straightforward per-text reference byte for byte, edge cases included."""

from collections import Counter

import numpy as np
import pytest

from helpers import TINY_CORPUS, data_driven_configs
from text2token.config import DataDrivenConfig
from text2token.targets.data_driven import DataDrivenTargets, _token_ids, idf_weights

EDGE_TEXTS = [
    "",
    "the , . ! of and ;",  # only stop words and punctuation: no target
    "   ",
    " ".join(TINY_CORPUS * 60),  # long (~2,600 tokens): more distinct target tokens than top_k
    "café naïve Ünïcödé 東京 🙂 Ελληνικά",
    "the cat </s> sat <s> on the mat",  # special-token strings inside the text
    "Paris\n\nFrance\t42 giraffes!!",
]


def reference(dd: DataDrivenTargets, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the tokenizer's own call, a Counter, each token's weight, a Python sort, top-k."""
    c, k = dd.cfg, dd.cfg.top_k
    allowed = dd.vocab.allowed(c.remove_special, c.remove_punctuation, c.remove_stopwords, c.remove_fragments)
    allowed &= (dd.df >= c.min_df) & (dd.df <= c.max_df * max(dd.n_docs, 1))
    tw = (idf_weights(dd.df, max(dd.n_docs, 1), c.idf) * allowed).astype(np.float32)
    ids, vals = np.zeros((len(texts), k), np.int32), np.zeros((len(texts), k), np.float32)
    for row, text in enumerate(texts):
        counts = Counter(dd.tokenizer(dd.prefix + text, add_special_tokens=False)["input_ids"])
        scored = []
        for t, n in counts.items():
            tf = {"raw": np.float32(n), "log": np.float32(1) + np.log(np.float32(n)), "binary": np.float32(1)}[c.tf]
            if tw[t] * tf != 0:
                scored.append((-(tf * tw[t]), t))
        for rank, (neg, t) in enumerate(sorted(scored)[:k]):
            ids[row, rank], vals[row, rank] = t, -neg
    if c.power != 1.0:
        vals = vals ** c.power
    total = vals.sum(1, keepdims=True)
    return ids, np.divide(vals, total, out=np.zeros_like(vals), where=total > 0).astype(np.float32)


@pytest.mark.parametrize("cfg", data_driven_configs())
def test_fast_path_equals_reference(tiny, cfg):
    _, tok = tiny
    texts = TINY_CORPUS + EDGE_TEXTS
    dd = DataDrivenTargets(tok, len(tok), cfg).fit(iter([texts[:5], texts[5:]]))
    assert dd.backend is not None and dd.backend is not tok.backend_tokenizer
    encoded = tok([dd.prefix + t for t in texts], add_special_tokens=False)["input_ids"]
    assert _token_ids(tok, texts, dd.prefix, dd.backend) == encoded
    df = np.bincount(np.concatenate([np.unique(r) for r in encoded]).astype(np.int64), minlength=len(tok))
    assert np.array_equal(dd.df, df) and dd.n_docs == len(texts)
    ids, w = dd.transform(texts)
    ref_ids, ref_w = reference(dd, texts)
    assert ids.dtype == ref_ids.dtype and w.dtype == ref_w.dtype
    assert np.array_equal(ids, ref_ids) and np.array_equal(w, ref_w), "byte-identical targets"
    edge = w[len(TINY_CORPUS):]
    assert edge[0].sum() == 0 and edge[2].sum() == 0, "empty and blank texts: no target"
    if cfg.remove_stopwords:
        assert edge[1].sum() == 0, "only stop words and punctuation: no target"
    assert (edge[3] > 0).sum() == cfg.top_k, "the long text fills its top-k"


def test_fast_path_follows_the_callers_truncation(tiny):
    """A backend with truncation switched on goes through the tokenizer's own call, as before the copy."""
    _, tok = tiny
    cfg = DataDrivenConfig(top_k=8, min_df=1, max_df=1.0)
    dd = DataDrivenTargets(tok, len(tok), cfg).fit(iter([EDGE_TEXTS]))
    tok.backend_tokenizer.enable_truncation(5)
    try:
        assert _token_ids(tok, EDGE_TEXTS, dd.prefix, dd.backend) == tok(
            [dd.prefix + t for t in EDGE_TEXTS], add_special_tokens=False)["input_ids"]
        assert np.array_equal(dd.transform(EDGE_TEXTS)[0], reference(dd, EDGE_TEXTS)[0])
    finally:
        tok.backend_tokenizer.no_truncation()
    assert dd.backend.truncation is None
