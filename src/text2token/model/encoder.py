"""The embedder: backbone + pooling + token head, with encode / explain / save / load."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import LazyTexts
from ..errors import Text2TokenError
from ..files import atomic_dir
from .attention import attention_mode, set_attention
from .backbone import decoder_of, ensure_pad_token, load_backbone
from .pooling import pool
from .precision import PRECISIONS, apply_precision, check_precision, resolve_precision
from .settings import EncoderSettings

log = logging.getLogger(__name__)

SETTINGS_FILE = "text2token.json"
FORMAT_VERSION = 1


def check_texts(texts: Sequence[str], what: str = "text") -> list[str]:
    if isinstance(texts, str):
        raise Text2TokenError("expected a list of texts, got a single string (wrap it in a list)")
    if isinstance(texts, LazyTexts):  # every text was checked when the corpus was opened; kept on disk
        return texts
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise Text2TokenError(f"{what} {i} is a {type(t).__name__}, not a string")
        if not t.strip():
            raise Text2TokenError(f"{what} {i} is empty or whitespace-only")
    return out


class Encoder:
    """A Text2Token embedder. ``Encoder.load(dir).encode(texts)`` returns float32 numpy vectors."""

    def __init__(self, model, tokenizer, settings: EncoderSettings | None = None, device: str | None = None,
                 target_vocab: dict | None = None, precision: str = "fp32"):
        self.model = model  # a *ForCausalLM (possibly with LoRA layers injected in place)
        self.tokenizer = ensure_pad_token(tokenizer, getattr(model.config, "_name_or_path", "") or "the model")
        self.settings = settings or EncoderSettings()
        # the vocabulary filter the training targets used (targets.vocab.TargetVocab as a dict); search reuses it
        self.target_vocab = target_vocab
        if precision not in PRECISIONS:
            raise Text2TokenError(f"Encoder: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision  # how ``model`` was converted for inference (model/precision.py)
        set_attention(self.model, self.settings.attention)
        if device is not None:
            self.model.to(device)
        self._prefix, self._suffix = self.settings.prompt.split("{text}")
        self._template = None
        self._told_truncation = False

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_backbone(
        cls, spec: str, settings: EncoderSettings | None = None, dtype: str = "float32",
        trust_remote_code: bool = False, device: str | None = None,
    ) -> "Encoder":
        model, tokenizer = load_backbone(spec, dtype=dtype, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, settings, device=device or default_device())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, dtype: str | None = None,
             trust_remote_code: bool = False, precision: str = "fp32") -> "Encoder":
        """A saved encoder; ``precision`` (fp32, bf16, int8, auto) converts it for inference (model/precision.py)."""
        check_precision(precision)
        path = Path(path)
        if not path.exists():
            raise Text2TokenError(f"model path not found: {path}")
        settings_file = path / SETTINGS_FILE
        if not settings_file.is_file():
            raise Text2TokenError(f"{path}: not a text2token model directory (no {SETTINGS_FILE})")
        try:
            meta = json.loads(settings_file.read_text(encoding="utf-8"))
            settings = EncoderSettings.from_dict(meta["settings"])
        except (ValueError, KeyError, TypeError, AttributeError, Text2TokenError) as e:
            raise Text2TokenError(f"{settings_file}: unreadable settings ({e})") from None
        if precision == "int8" and device is not None and not str(device).startswith("cpu"):
            raise Text2TokenError(f"precision int8 runs on the CPU only (torch's dynamic int8 kernels), not {device}")
        device = device or default_device()
        precision = resolve_precision(precision, device)
        if precision != "fp32":
            dtype = "float32"  # converted below, from the weights as saved
        model, tokenizer = load_backbone(str(path), dtype=dtype or meta.get("dtype", "float32"),
                                         trust_remote_code=trust_remote_code)
        if precision == "int8":
            device = "cpu"  # the default device may be a GPU; torch's dynamic int8 kernels run on the CPU
        model = apply_precision(model, precision)
        return cls(model, tokenizer, settings, device=device, precision=precision,
                   target_vocab=meta.get("target_vocab"))  # absent in models saved before it was recorded

    def save(self, path: str | os.PathLike, extra: dict | None = None, run_dir: str | os.PathLike | None = None
             ) -> Path:
        """Writes a self-describing directory: transformers weights + tokenizer + ``text2token.json`` + a model
        card (``README.md``, with the recipe and scores of ``run_dir`` when given: model/card.py)."""
        from .card import write_card

        if self.precision != "fp32":
            raise Text2TokenError(f"this encoder was converted to {self.precision} for inference; save the fp32 "
                                  "model and load it with precision=...")
        path = Path(path)
        with atomic_dir(path) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            meta = {
                "format_version": FORMAT_VERSION,
                "settings": self.settings.to_dict(),
                "dtype": str(self.model.dtype).replace("torch.", ""),
                **({"target_vocab": self.target_vocab} if self.target_vocab is not None else {}),
                **(extra or {}),
            }
            (tmp / SETTINGS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            write_card(tmp, meta, Path(run_dir) if run_dir is not None else None)
        return path

    # ---------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def base(self):
        """The decoder without its LM head (``model.model`` for Llama/Qwen2/Gemma3)."""
        return decoder_of(self.model)

    @property
    def lm_head(self):
        return self.model.get_output_embeddings()

    @property
    def hidden_size(self) -> int:
        return self.lm_head.weight.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.lm_head.weight.shape[0]

    # ---------------------------------------------------------------- tokenisation
    def template_ids(self) -> tuple[list[int], list[int]]:
        """Token ids around every text: (special head + prompt prefix, prompt suffix + special tail).

        The prompt's two halves are tokenised on their own and the text between them, so a text's tokens never
        depend on the prompt and truncation cuts the text alone. The special tokens the tokenizer adds (BOS,
        EOS, ...) are found by tokenising a probe with and without them.
        """
        if getattr(self, "_template", None) is None:
            tok = self.tokenizer
            probe = tok("x", add_special_tokens=False)["input_ids"]
            full = tok("x", add_special_tokens=True)["input_ids"]
            at = next((i for i in range(len(full) - len(probe) + 1) if full[i:i + len(probe)] == probe), None)
            head, tail = (full[:at], full[at + len(probe):]) if at is not None else ([], [])
            piece = lambda s: tok(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
            self._template = (head + piece(self._prefix), piece(self._suffix) + tail)
        return self._template

    def tokenize(self, texts: Sequence[str]) -> tuple[dict[str, torch.Tensor], int]:
        """Tokenises with the prompt around each text; over-long texts are cut, never the prompt.

        Returns the right-padded batch and how many texts were truncated.
        """
        before, after = self.template_ids()
        budget = max(1, self.settings.max_length - len(before) - len(after))
        text_ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        truncated = sum(len(r) > budget for r in text_ids)
        rows = [before + r[:budget] + after for r in text_ids]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}, truncated

    # ---------------------------------------------------------------- forward
    def states(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
               inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden state of every token [B, T, H] under this encoder's attention mode (from
        ``inputs_embeds`` instead of ``input_ids`` when given: see model/partial.py)."""
        if attention_mode(self.model) != self.settings.attention:  # encoders may share one model
            set_attention(self.model, self.settings.attention)
        return self.base(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                         use_cache=False).last_hidden_state

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled embeddings [B, H] (differentiable; used by training)."""
        return pool(self.states(input_ids, attention_mask, inputs_embeds), attention_mask, self.settings.pooling)

    def token_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """The LM head applied to pooled embeddings: logits over the vocabulary, float32 [B, V]."""
        logits = self.lm_head(pooled.to(self.lm_head.weight.dtype)).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _batches(self, texts: list[str], batch_size: int, show_progress_bar: bool | None, desc: str):
        order = np.argsort([-len(t) for t in texts], kind="stable")
        show = len(texts) >= 512 if show_progress_bar is None else show_progress_bar
        truncated = 0
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not show, unit="batch"):
            idx = order[start : start + batch_size]
            batch, n_cut = self.tokenize([texts[i] for i in idx])
            truncated += n_cut
            yield idx, {k: v.to(self.device) for k, v in batch.items()}
        if truncated and not self._told_truncation:  # said once per encoder, not once per batch or call
            self._told_truncation = True
            log.warning("%d of %d texts were longer than max_length=%d tokens and were truncated "
                        "(later truncations by this encoder are not reported)",
                        truncated, len(texts), self.settings.max_length)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize: bool = False,
               show_progress_bar: bool | None = None, return_token_counts: bool = False, out=None):
        """Embeds ``texts`` -> float32 array (n, hidden). Batches are length-sorted, padded per batch.
        ``return_token_counts``: also each text's token count with the prompt, as ``(vectors, counts)``.
        ``out``: a float32 (n, hidden) array (e.g. a memory map) written batch by batch and returned."""
        texts = check_texts(texts)
        if out is None:
            out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        elif out.shape != (len(texts), self.hidden_size) or out.dtype != np.float32:
            raise Text2TokenError(
                f"out: expected float32 {(len(texts), self.hidden_size)}, got {out.dtype} {out.shape}")
        counts = np.zeros(len(texts), dtype=np.int64)
        self.model.eval()
        for idx, batch in (self._batches(texts, batch_size, show_progress_bar, "encode") if texts else ()):
            pooled = self.forward(**batch).float()
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.cpu().numpy()
            counts[idx] = batch["attention_mask"].sum(1).cpu().numpy()
        return (out, counts.tolist()) if return_token_counts else out

    @torch.inference_mode()
    def token_distribution(self, texts: Sequence[str], batch_size: int = 32, top_k: int = 32,
                           temperature: float = 1.0, show_progress_bar: bool | None = None,
                           vocab_mask: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of softmax(token_logits / temperature) per text -> (ids int32 [n,k], probs float32 [n,k]).

        ``vocab_mask`` (bool [V], True = allowed) removes tokens before the top-k; the kept probabilities
        are renormalised to sum to 1.
        """
        texts = check_texts(texts)
        k = min(top_k, self.vocab_size)
        ids = np.zeros((len(texts), k), dtype=np.int32)
        probs = np.zeros((len(texts), k), dtype=np.float32)
        self.model.eval()
        for idx, batch in self._batches(texts, batch_size, show_progress_bar, "token targets"):
            logits = self.token_logits(self.forward(**batch)) / temperature
            logp = torch.log_softmax(logits, dim=-1)
            if vocab_mask is not None:
                logp = logp.masked_fill(~vocab_mask.to(logp.device), float("-inf"))
            top = logp.topk(k, dim=-1)
            p = top.values.exp()
            p = p / p.sum(-1, keepdim=True).clamp(min=1e-30)
            ids[idx] = top.indices.cpu().numpy().astype(np.int32)
            probs[idx] = torch.nan_to_num(p).cpu().numpy()
        return ids, probs

    @torch.inference_mode()
    def explain(self, text: str | np.ndarray, top_k: int = 10) -> list[tuple[str, float]]:
        """Top tokens (decoded strings, probabilities) of a text's or an embedding's vocabulary distribution."""
        if isinstance(text, str):
            batch, _ = self.tokenize(check_texts([text]))
            pooled = self.forward(**{k: v.to(self.device) for k, v in batch.items()})
        else:
            pooled = torch.as_tensor(np.asarray(text, dtype=np.float32), device=self.device).reshape(1, -1)
        probs = torch.softmax(self.token_logits(pooled), dim=-1)[0]
        top = probs.topk(min(top_k, probs.numel()))
        return [(self.tokenizer.decode([i]), float(p)) for i, p in zip(top.indices.tolist(), top.values.tolist())]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
