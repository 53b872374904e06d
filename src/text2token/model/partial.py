"""Running part of a decoder: read the hidden states entering layer ``n``, or start a forward pass there.

Both work on any transformers 5 decoder whose layers sit in ``decoder.layers`` and are called one after the
other (Llama, Qwen2, Mistral, Gemma 3): no modelling code is copied. Starting at layer ``n`` swaps layers
``0..n-1`` for a pass-through while the forward runs, so each layer keeps its index (Gemma 3 and Qwen2 pick a
layer's mask and rotary embedding by index), and feeds the states in as ``inputs_embeds`` (Gemma 3 scales
token embeddings inside ``embed_tokens``, which is skipped too).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..errors import Text2TokenError
from .backbone import decoder_of


class PassThrough(torch.nn.Module):
    """Stands in for a skipped decoder layer: returns the hidden states it is given."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    layers = getattr(decoder_of(model), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise Text2TokenError("this backbone has no decoder.layers list to start a forward pass part-way")
    return layers


@contextlib.contextmanager
def start_at(model: torch.nn.Module, n: int):
    """While open, a forward pass of ``model`` given ``inputs_embeds`` = the states entering layer ``n`` runs
    layers ``n..`` only."""
    layers = decoder_layers(model)
    if not 0 <= n < len(layers):
        raise Text2TokenError(f"cannot start at layer {n}: the backbone has {len(layers)} layers")
    skipped = [layers[i] for i in range(n)]
    skip = PassThrough()
    try:
        for i in range(n):
            layers[i] = skip
        yield
    finally:
        for i, layer in enumerate(skipped):
            layers[i] = layer


@contextlib.contextmanager
def layer_inputs(model: torch.nn.Module, n: int, sink: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]):
    """While open, every forward pass of the decoder given ``input_ids`` calls ``sink(input_ids,
    attention_mask, states)`` with the hidden states entering layer ``n`` (detached)."""
    decoder, layers = decoder_of(model), decoder_layers(model)
    batch: dict = {}

    def on_decoder(module, args, kwargs):
        batch["ids"] = kwargs.get("input_ids", args[0] if args else None)
        batch["mask"] = kwargs.get("attention_mask")

    def on_layer(module, args, kwargs):
        states = args[0] if args else kwargs["hidden_states"]
        if batch.get("ids") is not None and batch.get("mask") is not None:
            sink(batch["ids"], batch["mask"], states.detach())

    hooks = [decoder.register_forward_pre_hook(on_decoder, with_kwargs=True),
             layers[n].register_forward_pre_hook(on_layer, with_kwargs=True)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
