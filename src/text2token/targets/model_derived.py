"""Model-derived targets: tokens *beyond* the text, read from the backbone itself.

    source = prompt:  p(t | d) = softmax(LM_head(h_last(prompt(d))) / T), the frozen backbone's next-token
                      distribution after e.g. ``This sentence: "<d>" means in one word: "``
    source = stage1:  p(t | d) = softmax(LM_head(pool(h(d))) / T), the decoding of the model's own embedding
                      (computed at the start of the stage, i.e. from the stage-1 model)
    with several prompts: p(t | d) = mean over the prompts of each prompt's top-k distribution, top-k again
    q(d) = top_k(p(. | d) * allowed), renormalised            (allowed: vocab.target_mask, no fragments rule)
           with word_starts: each id moved to its space-prefixed twin (vocab.word_start_twins), duplicates merged
    target(d) = (1 - mix_data) * q(d) + mix_data * data_driven(d), merged, renormalised
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..config import ModelDerivedConfig
from ..model.encoder import Encoder
from ..model.settings import EncoderSettings
from .data_driven import DataDrivenTargets, topk_rows
from .vocab import VocabFilter, target_mask, word_start_twins


def mix(a_ids: np.ndarray, a_w: np.ndarray, b_ids: np.ndarray, b_w: np.ndarray, b_share,
        vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(1 - b_share) * a + b_share * b for sparse rows (b_share: a number or one per row); duplicates merged,
    rows renormalised."""
    n = a_ids.shape[0]
    share = np.broadcast_to(np.asarray(b_share, dtype=np.float64), (n,))
    k = a_ids.shape[1] + b_ids.shape[1]
    rows = np.concatenate([np.repeat(np.arange(n), a_ids.shape[1]), np.repeat(np.arange(n), b_ids.shape[1])])
    cols = np.concatenate([a_ids.ravel(), b_ids.ravel()]).astype(np.int64)
    vals = np.concatenate([((1.0 - share)[:, None] * a_w).ravel(), (share[:, None] * b_w).ravel()])
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n, vocab_size))
    return normalised_topk(m, k)


def normalised_topk(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top k (duplicates merged), renormalised to sum to 1 (rows with nothing stay 0)."""
    m = m.tocsr()
    m.sum_duplicates()
    ids, w = topk_rows(m, k)
    total = w.sum(1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    return ids, w.astype(np.float32)


class ModelDerivedTargets:
    def __init__(self, encoder: Encoder, cfg: ModelDerivedConfig, vocab: VocabFilter,
                 data: DataDrivenTargets | None = None, batch_size: int = 32):
        self.cfg = cfg
        self.batch_size = batch_size
        if cfg.source == "prompt":  # the frozen backbone read after each summarising prompt (PromptEOL)
            self.encoders = [Encoder(encoder.model, encoder.tokenizer, EncoderSettings(
                pooling="eos", attention="causal", prompt=p, max_length=encoder.settings.max_length))
                for p in cfg.prompts]
        else:  # the model's own embedding, as it encodes texts
            self.encoders = [encoder]
        self.encoder = self.encoders[0]
        self.capture = contextlib.nullcontext  # a context around the first encoder's pass (the frozen-layer cache)
        self.vocab_mask = torch.from_numpy(target_mask(vocab, cfg.filter_vocab))
        self.twins = word_start_twins(encoder.tokenizer, encoder.vocab_size) if cfg.word_starts else None
        self.data = data if cfg.mix_data > 0 else None
        self._data_weights = self.data.token_weights() if self.data is not None else None

    def predicted(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each prompt's top-k next-token distribution, averaged over the prompts and cut to top_k."""
        dists = []
        for i, enc in enumerate(self.encoders):
            with self.capture() if i == 0 else contextlib.nullcontext():
                dists.append(enc.token_distribution(texts, batch_size=self.batch_size, top_k=self.cfg.top_k,
                                                    temperature=self.cfg.temperature, vocab_mask=self.vocab_mask,
                                                    show_progress_bar=False))
        if len(dists) == 1:
            return dists[0]
        n, v = len(dists[0][0]), self.encoder.vocab_size
        rows = np.repeat(np.arange(n), dists[0][0].shape[1])
        m = sum(sp.csr_matrix((w.ravel() / len(dists), (rows, ids.ravel())), shape=(n, v)) for ids, w in dists)
        return normalised_topk(m, self.cfg.top_k)

    def transform(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids, w = self.predicted(texts)
        if self.twins is not None:
            ids, w = mix(self.twins[ids], w, ids[:, :0], w[:, :0], 0.0, self.encoder.vocab_size)
        if self.data is None:
            return ids, w
        d_ids, d_w = self.data.transform(texts, self._data_weights)
        # texts with no data-driven tokens left keep the model-derived target alone
        share = np.where(d_w.sum(1) > 0, self.cfg.mix_data, 0.0)
        return mix(ids, w, d_ids, d_w, share, self.encoder.vocab_size)
