"""How an embedding is read from a backbone: the one definition of the encoder's settings and their defaults.

``ModelConfig`` (the ``model:`` section of a run config) takes its defaults and checks from here, and
``ModelConfig.encoder_settings()`` turns a config into these settings; a saved encoder stores them in
``text2token.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import Text2TokenError
from .attention import ATTENTION_MODES, check_attention
from .pooling import POOLINGS, check_pooling

DEFAULT_PROMPT = 'This sentence: "{text}" means in one word: "'
NO_PROMPT = "{text}"
MIN_LENGTH = 8


def check_prompt(prompt: str, what: str = "prompt") -> str:
    """A prompt template must hold ``{text}`` exactly once (the text goes there)."""
    if not isinstance(prompt, str) or prompt.count("{text}") != 1:
        raise Text2TokenError(f'{what} must contain "{{text}}" exactly once')
    return prompt


@dataclass
class EncoderSettings:
    """Pooling, attention, the prompt around each text, and the most tokens per input (prompt included)."""

    pooling: str = "eos"
    attention: str = "causal"
    prompt: str = DEFAULT_PROMPT
    max_length: int = 80

    def __post_init__(self):
        check_pooling(self.pooling)
        check_attention(self.attention)
        check_prompt(self.prompt)
        if not isinstance(self.max_length, int) or self.max_length < MIN_LENGTH:
            raise Text2TokenError(f"max_length must be an integer >= {MIN_LENGTH}, got {self.max_length!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderSettings":
        """From a saved ``text2token.json``; keys this version does not know are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise Text2TokenError(f"unknown encoder setting(s): {', '.join(unknown)}")
        return cls(**data)

    def with_prompt(self, prompt: str) -> "EncoderSettings":
        return replace(self, prompt=prompt)


__all__ = ["ATTENTION_MODES", "DEFAULT_PROMPT", "NO_PROMPT", "POOLINGS", "EncoderSettings", "check_prompt"]
