"""Shared fixtures: a tiny random Llama with a real byte-level BPE tokenizer, saved as a model directory."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat ran after a dog",
    "zebra and giraffe graze on the savanna",
    "the stock market fell sharply today",
    "Paris is the capital of France",
    "photosynthesis converts light into chemical energy",
    "the quick brown fox jumps over the lazy dog",
]


def make_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" " + t for t in TINY_CORPUS] * 20 + TINY_CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def make_model(vocab_size: int, layers: int = 3, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).eval()


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
    from text2token.backbone import load_backbone

    return load_backbone(str(tiny_dir))


@pytest.fixture()
def tiny_encoder(tiny):
    from text2token.encoder import Encoder, EncoderSettings

    model, tokenizer = tiny
    return Encoder(model, tokenizer, EncoderSettings(pooling="mean", prompt="{text}", max_length=32), device="cpu")


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path, monkeypatch):
    """Unit tests get an empty cache; integration tests share the real one (the converted SmolLM2)."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("TEXT2TOKEN_HOME", str(tmp_path / "t2t-home"))
    yield


def run_cli(monkeypatch, capsys, *args):
    """Runs ``text2token ARGS`` in-process; returns (exit code, stdout, stderr)."""
    import sys

    from text2token import cli

    monkeypatch.setattr(sys, "argv", ["text2token", *map(str, args)])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, text):
    """Exit code 2, the last line ``error: ...`` naming ``text``, no traceback."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:") and text in err, err
    assert "Traceback" not in err
