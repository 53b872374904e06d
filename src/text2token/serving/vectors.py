"""The vectors of search: dense (pooled, unit length) and sparse (the token head's filtered top-k), one pass."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse as sp


def sparse_mask(encoder, vocab_filter: bool = True):
    """Bool tensor [V] of the tokens a sparse vector may hold, or None: the target vocabulary the encoder was
    trained with (``encoder.target_vocab``; its defaults for models saved before it was recorded)."""
    if not vocab_filter:
        return None
    import torch

    from ..targets.vocab import TargetVocab

    vocab = TargetVocab.from_dict(encoder.target_vocab)
    return torch.from_numpy(vocab.mask(encoder.tokenizer, encoder.vocab_size))


def sparse_vectors(encoder, pooled: np.ndarray, top_k: int, mask=None, batch_size: int = 256) -> sp.csr_matrix:
    """Top-k of softmax(LM_head(pooled)) per row (masked tokens removed, not renormalised) -> CSR [n, V]."""
    import torch

    n, vocab = len(pooled), encoder.vocab_size
    k = min(top_k, vocab)
    ids = np.zeros((n, k), dtype=np.int64)
    weights = np.zeros((n, k), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            x = torch.from_numpy(np.ascontiguousarray(pooled[start:start + batch_size])).to(encoder.device)
            p = torch.softmax(encoder.token_logits(x), dim=-1)
            if mask is not None:
                p = p.masked_fill(~mask.to(p.device), 0.0)
            top = p.topk(k, dim=-1)
            ids[start:start + len(x)] = top.indices.cpu().numpy()
            weights[start:start + len(x)] = top.values.cpu().numpy()
    matrix = sp.csr_matrix((weights.ravel(), ids.ravel(), np.arange(0, n * k + 1, k)), shape=(n, vocab))
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def embed(encoder, texts: Sequence[str], top_k: int, mask=None, batch_size: int = 32,
          show_progress_bar: bool | None = None) -> tuple[np.ndarray, sp.csr_matrix]:
    """One forward pass -> (L2-normalised dense vectors float32 [n, H], sparse vocabulary vectors CSR [n, V])."""
    pooled = encoder.encode(texts, batch_size=batch_size, normalize=False, show_progress_bar=show_progress_bar)
    dense = pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)
    return dense.astype(np.float32), sparse_vectors(encoder, pooled, top_k, mask)
