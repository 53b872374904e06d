"""`text2token encode` / `index` in two processes (torchrun / accelerate launch, gloo on CPU) against one, on the
tiny random Llama: the same bytes, nothing half-written when a process fails, memory that does not grow with
the corpus (the output is written through a memory map, a chunk at a time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY_CORPUS

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "_encode_worker.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env() -> dict:
    """One thread per process and reproducible MKL, in the 1-process run too (see test_distributed.py)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", MKL_CBWR="COMPATIBLE")
    return env


def _run(launcher: list[str], *args, ok: bool = True, accelerate: bool = False):
    env = _env()
    if accelerate:
        env["ACCELERATE_USE_CPU"] = "true"
    done = subprocess.run([*launcher, *map(str, args)], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


CLI = ["-m", "text2token.cli"]
ONE = [sys.executable, *CLI]
TWO = [*TORCHRUN, *CLI]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(REPO / "configs" / "accelerate" / "ddp.yaml"), "--num_processes", "2", "--main_process_port", "0",
              *CLI]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dir):
    from text2token.model.encoder import Encoder
    from text2token.model.settings import EncoderSettings

    root = tmp_path_factory.mktemp("mpencode")
    encoder = Encoder.from_backbone(str(tiny_dir), EncoderSettings(pooling="mean", prompt="{text}", max_length=32),
                                    device="cpu")
    model = encoder.save(root / "model")
    corpus = root / "corpus.txt"  # 37 texts: chunks of 8 -> 5 chunks, 3 for rank 0 and 2 (13 texts) for rank 1
    corpus.write_text("\n".join((TINY_CORPUS * 5)[:37]) + "\n")
    return root, model, corpus


def test_encode_two_processes_equal_one(setup):
    root, model, corpus = setup
    args = ["encode", "--model", model, "--input", corpus, "--batch-size", 3, "--chunk-size", 8, "--precision", "fp32"]
    _run(ONE, *args, "--output", root / "one.npy")
    done = _run(TWO, *args, "--output", root / "two.npy")
    assert done.stdout.count("wrote 37 x 32 embeddings") == 1  # printed by the main process only
    assert (root / "one.npy").read_bytes() == (root / "two.npy").read_bytes()
    emb = np.load(root / "two.npy", mmap_mode="r")
    assert emb.shape == (37, 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert not (root / "two.npy.parts").exists() and not list(root.glob(".*.tmp"))
    # in-process, the library: rows agree with Encoder.encode of the whole list (another batching: float noise)
    from text2token.model.encoder import Encoder

    whole = Encoder.load(model).encode(corpus.read_text().splitlines(), batch_size=3)
    assert np.allclose(whole, emb, atol=1e-5)


def test_index_two_processes_equal_one(setup):
    root, model, corpus = setup
    args = ["index", "--model", model, "--input", corpus, "--batch-size", 3, "--chunk-size", 8, "--precision", "fp32"]
    _run(ONE, *args, "--output", root / "ix-one")
    _run(ACCELERATE, *args, "--output", root / "ix-two", accelerate=True)
    a, b = _files(root / "ix-one"), _files(root / "ix-two")
    assert "dense.faiss" in a and "sparse.npz" in a and a.keys() == b.keys()
    # bm25s numbers its vocabulary in Python's set order (PYTHONHASHSEED): its files differ between any two
    # runs, one process or several; its scores do not (compared below)
    assert all(a[k] == b[k] for k in a if not k.startswith("bm25/")), [k for k in a if a[k] != b[k]]
    assert not (root / "ix-two.parts").exists()
    from text2token.serving.search import SearchIndex

    one, two = SearchIndex.load(root / "ix-one", model=model), SearchIndex.load(root / "ix-two", model=model)
    for query in ("the cat sat", "capital of France", "dog log"):
        for mode in ("bm25", "dense", "sparse"):
            assert [(h.id, h.score) for h in one.search(query, mode=mode, k=5)] == \
                   [(h.id, h.score) for h in two.search(query, mode=mode, k=5)]


@pytest.mark.parametrize("command", ["encode", "index"])
def test_a_failed_process_leaves_nothing(setup, command):
    """Rank 1 fails while encoding, after rank 0 wrote its part: both stop with a one-line error, no output and
    no parts remain (a previous output is kept as it was)."""
    root, model, corpus = setup
    output = root / (f"fail-{command}" + (".npy" if command == "encode" else ""))
    if command == "encode":
        output.write_bytes(b"previous")
    args = [command, "--model", model, "--input", corpus, "--output", output, "--chunk-size", 8, "--precision", "fp32"]
    done = _run([*TORCHRUN, str(WORKER), "1"], *args, ok=False)
    assert done.returncode != 0
    assert "error: process 1 failed: RuntimeError: simulated failure on rank 1" in done.stderr, done.stderr[-3000:]
    assert "error: RuntimeError: simulated failure on rank 1" in done.stderr
    assert not Path(f"{output}.parts").exists()
    assert (output.read_bytes() == b"previous") if command == "encode" else not output.exists()
    assert not list(root.glob(".fail-*"))


def test_bad_line_two_processes(setup):
    root, model, _ = setup
    bad = root / "bad.txt"
    bad.write_text("the cat sat\n   \nthe dog\n")
    done = _run(TWO, "encode", "--model", model, "--input", bad, "--output", root / "bad.npy", ok=False)
    assert done.returncode != 0 and "error:" in done.stderr and "bad.txt:2: empty or whitespace-only" in done.stderr
    assert "Traceback" not in done.stderr.split("error:")[0]
    assert not (root / "bad.npy").exists() and not (root / "bad.npy.parts").exists()


def test_rank_rows_are_whole_chunks():
    from text2token.serving.encode_parallel import rank_rows
    from text2token.training.distributed import Dist

    def rows(n, chunk, world):
        out = []
        for rank in range(world):
            d = Dist()
            d.rank, d.world = rank, world
            out.append(rank_rows(n, chunk, d))
        return out

    assert rows(37, 8, 2) == [(0, 24), (24, 37)]
    assert rows(37, 8, 1) == [(0, 37)]
    assert rows(5, 8, 3) == [(0, 5), (5, 5), (5, 5)]  # more processes than chunks: empty parts
    assert rows(64, 8, 3) == [(0, 24), (24, 48), (48, 64)]


def _wide_model(root: Path) -> Path:
    """A tiny Llama with a wide hidden state (512): 5,000 vectors are 10 MB, far above what a chunk holds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers import make_tokenizer
    from text2token.model.encoder import Encoder
    from text2token.model.settings import EncoderSettings

    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    encoder = Encoder(LlamaForCausalLM(cfg).eval(), tokenizer, EncoderSettings(pooling="mean", prompt="{text}",
                                                                               max_length=16), device="cpu")
    return encoder.save(root / "wide")


def test_encode_big_input_memory_is_flat(tmp_path):
    """5,000 texts: the output is a memory-mapped .npy written chunk by chunk; numpy/Python memory at its peak
    (tracemalloc) stays well below the 10 MB that one in-memory array of all vectors would take."""
    from text2token.serving.encode_parallel import EncodeJob, parallel_encode

    model = _wide_model(tmp_path)
    corpus = tmp_path / "big.txt"
    corpus.write_text("\n".join(f"{TINY_CORPUS[i % 8]} {i}" for i in range(5000)) + "\n")
    output = tmp_path / "big.npy"
    full = 5000 * 512 * 4
    tracemalloc.start()
    try:
        shape = parallel_encode(EncodeJob(model, corpus, batch_size=64, chunk=256), output)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"tracemalloc peak {peak / 1e6:.2f} MB, one array of all vectors {full / 1e6:.1f} MB")
    assert shape == (5000, 512)
    assert peak < full / 3, peak
    emb = np.load(output, mmap_mode="r")
    assert isinstance(emb, np.memmap) and emb.shape == (5000, 512) and emb.dtype == np.float32
    assert output.stat().st_size == emb.offset + 5000 * 512 * 4 and np.isfinite(emb[-1]).all()
    assert not list(tmp_path.glob(".big.npy*"))


def _corpus_in_every_format(root: Path, texts: list[str]) -> dict[str, tuple[Path, str]]:
    """The same texts as CSV (column ``body``), TSV, Parquet, a folder of .txt files and a datasets folder."""
    import csv

    files = {}
    for name, delimiter in (("c.csv", ","), ("c.tsv", "\t")):
        with open(root / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter=delimiter)
            writer.writerow(["id", "body"])
            writer.writerows([i, t] for i, t in enumerate(texts))
        files[name] = (root / name, "body")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": texts}), root / "c.parquet", row_group_size=5)
    files["parquet"] = (root / "c.parquet", "body")
    (root / "folder").mkdir()
    for i, t in enumerate(texts):
        (root / "folder" / f"{i:03d}.txt").write_text(t + "\n", encoding="utf-8")
    files["folder"] = (root / "folder", "text")
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": texts}).save_to_disk(str(root / "ds"))
    files["datasets"] = (root / "ds", "body")
    return files


def test_encode_and_index_read_every_corpus_format(setup, tmp_path, monkeypatch, capsys):
    """`encode --input` takes the corpus formats `data.corpus` takes (`--text-field` names the column): the same
    texts in any of them give the .txt input's bytes, and `index` stores the same texts."""
    from helpers import run_cli
    from text2token.serving.encode_parallel import EncodeJob, parallel_encode
    from text2token.serving.search import SearchIndex

    root, model, corpus = setup
    texts = corpus.read_text().splitlines()
    parallel_encode(EncodeJob(model, corpus, batch_size=3, chunk=8), tmp_path / "txt.npy")
    reference = (tmp_path / "txt.npy").read_bytes()
    for name, (path, field) in _corpus_in_every_format(tmp_path, texts).items():
        parallel_encode(EncodeJob(model, path, batch_size=3, chunk=8, text_field=field), tmp_path / f"{name}.npy")
        assert (tmp_path / f"{name}.npy").read_bytes() == reference, name
    code, _, err = run_cli(monkeypatch, capsys, "index", "--model", model, "--input", tmp_path / "c.csv",
                           "--text-field", "body", "--output", tmp_path / "index", "--precision", "fp32")
    assert code == 0, err
    assert list(SearchIndex.load(tmp_path / "index").texts) == texts
    code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", model, "--input", tmp_path / "c.csv",
                           "--output", tmp_path / "bad.npy")
    assert code != 0 and "text" in err and "column" in err.lower(), err
    assert not (tmp_path / "bad.npy").exists()
