"""sentence-transformers export: SentenceTransformer(out) gives the same vectors as Encoder.encode, no custom code."""

import json
import sys

import numpy as np
import pytest

from text2token import cli
from text2token.model.encoder import Encoder
from text2token.model.settings import EncoderSettings
from text2token.errors import Text2TokenError
from text2token.model.pooling import POOLINGS
from text2token.serving.export import export_sentence_transformers

st = pytest.importorskip("sentence_transformers")

PROMPT = 'the text "{text}" is'
LONG = "the quick brown fox jumps over the lazy dog and " * 8  # far over max_length=24 tokens
TEXTS = ["the cat sat on the mat", "a", "Paris is the capital of France", "zebra", LONG,
         "photosynthesis converts light into chemical energy"]


def _model_dir(tiny, tmp_path, bos_eos=False, **settings):
    model, tokenizer = tiny
    if bos_eos:  # a tokenizer that wraps every text in <s> ... </s>, like Llama's adds BOS
        from tokenizers.processors import TemplateProcessing

        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", tokenizer.bos_token_id), ("</s>", tokenizer.eos_token_id)])
        tokenizer.chat_template = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"
    settings = {"pooling": "mean", "prompt": PROMPT, "max_length": 24, **settings}
    return Encoder(model, tokenizer, EncoderSettings(**settings), device="cpu").save(tmp_path / "model")


def _export_and_compare(model_dir, out_dir, texts=TEXTS):
    export_sentence_transformers(model_dir, out_dir)
    want = Encoder.load(model_dir, device="cpu").encode(texts)
    model = st.SentenceTransformer(str(out_dir), device="cpu")  # stock classes: no trust_remote_code
    got = model.encode(texts, batch_size=4, convert_to_numpy=True)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5
    return model, want


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_same_vectors_for_each_pooling(tiny, tmp_path, pooling):
    model_dir = _model_dir(tiny, tmp_path, pooling=pooling)
    model, _ = _export_and_compare(model_dir, tmp_path / "st")
    one_by_one = np.stack([model.encode([t], convert_to_numpy=True)[0] for t in TEXTS])  # no padding at all
    want = Encoder.load(model_dir, device="cpu").encode(TEXTS)
    assert np.abs(one_by_one - want).max() <= 1e-5
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert [m["type"] for m in modules] == ["sentence_transformers.models.Transformer",
                                            "sentence_transformers.models.Pooling"]


def test_plain_tokenization_reproduces_prompt_and_truncation(tiny, tmp_path):
    model_dir = _model_dir(tiny, tmp_path)
    model, _ = _export_and_compare(model_dir, tmp_path / "st")
    encoder = Encoder.load(model_dir, device="cpu")
    before, after = encoder.template_ids()
    assert before and after  # the prompt has a prefix and a suffix
    want, n_cut = encoder.tokenize(TEXTS)
    got = model.tokenize(TEXTS)
    assert n_cut == 1 and model.max_seq_length == 24
    assert got["input_ids"].tolist() == want["input_ids"].tolist()
    assert got["attention_mask"].tolist() == want["attention_mask"].tolist()
    long_row = got["input_ids"][TEXTS.index(LONG)].tolist()
    assert len(long_row) == 24 and long_row[: len(before)] == before and long_row[-len(after):] == after


def test_truncated_text_same_vector(tiny, tmp_path):
    model_dir = _model_dir(tiny, tmp_path, pooling="eos", max_length=16)
    _, want = _export_and_compare(model_dir, tmp_path / "st", texts=[LONG, LONG + " and more", "short"])
    assert np.abs(want[0] - want[1]).max() == 0.0  # the cut text is the same, so is the vector


def test_no_prompt(tiny, tmp_path):
    _export_and_compare(_model_dir(tiny, tmp_path, prompt="{text}"), tmp_path / "st")


@pytest.mark.parametrize("prompt", [PROMPT, "{text}"])
def test_tokenizer_special_tokens_kept(tiny, tmp_path, prompt):
    model_dir = _model_dir(tiny, tmp_path, bos_eos=True, prompt=prompt, pooling="eos")
    before, after = Encoder.load(model_dir, device="cpu").template_ids()
    assert before[0] == 1 and after[-1] == 2  # <s> ... </s> around the prompt
    assert (model_dir / "chat_template.jinja").is_file()
    model, _ = _export_and_compare(model_dir, tmp_path / "st")
    assert not (tmp_path / "st" / "chat_template.jinja").exists()  # texts are never chat-formatted
    row = model.tokenize([LONG])["input_ids"][0].tolist()
    assert len(row) == 24 and row[: len(before)] == before and row[-len(after):] == after


def test_bidirectional_attention(tiny, tmp_path):
    bi_dir = _model_dir(tiny, tmp_path, pooling="eos", attention="bidirectional")
    _, bi = _export_and_compare(bi_dir, tmp_path / "st-bi")
    assert json.loads((tmp_path / "st-bi" / "config.json").read_text())["is_causal"] is False
    causal = Encoder.load(bi_dir, device="cpu")
    causal.settings.attention = "causal"
    assert np.abs(causal.encode(TEXTS) - bi).max() > 1e-3  # the export really is bidirectional


def test_refusals(tiny, tmp_path):
    model_dir = _model_dir(tiny, tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(Text2TokenError, match="not an empty directory"):
        export_sentence_transformers(model_dir, tmp_path / "full")
    long_prompt = _model_dir(tiny, tmp_path / "p", prompt=" ".join(["word"] * 30) + " {text}", max_length=8)
    with pytest.raises(Text2TokenError, match="leaves no room"):
        export_sentence_transformers(long_prompt, tmp_path / "st")
    assert not (tmp_path / "st").exists()


def _run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["text2token", *map(str, args)])
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr()


def test_cli_export(monkeypatch, capsys, tiny, tmp_path):
    model_dir = _model_dir(tiny, tmp_path, pooling="weighted_mean")
    code, cap = _run_cli(monkeypatch, capsys, "export", "--model", model_dir, "--format", "sentence-transformers",
                         "--output", tmp_path / "out")
    assert code == 0, cap.err
    got = st.SentenceTransformer(str(tmp_path / "out"), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert np.abs(got - Encoder.load(model_dir, device="cpu").encode(TEXTS)).max() <= 1e-5
    code, cap = _run_cli(monkeypatch, capsys, "export", "--model", model_dir, "--format", "onnx",
                         "--output", tmp_path / "out2")
    assert code == 2 and "unknown export format 'onnx'" in cap.err and "Traceback" not in cap.err
    assert not (tmp_path / "out2").exists()


def test_cli_export_of_an_unknown_pooling_is_one_line(monkeypatch, capsys, tiny, tmp_path):
    import json

    from helpers import assert_one_line_error, run_cli

    model_dir = _model_dir(tiny, tmp_path)
    meta = json.loads((model_dir / "text2token.json").read_text())
    meta["settings"]["pooling"] = "max"
    (model_dir / "text2token.json").write_text(json.dumps(meta))
    code, _, err = run_cli(monkeypatch, capsys, "export", "--model", model_dir, "--output", tmp_path / "st")
    assert_one_line_error(code, err, "unknown pooling 'max'")
    assert not (tmp_path / "st").exists()


def test_bf16_export_gives_the_bf16_encoders_vectors(tiny, tmp_path):
    model_dir = _model_dir(tiny, tmp_path, pooling="eos")
    export_sentence_transformers(model_dir, tmp_path / "st-bf16", precision="bf16")
    config = json.loads((tmp_path / "st-bf16" / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    got = st.SentenceTransformer(str(tmp_path / "st-bf16"), device="cpu").encode(TEXTS, convert_to_numpy=True)
    want = Encoder.load(model_dir, device="cpu", precision="bf16").encode(TEXTS)
    got = got.astype(np.float32)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.999 and np.allclose(got, want, rtol=2e-2, atol=2e-2), "equal up to bfloat16 rounding"
    with pytest.raises(Text2TokenError, match="precision int8 has no sentence-transformers form"):
        export_sentence_transformers(model_dir, tmp_path / "st-int8", precision="int8")
