import numpy as np
import pytest

from text2token.errors import Text2TokenError
from text2token.targets.store import TargetStore, fingerprint


def _transform(texts):
    n = len(texts)
    ids = np.array([[len(t), len(t) + 1] for t in texts], dtype=np.int32)
    return ids, np.full((n, 2), 0.5, dtype=np.float32)


def _build(directory, fp, index, calls=None, fail_at=None):
    texts = [f"text {i}" * (i % 3 + 1) for i in range(100)]

    def get(i, j):
        if fail_at is not None and i >= fail_at:
            raise RuntimeError("killed")
        if calls is not None:
            calls.append((i, j))
        return [texts[k] for k in index[i:j]]

    return TargetStore.build(directory, fp, index, get, _transform, width=2, shard_size=7, show_progress=False), texts


def test_round_trip(tmp_path):
    index = np.arange(0, 100, 3)
    store, texts = _build(tmp_path / "s", "fp1", index)
    assert len(store) == len(index)
    ids, w = store.get(np.array([0, 99, 30]))
    assert ids[:, 0].tolist() == [len(texts[0]), len(texts[99]), len(texts[30])]
    assert np.allclose(w, 0.5)
    again = TargetStore.open(tmp_path / "s", "fp1")
    assert again is not None and np.array_equal(again.ids, store.ids)
    with pytest.raises(KeyError):
        store.get(np.array([1]))


def test_fingerprint_reuse_and_invalidation(tmp_path):
    index = np.arange(20)
    calls = []
    _build(tmp_path / "s", fingerprint("cfg", {"top_k": 2}), index, calls)
    assert calls, "first build computes"
    calls.clear()
    _build(tmp_path / "s", fingerprint("cfg", {"top_k": 2}), index, calls)
    assert calls == [], "same fingerprint: reused, nothing recomputed"
    _build(tmp_path / "s", fingerprint("cfg", {"top_k": 3}), index, calls)
    assert calls, "changed config: rebuilt"
    assert TargetStore.open(tmp_path / "s", fingerprint("cfg", {"top_k": 2})) is None


def test_resume_after_interruption(tmp_path):
    index = np.arange(30)
    with pytest.raises(RuntimeError):
        _build(tmp_path / "s", "fp", index, fail_at=14)
    assert TargetStore.open(tmp_path / "s", "fp") is None, "incomplete store is not used"
    calls = []
    store, _ = _build(tmp_path / "s", "fp", index, calls)
    assert calls[0][0] == 14, "resumes after the last complete shard"
    assert len(store) == 30


def test_corrupted_shard_detected(tmp_path):
    index = np.arange(20)
    _build(tmp_path / "s", "fp", index)
    shard = sorted((tmp_path / "s").glob("shard-*.safetensors"))[1]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(Text2TokenError, match="corrupted"):
        TargetStore.open(tmp_path / "s", "fp")
    calls = []
    store, _ = _build(tmp_path / "s", "fp2", index, calls)  # rebuilding replaces it
    assert len(store) == 20


def test_lazy_reads_equal_the_shards_in_memory(tmp_path):
    """``get`` reads rows from the shard files; it equals the shards loaded whole (safetensors load_file)."""
    from safetensors.numpy import load_file

    index = np.arange(0, 100, 2)
    store, _ = _build(tmp_path / "s", "fp", index)
    shards = [load_file(str(tmp_path / "s" / s["file"])) for s in store.manifest["shards"]]
    all_index = np.concatenate([s["text_index"] for s in shards])
    all_ids = np.concatenate([s["ids"] for s in shards])
    all_w = np.concatenate([s["weights"] for s in shards])
    assert np.array_equal(store.text_index, all_index)
    assert np.array_equal(store.ids, all_ids) and np.array_equal(store.weights, all_w)
    rng = np.random.default_rng(0)
    for ask in (index[::-1], rng.choice(index, 16), rng.choice(index, 5), index[10:17], np.array([98, 0, 98])):
        pos = np.searchsorted(all_index, ask)
        ids, w = store.get(ask)
        assert ids.dtype == np.int32 and w.dtype == np.float32
        assert np.array_equal(ids, all_ids[pos]) and np.array_equal(w, all_w[pos])
    assert store.count_empty() == 0


def test_count_empty(tmp_path):
    def transform(texts):
        w = np.array([[0.0, 0.0] if "empty" in t else [0.5, 0.5] for t in texts], dtype=np.float32)
        return np.zeros((len(texts), 2), dtype=np.int32), w

    texts = ["empty" if i % 4 == 0 else "full" for i in range(30)]
    store = TargetStore.build(tmp_path / "s", "fp", np.arange(30), lambda i, j: texts[i:j], transform, width=2,
                              shard_size=7, show_progress=False)
    assert store.count_empty() == 8
