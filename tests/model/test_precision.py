"""Inference precision: bf16 and int8 encoders give vectors close to fp32's, and refuse what they cannot do."""

import numpy as np
import pytest

from helpers import TINY_CORPUS
from text2token.errors import Text2TokenError
from text2token.model.encoder import Encoder
from text2token.model.precision import PRECISIONS


@pytest.fixture()
def saved(tiny_encoder, tmp_path):
    return tiny_encoder.save(tmp_path / "model")


def _cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


@pytest.mark.parametrize("precision, floor", [("bf16", 0.99), ("int8", 0.9)])
def test_low_precision_vectors_agree_with_fp32(saved, precision, floor):
    want = Encoder.load(saved, device="cpu").encode(TINY_CORPUS)
    enc = Encoder.load(saved, device="cpu", precision=precision)
    got = enc.encode(TINY_CORPUS)
    assert got.dtype == np.float32 and got.shape == want.shape and enc.precision == precision
    assert not np.array_equal(got, want), "the model really runs in another precision"
    assert _cosines(got, want).min() >= floor
    assert np.isfinite(enc.token_distribution(TINY_CORPUS[:2], top_k=4)[1]).all()


def test_fp32_is_the_model_as_saved(saved, tiny_encoder):
    assert np.array_equal(Encoder.load(saved, device="cpu", precision="fp32").encode(TINY_CORPUS),
                          Encoder.load(saved, device="cpu").encode(TINY_CORPUS))


def test_bad_precision_and_saving_a_converted_encoder_are_refused(saved, tmp_path):
    with pytest.raises(Text2TokenError, match="unknown precision .fp8. \\(choose from fp32, bf16, int8, auto\\)"):
        Encoder.load(saved, precision="fp8")
    with pytest.raises(Text2TokenError, match="converted to bf16 for inference"):
        Encoder.load(saved, device="cpu", precision="bf16").save(tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_auto_is_bf16_exactly_where_the_hardware_has_it(saved):
    from text2token.model.precision import native_bf16, resolve_precision

    want = "bf16" if native_bf16("cpu") else "fp32"
    assert resolve_precision("auto", "cpu") == want
    assert Encoder.load(saved, device="cpu", precision="auto").precision == want
    assert resolve_precision("int8", "cpu") == "int8"


def test_cli_encode_precision(monkeypatch, capsys, saved, tmp_path):
    from helpers import assert_one_line_error, run_cli

    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TINY_CORPUS) + "\n")
    for precision in ("fp32", "bf16"):
        code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", saved, "--input", texts,
                               "--output", tmp_path / f"{precision}.npy", "--precision", precision)
        assert code == 0, err
    a, b = np.load(tmp_path / "fp32.npy"), np.load(tmp_path / "bf16.npy")
    assert a.shape == b.shape and not np.array_equal(a, b) and _cosines(a, b).min() > 0.99
    code, _, err = run_cli(monkeypatch, capsys, "encode", "--model", saved, "--input", texts,
                           "--output", tmp_path / "x.npy", "--precision", "fp4")
    assert_one_line_error(code, err, "unknown precision 'fp4'")
    assert not (tmp_path / "x.npy").exists()


def test_int8_on_a_gpu_is_refused_not_moved(saved):
    with pytest.raises(Text2TokenError, match="int8 runs on the CPU only"):
        Encoder.load(saved, device="cuda", precision="int8")
