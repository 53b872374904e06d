"""The bad-input table of the README: each case a clear one-line answer (or a documented recovery)."""

import subprocess
from contextlib import contextmanager

import numpy as np
import pytest

from helpers import TINY_CORPUS, assert_one_line_error, run_cli


@contextmanager
def tmpfs(path, size="64k", read_only=False):
    """A small tmpfs at ``path`` (a full disk or a read-only one); skips where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture()
def model_dir(tmp_path, tiny_encoder):
    return tiny_encoder.save(tmp_path / "model")


def test_one_megabyte_text_is_truncated_and_encoded(monkeypatch, capsys, tmp_path, model_dir):
    big = tmp_path / "big.txt"
    big.write_text(("photosynthesis converts light " * 40_000)[:1_000_000] + "\nshort text\n")
    code, out, err = run_cli(monkeypatch, capsys, "encode", "--model", model_dir, "--input", big,
                             "--output", tmp_path / "e.npy")
    assert code == 0, err
    assert err.count("truncated") == 1
    emb = np.load(tmp_path / "e.npy")
    assert emb.shape[0] == 2 and np.isfinite(emb).all()


def test_tokenizer_without_pad_token_uses_eos(tmp_path, tiny_dir):
    from transformers import AutoTokenizer

    from text2token.model.encoder import Encoder

    no_pad = tmp_path / "no-pad"
    import shutil

    shutil.copytree(tiny_dir, no_pad)
    tok = AutoTokenizer.from_pretrained(no_pad)
    tok.pad_token = None
    tok.save_pretrained(no_pad)
    assert AutoTokenizer.from_pretrained(no_pad).pad_token is None
    tokenizer = Encoder.from_backbone(str(no_pad), device="cpu").tokenizer
    assert tokenizer.pad_token_id == tokenizer.eos_token_id is not None


def test_read_only_output_dir(monkeypatch, capsys, tmp_path, model_dir):
    texts = tmp_path / "t.txt"
    texts.write_text("the cat sat\n")
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", model_dir, "--input", texts,
                               "--output", ro / "e.npy")
        assert_one_line_error(code, err, "Read-only file system")
        corpus = tmp_path / "c.txt"
        corpus.write_text("\n".join(TINY_CORPUS) + "\n")
        code, _, err = run_cli(monkeypatch, capsys, "train", "--output", ro / "run", f"model.backbone={model_dir}",
                               f"data.corpus={corpus}", "eval.enabled=false")
        assert_one_line_error(code, err, "Read-only file system")


def test_full_disk_leaves_no_partial_file(monkeypatch, capsys, tmp_path, model_dir):
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TINY_CORPUS * 300) + "\n")  # 2,400 x 32 float32 = 300 KB > 64 KB
    with tmpfs(tmp_path / "full", size="64k") as full:
        code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", model_dir, "--input", texts,
                               "--output", full / "e.npy")
        assert_one_line_error(code, err, "cannot write")
        assert "disk is full" in err or "No space left" in err
        assert list(full.iterdir()) == [], "nothing half-written"


def test_train_skip_bad_lines_flag(monkeypatch, capsys, tmp_path, model_dir):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(("\n".join(TINY_CORPUS) + "\n   \n\xff bad\n").encode("latin-1"))
    args = ["train", "--output", tmp_path / "run", f"model.backbone={model_dir}", f"data.corpus={corpus}",
            "eval.enabled=false", "stages.0.steps=1", "stages.1.steps=1", "train.batch_size=2",
            "targets.data_driven.min_df=1"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, ":9: empty or whitespace-only")
    code, _, err = run_cli(monkeypatch, capsys, *args, "--skip-bad-lines")
    assert code == 0, err
    assert "skipped 2 bad line(s)" in err


def test_model_dir_without_weights_or_config(monkeypatch, capsys, tmp_path, tiny_dir):
    import shutil

    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TINY_CORPUS) + "\n")
    for model, message in ((no_weights, "no *.safetensors weights"), (tmp_path, "not a model directory")):
        code, _, err = run_cli(monkeypatch, capsys, "train", "--output", tmp_path / "run", f"model.backbone={model}",
                               f"data.corpus={corpus}", "eval.enabled=false")
        assert_one_line_error(code, err, message)
        assert not (tmp_path / "run").exists()
