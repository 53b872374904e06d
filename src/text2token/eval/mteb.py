"""An :class:`~text2token.model.encoder.Encoder` as an MTEB v2 model, and MTEB tasks built from in-memory data.

``mteb.evaluate(to_mteb(encoder), tasks)`` scores an encoder on any MTEB v2 task. Prompts: every text is wrapped
in a template containing ``{text}`` (the encoder's own ``settings.prompt`` unless ``prompts`` has a better match),
chosen with MTEB's usual priority (the same keys as sentence-transformers' ``prompts``):

1. ``"<task name>-query"`` / ``"<task name>-document"``
2. ``"<task name>"``
3. ``"<task type>-query"`` / ``"<task type>-document"`` (e.g. ``"Retrieval-query"``)
4. ``"<task type>"`` (e.g. ``"Classification"``, ``"STS"``, ``"Clustering"``)
5. ``"query"`` / ``"document"``

A template may also contain ``{instruction}``: it is replaced by the task's own instruction (``TaskMetadata.prompt``,
else the task type's default, e.g. *"Retrieve text based on user query."*).

``local_classification_task`` and ``local_retrieval_task`` (eval/mteb_tasks.py) build MTEB tasks from lists and
dicts held in memory (no download), so an offline evaluation suite can run through the same ``mteb.evaluate``.

This module imports ``mteb`` (``pip install 'text2token[mteb]'``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import mteb
import numpy as np
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models.abs_encoder import AbsEncoder, get_prompt
from mteb.models.model_meta import ModelMeta, ScoringFunction

from ..errors import Text2TokenError
from ..files import tensor_digest
from ..model.encoder import Encoder
from ..model.settings import check_prompt
from .mteb_tasks import LocalClassificationTask, LocalRetrievalTask, local_classification_task, local_retrieval_task

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

log = logging.getLogger(__name__)

MTEB_VERSION = mteb.__version__
# mteb datasets hold a few empty texts (e.g. untitled, empty corpus documents); Encoder.encode refuses those
EMPTY_TEXT = "."


# ------------------------------------------------------------------------------------------------- the model
class Text2TokenMTEB(AbsEncoder):
    """An MTEB v2 encoder (``mteb.models.EncoderProtocol``) over a text2token :class:`Encoder`.

    The wrapped encoder is never changed: a prompt other than its own is applied by a second ``Encoder`` that
    shares its model and tokenizer and has a copy of its settings with that prompt.
    """

    def __init__(self, encoder: Encoder, meta: ModelMeta, prompts: Mapping[str, str] | None = None,
                 batch_size: int = 32):
        self.model = encoder
        self.encoder = encoder
        self.mteb_model_meta = meta
        self.model_prompts = dict(prompts) if prompts else None
        self.batch_size = batch_size
        self._views: dict[str, Encoder] = {encoder.settings.prompt: encoder}

    def template_for(self, task_metadata: TaskMetadata, prompt_type: mteb.types.PromptType | None = None) -> str:
        """The ``{text}`` template used for this task and prompt type (``{instruction}`` already filled in)."""
        template = get_prompt(self.model_prompts, task_metadata, prompt_type) or self.encoder.settings.prompt
        if "{instruction}" in template:
            template = template.replace("{instruction}", self.get_instruction(task_metadata, prompt_type))
        return template

    def encoder_for(self, template: str) -> Encoder:
        """The encoder applying ``template``: the wrapped one for its own prompt, else a view sharing its model."""
        if template not in self._views:
            settings = self.encoder.settings.with_prompt(template)  # validates the template
            self._views[template] = Encoder(self.encoder.model, self.encoder.tokenizer, settings)
        return self._views[template]

    def encode(self, inputs: DataLoader, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str,
               prompt_type: mteb.types.PromptType | None = None, **kwargs: Any) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for batch in inputs for t in batch["text"]]
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            log.warning("%s: %d of %d texts are empty; encoded as %r", task_metadata.name, len(empty), len(texts),
                        EMPTY_TEXT)
            for i in empty:
                texts[i] = EMPTY_TEXT
        template = self.template_for(task_metadata, prompt_type)
        log.debug("%s %s/%s %s: %d texts with prompt %r", task_metadata.name, hf_subset, hf_split,
                  prompt_type.value if prompt_type else "-", len(texts), template)
        return self.encoder_for(template).encode(
            texts, batch_size=kwargs.get("batch_size") or self.batch_size,
            show_progress_bar=kwargs.get("show_progress_bar"))


def check_prompts(prompts: Mapping[str, str] | None) -> dict[str, str]:
    """Each prompt must be a string with ``{text}`` exactly once (keys: task names, task types, query/document)."""
    out = {}
    for key, template in (prompts or {}).items():
        out[str(key)] = check_prompt(template, f"prompt {key!r}")
    return out


def read_prompts(path) -> dict[str, str]:
    """A JSON file ``{prompt key: template with {text}}`` (``text2token mteb --prompts``), checked."""
    import json
    from pathlib import Path

    try:
        prompts = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:
        raise Text2TokenError(f"--prompts {path}: not valid JSON ({e})") from None
    if not isinstance(prompts, dict):
        raise Text2TokenError(f"--prompts {path}: expected a JSON object of prompt templates")
    return check_prompts(prompts)


def weights_hash(encoder: Encoder, extra: object = None) -> str:
    """12 hex digits of :func:`text2token.files.tensor_digest` over every weight of the model and ``extra``."""
    return tensor_digest(sorted(encoder.model.state_dict().items()), extra)[:12]


def model_meta(encoder: Encoder, name: str = "text2token/local", revision: str | None = None,
               prompts: Mapping[str, str] | None = None, **overrides: Any) -> ModelMeta:
    """MTEB metadata of an encoder: sizes from the model, max tokens and revision from the encoder.

    The revision (``revision=None``) hashes the weights, the encoder settings and ``prompts``, so MTEB's result
    cache never mixes results of a different model or prompt. ``overrides`` sets any other ``ModelMeta`` field
    (``license``, ``languages``, ``reference``, ``training_datasets``, ...).
    """
    if "/" not in name:
        raise Text2TokenError(f"MTEB model name {name!r} must look like 'organization/model_name'")
    prompts = check_prompts(prompts)
    params = list(encoder.model.parameters())
    n_parameters = sum(p.numel() for p in {id(p): p for p in params}.values())  # tied weights counted once
    embeddings = encoder.model.get_input_embeddings()
    fields = dict(
        loader=None,  # an in-memory encoder: to_mteb() is the loader
        name=name,
        revision=revision or weights_hash(encoder, {"settings": encoder.settings.to_dict(), "prompts": prompts}),
        release_date=datetime.date.today().isoformat(),
        languages=["eng-Latn"],
        n_parameters=n_parameters,
        n_embedding_parameters=embeddings.weight.numel() if embeddings is not None else None,
        memory_usage_mb=round(sum(p.numel() * p.element_size() for p in params) / 2**20, 1),
        max_tokens=encoder.settings.max_length,
        embed_dim=encoder.hidden_size,
        license=None,
        open_weights=True,
        public_training_code=None,
        public_training_data=None,
        framework=["PyTorch", "Transformers"],
        reference=None,
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=bool(prompts),
        training_datasets=set(),  # Wikipedia lead passages, no MTEB dataset
        adapted_from=getattr(encoder.model.config, "_name_or_path", None) or None,
        modalities=["text"],
        model_type=["dense"],
        experiment_kwargs=None,
    )
    unknown = set(overrides) - set(ModelMeta.model_fields)
    if unknown:
        raise Text2TokenError(f"unknown ModelMeta field(s): {', '.join(sorted(unknown))}")
    fields.update(overrides)
    return ModelMeta(**fields)


def to_mteb(encoder: Encoder, name: str = "text2token/local", *, revision: str | None = None,
            prompts: Mapping[str, str] | None = None, batch_size: int = 32, path: str | None = None,
            **meta_overrides: Any) -> Text2TokenMTEB:
    """``encoder`` as an MTEB v2 model: ``mteb.evaluate(to_mteb(encoder), tasks)``.

    ``prompts`` maps MTEB prompt keys (see the module doc) to ``{text}`` templates, e.g.
    ``{"query": 'Query: "{text}" means in one word: "', "Classification": ...}``; anything unmatched uses the
    encoder's own ``settings.prompt``. ``batch_size`` applies when mteb's ``encode_kwargs`` give none.
    ``path``: the directory the encoder was loaded from; it becomes the metadata's loader, so
    ``mteb.evaluate(model.mteb_model_meta, tasks)`` (or ``meta.load_model()``) loads it again.
    """
    prompts = check_prompts(prompts)
    if path is not None:
        meta_overrides = {"loader": load_mteb_model, "loader_kwargs": {"path": str(path), "prompts": prompts,
                                                                      "batch_size": batch_size}, **meta_overrides}
    meta = model_meta(encoder, name=name, revision=revision, prompts=prompts, **meta_overrides)
    return Text2TokenMTEB(encoder, meta, prompts=prompts, batch_size=batch_size)


def load_mteb_model(model_name: str, revision: str | None = None, *, path: str, device: str | None = None,
                    prompts: Mapping[str, str] | None = None, **kwargs: Any) -> Text2TokenMTEB:
    """An MTEB loader (``ModelMeta.loader``): loads a saved encoder directory and wraps it."""
    return to_mteb(Encoder.load(path, device=device), name=model_name, revision=revision, prompts=prompts,
                   path=path, **kwargs)


# ------------------------------------------------------------------------------------------------- running
def resolve_tasks(tasks: Sequence[str] | None = None, benchmark: str | None = None,
                  languages: Sequence[str] | None = ("eng",)) -> list:
    """MTEB tasks by name (kept to ``languages``, ISO 639-3; None = all) or a benchmark's tasks; one-line errors."""
    if (not tasks) == (benchmark is None):
        raise Text2TokenError("give either --tasks or --benchmark")
    if benchmark is not None:
        try:
            return list(mteb.get_benchmark(benchmark).tasks)
        except KeyError as e:
            raise Text2TokenError(f"unknown MTEB benchmark {benchmark!r}: {_key_error(e)}") from None
    names = [t.strip() for t in tasks if t.strip()]
    for task_name in names:  # one at a time, to name the bad one
        try:
            mteb.get_task(task_name)
        except KeyError:
            raise Text2TokenError(f"unknown MTEB task {task_name!r}{_suggest(task_name)}") from None
    return list(mteb.get_tasks(tasks=names, languages=list(languages) if languages else None))


def _suggest(task_name: str) -> str:
    import difflib

    from mteb.get_tasks import TASK_LIST

    names = sorted({t.metadata.name for t in TASK_LIST})
    low = task_name.lower()
    close = sorted((n for n in names if low in n.lower()),
                   key=lambda n: (n.lower() != low, not n.lower().startswith(low), len(n), n))
    close = close or difflib.get_close_matches(task_name, names, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close[:3])}?)" if close else ""


def _key_error(e: KeyError) -> str:
    msg = str(e.args[0]) if e.args else str(e)
    return msg.removeprefix("KeyError: ").replace("\n", " ").strip()


def run_mteb(model_dir: str, tasks: Sequence, output: str, *, name: str | None = None, batch_size: int = 32,
             prompts: Mapping[str, str] | None = None, overwrite: bool = False) -> list[dict]:
    """Evaluates a saved encoder on MTEB tasks; results go to ``output`` (mteb's result-cache layout).

    Tasks whose results are already in ``output`` for the same model revision are not run again unless
    ``overwrite``. Returns one row per task: task, type, metric, score (the main score).
    """
    from pathlib import Path

    model_dir = Path(model_dir)
    if name is None:
        run = model_dir.resolve()
        name = f"text2token/{run.parent.name if run.name == 'final' else run.name}"
    encoder = Encoder.load(model_dir)
    model = to_mteb(encoder, name=name, prompts=prompts, batch_size=batch_size, path=str(model_dir))
    cache = mteb.ResultCache(cache_path=output)
    results = mteb.evaluate(model, tasks, cache=cache, encode_kwargs={"batch_size": batch_size},
                            overwrite_strategy="always" if overwrite else "only-missing", raise_error=False)
    types = {t.metadata.name: (t.metadata.type, t.metadata.main_score) for t in tasks}
    rows = [{"task": r.task_name, "type": types.get(r.task_name, ("?", "?"))[0],
             "metric": types.get(r.task_name, ("?", "?"))[1], "score": float(r.get_score())}
            for r in results.task_results]
    for error in results.exceptions or []:  # a failed task does not stop the others
        log.error("%s failed: %s", error.task_name, error.exception)
        rows.append({"task": error.task_name, "type": types.get(error.task_name, ("?", "?"))[0],
                     "metric": "error", "score": float("nan"), "error": str(error.exception)})
    return rows


__all__ = [
    "LocalClassificationTask",
    "LocalRetrievalTask",
    "Text2TokenMTEB",
    "check_prompts",
    "load_mteb_model",
    "local_classification_task",
    "local_retrieval_task",
    "model_meta",
    "read_prompts",
    "resolve_tasks",
    "run_mteb",
    "to_mteb",
    "weights_hash",
]
