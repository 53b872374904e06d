"""Each stage's target store, built once and reused: keyed by a fingerprint of everything it depends on.

The fingerprint covers the training texts, the backbone's files and config, the target settings and the texts
the stage visits; a ``stage1`` model-derived store also covers the current trainable weights and encoder settings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..files import tensor_digest
from ..model.backbone import resolve
from ..model.precision import autocast, resolve_autocast
from .data_driven import DataDrivenTargets
from .model_derived import ModelDerivedTargets
from .store import TargetStore, fingerprint, texts_fingerprint
from .vocab import TargetVocab

log = logging.getLogger(__name__)

MODEL_SHARD_SIZE = 512  # model-derived targets cost a forward pass per text: smaller shards resume finer


def backbone_fingerprint(spec: str) -> dict:
    path = resolve(spec)
    files = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.suffix in (".safetensors", ".json"))
    return {"config": json.loads((path / "config.json").read_text()), "files": files}


def trainable_digest(model) -> str:
    return tensor_digest((n, p.float()) for n, p in model.named_parameters() if p.requires_grad)


class StageTargets:
    """Builds (or reuses) the target store of every ``kl`` stage of a run, under ``<run>/targets/``."""

    def __init__(self, cfg, encoder, texts, run_dir: Path, show_progress: bool, dist):
        self.cfg, self.encoder, self.texts, self.run_dir, self.dist = cfg, encoder, texts, run_dir, dist
        self.show_progress = show_progress
        t = cfg.targets
        self.data = DataDrivenTargets(encoder.tokenizer, encoder.vocab_size, t.data_driven)
        self.vocab = self.data.vocab  # one vocabulary filter, built from the data-driven settings, for both kinds
        self.target_vocab = TargetVocab.from_config(t.data_driven, t.model_derived)
        self.data.fit(texts[i:i + t.shard_size] for i in range(0, len(texts), t.shard_size))
        self.base_fp = {"texts": texts_fingerprint(texts), "backbone": backbone_fingerprint(cfg.model.backbone),
                        "data_driven": t.data_driven.model_dump()}
        self.capture = None  # the frozen-layer cache's capturing(model), set by the training loop

    def needs_trained_model(self, stage) -> bool:
        return stage.targets == "model" and self.cfg.targets.model_derived.source == "stage1"

    def _existing(self, stage) -> TargetStore | None:
        for old in sorted((self.run_dir / "targets").glob(f"{stage.name}-*")):
            found = TargetStore.open(old)
            if found is not None:
                return found
        return None

    def _recipe(self, stage, text_index: np.ndarray):
        """(transform, width, fingerprint, shard size) of the stage's targets."""
        t = self.cfg.targets
        if stage.targets == "data":
            fp = fingerprint("data", self.base_fp, text_index.tolist())
            return self.data.transform, t.data_driven.top_k, fp, t.shard_size
        md, kind = t.model_derived, resolve_autocast(self.cfg.train.autocast, self.encoder.device)
        derived = ModelDerivedTargets(self.encoder, md, self.vocab, self.data, t.batch_size)
        width = md.top_k + (t.data_driven.top_k if md.mix_data > 0 else 0)
        extra = {"model_derived": md.model_dump(), "max_length": self.cfg.model.max_length}
        if kind != "none":  # the pass runs under training's autocast
            extra["autocast"] = kind
        if md.source == "stage1":
            extra["weights"] = trainable_digest(self.encoder.model)
            extra["encoder"] = self.cfg.model.model_dump()
        fp = fingerprint("model", self.base_fp, extra, text_index.tolist())
        return self._model_pass(derived), width, fp, min(t.shard_size, MODEL_SHARD_SIZE)

    def _model_pass(self, derived: ModelDerivedTargets):
        """``derived.transform`` under training's autocast, feeding the frozen-layer cache where the pass reads
        the same prompt under the same attention as training (then its states are the ones training needs)."""
        same = (derived.encoder.settings.prompt == self.encoder.settings.prompt
                and derived.encoder.settings.attention == self.encoder.settings.attention)
        if same and self.capture is not None:
            derived.capture = self.capture  # around the first prompt's pass only (the one training reads)

        def transform(texts):
            with autocast(self.cfg.train.autocast, self.encoder.device):
                return derived.transform(texts)
        return transform

    def store(self, stage, indices: np.ndarray, reuse_existing: bool = False) -> TargetStore:
        """The stage's store; ``reuse_existing`` takes the one built earlier for this stage as it is (used when
        resuming mid-stage, whose stage-1 weights the current weights no longer equal)."""
        found = self._existing(stage) if reuse_existing else None
        if found is not None:
            return found
        text_index = np.unique(indices)
        transform, width, fp, shard_size = self._recipe(stage, text_index)
        texts, dist = self.texts, self.dist
        store = TargetStore.build(
            self.run_dir / "targets" / f"{stage.name}-{fp[:12]}", fp, text_index,
            lambda i, j: [texts[k] for k in text_index[i:j]], transform, width, shard_size=shard_size,
            info={"stage": stage.name, "kind": stage.targets}, desc=f"targets {stage.name}",
            show_progress=self.show_progress and dist.is_main, rank=dist.rank, world=dist.world,
            barrier=dist.barrier)
        empty = store.count_empty()
        if empty and dist.is_main:
            log.warning("stage %s: %d of %d texts have no target tokens left after filtering; they are skipped",
                        stage.name, empty, len(store))
        return store
