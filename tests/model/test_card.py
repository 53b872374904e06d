"""The model card (README.md) written with every saved encoder and every sentence-transformers export."""

import json

import numpy as np
import pytest

from text2token.config import Config, save_config
from text2token.model.card import UNKNOWN_LICENCE, backbone_licence, run_dir_of
from text2token.model.encoder import Encoder
from text2token.model.settings import EncoderSettings

SCORES = {"before": {"mean": 0.25, "retrieval_ndcg@10": 0.3}, "after": {"mean": 0.5, "retrieval_ndcg@10": 0.6},
          "heldout_articles": 20}


def _run(tiny, tmp_path, backbone="smollm2-135m", scores=True):
    """A run directory as training leaves it: config.yaml, eval.json and final/ (saved with the run's extras)."""
    model, tokenizer = tiny
    run = tmp_path / "run"
    run.mkdir()
    cfg = Config.model_validate({"model": {"backbone": backbone, "pooling": "mean"},
                                 "data": {"corpus": "/somewhere/private/corpus.parquet", "max_texts": 300}})
    save_config(cfg, run / "config.yaml")
    if scores:
        (run / "eval.json").write_text(json.dumps(SCORES))
    encoder = Encoder(model, tokenizer, EncoderSettings(pooling="mean", prompt="{text}", max_length=24), device="cpu")
    extra = {"backbone": backbone, "stages": [s.name for s in cfg.stages], "corpus": "corpus.parquet", "texts": 300}
    return encoder, encoder.save(run / "final", extra=extra, run_dir=run)


def test_saved_encoder_has_a_card_and_still_loads(tiny, tmp_path):
    encoder, final = _run(tiny, tmp_path)
    card = (final / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    for text in ("backbone: `smollm2-135m`", "licence of the backbone: Apache-2.0", "pooling: `mean`",
                 "max length: 24 tokens", "| data-driven | kl | data | 150 |", "corpus: corpus.parquet",
                 "texts: 300", "| mean | 0.2500 | 0.5000 |", "| retrieval_ndcg@10 | 0.3000 | 0.6000 |",
                 'Encoder.load("DIR")', "text2token serve --model DIR"):
        assert text in card, text
    assert "/somewhere" not in card and str(tmp_path) not in card  # no local paths
    texts = ["a cat", "the dog sat"]
    assert np.array_equal(Encoder.load(final, device="cpu").encode(texts), encoder.encode(texts))
    assert run_dir_of(final) == tmp_path / "run"


def test_card_of_a_plain_save_and_an_unknown_backbone(tiny, tmp_path):
    model, tokenizer = tiny
    path = Encoder(model, tokenizer, EncoderSettings(pooling="eos"), device="cpu").save(tmp_path / "m")
    card = (path / "README.md").read_text()
    assert f"licence of the backbone: {UNKNOWN_LICENCE}" in card and "license:" not in card
    assert "pooling: `eos`" in card and "## Scores" not in card
    assert run_dir_of(path) is None
    assert backbone_licence("/no/such/model") == UNKNOWN_LICENCE


def test_licence_from_a_model_directory_readme(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# A model\n")
    assert backbone_licence(str(tmp_path)) == "mit"


def test_export_has_a_card(tiny, tmp_path):
    pytest.importorskip("sentence_transformers")
    from text2token.serving.export import export_sentence_transformers

    _, final = _run(tiny, tmp_path, backbone=str(tmp_path / "unlisted-backbone"))
    out = export_sentence_transformers(final, tmp_path / "st", precision="bf16")
    card = (out / "README.md").read_text()
    for text in ("library_name: sentence-transformers", 'SentenceTransformer("DIR")', "pooling: `mean`",
                 f"licence of the backbone: {UNKNOWN_LICENCE}", "| mean | 0.2500 | 0.5000 |", "weights: bfloat16",
                 "text2token serve --model SOURCE_DIR", "backbone: `unlisted-backbone`"):
        assert text in card, text
    assert str(tmp_path) not in card


def test_gemma_models_carry_the_notice_and_terms(tiny, tmp_path, monkeypatch, caplog):
    """A model trained from gemma3-270m (and its export) carries NOTICE and a copy of the Gemma terms, as their
    section 3.1 asks; the card says so. Without the terms' package, a warning names them."""
    pytest.importorskip("sentence_transformers")
    from text2token.model.backbone import NOTICES
    from text2token.serving.export import export_sentence_transformers

    package = tmp_path / "pkg" / "fake_terms"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "TERMS.html").write_text("<html>the terms</html>")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setitem(NOTICES, "gemma3-270m", (NOTICES["gemma3-270m"][0], ("fake_terms", "data/TERMS.html")))
    _, final = _run(tiny, tmp_path, backbone="gemma3-270m")
    out = export_sentence_transformers(final, tmp_path / "st")
    for directory in (final, out):
        assert (directory / "NOTICE").read_text() == ("Gemma is provided under and subject to the Gemma Terms of "
                                                      "Use found at ai.google.dev/gemma/terms\n")
        assert (directory / "TERMS.html").read_text() == "<html>the terms</html>"
        card = (directory / "README.md").read_text()
        assert "## Terms" in card and "Prohibited Use Policy" in card and "TERMS.html" in card
    monkeypatch.setitem(NOTICES, "gemma3-270m", (NOTICES["gemma3-270m"][0], ("no_such_pkg", "data/TERMS.html")))
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    _, final = _run(tiny, tmp_path / "b", backbone="gemma3-270m")
    assert (final / "NOTICE").is_file() and not (final / "TERMS.html").exists()
    assert "pass them on with the model" in caplog.text
    _, plain = _run(tiny, tmp_path / "c", backbone="smollm2-135m")
    assert not (plain / "NOTICE").exists() and "## Terms" not in (plain / "README.md").read_text()
