import json
import logging

import numpy as np
import pytest
import torch

from text2token.model.encoder import Encoder

from text2token.model.settings import EncoderSettings
from text2token.errors import Text2TokenError

TEXTS = ["the cat sat on the mat", "a dog", "photosynthesis converts light into chemical energy today", "Paris"]


def test_encode_shape_dtype_order_invariance(tiny_encoder):
    enc = tiny_encoder
    emb = enc.encode(TEXTS, batch_size=2)
    assert emb.shape == (4, enc.hidden_size) and emb.dtype == np.float32 and np.isfinite(emb).all()
    single = np.stack([enc.encode([t])[0] for t in TEXTS])
    assert np.allclose(emb, single, atol=1e-5), "padding and length-sorted batching do not change vectors"
    norm = enc.encode(TEXTS, normalize=True)
    assert np.allclose(np.linalg.norm(norm, axis=1), 1.0, atol=1e-5)


def test_encode_matches_manual_forward(tiny_encoder):
    enc = tiny_encoder
    ids = enc.tokenizer(["the cat sat"], return_tensors="pt")
    with torch.no_grad():
        h = enc.model.model(**ids).last_hidden_state[0]
    assert np.allclose(enc.encode(["the cat sat"])[0], h.mean(0).numpy(), atol=1e-5)


def test_prompt_is_kept_and_text_truncated(tiny, caplog):
    model, tok = tiny
    enc = Encoder(model, tok, EncoderSettings(pooling="eos", prompt='Say: "{text}" ok "', max_length=16))
    long = " ".join(["photosynthesis"] * 40)
    batch, cut = enc.tokenize([long, "cat"])
    assert cut == 1 and batch["input_ids"].shape[1] <= 16
    row = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    assert tok.decode(row).endswith('" ok "'), "the prompt's end survives truncation"
    with caplog.at_level(logging.WARNING):
        enc.encode([long, long, "cat"], batch_size=1)
        enc.encode([long])
    assert sum("truncated" in r.message for r in caplog.records) == 1, "said once"
    assert "2 of 3 texts" in caplog.text


def test_save_load_round_trip_and_automodel(tiny, tmp_path):
    from transformers import AutoModel

    model, tok = tiny
    enc = Encoder(model, tok, EncoderSettings(pooling="weighted_mean", attention="bidirectional", max_length=24))
    before = enc.encode(TEXTS)
    enc.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "text2token.json").read_text())
    assert meta["settings"]["pooling"] == "weighted_mean" and meta["settings"]["attention"] == "bidirectional"
    again = Encoder.load(tmp_path / "m")
    assert again.settings == enc.settings
    assert np.allclose(again.encode(TEXTS), before, atol=1e-6)
    base = AutoModel.from_pretrained(tmp_path / "m")
    assert base.config.hidden_size == enc.hidden_size


def test_explain_returns_tokens_and_probabilities(tiny_encoder):
    pairs = tiny_encoder.explain("the cat sat", top_k=5)
    assert len(pairs) == 5 and all(isinstance(t, str) for t, _ in pairs)
    probs = [p for _, p in pairs]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    vec = tiny_encoder.encode(["the cat sat"])[0]
    assert [t for t, _ in tiny_encoder.explain(vec, top_k=5)] == [t for t, _ in pairs]


def test_bad_inputs(tiny_encoder, tmp_path):
    with pytest.raises(Text2TokenError, match="text 1 is empty"):
        tiny_encoder.encode(["ok", "   "])
    with pytest.raises(Text2TokenError, match="single string"):
        tiny_encoder.encode("just one")
    with pytest.raises(Text2TokenError, match="not found"):
        Encoder.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Text2TokenError, match="not a text2token model"):
        Encoder.load(tmp_path / "empty")
    assert tiny_encoder.encode([]).shape == (0, tiny_encoder.hidden_size)


def test_models_saved_before_the_target_vocabulary_was_recorded_still_load(tiny, tmp_path):
    """The format of text2token.json before the redesign: the four settings, no target_vocab."""
    import json

    model, tok = tiny
    saved = Encoder(model, tok, EncoderSettings(pooling="mean", prompt="{text}", max_length=24)).save(tmp_path / "m")
    meta = json.loads((saved / "text2token.json").read_text())
    assert "target_vocab" not in meta and sorted(meta["settings"]) == ["attention", "max_length", "pooling", "prompt"]
    loaded = Encoder.load(saved, device="cpu")
    assert loaded.settings == EncoderSettings(pooling="mean", prompt="{text}", max_length=24)
    assert loaded.target_vocab is None
    assert np.allclose(loaded.encode(["the cat sat"]), Encoder(model, tok, loaded.settings).encode(["the cat sat"]))


def test_unknown_pooling_in_a_saved_model_is_a_one_line_error(tiny, tmp_path):
    import json

    model, tok = tiny
    saved = Encoder(model, tok).save(tmp_path / "m")
    meta = json.loads((saved / "text2token.json").read_text())
    meta["settings"]["pooling"] = "max"
    (saved / "text2token.json").write_text(json.dumps(meta))
    with pytest.raises(Text2TokenError, match="unreadable settings \\(unknown pooling 'max'"):
        Encoder.load(saved)
