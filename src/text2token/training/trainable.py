"""Which parameters train, and how the model runs while they do; the memory plan marks the same ones."""

from __future__ import annotations

import torch

from ..errors import Text2TokenError
from ..model.backbone import decoder_of


def mark_trainable(model: torch.nn.Module, t) -> torch.nn.Module | None:
    """Marks what trains under ``t`` (a ``TrainConfig``): ``lora`` adapters on ``lora_target_modules``, the
    ``top_layers`` decoder layers + final norm, or everything (``full``). Returns the peft model for LoRA (to
    merge at the end), else None. LoRA injects in place: the model object keeps working."""
    if t.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                          target_modules=t.lora_target_modules, bias="none")
        return get_peft_model(model, lora)
    for p in model.parameters():
        p.requires_grad_(t.method == "full")
    if t.method == "top_layers":
        decoder = decoder_of(model)
        layers = getattr(decoder, "layers", None)
        if layers is None:
            raise Text2TokenError("train.method=top_layers: this backbone has no .layers list; use lora or full")
        for layer in list(layers)[-min(t.top_layers, len(layers)):]:
            layer.requires_grad_(True)
        norm = getattr(decoder, "norm", None)
        if norm is not None:
            norm.requires_grad_(True)
    return None


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each decoder layer in the backward pass (non-reentrant: works with frozen inputs and DDP)."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # the name since transformers 5.x
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def set_attention_dropout(model: torch.nn.Module, p: float) -> None:
    """Sets the attention-probability dropout of every attention module (Llama/Qwen2/Gemma/Mistral keep it in
    ``module.attention_dropout``; it acts only in train mode)."""
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = float(p)
