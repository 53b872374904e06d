"""Inference precision: the weights as trained (fp32), bfloat16 weights, or int8 dynamic quantisation.

- ``fp32``: float32 everywhere (training's precision).
- ``bf16``: every weight and activation in bfloat16 (the CPU's avx512_bf16 / AMX kernels); pooled vectors and
  token logits are returned as float32.
- ``int8``: torch dynamic quantisation of the decoder's linear layers (int8 weights per output channel,
  activations quantised per batch); embeddings, norms and the LM head stay float32.

- ``auto``: ``bf16`` where the hardware runs it natively (a CUDA GPU, or a CPU with avx512_bf16 / AMX), else
  ``fp32``. On this project's CPU bf16 encodes 1.8x faster than fp32 with the same suite score (71.45 vs 71.41)
  and cosine >= 0.9997 to fp32 vectors; int8 is 2.2x faster but loses 12 points (benchmarks/results/precision.md).
  The command line defaults to ``auto``; ``Encoder.load`` to ``fp32`` (the model as saved).

A converted encoder is for inference: it refuses to be saved (save the fp32 model and load it with a precision).
"""

from __future__ import annotations

import contextlib

from ..errors import Text2TokenError

PRECISIONS = ("fp32", "bf16", "int8")
CHOICES = (*PRECISIONS, "auto")


def check_precision(precision: str) -> str:
    if precision not in CHOICES:
        raise Text2TokenError(f"unknown precision {precision!r} (choose from {', '.join(CHOICES)})")
    return precision


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 matrix products in hardware."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; the others as they are."""
    if check_precision(precision) != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def apply_precision(model, precision: str):
    """``model`` (float32) converted to ``precision`` in place; returns it."""
    import torch

    if check_precision(precision) not in PRECISIONS:
        raise ValueError("resolve 'auto' first (resolve_precision)")
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        from .backbone import decoder_of

        quantize_dynamic(decoder_of(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                         inplace=True)
    return model


def resolve_autocast(kind: str, device) -> str:
    """``train.autocast``: ``auto`` -> ``bf16`` where ``device`` runs it natively, else ``none``."""
    if kind == "auto":
        return "bf16" if native_bf16(str(device)) else "none"
    return kind


def autocast(kind: str, device):
    """Training's mixed precision (``train.autocast``) for a forward pass; ``none`` changes nothing."""
    import torch

    if resolve_autocast(kind, device) == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
