"""The training objectives: one registry, one loss and one step function each.

A stage names its objective (``stages[i].objective``); :data:`OBJECTIVES` maps the name to a step function
``step(run, micro) -> loss`` over one micro-batch. A new objective is one function decorated with
``@objective(name)``: the config, the loop and the docs read it from here. An objective that forwards the
plain batch without dropout gets its pooled embeddings from ``frozen_cache.pooled`` (the cache applies).

- ``kl``: Text2Token. KL(target || softmax(LM_head(pooled))) against the stage's precomputed sparse targets.
- ``simcse``: unsupervised SimCSE (Gao et al. 2021): dropout positives, in-batch negatives.
- ``mntp``: LLM2Vec's masked next-token prediction (BehnamGhader et al. 2024).
- ``kl_contrastive``: ``kl`` plus an in-batch contrastive term over the same targets, a step beyond the paper:
  text i's predicted distribution must give its own target a higher likelihood than the other texts' targets.
- ``kl_simcse``: ``kl`` on two dropout views plus unsupervised SimCSE between them, a step beyond the paper:
  the token targets and an embedding-space contrast trained jointly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .frozen_cache import pooled


@dataclass(frozen=True)
class Objective:
    name: str
    step: Callable  # (run: training.loop.StageRun, micro: MicroBatch) -> loss tensor
    needs_targets: bool  # a target store per stage (stages[i].targets: data | model)
    dropout: bool  # trains with attention dropout train.simcse_dropout (off otherwise)


OBJECTIVES: dict[str, Objective] = {}


def objective(name: str, needs_targets: bool = False, dropout: bool = False):
    """Registers ``step(run, micro) -> loss`` as objective ``name``."""
    def register(step: Callable) -> Callable:
        OBJECTIVES[name] = Objective(name, step, needs_targets, dropout)
        return step
    return register


@dataclass
class MicroBatch:
    """One micro-batch: its corpus indices, the whole tokenised batch and this process's rows of it."""

    indices: np.ndarray
    batch: dict  # input_ids, attention_mask of the whole micro-batch (CPU)
    local: dict  # this process's rows, on the encoder's device
    mine: slice
    seed: int  # a seed of its own (stage, step, micro), for objectives that draw at random


# ------------------------------------------------------------------------------------------- losses
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


def target_contrast_loss(logits: torch.Tensor, target_ids: torch.Tensor, target_weights: torch.Tensor,
                         temperature: float = 1.0) -> torch.Tensor:
    """In-batch contrast in vocabulary space: score s_ij = sum_k w_jk log p_i(id_jk), the log-likelihood text i's
    distribution gives text j's target; cross-entropy of softmax_j(s_ij / temperature) against j = i. Rows
    without a target take no part (as queries or as candidates). Float32; 0 for fewer than 2 such rows."""
    logits = logits.float()
    w = target_weights.to(device=logits.device, dtype=torch.float32)
    ids = target_ids.to(device=logits.device, dtype=torch.long)
    valid = w.sum(1) > 0
    if int(valid.sum()) < 2:
        return logits.sum() * 0.0
    logits, w, ids = logits[valid], w[valid], ids[valid]
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    n, k = ids.shape
    scores = (logp[:, ids.reshape(-1)].reshape(n, n, k) * w[None]).sum(-1)  # [i, j]
    return torch.nn.functional.cross_entropy(scores / temperature, torch.arange(n, device=logits.device))


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


def mask_token_id(tokenizer) -> int:
    """The token that replaces masked ones in MNTP: the tokenizer's mask token, else ``_`` (as LLM2Vec does for
    decoders without one), else unk / pad."""
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    ids = tokenizer("_", add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    return int(tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id)


def mask_tokens(batch: dict, tokenizer, prob: float, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MNTP inputs: each real, non-special token after the first is masked with probability ``prob`` (at least
    one per row). Returns (masked input ids, mask of the masked positions)."""
    ids, attn = batch["input_ids"], batch["attention_mask"].bool()
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype)
    candidate = attn & ~torch.isin(ids, special)
    candidate[:, 0] = False
    draw = torch.rand(ids.shape, generator=rng) < prob
    masked = candidate & draw
    for row in torch.nonzero(candidate.any(1) & ~masked.any(1)).flatten().tolist():  # at least one per row
        options = torch.nonzero(candidate[row]).flatten()
        masked[row, options[torch.randint(len(options), (1,), generator=rng)]] = True
    return ids.masked_fill(masked, mask_token_id(tokenizer)), masked


# ------------------------------------------------------------------------------------------- steps
@objective("kl", needs_targets=True)
def kl_step(run, micro: MicroBatch) -> torch.Tensor:
    enc = run.encoder
    ids, weights = run.store.get(micro.indices)
    logits = run.forward(lambda: enc.token_logits(pooled(run, micro.local)))
    return run.dist.kl(logits, ids, weights, micro.mine)


@objective("kl_contrastive", needs_targets=True)
def kl_contrastive_step(run, micro: MicroBatch) -> torch.Tensor:
    """``kl`` + ``train.contrastive_weight`` x the in-batch target contrast (over this process's rows)."""
    enc, t = run.encoder, run.train
    ids, weights = run.store.get(micro.indices)
    logits = run.forward(lambda: enc.token_logits(pooled(run, micro.local)))
    contrast = target_contrast_loss(logits, torch.from_numpy(ids[micro.mine]), torch.from_numpy(weights[micro.mine]),
                                    t.contrastive_temperature)
    return run.dist.kl(logits, ids, weights, micro.mine) + t.contrastive_weight * contrast


@objective("kl_simcse", needs_targets=True, dropout=True)
def kl_simcse_step(run, micro: MicroBatch) -> torch.Tensor:
    """The mean ``kl`` of two dropout views + ``train.contrastive_weight`` x SimCSE between them."""
    enc, t = run.encoder, run.train
    ids, weights = run.store.get(micro.indices)

    def views():  # one wrapped forward (DDP counts them): the pooled views and their token logits
        z = enc.forward(**{k: torch.cat([v, v]) for k, v in micro.local.items()})
        return z, enc.token_logits(z)

    z, logits = run.forward(views)
    n = len(z) // 2
    kl = 0.5 * (run.dist.kl(logits[:n], ids, weights, micro.mine) + run.dist.kl(logits[n:], ids, weights, micro.mine))
    return kl + t.contrastive_weight * run.dist.simcse(z[:n], z[n:], t.simcse_temperature)


@objective("simcse", dropout=True)
def simcse_step(run, micro: MicroBatch) -> torch.Tensor:
    enc = run.encoder  # the same texts twice: dropout makes the two views differ
    pooled = run.forward(lambda: enc.forward(**{k: torch.cat([v, v]) for k, v in micro.local.items()}))
    n = len(pooled) // 2
    return run.dist.simcse(pooled[:n], pooled[n:], run.train.simcse_temperature)


@objective("mntp")
def mntp_step(run, micro: MicroBatch) -> torch.Tensor:
    enc, mine, device = run.encoder, micro.mine, run.encoder.device
    rng = torch.Generator().manual_seed(micro.seed)
    masked_ids, masked = mask_tokens(micro.batch, enc.tokenizer, run.train.mntp_mask_prob, rng)
    ids_l, masked_l = micro.batch["input_ids"][mine].to(device), masked[mine].to(device)
    return run.forward(lambda: run.dist.mntp(enc.states(masked_ids[mine].to(device), micro.local["attention_mask"]),
                                             enc.lm_head, ids_l, masked_l, int(masked.sum())))
