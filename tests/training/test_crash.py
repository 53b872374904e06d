"""Crash safety: `kill -9` a training process at many points, `--resume` it, and get an uninterrupted run's weights.

Each run is a real `text2token train` subprocess on the tiny model (a few seconds each).
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from text2token.errors import Text2TokenError
from text2token.training.checkpoint import load_checkpoint

from helpers import TINY_CORPUS


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dir):
    root = tmp_path_factory.mktemp("crash")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(TINY_CORPUS * 3) + "\n")
    cfg = {
        "model": {"backbone": str(tiny_dir), "pooling": "mean", "prompt": "{text}", "max_length": 24},
        "data": {"corpus": str(corpus)},
        "targets": {"data_driven": {"top_k": 4, "min_df": 1, "max_df": 0.9}, "model_derived": {"top_k": 4},
                    "shard_size": 2, "batch_size": 2},
        "stages": [{"name": "s1", "targets": "data", "steps": 8}, {"name": "s2", "targets": "model", "steps": 8}],
        "train": {"batch_size": 4, "top_layers": 2, "lr": 1e-2, "checkpoint_every": 1, "log_every": 1,
                  "autocast": "none", "frozen_cache": "none"},  # bit-exact resume: the uncached fp32 path
        "eval": {"enabled": False},
    }
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "TEXT2TOKEN_HOME": str(root / "home"), "PYTHONUNBUFFERED": "1"}
    reference = root / "reference"
    subprocess.run(_cmd(config, reference), env=env, check=True, capture_output=True, timeout=300)
    return config, env, load_file(str(reference / "final" / "model.safetensors"))


def _cmd(config, out, resume=False):
    return [sys.executable, "-m", "text2token.cli", "train", "--config", str(config), "--output", str(out)] + (
        ["--resume"] if resume else [])


def _kill_when(config, env, out, ready, timeout=120.0) -> bool:
    """Starts a run and SIGKILLs it as soon as ``ready(out)`` holds; False if the run ended first."""
    proc = subprocess.Popen(_cmd(config, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready(out):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def _resume_and_compare(config, env, out, reference):
    done = subprocess.run(_cmd(config, out, resume=True), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = load_file(str(out / "final" / "model.safetensors"))
    assert got.keys() == reference.keys()
    assert all(torch.equal(got[k], reference[k]) for k in got), "resumed weights differ from an uninterrupted run"


def _train_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    return path.read_text().count('"event": "train"') if path.is_file() else 0


KILL_POINTS = {
    "while building data-driven targets": lambda out: any(out.glob("targets/s1-*/shard-00001.safetensors")),
    "while building model-derived targets": lambda out: any(out.glob("targets/s2-*/shard-00000.safetensors")),
    "mid stage 1": lambda out: _train_steps(out) >= 3,
    "mid stage 2": lambda out: _train_steps(out) >= 11,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_resume_equals_uninterrupted(setup, tmp_path, point):
    config, env, reference = setup
    out = tmp_path / "run"
    assert _kill_when(config, env, out, KILL_POINTS[point]), f"the run finished before {point}"
    assert not (out / "final").exists()
    _resume_and_compare(config, env, out, reference)


def test_kill_9_at_random_moments(setup, tmp_path):
    """Killed three times at seeded random moments, resumed each time: still the uninterrupted weights."""
    config, env, reference = setup
    out = tmp_path / "run"
    rng = random.Random(7)
    for _ in range(3):
        delay = rng.uniform(2.0, 6.0)
        start = time.monotonic()
        proc = subprocess.Popen(_cmd(config, out, resume=True), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and time.monotonic() - start < delay:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (out / "final").exists() and not (out / "checkpoint").exists():
            break
    if not (out / "final").exists() or (out / "checkpoint").exists():
        _resume_and_compare(config, env, out, reference)
    else:
        got = load_file(str(out / "final" / "model.safetensors"))
        assert all(torch.equal(got[k], reference[k]) for k in got)


def test_checkpoint_killed_mid_write_and_corrupted(setup, tmp_path):
    """A kill between writing the temp file and the rename leaves the old checkpoint in force; a damaged
    checkpoint is refused with a clear message, never used."""
    config, env, reference = setup
    out = tmp_path / "run"
    assert _kill_when(config, env, out, lambda o: _train_steps(o) >= 4)
    state = out / "checkpoint" / "state.pt"
    assert state.is_file()
    (state.parent / ".state.pt.tmp").write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    _resume_and_compare(config, env, out, reference)

    broken = tmp_path / "broken"
    assert _kill_when(config, env, broken, lambda o: _train_steps(o) >= 4)
    ckpt = broken / "checkpoint" / "state.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(Text2TokenError, match="unreadable"):
        load_checkpoint(broken)
    done = subprocess.run(_cmd(config, broken, resume=True), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "unreadable" in done.stderr and "Traceback" not in done.stderr
