"""Causal <-> bidirectional attention, one generic mechanism for transformers 5 decoders.

transformers 5 builds every decoder's attention mask in ``masking_utils``; when ``config.is_causal`` is
False it builds a bidirectional (padding-only) mask instead. The attention kernels additionally read each
attention module's ``is_causal`` flag when no mask is passed (SDPA's fast path), so both are switched.
No per-architecture modelling code is copied: this works for Llama, Qwen2, Mistral and Gemma3 alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

ATTENTION_MODES = ("causal", "bidirectional")


def check_attention(mode: str) -> str:
    """``mode`` if it is an attention mode, else a one-line error naming the choices."""
    if mode not in ATTENTION_MODES:
        from ..errors import Text2TokenError

        raise Text2TokenError(f"unknown attention {mode!r} (choose from {', '.join(ATTENTION_MODES)})")
    return mode


def _configs(model: nn.Module):
    seen = set()
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and id(cfg) not in seen:
            seen.add(id(cfg))
            yield cfg
            text_cfg = getattr(cfg, "text_config", None)
            if text_cfg is not None and id(text_cfg) not in seen:
                seen.add(id(text_cfg))
                yield text_cfg


def set_attention(model: nn.Module, mode: str) -> nn.Module:
    """Sets ``mode`` ("causal" or "bidirectional") on every config and attention module, in place."""
    causal = check_attention(mode) == "causal"
    for cfg in _configs(model):
        cfg.is_causal = causal
        if hasattr(cfg, "use_bidirectional_attention"):
            cfg.use_bidirectional_attention = not causal
    for module in model.modules():
        if hasattr(module, "is_causal") and isinstance(getattr(module, "is_causal"), bool):
            module.is_causal = causal
    return model


def attention_mode(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    return "causal" if getattr(cfg, "is_causal", True) else "bidirectional"
