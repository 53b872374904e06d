"""MTEB v2 tasks built from in-memory data (no download): the offline suite and the tests run through mteb.evaluate.

This module imports ``mteb`` (``pip install 'text2token[mteb]'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset, DatasetDict
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata

from ..errors import Text2TokenError

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
