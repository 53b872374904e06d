"""KL(target || predicted) between sparse target distributions and the token head's log-probabilities."""

from __future__ import annotations

import torch


def token_kl(logits: torch.Tensor, target_ids: torch.Tensor, target_weights: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
    """Mean over rows of sum_k w_k * (log w_k - log p(id_k)), in float32.

    ``logits`` [B, V]; ``target_ids`` [B, K] (any id where the weight is 0); ``target_weights`` [B, K] with
    rows summing to 1, or to 0 for a text without target (such rows are left out of the mean).
    The full-vocabulary log-softmax is never materialised: log p(id) = logit(id) - logsumexp(logits).
    """
    logits = logits.float()
    w = target_weights.to(device=logits.device, dtype=torch.float32)
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    logp = logits.gather(1, target_ids.to(device=logits.device, dtype=torch.long)) - lse
    entropy_term = torch.where(w > 0, w * torch.log(w.clamp_min(1e-30)), torch.zeros_like(w))
    per_row = (entropy_term - w * logp).sum(dim=1)
    if reduction == "none":
        return per_row
    valid = w.sum(dim=1) > 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return per_row[valid].mean()


def simcse_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Unsupervised SimCSE (InfoNCE): row i of ``z1`` should be closest (cosine) to row i of ``z2`` among the
    batch; ``z1``/``z2`` are two dropout-noised embeddings of the same texts. Symmetric, float32."""
    a = torch.nn.functional.normalize(z1.float(), dim=-1)
    b = torch.nn.functional.normalize(z2.float(), dim=-1)
    sims = a @ b.T / temperature
    labels = torch.arange(sims.shape[0], device=sims.device)
    return 0.5 * (torch.nn.functional.cross_entropy(sims, labels) + torch.nn.functional.cross_entropy(sims.T, labels))


def mntp_loss(hidden: torch.Tensor, lm_head: torch.nn.Module, original_ids: torch.Tensor,
              masked: torch.Tensor) -> torch.Tensor:
    """Masked next-token prediction (LLM2Vec): a masked token at position i is predicted from the hidden state
    at position i - 1, as the LM head was trained to do. ``masked`` [B, T] bool (never true at position 0)."""
    rows, cols = masked.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return hidden.sum() * 0.0
    logits = lm_head(hidden[rows, cols - 1]).float()
    return torch.nn.functional.cross_entropy(logits, original_ids[rows, cols])
