"""Inference precision: the weights as trained (fp32), bfloat16 weights, or int8 dynamic quantisation.

- ``fp32``: float32 everywhere (training's precision).
- ``bf16``: every weight and activation in bfloat16 (the CPU's avx512_bf16 / AMX kernels); pooled vectors and
  token logits are returned as float32.
- ``int8``: torch dynamic quantisation of the decoder's linear layers (int8 weights per output channel,
  activations quantised per batch); embeddings, norms and the LM head stay float32.

A converted encoder is for inference: it refuses to be saved (save the fp32 model and load it with a precision).
"""

from __future__ import annotations

from ..errors import Text2TokenError

PRECISIONS = ("fp32", "bf16", "int8")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise Text2TokenError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return precision


def apply_precision(model, precision: str):
    """``model`` (float32) converted to ``precision`` in place; returns it."""
    import torch

    check_precision(precision)
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        from .backbone import decoder_of

        quantize_dynamic(decoder_of(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                         inplace=True)
    return model
