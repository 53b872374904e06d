"""The vocabulary filter: the one place that says which tokens may appear in a target."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

WORD_START_MARKERS = ("Ġ", "▁")  # byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM) / sentencepiece (Llama 2, Gemma)


def _is_punct_or_space(s: str) -> bool:
    return all(unicodedata.category(c)[0] in "PSZC" for c in s)


@dataclass
class VocabFilter:
    """Per-token facts about a tokenizer's vocabulary, computed once (vectorised masks, length V)."""

    special: np.ndarray
    punct: np.ndarray
    stopword: np.ndarray
    fragment: np.ndarray
    short: np.ndarray

    @classmethod
    def from_tokenizer(cls, tokenizer, vocab_size: int | None = None, min_chars: int = 2,
                       keep_stopwords: Iterable[str] = ()) -> "VocabFilter":
        """``keep_stopwords``: words of the stop-word list that are not flagged as stop words here."""
        n = vocab_size or len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(min(n, len(tokenizer)))))
        pieces += [None] * (n - len(pieces))  # LM heads may be padded beyond the tokenizer's vocabulary
        decoded = [tokenizer.decode([i]) if p is not None else "" for i, p in enumerate(pieces)]
        has_markers = any(p is not None and p.startswith(WORD_START_MARKERS) for p in pieces)
        special_ids = set(tokenizer.all_special_ids)
        special_ids |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
        special = np.zeros(n, dtype=bool)
        special[[i for i in special_ids if i < n]] = True
        special |= np.array([p is None for p in pieces])
        stripped = [d.strip() for d in decoded]
        punct = np.array([_is_punct_or_space(s) for s in stripped])
        stop_words = ENGLISH_STOP_WORDS - {w.strip().lower() for w in keep_stopwords}
        stop = np.array([s.lower() in stop_words for s in stripped])
        if has_markers:
            fragment = np.array([p is None or not p.startswith(WORD_START_MARKERS) for p in pieces])
        else:  # WordPiece style: continuation pieces start with ##
            fragment = np.array([p is None or p.startswith("##") for p in pieces])
        short = np.array([len(s) < min_chars for s in stripped])
        return cls(special=special, punct=punct, stopword=stop, fragment=fragment, short=short)

    def allowed(self, special: bool = True, punctuation: bool = True, stopwords: bool = True,
                fragments: bool = True) -> np.ndarray:
        """Boolean mask [V]: True where a token may be a target under the given removal switches."""
        bad = np.zeros_like(self.special)
        if special:
            bad |= self.special
        if punctuation:
            bad |= self.punct
        if stopwords:
            bad |= self.stopword
        if fragments:
            bad |= self.fragment | self.short
        return ~bad


@dataclass
class TargetVocab:
    """The tokens a model-derived target, and a sparse search vector, may hold: the one vocabulary mask.

    Training records it in the saved encoder (``text2token.json``: ``target_vocab``), so search filters with
    the settings the model was trained with; models saved before it was recorded get these defaults.
    """

    filter: bool = True
    """Remove punctuation, stop words and tokens shorter than ``min_chars`` (special tokens always go)."""
    min_chars: int = 2
    keep_stopwords: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, data_driven, model_derived) -> "TargetVocab":
        """From a run config's ``targets.data_driven`` (word rules) and ``targets.model_derived`` (the switch)."""
        return cls(filter=model_derived.filter_vocab, min_chars=data_driven.min_chars,
                   keep_stopwords=list(data_driven.keep_stopwords))

    @classmethod
    def from_dict(cls, data: dict | None) -> "TargetVocab":
        return cls(**(data or {}))

    def to_dict(self) -> dict:
        return asdict(self)

    def mask(self, tokenizer, vocab_size: int) -> np.ndarray:
        vocab = VocabFilter.from_tokenizer(tokenizer, vocab_size, min_chars=self.min_chars,
                                           keep_stopwords=self.keep_stopwords)
        return target_mask(vocab, self.filter)


def target_mask(vocab: VocabFilter, filter: bool = True) -> np.ndarray:
    """Bool [V], True = a model-derived target / sparse search token may be this one. Special tokens never;
    with ``filter`` no punctuation, stop words or short tokens. Fragments stay (the backbone predicts them)."""
    mask = vocab.allowed(special=True, punctuation=filter, stopwords=filter, fragments=False)
    return mask & ~vocab.short if filter else mask


def word_start_twins(tokenizer, vocab_size: int) -> np.ndarray:
    """int [V]: each token without a word-start marker mapped to its marked twin where the vocabulary has one
    ('Sh' -> ' Sh', 'The' -> ' The'), every other token to itself. After a prompt's closing quote the backbone
    predicts unmarked word starts, while data-driven targets are marked words: the map puts both in one family."""
    twins = np.arange(vocab_size)
    vocab = tokenizer.get_vocab()
    pieces = [p for p in vocab if p.startswith(WORD_START_MARKERS)]
    if not pieces:
        return twins
    marker = max(WORD_START_MARKERS, key=lambda m: sum(p.startswith(m) for p in pieces))
    special = set(tokenizer.all_special_ids)
    for piece, i in vocab.items():
        if i < vocab_size and i not in special and piece[:1].isalpha() and not piece.startswith(marker):
            twin = vocab.get(marker + piece)
            if twin is not None and twin < vocab_size:
                twins[i] = twin
    return twins


def word_start_prefix(tokenizer) -> str:
    """A prefix that makes the first word of a text tokenise like any later word.

    Byte-level BPE marks a word start only after a space, so texts get a leading " "; sentencepiece
    tokenizers that add their own dummy prefix ("▁") need none.
    """
    def first_piece(text: str) -> str:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer.convert_ids_to_tokens(ids[:1])[0] if ids else ""

    if first_piece("x").startswith(WORD_START_MARKERS):
        return ""
    return " " if first_piece(" x").startswith(WORD_START_MARKERS) else ""
