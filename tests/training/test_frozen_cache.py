"""The frozen-layer cache: the same training within float tolerance, fewer bottom-layer passes, safe on disk."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from text2token.model import partial
from text2token.training.frozen_cache import FrozenCache
from text2token.training.loop import train

from helpers import tiny_train_config


def _cfg(tiny_dir, corpus, **train_kw):
    cfg = tiny_train_config(tiny_dir, corpus, **train_kw)
    cfg.targets.model_derived.prompt = cfg.model.prompt  # the model-derived pass reads what training reads
    return cfg


def _weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


def _count_passes(monkeypatch):
    """Counts forward passes that start part-way (from the cache)."""
    calls = []
    original = partial.start_at

    def counting(model, n):
        calls.append(n)
        return original(model, n)
    monkeypatch.setattr("text2token.training.frozen_cache.start_at", counting)
    return calls


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_cached_training_equals_uncached(tiny_dir, corpus, tmp_path, monkeypatch, attention):
    plain_cfg = _cfg(tiny_dir, corpus)
    plain_cfg.model.attention = attention
    plain = train(plain_cfg, tmp_path / "plain", show_progress=False)
    from_cache = _count_passes(monkeypatch)
    cfg = _cfg(tiny_dir, corpus, frozen_cache="float32")
    cfg.model.attention = attention
    cached = train(cfg, tmp_path / "cached", show_progress=False)
    # 8 steps of 4 over 8 distinct texts: stage 1 repeats texts after step 2; in stage 2 every causal text comes from
    # the model-derived pass (a bidirectional run fills the cache during its own steps)
    assert len(from_cache) >= (7 if attention == "causal" else 5), from_cache
    assert set(from_cache) == {1}, "3 layers, the top 2 train: the cache holds layer 1's input"
    a, b = _weights(plain), _weights(cached)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert not (cached / "cache").exists(), "removed when the run completes"


def test_only_the_training_prompts_pass_fills_the_cache(tiny_dir, corpus, tmp_path, caplog):
    """With several target prompts only the first (the one training pools) captures rows: the others' token ids
    never come back in training."""
    counts = []
    for i, extra in enumerate([[], ["In short, {text} is about"]]):
        cfg = _cfg(tiny_dir, corpus, frozen_cache="float32")
        cfg.targets.model_derived.prompt = [cfg.model.prompt, *extra]
        caplog.clear()
        with caplog.at_level("INFO", logger="text2token.training.loop"):
            train(cfg, tmp_path / f"run{i}", show_progress=False)
        line = next(r.getMessage() for r in caplog.records if "cache after the targets" in r.getMessage())
        counts.append(int(line.split(": ")[1].split()[0]))
    assert counts[0] > 0 and counts[1] == counts[0], counts


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_cache_gives_the_same_losses(tiny_dir, corpus, tmp_path, dtype):
    """Weights of a tiny random model under Adam at lr 1e-2 amplify any rounding; the losses show the steps agree."""
    runs = {}
    for kind in ("none", dtype):
        runs[kind] = []
        train(_cfg(tiny_dir, corpus, frozen_cache=kind), tmp_path / kind, show_progress=False,
              on_step=lambda r, out=runs[kind]: out.append(r["loss"]))
    np.testing.assert_allclose(runs[dtype], runs["none"], rtol=2e-4)


def test_resume_with_the_cache_equals_uninterrupted(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus, frozen_cache="float32")
    full = train(cfg, tmp_path / "full", show_progress=False)
    run = tmp_path / "cut"
    train(cfg, run, stop_after_steps=6, show_progress=False)
    blocks = [json.loads(x) for x in next((run / "cache").iterdir()).joinpath("blocks.jsonl").read_text().splitlines()]
    assert sum(len(b["keys"]) for b in blocks) == 8, "the 8 distinct texts are cached and survive the stop"
    train(cfg, run, resume=True, show_progress=False)
    a, b = _weights(full), _weights(run)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_cache_off_for_lora_and_full(tiny_dir, corpus, tmp_path, monkeypatch):
    from_cache = _count_passes(monkeypatch)
    train(_cfg(tiny_dir, corpus, frozen_cache="float16", method="lora", lora_r=4), tmp_path / "lora",
          show_progress=False)
    assert from_cache == [] and not (tmp_path / "lora" / "cache").exists()


# ------------------------------------------------------------------------------------------- the store
def _batch(seed=0, rows=3, width=7, hidden=5):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 50, (rows, width), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask, torch.randn(rows, width, hidden, generator=g)


@pytest.mark.parametrize("dtype,atol", [("float32", 0.0), ("float16", 1e-3), ("bfloat16", 2e-2)])
def test_rows_round_trip_and_survive_reopening(tmp_path, dtype, atol):
    ids, mask, states = _batch()
    cache = FrozenCache(tmp_path / "c", layer=1, dtype=dtype, max_bytes=1 << 30)
    cache.add(ids, mask, states)
    keys = cache.keys(ids, mask)
    for c in (cache, None):
        if c is None:
            cache.flush()
            c = FrozenCache(tmp_path / "c", layer=1, dtype=dtype, max_bytes=1 << 30)
        got = c.get(keys, 7, torch.float32, "cpu")
        real = mask.bool()
        torch.testing.assert_close(got[real], states[real], atol=atol + 1e-8, rtol=atol)
        assert torch.count_nonzero(got[~real]) == 0, "padding comes back as zeros"
        assert len(c) == 3


def test_a_damaged_block_or_torn_line_is_dropped(tmp_path, caplog):
    cache = FrozenCache(tmp_path / "c", layer=1, dtype="float32", max_bytes=1 << 30)
    for seed in (0, 1):
        ids, mask, states = _batch(seed)
        cache.add(ids, mask, states)
        cache.flush()
    first = cache.dir / "block-00000.npy"
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF
    first.write_bytes(bytes(data))
    with open(cache.dir / "blocks.jsonl", "a") as f:
        f.write('{"file": "block-00002.npy", "sha2')  # killed while appending
    reopened = FrozenCache(tmp_path / "c", layer=1, dtype="float32", max_bytes=1 << 30)
    assert len(reopened) == 3 and "dropped 2 damaged" in caplog.text
    assert not first.exists(), "the damaged block's file is removed"
    ids, mask, _ = _batch(0)
    assert not any(k in reopened for k in reopened.keys(ids, mask))


def test_the_cache_stops_growing_at_its_bound_and_skips_overflow(tmp_path, caplog):
    ids, mask, states = _batch()
    small = FrozenCache(tmp_path / "small", layer=1, dtype="float32", max_bytes=100)
    small.add(ids, mask, states)
    small.flush()
    assert len(small) == 0 and small.bytes == 0
    half = FrozenCache(tmp_path / "half", layer=1, dtype="float16", max_bytes=1 << 30)
    states[0, 0, 0] = 1e6  # beyond float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning: the row is checked and skipped
        half.add(ids, mask, states)
    assert len(half) == 2 and half.skipped == 1 and half.overflowed == 1
    assert "train.frozen_cache: bfloat16" in caplog.text
    wide = FrozenCache(tmp_path / "wide", layer=1, dtype="bfloat16", max_bytes=1 << 30)
    wide.add(ids, mask, states)
    assert len(wide) == 3 and wide.skipped == 0  # bfloat16 has float32's range
    assert np.isfinite(half.get(half.keys(ids[1:], mask[1:]), 7, torch.float32, "cpu").numpy()).all()
