"""The stage loop: prepare -> run each stage -> finish, each a short function.

A run directory holds everything the run produces::

    config.yaml  metrics.jsonl  targets/<stage>-<fingerprint>/  checkpoint/state.pt  final/  eval.json

``resume=True`` continues from the last checkpoint (training/checkpoint.py) and ends with the same weights as
an uninterrupted run. Under ``torchrun`` / ``accelerate launch`` every process runs this (training/distributed.py).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import Config, load_config, save_config
from ..data import load_corpus
from ..errors import Text2TokenError
from ..eval.heldout import heldout_score, heldout_set
from ..model.card import write_card
from ..model.encoder import Encoder, check_texts
from ..model.precision import autocast, native_bf16, resolve_autocast
from ..targets.builder import StageTargets
from ..targets.store import TargetStore
from .checkpoint import load_checkpoint, load_weights, remove_checkpoint, save_checkpoint
from .distributed import Dist
from .frozen_cache import FrozenCache, open_frozen_cache
from .objectives import OBJECTIVES, MicroBatch
from .probe import CoOptimisationProbe
from .trainable import enable_gradient_checkpointing, mark_trainable, set_attention_dropout, trainable_parameters

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stage_order(n_texts: int, n_samples: int, seed: int, stage_index: int) -> np.ndarray:
    """The corpus indices a stage visits, in order: seeded permutations, one per epoch, concatenated."""
    rng = np.random.default_rng([seed, stage_index])
    epochs = math.ceil(n_samples / n_texts)
    return np.concatenate([rng.permutation(n_texts) for _ in range(epochs)])[:n_samples]


def lr_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, **record) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


@dataclass
class Run:
    """What a run holds while it trains; objectives read ``encoder``, ``forward``, ``dist``, ``train``, ``store``."""

    cfg: Config
    dist: Dist
    run_dir: Path
    texts: list
    encoder: Encoder
    state: dict | None  # the checkpoint resumed from
    show_progress: bool
    heldout: object = None
    metrics: MetricsLog | None = None
    targets: StageTargets | None = None
    orders: list = field(default_factory=list)
    stores: dict = field(default_factory=dict)
    coopt: CoOptimisationProbe | None = None
    peft_model: object = None
    forward: Callable | None = None
    store: TargetStore | None = None
    frozen_cache: FrozenCache | None = None
    global_step: int = 0

    @property
    def train(self):
        return self.cfg.train


def train(cfg: Config, output_dir: str | Path | None = None, resume: bool = False,
          stop_after_steps: int | None = None, show_progress: bool = True,
          on_step: Callable[[dict], None] | None = None) -> Path:
    """Runs every stage of ``cfg``; returns the run directory (the encoder is in ``<run>/final``)."""
    dist = Dist.from_env()
    try:
        run = prepare(cfg, dist, Path(output_dir or cfg.output_dir), resume, show_progress and dist.is_main)
        for i, stage in enumerate(cfg.stages):
            if not run_stage(run, i, stage, stop_after_steps, on_step):
                break  # stopped early (stop_after_steps): the checkpoint is written
        else:
            finish(run)
        dist.barrier()  # as in serving/encode_parallel.py: a rank tearing gloo down early can abort the others
        return run.run_dir
    finally:
        dist.close()


# ------------------------------------------------------------------------------------------- prepare
def check_run_dir(cfg: Config, run_dir: Path, resume: bool) -> bool:
    """Refuses an unusable run dir before anything is written; returns whether the run resumes."""
    if resume and not (run_dir / "config.yaml").is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise Text2TokenError(f"cannot resume: {run_dir} has no config.yaml")
        return False  # killed before anything was written: start the run afresh
    if resume:
        saved, now = load_config(run_dir / "config.yaml").to_dict(), cfg.to_dict()
        saved.pop("output_dir"), now.pop("output_dir")
        if saved != now:
            raise Text2TokenError(f"--resume: the config differs from {run_dir / 'config.yaml'}; "
                                  "resume with the same config or start a new --output")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise Text2TokenError(f"output dir {run_dir} is not empty; pass --resume to continue it or choose another")
    return resume


def open_run_dir(cfg: Config, run_dir: Path, resume: bool, dist: Dist) -> None:
    dist.barrier()  # every rank has checked the run dir before the main one writes to it
    if dist.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise Text2TokenError(f"cannot write to output dir {run_dir} ({e.strerror or e})") from None
        if not resume:
            save_config(cfg, run_dir / "config.yaml")
    dist.barrier()


def prepare(cfg: Config, dist: Dist, run_dir: Path, resume: bool, show_progress: bool) -> Run:
    """Checks, loads, builds the targets the untouched backbone gives, scores "before", sets what trains."""
    dist.check(cfg)
    resume = check_run_dir(cfg, run_dir, resume)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    texts = check_texts(load_corpus(cfg.data), what="corpus text")
    heldout = heldout_set(cfg.data, cfg.eval.articles, seed=cfg.data.seed) if cfg.eval.enabled else None
    m = cfg.model
    encoder = Encoder.from_backbone(m.backbone, m.encoder_settings(), dtype=m.dtype,
                                    trust_remote_code=m.trust_remote_code, device=dist.device)
    state = load_checkpoint(run_dir) if resume else None
    if resume and state is None and (run_dir / "final").is_dir():
        raise Text2TokenError(f"{run_dir} is already complete (see {run_dir / 'final'}); nothing to resume")
    open_run_dir(cfg, run_dir, resume, dist)
    run = Run(cfg, dist, run_dir, texts, encoder, state, show_progress, heldout=heldout,
              metrics=MetricsLog(run_dir / "metrics.jsonl") if dist.is_main else None)
    log.info("corpus: %d texts; backbone %s; run dir %s", len(texts), m.backbone, run_dir)
    if run.metrics:  # what `auto` became on this machine: numerics differ between bf16 and fp32 forward passes
        run.metrics.write(event="setup", autocast=resolve_autocast(cfg.train.autocast, encoder.device),
                          native_bf16=native_bf16(str(encoder.device)), resumed=state is not None)
    build_targets(run)
    score_before(run)
    start_training(run)
    return run


def build_targets(run: Run) -> None:
    """Each stage's data order, and the target stores that need the untouched backbone (built before training)."""
    cfg, t = run.cfg, run.cfg.train
    per_step = t.batch_size * t.grad_accum
    run.orders = [stage_order(len(run.texts), s.steps * per_step, t.seed, i) for i, s in enumerate(cfg.stages)]
    run.targets = StageTargets(cfg, run.encoder, run.texts, run.run_dir, run.show_progress, run.dist)
    run.frozen_cache = cache = open_frozen_cache(cfg, run.run_dir, run.encoder.model, run.dist.world,
                                                 run.targets.base_fp["backbone"])
    if cache is not None:
        run.targets.capture = lambda: cache.capturing(run.encoder.model)
    for i, stage in enumerate(cfg.stages):
        if OBJECTIVES[stage.objective].needs_targets and not run.targets.needs_trained_model(stage):
            run.stores[i] = run.targets.store(stage, run.orders[i])
    flush_cache(run, "the targets")


def flush_cache(run: Run, after: str) -> None:
    cache = run.frozen_cache
    if cache is not None:
        cache.flush()
        log.info("frozen-layer cache after %s: %d texts, %.0f MB; %d rows read from it, %d computed",
                 after, len(cache), cache.bytes / 2**20, cache.hits, cache.misses)


def score_before(run: Run) -> None:
    """The "before" score, on the raw backbone with the same pooling and prompt (once, kept across resumes)."""
    before_file = run.run_dir / "eval_before.json"
    if run.heldout is not None and not before_file.is_file() and run.dist.is_main:
        before = heldout_score(run.encoder, run.heldout, run.cfg.eval.batch_size, show_progress_bar=run.show_progress)
        before_file.write_text(json.dumps(before, indent=2))
        run.metrics.write(event="eval", when="before", **before)
    run.dist.barrier()


def start_training(run: Run) -> None:
    """The probe's first point, what trains, the resumed weights and RNG, and the (DDP/FSDP) forward."""
    cfg, dist, state, encoder = run.cfg, run.dist, run.state, run.encoder
    if cfg.eval.every and dist.is_main:  # the main process probes and logs; the others wait at the next step
        probe_set = heldout_set(cfg.data, cfg.eval.probe_articles, seed=cfg.data.seed + 1)
        run.coopt = CoOptimisationProbe(run.targets.data, probe_set, cfg.eval.batch_size)
        if state is None:
            run.metrics.write(event="probe", global_step=0, **run.coopt(encoder))
    run.peft_model = mark_trainable(encoder.model, cfg.train)
    if cfg.train.gradient_checkpointing:
        enable_gradient_checkpointing(encoder.model)
    if state is not None:
        run.global_step = sum(s.steps for s in cfg.stages[: state["stage"]]) + state["step"]
        load_weights(encoder.model, state["trainable"])
        if dist.world == 1:
            torch.set_rng_state(state["torch_rng"])
    if dist.world > 1:
        dist.restore_rng(state, cfg.train.seed, run.global_step)
    run.forward = dist.wrap(encoder.model)  # one process: calls the closure; several: inside DDP/FSDP
    n_trainable = sum(p.numel() for p in trainable_parameters(encoder.model))
    log.info("training %s: %.1fM trainable parameters", cfg.train.method, n_trainable / 1e6)


# ------------------------------------------------------------------------------------------- a stage
def run_stage(run: Run, i: int, stage, stop_after_steps: int | None = None,
              on_step: Callable[[dict], None] | None = None) -> bool:
    """Trains stage ``i`` from its start or its checkpoint; False when ``stop_after_steps`` stopped it."""
    state, t = run.state, run.train
    if state is not None and (i < state["stage"] or (i == state["stage"] and state["step"] >= stage.steps)):
        return True  # finished before the checkpoint
    objective = OBJECTIVES[stage.objective]
    if i not in run.stores and objective.needs_targets:  # stage1 targets: from the model as it is now
        run.encoder.model.eval()
        mid_stage = state is not None and state["stage"] == i and state["step"] > 0
        run.stores[i] = run.targets.store(stage, run.orders[i], reuse_existing=mid_stage)
        flush_cache(run, f"the targets of {stage.name}")
    run.store = run.stores.get(i)
    params = trainable_parameters(run.encoder.model)
    warmup = t.warmup_steps if stage.warmup_steps is None else stage.warmup_steps
    optimizer = torch.optim.AdamW(params, lr=stage.lr or t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(warmup, stage.steps))
    start = 0
    if state is not None and state["stage"] == i:
        run.dist.load_optimizer_state(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["step"]
    run.state = None
    run.encoder.model.train()
    set_attention_dropout(run.encoder.model, t.simcse_dropout if objective.dropout else 0.0)
    bar = tqdm(range(start, stage.steps), desc=f"stage {stage.name}", disable=not run.show_progress,
               initial=start, total=stage.steps, unit="step")
    tic = time.perf_counter()
    for step in bar:
        record = train_step(run, i, stage, step, params, optimizer, scheduler)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if on_step:
            on_step(record)
        log_step(run, stage, step, start, record, tic)
        stop = bool(stop_after_steps and run.global_step >= stop_after_steps)
        if (step + 1) % t.checkpoint_every == 0 or step + 1 == stage.steps or stop:
            save_checkpoint(run.run_dir, run.encoder.model, optimizer, scheduler, i, step + 1, run.dist,
                            run.global_step)
        if stop:
            bar.close()
            flush_cache(run, f"step {step + 1} of {stage.name}")
            return False
    bar.close()
    flush_cache(run, f"stage {stage.name}")
    return True


def train_step(run: Run, i: int, stage, step: int, params, optimizer, scheduler) -> dict:
    """One optimizer step over ``grad_accum`` micro-batches of the stage's data order."""
    t, dist, encoder = run.train, run.dist, run.encoder
    objective = OBJECTIVES[stage.objective]
    loss_sum = 0.0
    for micro in range(t.grad_accum):
        lo = (step * t.grad_accum + micro) * t.batch_size
        idx = run.orders[i][lo: lo + t.batch_size]
        batch, _ = encoder.tokenize([run.texts[k] for k in idx])
        mine = dist.rows(len(idx))  # this process's rows of the micro-batch (all in one process)
        local = {k: v[mine].to(encoder.device) for k, v in batch.items()}
        seed = t.seed * 1_000_003 + i * 10_007 + step * 101 + micro
        with autocast(t.autocast, encoder.device):
            loss = objective.step(run, MicroBatch(idx, batch, local, mine, seed)) / t.grad_accum
        with dist.no_sync(micro < t.grad_accum - 1):
            dist.backward(loss)
        loss_sum += loss.item()
    loss_sum = dist.mean(loss_sum)
    grad_norm = dist.clip_grad_norm_(params, t.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    run.global_step += 1
    return {"stage": stage.name, "step": step + 1, "global_step": run.global_step, "loss": loss_sum,
            "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm}


def log_step(run: Run, stage, step: int, start: int, record: dict, tic: float) -> None:
    if run.metrics and ((step + 1) % run.train.log_every == 0 or step + 1 == stage.steps or step == start):
        run.metrics.write(event="train", **record, seconds=round(time.perf_counter() - tic, 3))
    if run.coopt is not None and run.global_step % run.cfg.eval.every == 0:
        run.metrics.write(event="probe", stage=stage.name, global_step=run.global_step, **run.coopt(run.encoder))


# ------------------------------------------------------------------------------------------- finish
def gather_fsdp(run: Run) -> None:
    """FSDP shards the trained weights: gather them and load them into a whole copy on the main rank."""
    trained = run.dist.trainable_state(run.encoder.model)
    run.forward = run.dist.wrapped = run.encoder = run.peft_model = None
    if run.dist.is_main:
        m = run.cfg.model
        run.encoder = Encoder.from_backbone(m.backbone, m.encoder_settings(), dtype=m.dtype,
                                            trust_remote_code=m.trust_remote_code, device=run.dist.device)
        run.peft_model = mark_trainable(run.encoder.model, run.cfg.train)
        load_weights(run.encoder.model, trained)


def finish(run: Run) -> None:
    """The saved encoder (LoRA merged), the "after" score and the plots: the main process alone."""
    if run.dist.fsdp:
        gather_fsdp(run)
    run.dist.barrier()
    if not run.dist.is_main:
        return
    cfg, encoder = run.cfg, run.encoder
    encoder.model.eval()
    set_attention_dropout(encoder.model, 0.0)
    if run.peft_model is not None:
        encoder.model = run.peft_model.merge_and_unload()
    for p in encoder.model.parameters():
        p.requires_grad_(False)
    encoder.target_vocab = run.targets.target_vocab.to_dict()
    final = encoder.save(run.run_dir / "final", run_dir=run.run_dir,
                         extra={"backbone": cfg.model.backbone, "stages": [s.name for s in cfg.stages],
                                "corpus": Path(cfg.data.corpus).name, "texts": len(run.texts)})
    if run.heldout is not None:
        before = json.loads((run.run_dir / "eval_before.json").read_text())
        after = heldout_score(encoder, run.heldout, cfg.eval.batch_size, show_progress_bar=run.show_progress)
        run.metrics.write(event="eval", when="after", **after)
        (run.run_dir / "eval.json").write_text(json.dumps({"before": before, "after": after,
                                                           "heldout_articles": len(run.heldout.queries)}, indent=2))
        write_card(final, run_dir=run.run_dir)  # now with the scores
    remove_checkpoint(run.run_dir)  # the run is complete; final/ holds the result
    if run.frozen_cache is not None:
        run.frozen_cache.remove()
    from ..eval.plots import plot_coopt, plot_run

    plot_run(run.run_dir)
    plot_coopt(run.run_dir)
    log.info("saved encoder to %s", final)
