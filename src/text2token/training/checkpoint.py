"""Checkpoints: a plain dict (trainable weights, optimizer, scheduler, RNG, stage and step), written atomically.

The data position follows from the stage and step, so resuming continues with the texts an uninterrupted run
would have seen next, and ends with the same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import Text2TokenError
from ..files import atomic_write

CHECKPOINT = "checkpoint"
STATE_FILE = "state.pt"


def load_checkpoint(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINT / STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain types only
    except Exception as e:  # a truncated/corrupted file: refuse, never use silently
        raise Text2TokenError(f"checkpoint {path} is unreadable ({type(e).__name__}); delete it to restart") from None


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, stage: int, step: int, dist,
                    global_step: int | None = None) -> None:
    """Writes the checkpoint once (main process; every process must call this: FSDP gathers, RNG states are
    collected from every rank)."""
    state = {"stage": stage, "step": step, "trainable": dist.trainable_state(model),
             "optimizer": dist.optimizer_state(optimizer), "scheduler": scheduler.state_dict(),
             **dist.rng_states()}
    if global_step is not None:
        state["global_step"] = global_step
    if dist.is_main:
        directory = run_dir / CHECKPOINT
        directory.mkdir(exist_ok=True)
        atomic_write(directory / STATE_FILE, lambda f: torch.save(state, f))
    dist.barrier()


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copies saved trainable weights into ``model`` by parameter name."""
    params = dict(model.named_parameters())
    for name, value in weights.items():
        params[name].data.copy_(value)


def remove_checkpoint(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(run_dir / CHECKPOINT, ignore_errors=True)
