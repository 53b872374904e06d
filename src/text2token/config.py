"""Every setting of a run, validated: YAML files plus dotted ``key=value`` overrides.

Unknown keys and wrong types are refused with one line naming the key (see :func:`load_config`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import Text2TokenError
from .eval.split import HELDOUT_FRACTION
from .model.settings import DEFAULT_PROMPT, MIN_LENGTH, EncoderSettings, check_prompt
from .model.attention import check_attention
from .model.pooling import check_pooling

_ENCODER = EncoderSettings()  # the encoder's defaults, defined once in model/settings.py
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _as_value_error(check, value):
    """Runs a shared check inside a pydantic validator (which reports ValueErrors with the key's path)."""
    try:
        return check(value)
    except Text2TokenError as e:
        raise ValueError(str(e)) from None


class ModelConfig(_Strict):
    """The backbone and how an embedding is read from it (defaults: :class:`EncoderSettings`)."""

    backbone: str = "smollm2-135m"
    """A built-in alias (``smollm2-135m``), a transformers model directory, or a ``.gguf`` file."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attention: str = _ENCODER.attention
    """``causal`` or ``bidirectional`` (see model/attention.py)."""
    pooling: str = _ENCODER.pooling
    """A name from the pooling registry (model/pooling.py): ``mean``, ``eos``, ``weighted_mean``."""
    prompt: str = _ENCODER.prompt
    """Template around each text; ``{text}`` marks where it goes. ``"{text}"`` means no prompt."""
    max_length: int = Field(_ENCODER.max_length, ge=MIN_LENGTH)
    """Most tokens per input, prompt included; longer texts are cut (the text, never the prompt)."""
    trust_remote_code: bool = False

    @field_validator("attention")
    @classmethod
    def _attention(cls, v: str) -> str:
        return _as_value_error(check_attention, v)

    @field_validator("pooling")
    @classmethod
    def _pooling(cls, v: str) -> str:
        return _as_value_error(check_pooling, v)

    @field_validator("prompt")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        return _as_value_error(check_prompt, v)

    def encoder_settings(self) -> EncoderSettings:
        return EncoderSettings(pooling=self.pooling, attention=self.attention, prompt=self.prompt,
                               max_length=self.max_length)


class DataConfig(_Strict):
    corpus: str = "wiki"
    """``wiki`` (Wikipedia lead extracts split into passages), a .txt / .jsonl / .csv / .tsv / .parquet file, a
    folder of .txt files (one text per file) or a ``datasets`` folder written by ``save_to_disk``."""
    text_field: str = Field("text", min_length=1)
    """The field (.jsonl) or column (.csv, .tsv, .parquet, datasets) that holds the text."""
    max_texts: int | None = Field(None, ge=1)
    passage_words: int = Field(40, ge=4)
    """``wiki`` only: sentences are grouped into passages of at most about this many words."""
    heldout_fraction: float = Field(HELDOUT_FRACTION, ge=0.0, lt=1.0)
    """``wiki`` only: the share of articles kept out of training for the before/after score."""
    skip_bad_lines: bool = False
    seed: int = 0


class DataDrivenConfig(_Strict):
    """Targets from the tokens of the text itself (see README: data-driven formula)."""

    top_k: int = Field(32, ge=1)
    tf: Literal["raw", "log", "binary"] = "log"
    idf: Literal["none", "smooth", "bm25"] = "smooth"
    min_df: int = Field(2, ge=1)
    """Drop tokens found in fewer training texts than this."""
    max_df: float = Field(0.5, gt=0.0, le=1.0)
    """Drop tokens found in more than this share of training texts."""
    remove_special: bool = True
    remove_stopwords: bool = True
    keep_stopwords: list[str] = []
    """Stop words that stay possible targets although ``remove_stopwords`` is on (case-insensitive), e.g. the
    negations and hedges that carry sentiment and certainty: ``[not, no, never, nothing, may, might, could]``."""
    remove_punctuation: bool = True
    remove_fragments: bool = True
    """Drop sub-word pieces that continue a word (no leading space) and tokens shorter than ``min_chars``."""
    min_chars: int = Field(2, ge=1)
    power: float = Field(1.0, gt=0.0)
    """Weights are raised to this power before normalising (< 1 flattens, > 1 sharpens)."""
    whole_words: bool = False
    """Count a token only where it is a whole word: the next token does not continue it (the first piece
    ' Se' of ' Seismic' is no target)."""


# PromptEOL's, and one whose next token is a space-prefixed word (configs/probes/v2/lr5-two-prompts*.yaml: +0.24 on dev)
DEFAULT_TARGET_PROMPTS = (DEFAULT_PROMPT, 'This passage: "{text}" is about')


class ModelDerivedConfig(_Strict):
    """Targets from the backbone's own predictions (see README: model-derived formula)."""

    source: Literal["prompt", "stage1"] = "prompt"
    """``prompt``: the frozen backbone's next token after ``prompt``; ``stage1``: the LM-head decoding of
    the model's own embeddings at the start of the stage (i.e. after stage 1)."""
    prompt: str | list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_PROMPTS))
    """The summarising prompt of ``source: prompt`` (its next-token distribution is the target), or several:
    then the target is the mean of each prompt's top-k distribution, cut to ``top_k`` again."""
    top_k: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    filter_vocab: bool = True
    """Apply the data-driven vocabulary filter (special, stop-word, punctuation, fragment) first."""
    mix_data: float = Field(0.5, ge=0.0, le=1.0)
    """Weight of the data-driven target in the mixture (0 = model-derived only)."""
    word_starts: bool = False
    """Map each predicted token without a leading space to its space-prefixed twin ('Sh' -> ' Sh') and merge
    them, so model-derived and data-driven targets use one token family."""

    @field_validator("prompt")
    @classmethod
    def _has_slot(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str):
            return _as_value_error(check_prompt, v)
        if not v:
            raise ValueError("give at least one prompt")
        return [_as_value_error(check_prompt, p) for p in v]

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TargetsConfig(_Strict):
    data_driven: DataDrivenConfig = DataDrivenConfig()
    model_derived: ModelDerivedConfig = ModelDerivedConfig()
    shard_size: int = Field(4096, ge=1)
    batch_size: int = Field(32, ge=1)
    """Batch size of the forward passes that build model-derived targets."""


class StageConfig(_Strict):
    name: str
    objective: str = "kl"
    """A name from the objective registry (training/objectives.py): ``kl`` (Text2Token: KL to the stage's target
    distribution), ``kl_contrastive`` (KL + in-batch contrast over the targets, beyond the paper), ``kl_simcse``
    (KL + SimCSE between two dropout views, beyond the paper), or the baselines ``simcse`` (unsupervised SimCSE)
    and ``mntp`` (LLM2Vec's masked next-token prediction)."""
    targets: Literal["data", "model"] | None = None
    """Objectives with targets (``kl``): data-driven or model-derived targets."""
    steps: int = Field(ge=1)
    lr: float | None = Field(None, gt=0.0)
    warmup_steps: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _targets(self) -> "StageConfig":
        from .training.objectives import OBJECTIVES  # imports torch: only when a config is validated

        if self.objective not in OBJECTIVES:
            raise ValueError(f"stage {self.name!r}: unknown objective {self.objective!r} "
                             f"(choose from {', '.join(OBJECTIVES)})")
        needs = OBJECTIVES[self.objective].needs_targets
        if needs and self.targets is None:
            raise ValueError(f"stage {self.name!r}: objective {self.objective} needs targets: data or model")
        if not needs and self.targets is not None:
            raise ValueError(f"stage {self.name!r}: objective {self.objective} takes no targets")
        return self


class TrainConfig(_Strict):
    method: Literal["top_layers", "lora", "full"] = "top_layers"
    top_layers: int = Field(8, ge=1)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_target_modules: str | list[str] = "all-linear"
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(10, ge=0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    seed: int = 0
    simcse_temperature: float = Field(0.05, gt=0.0)
    simcse_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    """Attention dropout during ``simcse`` and ``kl_simcse`` stages (decoder LLMs ship with none; it makes the two
    views differ)."""
    mntp_mask_prob: float = Field(0.2, gt=0.0, lt=1.0)
    contrastive_weight: float = Field(1.0, ge=0.0)
    """The weight of the contrast term beside the KL: the target contrast (``kl_contrastive``) or SimCSE
    (``kl_simcse``, which takes ``simcse_temperature`` and ``simcse_dropout``)."""
    contrastive_temperature: float = Field(1.0, gt=0.0)
    checkpoint_every: int = Field(50, ge=1)
    log_every: int = Field(10, ge=1)
    threads: int | None = Field(None, ge=1)
    autocast: Literal["auto", "none", "bf16"] = "auto"
    """``bf16``: forward passes under ``torch.autocast`` in bfloat16, with float32 master weights, optimizer and
    loss (``benchmarks/train_step.py`` measures it); ``auto``: ``bf16`` where the device runs it natively (a CPU
    with avx512_bf16 / AMX, a CUDA GPU), else ``none``."""
    frozen_cache: Literal["none", "float16", "bfloat16", "float32"] = "float16"
    """``top_layers`` only: keep the hidden states entering the first trainable layer of every text the frozen
    bottom has run on, in this dtype, and run later steps over the same text through the top layers alone
    (training/frozen_cache.py). ``none``: off."""
    frozen_cache_gb: float = Field(4.0, gt=0.0)
    """The cache stops growing at this size on disk."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (``model.gradient_checkpointing_enable()``):
    less memory for large backbones, about a third more compute."""


class EvalConfig(_Strict):
    enabled: bool = True
    articles: int = Field(500, ge=10)
    """Held-out Wikipedia articles used by the before/after score."""
    batch_size: int = Field(32, ge=1)
    every: int | None = Field(None, ge=1)
    """Every this many global steps, log the co-optimisation probe (vocabulary space: KL and top-k token overlap
    with the data-driven targets of held-out passages; representation space: held-out retrieval nDCG@10)."""
    probe_articles: int = Field(100, ge=10)
    """Held-out (dev) articles the probe uses."""


class Config(_Strict):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    targets: TargetsConfig = TargetsConfig()
    stages: list[StageConfig] = Field(
        default_factory=lambda: [
            StageConfig(name="data-driven", targets="data", steps=150),
            StageConfig(name="model-derived", targets="model", steps=150),
        ]
    )
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    output_dir: str = "runs/default"

    @model_validator(mode="after")
    def _stages(self) -> "Config":
        if not self.stages:
            raise ValueError("stages: at least one stage is needed")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: names must be unique, got {names}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = tree
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise Text2TokenError(f"override {dotted!r}: {'.'.join(keys[:i])} has no item {key}")
            key = int(key)
        elif not isinstance(node, dict):
            raise Text2TokenError(f"override {dotted!r}: {'.'.join(keys[:i])} is not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        if "=" not in item:
            raise Text2TokenError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-4)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise Text2TokenError(f"override {item!r} has no key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if "{text}" in raw:  # a prompt template: YAML would read "{text}" as a mapping
            value = raw
        if isinstance(value, str):  # YAML reads 1e-4 as a string; numbers are numbers here
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                pass
        out.append((key, value))
    return out


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        msg = f"unknown key {loc!r}"
    else:
        got = first.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        msg = f"{loc}: {first['msg']}{got_s}"
    more = len(err.errors()) - 1
    return f"{source}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise Text2TokenError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise Text2TokenError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise Text2TokenError(f"{path}: expected a mapping of settings at the top level")
    return loaded


def _merge(tree: dict, changes: dict, where: str) -> None:
    """Applies ``changes`` to ``tree`` in place: mappings merge key by key, other values replace, and a dotted
    key (``stages.1.targets: data``) sets one value as an override would."""
    for key, value in changes.items():
        if isinstance(key, str) and "." in key:
            if key.startswith("stages.") and "stages" not in tree:
                tree["stages"] = Config().to_dict()["stages"]
            _set_dotted(tree, key, value)
        elif isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value, f"{where}.{key}")
        else:
            tree[key] = copy.deepcopy(value)


def _read_tree(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's settings with its ``base:`` file (relative to it) applied underneath, recursively."""
    path = path.resolve()
    if path in chain:
        raise Text2TokenError(f"{chain[0]}: config files name each other as base ({path.name} again)")
    tree = _read_yaml(path)
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise Text2TokenError(f"{path}: base must be a config file path, got {base!r}")
    merged = _read_tree(path.parent / base, (*chain, path))
    _merge(merged, tree, str(path))
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Reads a YAML config (default: ``configs/default.yaml``) and applies ``key=value`` overrides.

    A config may start from another one: ``base: ../default.yaml`` (relative to the file), then only the
    settings it changes, nested (``model: {pooling: mean}``) or dotted (``stages.1.targets: data``).
    """
    if path is None:
        path = CONFIG_DIR / "default.yaml"
        if not path.exists():  # installed without the repo checkout: built-in defaults
            path = None
    tree: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        tree = _read_tree(Path(path))
    for key, value in parse_overrides(overrides or []):
        if key.startswith("stages.") and "stages" not in tree:
            tree["stages"] = Config().to_dict()["stages"]
        _set_dotted(tree, key, value)
    if overrides:
        source = f"{source} (with overrides)"
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise Text2TokenError(_format_validation_error(e, source)) from None


def save_config(cfg: Config, path: Path) -> None:
    from .files import atomic_write

    data = yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
