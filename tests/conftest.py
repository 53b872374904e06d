"""Shared fixtures: a tiny random Llama with a real byte-level BPE tokenizer, saved as a model directory."""

from __future__ import annotations

import os

import pytest

from helpers import TINY_CORPUS, make_model, make_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A saved tiny Llama model directory (safetensors + tokenizer), usable as ``model.backbone``."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = make_tokenizer()
    model = make_model(len(tokenizer))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def tiny(tiny_dir):
    """(model, tokenizer) loaded fresh from the tiny directory."""
    from text2token.model.backbone import load_backbone

    return load_backbone(str(tiny_dir))


@pytest.fixture()
def tiny_encoder(tiny):
    from text2token.model.encoder import Encoder
    from text2token.model.settings import EncoderSettings

    model, tokenizer = tiny
    return Encoder(model, tokenizer, EncoderSettings(pooling="mean", prompt="{text}", max_length=32), device="cpu")


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path, monkeypatch):
    """Unit tests get an empty cache; integration tests share the real one (the converted SmolLM2)."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("TEXT2TOKEN_HOME", str(tmp_path / "t2t-home"))
    yield




@pytest.fixture()
def corpus(tmp_path):
    """The tiny corpus twice, as a .txt file."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TINY_CORPUS * 2) + "\n")
    return path
