"""The stage loop: targets -> KL training over the configured stages -> saved encoder + before/after score.

A run directory holds everything the run produces::

    config.yaml  metrics.jsonl  targets/<stage>-<fingerprint>/  checkpoint/state.pt  final/  eval.json

Checkpoints are plain dicts (trainable weights, optimizer, scheduler, RNG, stage and step: the data
position follows from the step) written atomically; ``resume=True`` continues from the last one and ends
with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .backbone import resolve
from .config import Config, load_config, save_config
from .data import heldout_set, load_corpus
from .distributed import Dist
from .encoder import Encoder, EncoderSettings, check_texts
from .errors import Text2TokenError
from .evaluate import heldout_score, retrieval_scores
from .files import atomic_write
from .losses import token_kl
from .targets.data_driven import DataDrivenTargets
from .targets.model_derived import ModelDerivedTargets
from .targets.store import TargetStore, fingerprint, texts_fingerprint

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
STATE_FILE = "state.pt"


# ------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stage_plan(n_texts: int, n_samples: int, seed: int, stage_index: int) -> np.ndarray:
    """The corpus indices a stage visits, in order: seeded permutations, one per epoch, concatenated."""
    rng = np.random.default_rng([seed, stage_index])
    epochs = math.ceil(n_samples / n_texts)
    return np.concatenate([rng.permutation(n_texts) for _ in range(epochs)])[:n_samples]


def backbone_fingerprint(spec: str) -> dict:
    path = resolve(spec)
    files = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.suffix in (".safetensors", ".json"))
    return {"config": json.loads((path / "config.json").read_text()), "files": files}


def weights_fingerprint(model: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def setup_trainable(encoder: Encoder, cfg: Config):
    """Marks what trains; returns the peft model for LoRA (to merge at the end) or None."""
    t = cfg.train
    model = encoder.model
    if t.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                          target_modules=t.lora_target_modules, bias="none")
        return get_peft_model(model, lora)  # injects adapters in place; encoder.model keeps working
    for p in model.parameters():
        p.requires_grad_(t.method == "full")
    if t.method == "top_layers":
        layers = getattr(encoder.base, "layers", None)
        if layers is None:
            raise Text2TokenError("train.method=top_layers: this backbone has no .layers list; use lora or full")
        n = min(t.top_layers, len(layers))
        for layer in list(layers)[-n:]:
            layer.requires_grad_(True)
        norm = getattr(encoder.base, "norm", None)
        if norm is not None:
            norm.requires_grad_(True)
    return None


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


def load_checkpoint(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINT / STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated/corrupted file: refuse, never use silently
        raise Text2TokenError(f"checkpoint {path} is unreadable ({type(e).__name__}); delete it to restart") from None


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, **record) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _same_config(a: Config, b: Config) -> bool:
    da, db = a.to_dict(), b.to_dict()
    da.pop("output_dir"), db.pop("output_dir")
    return da == db


# ------------------------------------------------------------------------------------------- targets
class Targets:
    """Builds (or reuses) the target store of every stage."""

    def __init__(self, cfg: Config, encoder: Encoder, texts: list[str], run_dir: Path, show_progress: bool,
                 dist: Dist | None = None):
        self.cfg, self.encoder, self.texts, self.run_dir = cfg, encoder, texts, run_dir
        self.dist = dist or Dist()
        self.show_progress = show_progress
        chunk = cfg.targets.shard_size
        self.data = DataDrivenTargets(encoder.tokenizer, encoder.vocab_size, cfg.targets.data_driven)
        self.vocab = self.data.vocab  # one vocabulary filter, built from the data-driven settings, for both kinds
        self.data.fit(texts[i:i + chunk] for i in range(0, len(texts), chunk))
        self.base_fp = {
            "texts": texts_fingerprint(texts),
            "backbone": backbone_fingerprint(cfg.model.backbone),
            "data_driven": cfg.targets.data_driven.model_dump(),
        }

    def needs_trained_model(self, stage) -> bool:
        return stage.targets == "model" and self.cfg.targets.model_derived.source == "stage1"

    def store(self, stage, indices: np.ndarray, reuse_existing: bool = False) -> TargetStore:
        """The stage's store; ``reuse_existing`` takes the one built earlier for this stage as it is (used when
        resuming mid-stage, whose stage-1 weights the current weights no longer equal)."""
        cfg = self.cfg
        if reuse_existing:
            for old in sorted((self.run_dir / "targets").glob(f"{stage.name}-*")):
                found = TargetStore.open(old)
                if found is not None:
                    return found
        text_index = np.unique(indices)
        if stage.targets == "data":
            transform = self.data.transform
            width = cfg.targets.data_driven.top_k
            fp = fingerprint("data", self.base_fp, text_index.tolist())
        else:
            md = cfg.targets.model_derived
            derived = ModelDerivedTargets(self.encoder, md, self.vocab, self.data, cfg.targets.batch_size)
            transform = derived.transform
            width = md.top_k + (cfg.targets.data_driven.top_k if md.mix_data > 0 else 0)
            extra = {"model_derived": md.model_dump(), "max_length": cfg.model.max_length}
            if md.source == "stage1":
                extra["weights"] = weights_fingerprint(self.encoder.model)
                extra["encoder"] = cfg.model.model_dump()
            fp = fingerprint("model", self.base_fp, extra, text_index.tolist())
        directory = self.run_dir / "targets" / f"{stage.name}-{fp[:12]}"
        texts = self.texts
        # model-derived targets cost a forward pass per text: smaller shards show progress and resume finer
        shard_size = cfg.targets.shard_size if stage.targets == "data" else min(cfg.targets.shard_size, 512)
        store = TargetStore.build(
            directory, fp, text_index, lambda i, j: [texts[k] for k in text_index[i:j]], transform, width,
            shard_size=shard_size, info={"stage": stage.name, "kind": stage.targets},
            desc=f"targets {stage.name}", show_progress=self.show_progress and self.dist.is_main,
            rank=self.dist.rank, world=self.dist.world, barrier=self.dist.barrier)
        empty = store.count_empty()
        if empty and self.dist.is_main:
            log.warning("stage %s: %d of %d texts have no target tokens left after filtering; they are skipped",
                        stage.name, empty, len(store))
        return store


# ------------------------------------------------------------------------------------------- probe
class CoOptimisationProbe:
    """Measures the vocabulary space and the representation space together on held-out (dev) articles.

    - vocabulary space: KL(data-driven target || LM head of the embedding) of the held-out passages, and the
      overlap of the embedding's top-k decoded tokens with the target's top-k tokens (k = ``top_k``);
    - representation space: description -> passage retrieval nDCG@10 among the same passages.
    """

    def __init__(self, targets: "Targets", heldout, batch_size: int, top_k: int = 10):
        self.heldout, self.batch_size, self.top_k = heldout, batch_size, top_k
        ids, weights = targets.data.transform(heldout.documents)
        keep = weights.sum(1) > 0
        self.ids, self.weights, self.keep = torch.from_numpy(ids), torch.from_numpy(weights), keep

    @torch.no_grad()
    def __call__(self, encoder: Encoder) -> dict:
        was_training = encoder.model.training
        q = encoder.encode(self.heldout.queries, batch_size=self.batch_size, show_progress_bar=False)
        d = encoder.encode(self.heldout.documents, batch_size=self.batch_size, show_progress_bar=False)
        if was_training:
            encoder.model.train()
        logits = encoder.token_logits(torch.from_numpy(d).to(encoder.device)).cpu()
        kl = float(token_kl(logits, self.ids, self.weights))
        k = self.top_k
        predicted = logits.topk(k, dim=-1).indices
        target = self.weights.topk(min(k, self.weights.shape[1]), dim=-1)
        overlaps = []
        for row in np.nonzero(self.keep)[0]:
            wanted = set(self.ids[row][target.indices[row]][target.values[row] > 0].tolist())
            overlaps.append(len(wanted & set(predicted[row].tolist())) / max(1, len(wanted)))
        ndcg = retrieval_scores(q, d)["ndcg@10"]
        return {"vocab_kl": kl, f"vocab_top{k}_overlap": float(np.mean(overlaps)), "retrieval_ndcg@10": ndcg}


# ------------------------------------------------------------------------------------------- train
def train(cfg: Config, output_dir: str | Path | None = None, resume: bool = False,
          stop_after_steps: int | None = None, show_progress: bool = True,
          on_step: Callable[[dict], None] | None = None) -> Path:
    """Runs every stage of ``cfg``; returns the run directory (the encoder is in ``<run>/final``).

    Under ``torchrun`` / ``accelerate launch`` every process runs this; see :mod:`text2token.distributed`.
    """
    dist = Dist.from_env()
    try:
        return _train(cfg, dist, output_dir, resume, stop_after_steps, show_progress and dist.is_main, on_step)
    finally:
        dist.close()


def _train(cfg: Config, dist: Dist, output_dir, resume: bool, stop_after_steps: int | None, show_progress: bool,
           on_step: Callable[[dict], None] | None) -> Path:
    run_dir = Path(output_dir or cfg.output_dir)
    dist.check(cfg)
    # ---- validate everything before anything is written
    if resume and not (run_dir / "config.yaml").is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise Text2TokenError(f"cannot resume: {run_dir} has no config.yaml")
        resume = False  # killed before anything was written: start the run afresh
    if resume:
        if not _same_config(load_config(run_dir / "config.yaml"), cfg):
            raise Text2TokenError(f"--resume: the config differs from {run_dir / 'config.yaml'}; "
                                  "resume with the same config or start a new --output")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise Text2TokenError(f"output dir {run_dir} is not empty; pass --resume to continue it or choose another")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    texts = check_texts(load_corpus(cfg.data), what="corpus text")
    heldout = heldout_set(cfg.data, cfg.eval.articles, seed=cfg.data.seed) if cfg.eval.enabled else None
    m = cfg.model
    settings = EncoderSettings(pooling=m.pooling, attention=m.attention, prompt=m.prompt, max_length=m.max_length)
    encoder = Encoder.from_backbone(m.backbone, settings, dtype=m.dtype, trust_remote_code=m.trust_remote_code,
                                    device=dist.device)
    state = load_checkpoint(run_dir) if resume else None
    if resume and state is None and (run_dir / "final").is_dir():
        raise Text2TokenError(f"{run_dir} is already complete (see {run_dir / 'final'}); nothing to resume")
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
    metrics = MetricsLog(run_dir / "metrics.jsonl") if dist.is_main else None
    log.info("corpus: %d texts; backbone %s; run dir %s", len(texts), m.backbone, run_dir)

    # ---- targets that need the untouched backbone are built before any training
    t = cfg.train
    per_step = t.batch_size * t.grad_accum
    plans = [stage_plan(len(texts), s.steps * per_step, t.seed, i) for i, s in enumerate(cfg.stages)]
    targets = Targets(cfg, encoder, texts, run_dir, show_progress, dist)
    stores: dict[int, TargetStore] = {}
    for i, stage in enumerate(cfg.stages):
        if stage.objective == "kl" and not targets.needs_trained_model(stage):
            stores[i] = targets.store(stage, plans[i])

    # ---- the "before" score, on the raw backbone with the same pooling and prompt
    before_file = run_dir / "eval_before.json"
    if heldout is not None and not before_file.is_file() and dist.is_main:
        before = heldout_score(encoder, heldout, cfg.eval.batch_size, show_progress_bar=show_progress)
        before_file.write_text(json.dumps(before, indent=2))
        metrics.write(event="eval", when="before", **before)
    dist.barrier()

    coopt = None
    if cfg.eval.every and dist.is_main:  # the main process probes and logs; the others wait at the next step
        probe_set = heldout_set(cfg.data, cfg.eval.probe_articles, seed=cfg.data.seed + 1)
        coopt = CoOptimisationProbe(targets, probe_set, cfg.eval.batch_size)
        if state is None:
            metrics.write(event="probe", global_step=0, **coopt(encoder))

    peft_model = setup_trainable(encoder, cfg)
    if t.gradient_checkpointing:
        enable_gradient_checkpointing(encoder.model)
    global_step = sum(s.steps for s in cfg.stages[: state["stage"]]) + state["step"] if state else 0
    if state is not None:
        params = dict(encoder.model.named_parameters())
        for name, value in state["trainable"].items():
            params[name].data.copy_(value)
        if dist.world == 1:
            torch.set_rng_state(state["torch_rng"])
    if dist.world > 1:
        dist.restore_rng(state, t.seed, global_step)
    forward = dist.wrap(encoder.model)  # one process: calls the closure; several: inside DDP/FSDP
    n_trainable = sum(p.numel() for p in encoder.model.parameters() if p.requires_grad)
    log.info("training %s: %.1fM trainable parameters", t.method, n_trainable / 1e6)

    for i, stage in enumerate(cfg.stages):
        if state is not None and (i < state["stage"] or (i == state["stage"] and state["step"] >= stage.steps)):
            continue
        if i not in stores and stage.objective == "kl":
            encoder.model.eval()
            mid_stage = state is not None and state["stage"] == i and state["step"] > 0
            stores[i] = targets.store(stage, plans[i], reuse_existing=mid_stage)
        params = [p for p in encoder.model.parameters() if p.requires_grad]
        lr = stage.lr or t.lr
        warmup = t.warmup_steps if stage.warmup_steps is None else stage.warmup_steps
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=t.weight_decay)

        def schedule(step: int, warmup=warmup, total=stage.steps) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        start = 0
        if state is not None and state["stage"] == i:
            dist.load_optimizer_state(optimizer, state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start = state["step"]
        state = None
        encoder.model.train()
        set_attention_dropout(encoder.model, t.simcse_dropout if stage.objective == "simcse" else 0.0)
        bar = tqdm(range(start, stage.steps), desc=f"stage {stage.name}", disable=not show_progress,
                   initial=start, total=stage.steps, unit="step")
        tic = time.perf_counter()
        for step in bar:
            loss_sum = 0.0
            for micro in range(t.grad_accum):
                lo = (step * t.grad_accum + micro) * t.batch_size
                idx = plans[i][lo: lo + t.batch_size]
                batch, _ = encoder.tokenize([texts[k] for k in idx])
                mine = dist.rows(len(idx))  # this process's rows of the micro-batch (all in one process)
                local = {k: v[mine].to(encoder.device) for k, v in batch.items()}
                if stage.objective == "kl":
                    ids, weights = stores[i].get(idx)
                    logits = forward(lambda: encoder.token_logits(encoder.forward(**local)))
                    loss = dist.kl(logits, ids, weights, mine)
                elif stage.objective == "simcse":  # the same texts twice: dropout makes the two views differ
                    pooled = forward(lambda: encoder.forward(**{k: torch.cat([v, v]) for k, v in local.items()}))
                    n = len(pooled) // 2
                    loss = dist.simcse(pooled[:n], pooled[n:], t.simcse_temperature)
                else:  # mntp
                    rng = torch.Generator().manual_seed(t.seed * 1_000_003 + i * 10_007 + step * 101 + micro)
                    masked_ids, masked = mask_tokens(batch, encoder.tokenizer, t.mntp_mask_prob, rng)
                    ids_l, masked_l = batch["input_ids"][mine].to(encoder.device), masked[mine].to(encoder.device)
                    loss = forward(lambda: dist.mntp(
                        encoder.states(masked_ids[mine].to(encoder.device), local["attention_mask"]),
                        encoder.lm_head, ids_l, masked_l, int(masked.sum())))
                loss = loss / t.grad_accum
                with dist.no_sync(micro < t.grad_accum - 1):
                    dist.backward(loss)
                loss_sum += loss.item()
            loss_sum = dist.mean(loss_sum)
            grad_norm = dist.clip_grad_norm_(params, t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            record = {"stage": stage.name, "step": step + 1, "global_step": global_step, "loss": loss_sum,
                      "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm}
            bar.set_postfix(loss=f"{loss_sum:.3f}")
            if on_step:
                on_step(record)
            if metrics and ((step + 1) % t.log_every == 0 or step + 1 == stage.steps or step == start):
                record["seconds"] = round(time.perf_counter() - tic, 3)
                metrics.write(event="train", **record)
            if coopt is not None and global_step % cfg.eval.every == 0:
                metrics.write(event="probe", stage=stage.name, global_step=global_step, **coopt(encoder))
            done = step + 1 == stage.steps
            if (step + 1) % t.checkpoint_every == 0 or done or (stop_after_steps and global_step >= stop_after_steps):
                save_checkpoint(run_dir, encoder.model, optimizer, scheduler, i, step + 1, dist, global_step)
            if stop_after_steps and global_step >= stop_after_steps:
                bar.close()
                return run_dir
        bar.close()

    # ---- the saved encoder and the "after" score: the main process alone
    if dist.fsdp:  # the trained weights are sharded: gather them and load them into a whole copy on the main rank
        trained = dist.trainable_state(encoder.model)
        forward = dist.wrapped = encoder = peft_model = None
        if dist.is_main:
            encoder = Encoder.from_backbone(m.backbone, settings, dtype=m.dtype,
                                            trust_remote_code=m.trust_remote_code, device=dist.device)
            peft_model = setup_trainable(encoder, cfg)
            params = dict(encoder.model.named_parameters())
            for name, value in trained.items():
                params[name].data.copy_(value)
    dist.barrier()
    if not dist.is_main:
        return run_dir
    encoder.model.eval()
    set_attention_dropout(encoder.model, 0.0)
    if peft_model is not None:
        encoder.model = peft_model.merge_and_unload()
    for p in encoder.model.parameters():
        p.requires_grad_(False)
    final = encoder.save(run_dir / "final", extra={"backbone": m.backbone, "stages": [s.name for s in cfg.stages]})
    if heldout is not None:
        before = json.loads(before_file.read_text())
        after = heldout_score(encoder, heldout, cfg.eval.batch_size, show_progress_bar=show_progress)
        metrics.write(event="eval", when="after", **after)
        (run_dir / "eval.json").write_text(json.dumps({"before": before, "after": after,
                                                       "heldout_articles": len(heldout.queries)}, indent=2))
    shutil.rmtree(run_dir / CHECKPOINT, ignore_errors=True)  # the run is complete; final/ holds the result
    from .plots import plot_coopt, plot_run

    plot_run(run_dir)
    plot_coopt(run_dir)
    log.info("saved encoder to %s", final)
    return run_dir


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, stage: int, step: int, dist: Dist | None = None,
                    global_step: int | None = None) -> None:
    """Writes the checkpoint once (main process; every process must call this: FSDP gathers, RNG states are
    collected from every rank)."""
    dist = dist or Dist()
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
