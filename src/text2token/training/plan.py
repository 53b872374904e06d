"""A dry run of a training config: the backbone built on the meta device (no weights read or downloaded),
parameter counts and a memory estimate per GPU.

``text2token plan --config configs/paper-7b.yaml [--architecture config.json] [--num-gpus 8] [--gpu-memory 80]``

The estimate, per GPU, in bytes:

* weights: every parameter in its dtype (the config's ``model.dtype``; LoRA adapters are float32, as peft makes
  them); divided by the GPU count under FSDP.
* gradients + AdamW: the trainable parameters, in their dtype: one gradient and two moments each (FSDP: divided).
* activations of the layers that train (all of them for ``lora``/``full``, the top ``top_layers`` otherwise),
  for a micro-batch of ``ceil(batch_size / num_gpus)`` texts of ``max_length`` tokens. Per token and layer a
  Llama/Mistral layer keeps about ``10 H + 3 H_kv + 4 I`` values (norm inputs and outputs, q/k/v, rotary q/k,
  attention output, residuals, gate/up/act/product of the MLP) plus the attention probabilities
  (``heads * T`` per token, eager attention; fused SDPA kernels keep less). With gradient checkpointing a layer
  keeps only its input (``H`` per token) and one layer's activations are alive during its recomputation.
* the token head: float32 logits of the pooled embeddings, ``3 x micro-batch x vocabulary``.

Not counted: the CUDA context and allocator fragmentation (budget 1-3 GiB), temporary buffers of fused kernels.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..errors import Text2TokenError
from .trainable import mark_trainable

GIB = 1024 ** 3
_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}


@dataclass
class Plan:
    architecture: str
    layers: int
    parameters: int
    """Of the backbone (LoRA adapters not included)."""
    trainable: int
    num_gpus: int
    sharding: str
    micro_batch_per_gpu: int
    global_batch: int
    max_length: int
    gradient_checkpointing: bool
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    activations_other_gib: float
    """Activations with gradient checkpointing off if it is on, and on if it is off (for comparison)."""
    head_gib: float
    total_gib: float

    def lines(self) -> list[str]:
        ckpt = "on" if self.gradient_checkpointing else "off"
        other = "off" if self.gradient_checkpointing else "on"
        return [
            f"backbone: {self.architecture}, {self.layers} layers",
            f"parameters: {self.parameters:,} ({self.parameters / 1e9:.2f}B) in the backbone; trainable: "
            f"{self.trainable:,} ({self.trainable / 1e6:.1f}M, {100 * self.trainable / self.parameters:.2f}%)",
            f"batch: global {self.global_batch} texts per step = {self.num_gpus} GPU(s) x micro-batch "
            f"{self.micro_batch_per_gpu} (x grad_accum); max length {self.max_length}; sharding {self.sharding}",
            f"memory per GPU (estimate): weights {self.weights_gib:.2f} GiB + gradients {self.gradients_gib:.2f} "
            f"+ AdamW {self.optimizer_gib:.2f} + activations {self.activations_gib:.2f} (gradient checkpointing "
            f"{ckpt}; {self.activations_other_gib:.2f} with it {other}) + token head {self.head_gib:.2f}",
            f"total per GPU: {self.total_gib:.2f} GiB (plus CUDA context, ~1-3 GiB)",
        ]


    def report(self, cfg: Config, gpu_memory: float | None = None) -> list[str]:
        """The lines ``text2token plan`` prints: the plan, the stages, the verdict."""
        stages = ", ".join(f"{s.name} ({s.objective}, {s.steps} steps)" for s in cfg.stages)
        fits = f", fits in {gpu_memory:g} GiB per GPU" if gpu_memory else ""
        return [*self.lines(), f"stages: {stages}", f"dry run: config ok{fits}"]


def architecture_config(cfg: Config, architecture: str | Path | None):
    """The backbone's transformers config: from its directory when it exists, else from ``architecture``."""
    from transformers import AutoConfig

    path = Path(cfg.model.backbone).expanduser()
    if not path.exists() and architecture is None:
        try:
            from ..model.backbone import resolve

            path = resolve(cfg.model.backbone)
        except Text2TokenError as e:
            raise Text2TokenError(f"{e}; for a dry run without the weights pass --architecture config.json") \
                from None
    source = path / "config.json" if path.is_dir() and (path / "config.json").is_file() else architecture
    if source is None:
        raise Text2TokenError(f"model.backbone {cfg.model.backbone}: no config.json; pass --architecture FILE")
    source = Path(source)
    if not source.is_file():
        raise Text2TokenError(f"--architecture {source}: file not found")
    try:
        return AutoConfig.from_pretrained(str(source), trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise Text2TokenError(f"{source}: not a transformers config ({str(e).splitlines()[0]})") from None


def meta_model(model_config, dtype: str):
    """The causal LM with every tensor on the meta device: shapes and dtypes, no memory, no weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(model_config, dtype=getattr(torch, dtype))


def _nbytes(params) -> int:
    return sum(p.numel() * _BYTES.get(p.dtype, 4) for p in params)


def make_plan(cfg: Config, architecture: str | Path | None = None, num_gpus: int = 1,
              sharding: str = "ddp") -> Plan:
    if sharding not in ("ddp", "fsdp"):
        raise Text2TokenError(f"--sharding {sharding}: expected ddp or fsdp")
    mc = architecture_config(cfg, architecture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = meta_model(mc, cfg.model.dtype)
        n_backbone = sum(p.numel() for p in model.parameters())
        mark_trainable(model, cfg.train)  # the same choice as training (LoRA adapters on the meta model)
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    shard = num_gpus if sharding == "fsdp" else 1
    t = cfg.train
    h = mc.hidden_size
    layers = mc.num_hidden_layers
    heads = mc.num_attention_heads
    kv = getattr(mc, "num_key_value_heads", None) or heads
    h_kv = h // heads * kv
    inter = getattr(mc, "intermediate_size", 4 * h)
    act_bytes = _BYTES[getattr(torch, cfg.model.dtype)]
    micro = math.ceil(t.batch_size / num_gpus)
    seq = cfg.model.max_length
    training_layers = layers if t.method in ("lora", "full") else min(t.top_layers, layers)
    per_layer = micro * seq * (10 * h + 3 * h_kv + 4 * inter) * act_bytes + micro * heads * seq * seq * act_bytes
    full = training_layers * per_layer
    checkpointed = training_layers * micro * seq * h * act_bytes + per_layer
    activations, other = (checkpointed, full) if t.gradient_checkpointing else (full, checkpointed)
    head = 3 * micro * mc.vocab_size * 4
    weights = _nbytes(params) / shard
    grads = _nbytes(trainable) / shard
    adam = 2 * _nbytes(trainable) / shard
    total = weights + grads + adam + activations + head
    return Plan(
        architecture=(getattr(mc, "architectures", None) or [type(model).__name__])[0], layers=layers,
        parameters=n_backbone, trainable=sum(p.numel() for p in trainable),
        num_gpus=num_gpus, sharding=sharding, micro_batch_per_gpu=micro, global_batch=t.batch_size * t.grad_accum,
        max_length=seq, gradient_checkpointing=t.gradient_checkpointing, weights_gib=weights / GIB,
        gradients_gib=grads / GIB, optimizer_gib=adam / GIB, activations_gib=activations / GIB,
        activations_other_gib=other / GIB, head_gib=head / GIB, total_gib=total / GIB)


def dry_run(cfg: Config, architecture: str | Path | None = None, num_gpus: int = 1, sharding: str = "ddp",
            gpu_memory_gib: float | None = None) -> Plan:
    """Builds the plan, and refuses (one line) when the estimate exceeds ``gpu_memory_gib``."""
    plan = make_plan(cfg, architecture, num_gpus, sharding)
    if gpu_memory_gib is not None and plan.total_gib > gpu_memory_gib:
        hint = "" if plan.gradient_checkpointing else "; try train.gradient_checkpointing=true"
        raise Text2TokenError(f"estimated {plan.total_gib:.1f} GiB per GPU exceeds --gpu-memory {gpu_memory_gib:g} "
                              f"GiB (micro-batch {plan.micro_batch_per_gpu} x {plan.max_length} tokens on each of "
                              f"{num_gpus} GPU(s), {sharding}){hint}")
    return plan
