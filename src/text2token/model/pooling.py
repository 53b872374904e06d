"""Pooling token states into one vector: the registry that defines every pooling, once.

A new pooling is one function decorated with ``@pooling(name, st_mode=...)``: the settings, the config, the CLI,
the sentence-transformers export, the server and MTEB all read their names and rules from :data:`POOLINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Pooling:
    name: str
    rule: Callable  # (hidden [B, T, H], mask [B, T]) -> [B, H]
    st_mode: str | None  # the sentence-transformers Pooling flag with the same rule (None: not exportable)
    doc: str


POOLINGS: dict[str, Pooling] = {}


def pooling(name: str, st_mode: str | None = None):
    """Registers ``rule(hidden, mask)`` as pooling ``name``."""
    def register(rule: Callable) -> Callable:
        POOLINGS[name] = Pooling(name, rule, st_mode, (rule.__doc__ or "").strip())
        return rule
    return register


def last_token_index(mask):
    """Index of the last non-pad token of each row (works for left and right padding)."""
    length = mask.shape[1]
    return length - 1 - mask.flip(1).long().argmax(dim=1)


@pooling("mean", st_mode="pooling_mode_mean_tokens")
def _mean(hidden, mask):
    """Average over the non-pad tokens."""
    mask_f = mask.to(hidden.dtype)
    return (hidden * mask_f.unsqueeze(-1)).sum(1) / mask_f.sum(1, keepdim=True).clamp(min=1)


@pooling("eos", st_mode="pooling_mode_lasttoken")
def _last_token(hidden, mask):
    """The last non-pad token's state (after a prompt ending in ``"`` this is PromptEOL)."""
    import torch

    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(mask)]


@pooling("weighted_mean", st_mode="pooling_mode_weightedmean_tokens")
def _weighted_mean(hidden, mask):
    """Position-weighted mean (SGPT, LLM2Vec's ``weighted_mean``): the i-th non-pad token weighs i, so later
    tokens, which have seen more of the text under causal attention, count more."""
    mask_f = mask.to(hidden.dtype)
    weights = mask_f.cumsum(1) * mask_f
    return (hidden * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)


def check_pooling(name: str) -> str:
    """``name`` if it is a known pooling, else a one-line error naming the choices."""
    if name not in POOLINGS:
        from ..errors import Text2TokenError

        raise Text2TokenError(f"unknown pooling {name!r} (choose from {', '.join(POOLINGS)})")
    return name


def pool(hidden, mask, how: str):
    """``hidden`` [B, T, H], ``mask`` [B, T] (1 = token) -> pooled [B, H] by the pooling named ``how``."""
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(f"pool: hidden {tuple(hidden.shape)} and mask {tuple(mask.shape)} do not match")
    return POOLINGS[check_pooling(how)].rule(hidden, mask)
