"""Export a trained encoder as a standard sentence-transformers directory (no custom code).

The directory holds three modules, each a stock sentence-transformers class:

- ``Transformer``: the backbone's decoder (``AutoModel`` loads it) and the tokenizer. The prompt is baked into the
  tokenizer's post-processor (a ``TemplateProcessing`` whose two special "tokens" carry the prompt's token ids), so
  plain tokenisation yields ``head + prefix + text + suffix + tail`` exactly as :meth:`Encoder.tokenize` does, and
  truncation at ``max_seq_length`` cuts the text only. Bidirectional attention is ``is_causal: false`` in
  ``config.json``, which transformers (>= 5.2) reads for both the mask and the attention kernels.
- ``Pooling``: the sentence-transformers mode the pooling registry names (``model/pooling.py``): ``mean`` ->
  mean, ``eos`` -> lasttoken, ``weighted_mean`` -> weightedmean (weights 1..n over the right-padded tokens).

``SentenceTransformer(out_dir).encode(texts)`` then equals ``Encoder.load(model_dir).encode(texts)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import Text2TokenError
from ..files import atomic_dir
from ..model.card import run_dir_of, write_card
from ..model.pooling import POOLINGS

FORMATS = ("sentence-transformers",)
EXPORT_PRECISIONS = ("fp32", "bf16")
_PREFIX, _SUFFIX = "[T2T_PROMPT_PREFIX]", "[T2T_PROMPT_SUFFIX]"
_PROBES = ("a", "the cat sat on the mat", "Zebra, giraffe & 42 élans!")


def _template_processor(encoder):
    """A tokenizers post-processor that wraps every text in the encoder's prompt and special tokens."""
    from tokenizers.processors import TemplateProcessing

    before, after = encoder.template_ids()
    head, tail = [f"{_PREFIX}:0"] if before else [], [f"{_SUFFIX}:0"] if after else []
    specials = [{"id": name, "ids": list(ids), "tokens": encoder.tokenizer.convert_ids_to_tokens(list(ids))}
                for name, ids in ((_PREFIX, before), (_SUFFIX, after)) if ids]
    single, pair = [*head, "$A:0", *tail], [*head, "$A:0", "$B:1", *tail]
    return TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def _write_tokenizer(encoder, out: Path) -> None:
    """Saves the tokenizer with the prompt in its post-processor, right padding and model_max_length."""
    from tokenizers import Tokenizer

    encoder.tokenizer.save_pretrained(out)
    tok_file = out / "tokenizer.json"
    if not tok_file.is_file():
        raise Text2TokenError("export needs a fast tokenizer (tokenizer.json); this model's tokenizer has none")
    backend = Tokenizer.from_file(str(tok_file))
    backend.post_processor = _template_processor(encoder)
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(tok_file))
    cfg_file = out / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
    for key in ("add_bos_token", "add_eos_token"):  # would make some tokenizer classes rebuild the post-processor
        cfg.pop(key, None)
    cfg.pop("chat_template", None)  # the prompt is in the post-processor; a chat template would wrap texts twice
    for name in ("chat_template.jinja", "chat_template.json"):
        (out / name).unlink(missing_ok=True)
    cfg.update(model_max_length=encoder.settings.max_length, padding_side="right", truncation_side="right")
    cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")


def _check_tokenizer(encoder, out: Path) -> None:
    """Refuses the export unless the saved tokenizer reproduces Encoder.tokenize (ids, mask, truncation)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    long_text = " ".join(["the cat sat on the mat"] * (encoder.settings.max_length // 2 + 4))
    texts = [*_PROBES, long_text]
    want, _ = encoder.tokenize(texts)
    got = tok(texts, padding=True, truncation=True, max_length=encoder.settings.max_length, return_tensors="pt")
    if got["input_ids"].shape != want["input_ids"].shape or not (
        (got["input_ids"] == want["input_ids"]).all() and (got["attention_mask"] == want["attention_mask"]).all()
    ):
        raise Text2TokenError("export: the exported tokenizer does not reproduce the encoder's token ids")


def _pooling_config(encoder) -> dict:
    """sentence-transformers' Pooling config: the flag the pooling registry names for this pooling."""
    st_mode = POOLINGS[encoder.settings.pooling].st_mode
    if st_mode is None:
        raise Text2TokenError(f"export: pooling {encoder.settings.pooling!r} has no sentence-transformers equivalent")
    flags = {"pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
             *(p.st_mode for p in POOLINGS.values() if p.st_mode)}
    modes = {flag: False for flag in sorted(flags)}
    modes[st_mode] = True
    return {"word_embedding_dimension": encoder.hidden_size, **modes, "include_prompt": True}


def _st_files(encoder) -> dict[str, dict | list]:
    """The sentence-transformers config files, keyed by their path in the export directory."""
    import torch
    import transformers

    try:
        from sentence_transformers import __version__ as st_version
    except ImportError:
        st_version = "3.0.0"
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
        "sentence_bert_config.json": {"max_seq_length": encoder.settings.max_length, "do_lower_case": False},
        "1_Pooling/config.json": _pooling_config(encoder),
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            "__version__": {"sentence_transformers": st_version, "transformers": transformers.__version__,
                            "pytorch": torch.__version__.split("+")[0]},
            "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine",
        },
    }


def _check_settings(encoder) -> None:
    """Refuses settings that the exported tokenizer cannot reproduce."""
    before, after = encoder.template_ids()
    if len(before) + len(after) >= encoder.settings.max_length:
        raise Text2TokenError(f"export: the prompt is {len(before) + len(after)} tokens, which leaves no room for "
                              f"text within max_length={encoder.settings.max_length}")


def export_sentence_transformers(model_dir: str | os.PathLike, out_dir: str | os.PathLike,
                                 precision: str = "fp32") -> Path:
    """Writes ``out_dir``, a sentence-transformers model giving the same vectors as ``Encoder.load(model_dir,
    precision=precision)``. ``bf16`` saves bfloat16 weights (transformers loads them as such); int8 has no
    equivalent in the format."""
    from ..model.encoder import SETTINGS_FILE, Encoder
    from ..model.precision import resolve_precision

    precision = resolve_precision(precision, "cpu")
    if precision not in EXPORT_PRECISIONS:
        raise Text2TokenError(f"export: precision {precision} has no sentence-transformers form "
                              f"(choose from {', '.join(EXPORT_PRECISIONS)})")
    encoder = Encoder.load(model_dir, device="cpu", precision=precision)
    _check_settings(encoder)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Text2TokenError(f"export: {out} already exists and is not an empty directory")
    with atomic_dir(out) as tmp:
        encoder.base.save_pretrained(tmp, safe_serialization=True)  # config.json keeps is_causal
        _write_tokenizer(encoder, tmp)
        _check_tokenizer(encoder, tmp)
        for name, content in _st_files(encoder).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
        meta = json.loads((Path(model_dir) / SETTINGS_FILE).read_text(encoding="utf-8"))
        meta["dtype"] = "bfloat16" if precision == "bf16" else "float32"
        write_card(tmp, meta, run_dir_of(model_dir), kind="sentence-transformers")
    return out


def export(model_dir: str | os.PathLike, out_dir: str | os.PathLike, fmt: str = "sentence-transformers",
           precision: str = "fp32") -> Path:
    """Exports ``model_dir`` to ``out_dir`` in format ``fmt`` (one of :data:`FORMATS`) and ``precision``."""
    if fmt not in FORMATS:
        raise Text2TokenError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    return export_sentence_transformers(model_dir, out_dir, precision)
