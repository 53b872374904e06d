import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from text2token.model.encoder import Encoder
from text2token.errors import Text2TokenError
from text2token.training.loop import train

from helpers import tiny_train_config as _cfg


def _weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


@pytest.mark.parametrize("source", ["prompt", "stage1"])
def test_resume_equals_uninterrupted(tiny_dir, corpus, tmp_path, source):
    cfg = _cfg(tiny_dir, corpus)
    cfg.targets.model_derived.source = source
    full = train(cfg, tmp_path / "full", show_progress=False)
    for stop in (3, 6):  # inside stage 1, then inside stage 2
        run = tmp_path / f"cut{stop}"
        train(cfg, run, stop_after_steps=stop, show_progress=False)
        assert not (run / "final").exists() and (run / "checkpoint" / "state.pt").is_file()
        train(cfg, run, resume=True, show_progress=False)
        a, b = _weights(full), _weights(run)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"resume after step {stop} differs from a full run"
    with pytest.raises(Text2TokenError, match="already complete"):
        train(cfg, tmp_path / "full", resume=True, show_progress=False)


def test_training_lowers_loss_and_logs(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus)
    cfg.stages[0].steps = 12
    losses = []
    run = train(cfg, tmp_path / "run", show_progress=False, on_step=lambda r: losses.append(r["loss"]))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records if r["event"] == "train"} == {"s1", "s2"}
    setup = [r for r in records if r["event"] == "setup"]  # what train.autocast resolved to (the config's none)
    assert len(setup) == 1 and setup[0]["autocast"] == "none" and isinstance(setup[0]["native_bf16"], bool)
    assert (run / "config.yaml").is_file() and not (run / "checkpoint").exists()
    assert len(list((run / "targets").iterdir())) == 2
    enc = Encoder.load(run / "final")
    assert enc.settings.pooling == "mean" and enc.encode(["a cat"]).shape == (1, enc.hidden_size)


def test_lora_trains_and_merges(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus, method="lora", lora_r=4)
    run = train(cfg, tmp_path / "lora", show_progress=False)
    weights = _weights(run)
    assert not any("lora" in k for k in weights), "adapters are merged into plain weights"
    base = load_file(str(tiny_dir / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(weights[key], base[key]), "LoRA changed the merged weights"


def test_refuses_existing_run_and_resume_with_other_config(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus)
    run = tmp_path / "run"
    train(cfg, run, stop_after_steps=2, show_progress=False)
    with pytest.raises(Text2TokenError, match="not empty"):
        train(cfg, run, show_progress=False)
    other = _cfg(tiny_dir, corpus, lr=1e-3)
    with pytest.raises(Text2TokenError, match="config differs"):
        train(other, run, resume=True, show_progress=False)


def test_eval_before_after_recorded(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus)
    cfg.eval.enabled = True
    cfg.eval.articles = 20
    run = train(cfg, tmp_path / "run", show_progress=False)
    scores = json.loads((run / "eval.json").read_text())
    assert set(scores["before"]) == set(scores["after"]) >= {"retrieval_ndcg@10", "topic_knn_acc", "mean"}
    assert all(0.0 <= v <= 1.0 for v in scores["after"].values())
    card = (run / "final" / "README.md").read_text()  # rewritten once the scores are known
    assert f"| mean | {scores['before']['mean']:.4f} | {scores['after']['mean']:.4f} |" in card
    assert "| s2 | kl | model | 4 |" in card and f"corpus: {corpus.name}" in card


def test_gradient_checkpointing_trains_the_same(tiny_dir, corpus, tmp_path, monkeypatch):
    """train.gradient_checkpointing recomputes activations in the backward pass: same weights, less memory."""
    import transformers.modeling_utils as mu

    plain = train(_cfg(tiny_dir, corpus, method="lora", lora_r=4), tmp_path / "plain", show_progress=False)
    calls = []
    original = mu.checkpoint
    monkeypatch.setattr(mu, "checkpoint", lambda *a, **k: calls.append(1) or original(*a, **k))
    cfg = _cfg(tiny_dir, corpus, method="lora", lora_r=4, gradient_checkpointing=True)
    ckpt = train(cfg, tmp_path / "ckpt", show_progress=False)
    assert len(calls) >= 8 * 3, "every layer of every training step runs under torch.utils.checkpoint"
    a, b = _weights(plain), _weights(ckpt)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(b[key], load_file(str(tiny_dir / "model.safetensors"))[key]), "it trained"


def test_the_saved_encoder_records_the_target_vocabulary(tiny_dir, corpus, tmp_path):
    """Search must filter as training did: the run writes its target-vocabulary settings into text2token.json."""
    cfg = _cfg(tiny_dir, corpus)
    cfg.targets.data_driven.keep_stopwords = ["not", "the"]
    cfg.targets.data_driven.min_chars = 3
    cfg.stages = cfg.stages[:1]
    run = train(cfg, tmp_path / "run", show_progress=False)
    meta = json.loads((run / "final" / "text2token.json").read_text())
    assert meta["target_vocab"] == {"filter": True, "min_chars": 3, "keep_stopwords": ["not", "the"]}
    assert Encoder.load(run / "final").target_vocab == meta["target_vocab"]


def test_bf16_autocast_trains_close_to_fp32(tiny_dir, corpus, tmp_path):
    """train.autocast=bf16 runs the forward in bfloat16 (master weights stay float32): not the same weights as
    fp32, but a close run."""
    fp32 = train(_cfg(tiny_dir, corpus), tmp_path / "fp32", show_progress=False)
    bf16 = train(_cfg(tiny_dir, corpus, autocast="bf16"), tmp_path / "bf16", show_progress=False)
    a, b = _weights(fp32), _weights(bf16)
    assert all(v.dtype == torch.float32 for v in b.values()), "master weights stay float32"
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed, "the forward really ran in bfloat16"
    assert all(torch.allclose(a[k], b[k], atol=5e-2) for k in a)
