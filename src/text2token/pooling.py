"""Pooling token states into one vector: the single place that defines each pooling rule."""

from __future__ import annotations

import torch

POOLINGS = ("mean", "eos", "weighted_mean")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-pad token of each row (works for left and right padding)."""
    length = mask.shape[1]
    return length - 1 - mask.flip(1).long().argmax(dim=1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """``hidden`` [B, T, H], ``mask`` [B, T] (1 = token) -> pooled [B, H].

    - ``mean``: average over non-pad tokens.
    - ``eos``: the last non-pad token's state (with a prompt ending in ``"`` this is PromptEOL).
    - ``weighted_mean``: position-weighted mean, weight of the i-th non-pad token = i (1-based), as in
      SGPT, so later tokens, which have seen more of the text under causal attention, count more.
    """
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(f"pool: hidden {tuple(hidden.shape)} and mask {tuple(mask.shape)} do not match")
    mask_f = mask.to(hidden.dtype)
    if how == "mean":
        return (hidden * mask_f.unsqueeze(-1)).sum(1) / mask_f.sum(1, keepdim=True).clamp(min=1)
    if how == "eos":
        idx = last_token_index(mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]
    if how == "weighted_mean":
        weights = mask_f.cumsum(1) * mask_f
        return (hidden * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
    raise ValueError(f"unknown pooling {how!r} (choose from {', '.join(POOLINGS)})")
