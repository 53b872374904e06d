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

``local_classification_task`` and ``local_retrieval_task`` build MTEB tasks from lists and dicts held in memory
(no download), so an offline evaluation suite can run through the same ``mteb.evaluate``.

This module imports ``mteb`` (``pip install 'text2token[mteb]'``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import mteb
import numpy as np
from datasets import Dataset, DatasetDict
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models.abs_encoder import AbsEncoder, get_prompt
from mteb.models.model_meta import ModelMeta, ScoringFunction

from ..errors import Text2TokenError
from ..files import tensor_digest
from ..model.encoder import Encoder
from ..model.settings import check_prompt

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


# ------------------------------------------------------------------------------------------------- local tasks
def _task_metadata(name: str, task_type: str, main_score: str, description: str, languages: Sequence[str],
                   prompt: str | dict | None) -> TaskMetadata:
    return TaskMetadata(
        name=name,
        description=description or f"{task_type} task {name} built from in-memory data.",
        dataset={"path": f"local/{name}", "revision": "local"},
        type=task_type,
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=list(languages),
        main_score=main_score,
        date=None,
        domains=None,
        task_subtypes=None,
        license="not specified",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
        prompt=prompt,
    )


class _LocalData:
    """Mix-in: ``load_data`` restores the in-memory dataset (mteb unloads a task's data after evaluating it)."""

    _local_dataset: Any = None

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        self.dataset = self._local_dataset
        self.data_loaded = True


class LocalClassificationTask(_LocalData, AbsTaskClassification):
    """A classification task over in-memory texts; build it with :func:`local_classification_task`."""


class LocalRetrievalTask(_LocalData, AbsTaskRetrieval):
    """A retrieval task over in-memory queries, corpus and qrels; build it with :func:`local_retrieval_task`."""


def _check_texts(texts: Sequence[str], what: str, name: str) -> list[str]:
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise Text2TokenError(f"task {name}: {what} {i} is not a non-empty string")
    return texts


def local_classification_task(
    name: str, train_texts: Sequence[str], train_labels: Sequence, test_texts: Sequence[str],
    test_labels: Sequence, *, description: str = "", languages: Sequence[str] = ("eng-Latn",),
    samples_per_label: int | None = None, n_experiments: int | None = None, main_score: str = "accuracy",
    prompt: str | None = None, seed: int = 42,
) -> LocalClassificationTask:
    """An MTEB ``Classification`` task: a logistic regression fitted on the embedded train texts, scored on test.

    Labels may be any hashable values (mapped to integers in sorted order). By default every training text is
    used once (``samples_per_label`` = the largest class, ``n_experiments=1``); MTEB's own tasks use 8 samples
    per label and 10 experiments. Main score: ``accuracy`` (also ``f1``, ``f1_weighted``, ...).
    ``prompt`` is the task's instruction (what ``{instruction}`` in a template becomes).
    """
    train_texts = _check_texts(train_texts, "train text", name)
    test_texts = _check_texts(test_texts, "test text", name)
    train_labels, test_labels = list(train_labels), list(test_labels)
    if len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels):
        raise Text2TokenError(f"task {name}: texts and labels differ in length")
    if not train_texts or not test_texts:
        raise Text2TokenError(f"task {name}: needs train and test texts")
    classes = sorted(set(train_labels) | set(test_labels), key=str)
    if len(set(train_labels)) < 2:
        raise Text2TokenError(f"task {name}: the train texts need at least two labels")
    index = {c: i for i, c in enumerate(classes)}
    largest = max(train_labels.count(c) for c in set(train_labels))
    dataset = {"default": DatasetDict({
        "train": Dataset.from_dict({"text": train_texts, "label": [index[c] for c in train_labels]}),
        "test": Dataset.from_dict({"text": test_texts, "label": [index[c] for c in test_labels]}),
    })}
    metadata = _task_metadata(name, "Classification", main_score, description, languages, prompt)
    cls = type(_class_name(name), (LocalClassificationTask,), {
        "metadata": metadata, "_local_dataset": dataset, "label_names": classes,
        "samples_per_label": samples_per_label or largest,
        "n_experiments": n_experiments or (1 if samples_per_label is None else 10),
    })
    return cls(seed=seed)


def local_retrieval_task(
    name: str, queries: Mapping[str, str], corpus: Mapping[str, str | Mapping[str, str]],
    qrels: Mapping[str, Mapping[str, int] | Sequence[str]], *, description: str = "",
    languages: Sequence[str] = ("eng-Latn",), main_score: str = "ndcg_at_10",
    k_values: Sequence[int] = (1, 3, 5, 10, 20, 100, 1000), prompt: str | dict | None = None,
) -> LocalRetrievalTask:
    """An MTEB ``Retrieval`` task: every query ranks the whole corpus by cosine similarity.

    ``queries``: ``{query_id: text}``; ``corpus``: ``{doc_id: text}`` or ``{doc_id: {"title": ..., "text": ...}}``
    (MTEB embeds ``title + " " + text``); ``qrels``: ``{query_id: {doc_id: relevance}}`` (relevance > 0 is
    relevant) or ``{query_id: [doc_id, ...]}``. Queries are encoded with ``prompt_type=query``, documents with
    ``document``. Main score ``ndcg_at_10`` (also ``map_at_k``, ``mrr_at_k``, ``recall_at_k``, ...).
    ``prompt`` is the task's instruction (a string, or ``{"query": ..., "document": ...}``).
    """
    qrels = {str(q): ({str(d): 1 for d in rel} if not isinstance(rel, Mapping) else
                      {str(d): int(s) for d, s in rel.items()}) for q, rel in qrels.items()}
    rows = []
    for doc_id, doc in corpus.items():
        doc = {"text": doc} if isinstance(doc, str) else dict(doc)
        _check_texts([doc.get("text", "")], "document", name)
        rows.append({"id": str(doc_id), "title": doc.get("title", "") or "", "text": doc["text"]})
    _check_texts(list(queries.values()), "query", name)
    missing_q = [q for q in qrels if q not in {str(k) for k in queries}]
    missing_d = [d for rel in qrels.values() for d in rel if d not in {r["id"] for r in rows}]
    if missing_q or missing_d:
        raise Text2TokenError(f"task {name}: qrels name unknown ids ({', '.join((missing_q + missing_d)[:5])})")
    if not any(s > 0 for rel in qrels.values() for s in rel.values()):
        raise Text2TokenError(f"task {name}: qrels mark no document relevant")
    split = RetrievalSplitData(
        queries=Dataset.from_list([{"id": str(q), "text": t} for q, t in queries.items()]),
        corpus=Dataset.from_list(rows),
        relevant_docs=qrels,
        top_ranked=None,
    )
    metadata = _task_metadata(name, "Retrieval", main_score, description, languages, prompt)
    cls = type(_class_name(name), (LocalRetrievalTask,), {
        "metadata": metadata, "_local_dataset": {"default": {"test": split}}, "k_values": tuple(k_values),
    })
    return cls()


def _class_name(name: str) -> str:
    return "Local_" + "".join(c if c.isalnum() else "_" for c in name)


__all__ = [
    "LocalClassificationTask",
    "LocalRetrievalTask",
    "Text2TokenMTEB",
    "check_prompts",
    "load_mteb_model",
    "local_classification_task",
    "local_retrieval_task",
    "model_meta",
    "resolve_tasks",
    "run_mteb",
    "to_mteb",
    "weights_hash",
]
