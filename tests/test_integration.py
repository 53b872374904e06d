"""Integration tests on the real SmolLM2-135M-Instruct backbone and real Wikipedia text."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from text2token.config import CONFIG_DIR, load_config
from text2token.data import load_corpus
from text2token.eval.heldout import heldout_score, heldout_set
from text2token.model.encoder import Encoder
from text2token.training.objectives import token_kl
from text2token.targets.data_driven import DataDrivenTargets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol():
    cfg = load_config(CONFIG_DIR / "default.yaml")
    m = cfg.model
    enc = Encoder.from_backbone(m.backbone, m.encoder_settings(), device="cpu")
    return enc, cfg


def test_real_backbone_shape(smol):
    enc, _ = smol
    assert enc.vocab_size == 49152 and enc.hidden_size == 576 and len(enc.base.layers) == 30


def test_encode_real_text_shape_and_finite(smol):
    enc, cfg = smol
    texts = heldout_set(cfg.data, 8).documents
    emb = enc.encode(texts, batch_size=4)
    assert emb.shape == (8, 576) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.linalg.matrix_rank(emb) == 8, "different texts get different vectors"


def test_explain_returns_real_words(smol):
    enc, _ = smol
    tokens = [t.strip().lower() for t, _ in enc.explain("The cat sat on the warm windowsill, purring.", top_k=10)]
    assert sum(bool(re.fullmatch(r"[a-z]{3,}", t)) for t in tokens) >= 5, tokens
    assert "cat" in tokens or "cats" in tokens, tokens


def test_a_few_training_steps_lower_the_loss(smol):
    enc, cfg = smol
    texts = load_corpus(cfg.data.model_copy(update={"max_texts": 400}))
    dd = DataDrivenTargets(enc.tokenizer, enc.vocab_size, cfg.targets.data_driven).fit(iter([texts]))
    batch_texts = texts[:8]
    ids, w = dd.transform(batch_texts)
    ids, w = torch.from_numpy(ids), torch.from_numpy(w)
    layers = enc.base.layers
    for p in enc.model.parameters():
        p.requires_grad_(False)
    params = [p for layer in list(layers)[-2:] for p in layer.parameters()]
    saved = [p.detach().clone() for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batch, _ = enc.tokenize(batch_texts)
    losses = []
    try:
        for _ in range(4):
            loss = token_kl(enc.token_logits(enc.forward(**batch)), ids, w)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
                p.requires_grad_(False)
    assert losses[-1] < losses[0] * 0.9, losses


def test_smoke_config_cli_end_to_end(tmp_path):
    """The README's smoke path: train both stages on 300 real texts, then encode and explain from the CLI."""
    run = tmp_path / "smoke"
    done = subprocess.run([sys.executable, "-m", "text2token.cli", "train", "--config", str(CONFIG_DIR / "smoke.yaml"),
                           "--output", str(run)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads((run / "eval.json").read_text())
    assert scores["heldout_articles"] == 100 and scores["after"] != scores["before"]
    cfg = load_config(CONFIG_DIR / "smoke.yaml")
    rescored = heldout_score(Encoder.load(run / "final", device="cpu"), heldout_set(cfg.data, cfg.eval.articles))
    assert rescored == pytest.approx(scores["after"], abs=1e-6), "eval.json scores the saved encoder"
    stages = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in stages if r.get("event") == "train"} == {"data-driven", "model-derived"}
    texts = tmp_path / "texts.txt"
    texts.write_text("A volcano is a rupture in the crust of a planet.\nThe violin is a string instrument.\n")
    done = subprocess.run([sys.executable, "-m", "text2token.cli", "encode", "--model", str(run / "final"),
                           "--input", str(texts), "--output", str(tmp_path / "e.npy"), "--precision", "fp32"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.load(tmp_path / "e.npy").shape == (2, 576)
    done = subprocess.run([sys.executable, "-m", "text2token.cli", "export", "--model", str(run / "final"),
                           "--output", str(tmp_path / "st")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from sentence_transformers import SentenceTransformer

    st_vectors = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(texts.read_text().splitlines())
    assert np.abs(st_vectors - np.load(tmp_path / "e.npy")).max() <= 1e-5, "the sentence-transformers export agrees"
    done = subprocess.run([sys.executable, "-m", "text2token.cli", "explain", "--model", str(run / "final"),
                           "--text", "The violin is a string instrument.", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tokens = [d["token"].strip().lower() for d in json.loads(done.stdout)]
    assert any(t in ("violin", "viol", "string", "instrument", "music") for t in tokens), tokens
