"""Training with several processes, by environment: ``torchrun`` / ``accelerate launch`` set ``WORLD_SIZE``.

One process (``WORLD_SIZE`` unset or 1): :class:`Dist` is a no-op and training runs exactly the code it ran
before this module existed (bit for bit). Several processes: an accelerate ``Accelerator`` (DDP by default, FSDP
from an accelerate config file) and these rules:

* **Data.** Every rank follows the same stage plan (a function of seed and step). Each micro-batch of
  ``train.batch_size`` texts is tokenised whole on every rank (same padding as one process) and rank ``r``
  runs the ``r``-th contiguous share of its rows (``numpy.array_split``). The global batch of a step is
  ``batch_size * grad_accum`` texts whatever the process count.
* **Loss.** Each rank's loss is scaled so that the DDP mean of the per-rank gradients equals the gradient of
  the one-process loss of the whole micro-batch: KL is summed over the rank's rows with a target and divided by
  the number of such rows in the *whole* micro-batch (times the world size), so rows without target are left
  out of the mean exactly as in one process, and uneven shares are exact too. MNTP does the same over masked
  tokens; SimCSE gathers the embeddings of all ranks (in-batch negatives of the whole micro-batch).
* **Once.** Metrics, checkpoints, the saved encoder and the before/after score are written by the main
  process; the others wait at a barrier.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

import numpy as np
import torch

from ..errors import Text2TokenError
from .objectives import mntp_loss, simcse_loss, token_kl


def world_size_from_env() -> int:
    for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(key, "").strip():
            return int(os.environ[key])
    return 1


class _Forward(torch.nn.Module):
    """Runs a closure over the encoder inside one module call, so that DDP/FSDP see the forward."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self._no_split_modules = getattr(model, "_no_split_modules", None)  # FSDP wraps each decoder layer

    def forward(self, fn: Callable[[], torch.Tensor]):
        return fn()


class Dist:
    """Rank, world size and the few collective operations training needs."""

    def __init__(self, accelerator=None):
        self.accelerator = accelerator
        self.rank = accelerator.process_index if accelerator else 0
        self.world = accelerator.num_processes if accelerator else 1
        self.wrapped: torch.nn.Module | None = None

    @classmethod
    def from_env(cls) -> "Dist":
        if world_size_from_env() <= 1:
            return cls()
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=not torch.cuda.is_available())  # without a GPU: gloo on CPU
        if accelerator.num_processes != world_size_from_env():
            raise Text2TokenError(f"WORLD_SIZE={world_size_from_env()} but accelerate set up "
                                  f"{accelerator.num_processes} process(es); on a machine without GPUs launch "
                                  "with ACCELERATE_USE_CPU=true (see docs/multi-node.md)")
        return cls(accelerator)

    # ---------------------------------------------------------------- facts
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str | None:
        """The device of this rank (None in one process: the encoder picks its default)."""
        return str(self.accelerator.device) if self.accelerator else None

    @property
    def fsdp(self) -> bool:
        return bool(self.accelerator) and self.accelerator.distributed_type.name == "FSDP"

    def check(self, cfg) -> None:
        """Refuses settings this process count cannot honour (before anything is written)."""
        if self.world == 1:
            return
        if cfg.train.batch_size < self.world:
            raise Text2TokenError(f"train.batch_size={cfg.train.batch_size} is smaller than the {self.world} "
                                  "processes: every process needs at least one text of each micro-batch")
        if any(s.objective == "simcse" for s in cfg.stages) and cfg.train.batch_size % self.world:
            raise Text2TokenError(f"simcse stages need train.batch_size ({cfg.train.batch_size}) divisible by "
                                  f"the {self.world} processes (embeddings are gathered across processes)")
        if self.fsdp and any(s.targets == "model" for s in cfg.stages) \
                and cfg.targets.model_derived.source == "stage1":
            raise Text2TokenError("targets.model_derived.source=stage1 is not supported under FSDP "
                                  "(use source=prompt or DDP)")

    # ---------------------------------------------------------------- data
    def rows(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` rows (all of them in one process)."""
        if self.world == 1:
            return slice(0, n)
        bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(n), self.world)])
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    # ---------------------------------------------------------------- model
    def wrap(self, model: torch.nn.Module) -> Callable[[Callable[[], torch.Tensor]], torch.Tensor]:
        """Returns ``run(fn)``: calls ``fn()`` (one process) or calls it inside the DDP/FSDP-wrapped model."""
        if self.world == 1:
            return lambda fn: fn()
        self.wrapped = self.accelerator.prepare_model(_Forward(model))
        return lambda fn: self.wrapped(fn)

    def no_sync(self, skip: bool):
        """Skips the gradient all-reduce of a micro-step that is not the last of its step."""
        if self.world == 1 or not skip or self.wrapped is None:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(self.wrapped)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def clip_grad_norm_(self, params, max_norm: float) -> float:
        if self.accelerator is None:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        # under FSDP accelerate clips the sharded gradients of the wrapped model
        return float(self.accelerator.clip_grad_norm_(self.wrapped.parameters() if self.fsdp else params, max_norm))

    # ---------------------------------------------------------------- losses
    # Each returns a tensor whose mean over ranks is the one-process loss of the whole micro-batch and whose
    # gradient, averaged over ranks by DDP, is the one-process gradient. One process: the original functions.
    def kl(self, logits: torch.Tensor, ids: np.ndarray, weights: np.ndarray, mine: slice) -> torch.Tensor:
        """``ids``/``weights`` of the whole micro-batch; ``logits`` of this rank's rows."""
        if self.world == 1:
            return token_kl(logits, torch.from_numpy(ids), torch.from_numpy(weights))
        per_row = token_kl(logits, torch.from_numpy(ids[mine]), torch.from_numpy(weights[mine]), reduction="none")
        valid = torch.from_numpy(weights[mine].sum(1) > 0).to(per_row.device)
        n_valid = int((weights.sum(1) > 0).sum())
        return torch.where(valid, per_row, torch.zeros_like(per_row)).sum() * (self.world / max(n_valid, 1))

    def mntp(self, hidden: torch.Tensor, lm_head, original_ids: torch.Tensor, masked: torch.Tensor,
             n_masked: int) -> torch.Tensor:
        """``hidden``/``original_ids``/``masked`` of this rank's rows; ``n_masked`` of the whole micro-batch."""
        if self.world == 1:
            return mntp_loss(hidden, lm_head, original_ids, masked)
        if not bool(masked.any()):
            return hidden.sum() * 0.0
        return mntp_loss(hidden, lm_head, original_ids, masked) * (int(masked.sum()) * self.world / n_masked)

    def simcse(self, z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
        if self.world == 1:
            return simcse_loss(z1, z2, temperature)
        full1, full2 = self._gather_with_grad(z1), self._gather_with_grad(z2)
        loss = simcse_loss(full1, full2, temperature)
        # every rank holds the whole loss, its gradient reaching this rank's rows only: scale the gradient by
        # the world size (DDP divides by it) and keep the value
        return loss * self.world - loss.detach() * (self.world - 1)

    def _gather_with_grad(self, z: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(z) for _ in range(self.world)]
        torch.distributed.all_gather(parts, z.detach().contiguous())
        parts[self.rank] = z
        return torch.cat(parts)

    # ---------------------------------------------------------------- collectives
    def mean(self, value: float) -> float:
        """Mean over ranks of a float (the logged loss)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()

    def gather_objects(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    # ---------------------------------------------------------------- checkpoint state
    def rng_states(self) -> dict:
        """What a checkpoint holds of the RNG: rank 0's CPU state (``torch_rng``, as one process writes) and,
        with several processes, every rank's (``torch_rng_ranks``)."""
        states = self.gather_objects(torch.get_rng_state())
        return {"torch_rng": states[0], **({"torch_rng_ranks": states} if self.world > 1 else {})}

    def restore_rng(self, state: dict | None, seed: int, global_step: int) -> None:
        """Rank ``r`` resumes its own RNG state when the checkpoint was written by as many processes; else rank
        0 takes ``torch_rng`` and the other ranks a fresh stream from (seed, rank, step). A fresh run: rank 0
        keeps the seeded stream, rank ``r > 0`` starts one from (seed, rank) so dropout masks differ by rank."""
        ranks = (state or {}).get("torch_rng_ranks")
        if state is not None and ranks is not None and len(ranks) == self.world:
            torch.set_rng_state(ranks[self.rank])
        elif state is not None and self.rank == 0:
            torch.set_rng_state(state["torch_rng"])
        elif self.rank > 0:
            torch.manual_seed(seed * 1_000_003 + self.rank * 7_919 + global_step)

    def trainable_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The trainable weights, whole (FSDP: gathered; every rank must call this)."""
        if not self.fsdp:
            return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        names = {n.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")
                 for n, p in model.named_parameters() if p.requires_grad}
        full = self.accelerator.get_state_dict(self.wrapped)  # on the main process; keys under "model."
        return {k[len("model."):]: v for k, v in (full or {}).items() if k[len("model."):] in names}

    def optimizer_state(self, optimizer) -> dict:
        if not self.fsdp:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.wrapped, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        if not self.fsdp:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.wrapped, optimizer, state, options=StateDictOptions(full_state_dict=True))

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
