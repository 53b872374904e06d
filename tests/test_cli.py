"""The command line, in-process: exit codes, one-line errors, and nothing half-written on bad input."""


import numpy as np
import pytest
import yaml


from helpers import TINY_CORPUS, assert_one_line_error, run_cli, make_model


@pytest.fixture()
def tiny_config(tmp_path, tiny_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TINY_CORPUS) + "\n")
    cfg = {
        "model": {"backbone": str(tiny_dir), "pooling": "mean", "prompt": "{text}", "max_length": 24},
        "data": {"corpus": str(corpus)},
        "targets": {"data_driven": {"top_k": 4, "min_df": 1, "max_df": 0.9}, "model_derived": {"top_k": 4}},
        "stages": [{"name": "s1", "targets": "data", "steps": 2}, {"name": "s2", "targets": "model", "steps": 2}],
        "train": {"batch_size": 4, "top_layers": 1},
        "eval": {"enabled": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_encode_explain_end_to_end(monkeypatch, capsys, tmp_path, tiny_config):
    run = tmp_path / "run"
    code, out, err = run_cli(monkeypatch, capsys, "train", "--config", tiny_config, "--output", run)
    assert code == 0, err
    assert (run / "final" / "text2token.json").is_file()
    texts = tmp_path / "in.jsonl"
    texts.write_text('{"text": "the cat sat"}\n{"text": "a dog ran"}\n{"text": "Paris"}\n')
    code, out, err = run_cli(monkeypatch, capsys, "encode", "--model", run / "final", "--input", texts,
                             "--output", tmp_path / "emb.npy")
    assert code == 0, err
    emb = np.load(tmp_path / "emb.npy")
    assert emb.shape[0] == 3 and np.isfinite(emb).all()
    code, out, err = run_cli(monkeypatch, capsys, "explain", "--model", run / "final", "--text", "the cat sat",
                             "--top-k", "3", "--json")
    assert code == 0, err
    assert out.count('"token"') == 3


@pytest.mark.parametrize("override, message", [
    ("model.backbone=/no/such/model", "model path not found"),
    ("data.corpus=EMPTY", "no texts"),
    ("data.corpus=BLANKLINE", ":2: empty or whitespace-only"),
    ("train.batch_size=zero", "train.batch_size"),
    ("train.colour=red", "unknown key 'train.colour'"),
])
def test_train_bad_input_writes_nothing(monkeypatch, capsys, tmp_path, tiny_config, override, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("fine\n   \nfine\n")
    override = override.replace("EMPTY", str(tmp_path / "empty.txt")).replace("BLANKLINE", str(tmp_path / "blank.txt"))
    run = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--config", tiny_config, "--output", run, override)
    assert_one_line_error(code, err, message)
    assert not run.exists(), "nothing is written on bad input"


def test_model_without_lm_head_refused(monkeypatch, capsys, tmp_path, tiny_config, tiny_dir):
    from transformers import AutoTokenizer, LlamaModel

    headless = tmp_path / "headless"
    base = make_model(400).model
    base.config.tie_word_embeddings = False
    LlamaModel.save_pretrained(base, headless)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(headless)
    code, _, err = run_cli(monkeypatch, capsys, "train", "--config", tiny_config, "--output", tmp_path / "r",
                           f"model.backbone={headless}")
    assert_one_line_error(code, err, "no LM head")


def test_gguf_of_a_non_causal_model_refused(monkeypatch, capsys, tmp_path, tiny_config):
    import gguf

    path = tmp_path / "encoder-only.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_block_count(1)
    writer.add_embedding_length(4)
    writer.add_tensor("token_embd.weight", np.zeros((10, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code, _, err = run_cli(monkeypatch, capsys, "train", "--config", tiny_config, "--output", tmp_path / "r",
                           f"model.backbone={path}")
    assert_one_line_error(code, err, "cannot load as a causal LM")
    assert not (tmp_path / "r").exists()


def test_broken_gguf_refused(monkeypatch, capsys, tmp_path, tiny_config):
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    code, _, err = run_cli(monkeypatch, capsys, "train", "--config", tiny_config, "--output", tmp_path / "r",
                           f"model.backbone={fake}")
    assert_one_line_error(code, err, "cannot load as a causal LM")


def test_encode_and_explain_errors(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", tmp_path / "none", "--input", tmp_path / "x.txt",
                           "--output", tmp_path / "o.npy")
    assert_one_line_error(code, err, "not found")
    (tmp_path / "x.txt").write_text("ok\n")
    code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", tmp_path, "--input", tmp_path / "x.txt",
                           "--output", tmp_path / "o.npy")
    assert_one_line_error(code, err, "not a text2token model directory")
    code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", tmp_path, "--input", tmp_path / "x.txt",
                           "--output", tmp_path / "o.csv")
    assert_one_line_error(code, err, "expected a .npy")
    assert not (tmp_path / "o.npy").exists()
    code, _, err = run_cli(monkeypatch, capsys, "explain", "--model", tmp_path / "none", "--text", "hi")
    assert_one_line_error(code, err, "not found")
