"""Plain helpers shared by the tests (fixtures live in conftest.py): the tiny corpus, model and tokenizer makers,
a tiny training config, and the CLI runner."""

from __future__ import annotations

import torch

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


def data_driven_configs():
    """Data-driven settings that exercise every tf / idf / power / filter path (equivalence tests)."""
    from text2token.config import DataDrivenConfig

    return [DataDrivenConfig(top_k=4, min_df=1, max_df=1.0),
            DataDrivenConfig(top_k=2, tf="raw", idf="bm25", power=2.0, min_df=1, max_df=0.9),
            DataDrivenConfig(top_k=16, tf="raw", idf="bm25", power=2.0, min_df=1, max_df=0.9),
            DataDrivenConfig(top_k=8, tf="binary", idf="none", remove_stopwords=False, remove_fragments=False,
                             min_df=1)]


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



def tiny_train_config(tiny_dir, corpus, **train_kw):
    """Two 4-step stages (data-driven, then model-derived) on the tiny model and a file corpus."""
    from text2token.config import Config

    return Config.model_validate({
        "model": {"backbone": str(tiny_dir), "pooling": "mean", "prompt": "{text}", "max_length": 24},
        "data": {"corpus": str(corpus)},
        "targets": {"data_driven": {"top_k": 4, "min_df": 1, "max_df": 0.9},
                    "model_derived": {"top_k": 4, "mix_data": 0.5}, "shard_size": 5, "batch_size": 4},
        "stages": [{"name": "s1", "targets": "data", "steps": 4}, {"name": "s2", "targets": "model", "steps": 4}],
        "train": {"method": "top_layers", "top_layers": 2, "batch_size": 4, "lr": 1e-2, "warmup_steps": 1,
                  "checkpoint_every": 2, "log_every": 1, "autocast": "none", "frozen_cache": "none", **train_kw},
        "eval": {"enabled": False},
    })


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
