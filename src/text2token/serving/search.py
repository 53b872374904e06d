"""Search a corpus with a trained encoder: dense (faiss), sparse vocabulary (CSR), hybrid, and a BM25 baseline.

An index directory holds::

    manifest.json   format version, model directory, settings, counts, file names
    texts.jsonl     the indexed texts, one {"id", "text"} per line
    dense.faiss     L2-normalised pooled embeddings in a faiss inner-product index (flat = exact cosine)
    sparse.npz      [n_texts, vocab] scipy CSR matrix (scipy.sparse.save_npz, no pickle): each text's top-k
                    vocabulary weights from the token head
    bm25/           a bm25s index of the same texts (json + npy, no pickle)

Sparse weights are the token head's raw softmax probabilities ``p(t | text) = softmax(LM_head(pooled))``
after the target vocabulary filter the model was trained with (``targets.vocab.TargetVocab``: special tokens,
punctuation, stop words, short tokens removed), top ``sparse_top_k`` kept, *not* renormalised: a confident text
keeps large weights, a vague one small ones, and ``score(q, d) = sum_t p(t | q) p(t | d)`` over shared tokens is
comparable across documents.
Dense and sparse vectors come from the same forward pass.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse as sp

from ..errors import Text2TokenError
from ..files import atomic_dir
from .ranking import Hit, bm25_tokenize, build_bm25, reciprocal_rank_fusion, top_k_rows, weighted_fusion
from .vectors import embed, sparse_mask

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TEXTS = "texts.jsonl"
DENSE = "dense.faiss"
SPARSE = "sparse.npz"
BM25_DIR = "bm25"
MODES = ("dense", "sparse", "hybrid", "bm25")
DENSE_INDEXES = ("flat", "ivf", "hnsw")
FUSIONS = ("rrf", "weighted")
HYBRID_DEPTH = 100  # candidates taken from each list before fusion


@dataclass
class IndexSettings:
    """How an index is built (all stored in the manifest)."""

    sparse_top_k: int = 128
    dense_index: str = "flat"
    vocab_filter: bool = True
    ivf_nlist: int | None = None  # None: about 4 * sqrt(n), at most n / 39 (faiss's training minimum)
    ivf_nprobe: int = 16
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    bm25_k1: float = 1.5
    bm25_b: float = 0.75

    def __post_init__(self):
        if self.dense_index not in DENSE_INDEXES:
            raise Text2TokenError(f"unknown dense index {self.dense_index!r} (choose from {', '.join(DENSE_INDEXES)})")
        if self.sparse_top_k < 1:
            raise Text2TokenError(f"sparse_top_k must be >= 1, got {self.sparse_top_k}")


# ---------------------------------------------------------------- dense index
def build_dense_index(vectors: np.ndarray, settings: IndexSettings):
    """A faiss inner-product index over unit vectors: flat (exact), IVF-flat or HNSW-flat."""
    import faiss

    n, dim = vectors.shape
    if settings.dense_index == "flat":
        index = faiss.IndexFlatIP(dim)
    elif settings.dense_index == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        nlist = settings.ivf_nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
        if nlist > n:
            raise Text2TokenError(f"ivf_nlist={nlist} needs at least as many texts, got {n}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = min(39, n // nlist)  # a small corpus: no faiss warning
        index.train(vectors)
    index.add(vectors)
    _tune(index, settings)
    return index


def _tune(index, settings: IndexSettings) -> None:
    """Query-time knobs that are not part of the saved index file."""
    if settings.dense_index == "ivf":
        index.nprobe = min(settings.ivf_nprobe, index.nlist)
    elif settings.dense_index == "hnsw":
        index.hnsw.efSearch = settings.hnsw_ef_search


# ---------------------------------------------------------------- the index
class SearchIndex:
    """Texts with dense, sparse and BM25 indexes. ``SearchIndex.build(encoder, texts).search("query")``."""

    def __init__(self, texts: list[str], dense, sparse_matrix: sp.csr_matrix, bm25, settings: IndexSettings,
                 manifest: dict, encoder=None, model: str | os.PathLike | None = None):
        self.texts = texts
        self.dense = dense
        self.sparse = sparse_matrix
        self.bm25 = bm25
        self.settings = settings
        self.manifest = manifest
        self._encoder = encoder
        self._model = model if model is not None else manifest.get("model")
        self._mask = None

    # ------------------------------------------------------------ build / save / load
    @classmethod
    def build(cls, encoder, texts: Sequence[str], settings: IndexSettings | None = None, batch_size: int = 32,
              model: str | os.PathLike | None = None, show_progress_bar: bool | None = None) -> "SearchIndex":
        """Embeds ``texts`` once and builds all three indexes. ``model``: the directory recorded in the manifest."""
        from ..model.encoder import check_texts

        texts = check_texts(texts)
        if not texts:
            raise Text2TokenError("no texts to index")
        settings = settings or IndexSettings()
        mask = sparse_mask(encoder, settings.vocab_filter)
        dense, sparse_matrix = embed(encoder, texts, settings.sparse_top_k, mask, batch_size, show_progress_bar)
        index = cls.from_vectors(encoder, texts, dense, sparse_matrix, settings, model)
        index._mask = mask
        return index

    @classmethod
    def from_vectors(cls, encoder, texts: Sequence[str], dense: np.ndarray, sparse_matrix: sp.csr_matrix,
                     settings: IndexSettings, model: str | os.PathLike | None = None) -> "SearchIndex":
        """An index of ``texts`` from vectors already computed (``vectors.embed``; several processes:
        ``encode_parallel.parallel_index``): unit dense vectors [n, H] (a memory map will do) and sparse CSR."""
        return cls(texts, build_dense_index(dense, settings), sparse_matrix,
                   build_bm25(texts, settings.bm25_k1, settings.bm25_b), settings,
                   _manifest(encoder, texts, settings, model, sparse_matrix), encoder=encoder)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the index directory atomically (a temporary sibling renamed into place)."""
        import faiss

        path = check_output(path)
        with atomic_dir(path) as tmp:
            with open(tmp / TEXTS, "w", encoding="utf-8") as f:
                for i, text in enumerate(self.texts):
                    f.write(json.dumps({"id": i, "text": text}, ensure_ascii=False) + "\n")
            faiss.write_index(self.dense, str(tmp / DENSE))
            sp.save_npz(tmp / SPARSE, self.sparse, compressed=False)
            self.bm25.save(tmp / BM25_DIR)
            (tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, encoder=None, model: str | os.PathLike | None = None) -> "SearchIndex":
        """Reads an index directory. The encoder (``encoder``, else ``model``, else the manifest's model
        directory) is loaded on the first dense/sparse/hybrid search; BM25 needs none."""
        path = Path(path)
        manifest = _read_manifest(path)
        settings = IndexSettings(**manifest["settings"])
        texts = _read_texts(path / TEXTS, manifest["count"])
        dense = _read_part(path / DENSE, _read_faiss)
        _tune(dense, settings)
        matrix = _read_part(path / SPARSE, lambda p: sp.load_npz(p).tocsr())
        bm25 = _read_part(path / BM25_DIR, _read_bm25)
        if dense.ntotal != len(texts) or matrix.shape != (len(texts), manifest["vocab_size"]):
            raise Text2TokenError(f"{path}: index parts disagree with the manifest (damaged index?)")
        return cls(texts, dense, matrix, bm25, settings, manifest, encoder=encoder, model=model)

    # ------------------------------------------------------------ encoder
    @property
    def encoder(self):
        """The encoder the index was built with, loaded on first use and checked against the manifest."""
        if self._encoder is None:
            if not self._model:
                raise Text2TokenError("this index records no model directory: pass a model (--model)")
            from ..model.encoder import Encoder

            self._encoder = Encoder.load(self._model, precision=self.manifest.get("precision", "fp32"))
        _check_encoder(self._encoder, self.manifest)
        return self._encoder

    def _sparse_mask(self):
        if self._mask is None and self.settings.vocab_filter:
            self._mask = sparse_mask(self.encoder, True)
        return self._mask

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, sp.csr_matrix]:
        """Queries -> (unit dense vectors, sparse vocabulary vectors), exactly as the texts were embedded."""
        return embed(self.encoder, queries, self.settings.sparse_top_k, self._sparse_mask(), batch_size,
                     show_progress_bar=False)

    # ------------------------------------------------------------ search
    def search(self, queries: str | Sequence[str], mode: str = "dense", k: int = 10, fusion: str = "rrf",
               dense_weight: float = 0.5, batch_size: int = 32) -> list[Hit] | list[list[Hit]]:
        """Top-k hits per query; a single string gives one list of hits, a list of strings a list of lists.

        ``mode``: dense (cosine), sparse (vocabulary dot product), hybrid (``fusion``: rrf = reciprocal-rank
        fusion with k=60, or weighted = ``dense_weight`` * dense + (1 - dense_weight) * sparse after min-max
        normalisation) or bm25. Sparse and BM25 return only texts that share a token with the query.
        """
        from ..model.encoder import check_texts

        single = isinstance(queries, str)
        queries = check_texts([queries] if single else queries, "query")
        _check_choice("mode", mode, MODES)
        _check_choice("fusion", fusion, FUSIONS)
        if k < 1:
            raise Text2TokenError(f"k must be >= 1, got {k}")
        if mode == "bm25":
            results = self._search_bm25(queries, k)
        else:
            results = self._search_model(queries, mode, k, fusion, dense_weight, batch_size)
        return results[0] if single else results

    def _search_model(self, queries, mode, k, fusion, dense_weight, batch_size) -> list[list[Hit]]:
        qdense, qsparse = self.encode_queries(queries, batch_size)
        depth = k if mode != "hybrid" else max(k, HYBRID_DEPTH)
        dense = self._dense_top(qdense, depth) if mode != "sparse" else None
        sparse_ = self._sparse_top(qsparse, depth) if mode != "dense" else None
        results = []
        for i in range(len(queries)):
            if mode == "dense":
                ranked, ranks = dense[i], {}
            elif mode == "sparse":
                ranked, ranks = sparse_[i], {}
            else:
                ranked, ranks = self._fuse(dense[i], sparse_[i], fusion, dense_weight)
            explain = mode != "dense"
            results.append([self._hit(r, doc, s, qsparse[i] if explain else None, ranks.get(doc, {}))
                            for r, (doc, s) in enumerate(ranked[:k], start=1)])
        return results

    def _fuse(self, dense, sparse_, fusion, dense_weight):
        if fusion == "rrf":
            ranked = reciprocal_rank_fusion([[d for d, _ in dense], [d for d, _ in sparse_]])
        else:
            ranked = weighted_fusion([dense, sparse_], [dense_weight, 1.0 - dense_weight])
        ranks: dict[int, dict[str, int]] = {}
        for name, hits in (("dense", dense), ("sparse", sparse_)):
            for r, (doc, _) in enumerate(hits, start=1):
                ranks.setdefault(doc, {})[name] = r
        return ranked, ranks

    def _dense_top(self, qdense: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        scores, ids = self.dense.search(np.ascontiguousarray(qdense, dtype=np.float32), min(k, len(self.texts)))
        return [[(int(i), float(s)) for i, s in zip(row_ids, row) if i >= 0] for row_ids, row in zip(ids, scores)]

    def _sparse_top(self, qsparse: sp.csr_matrix, k: int, chunk: int = 256) -> list[list[tuple[int, float]]]:
        out = []
        for start in range(0, qsparse.shape[0], chunk):
            scores = (qsparse[start:start + chunk] @ self.sparse.T).toarray()
            out.extend(top_k_rows(scores, k, positive_only=True))
        return out

    def _search_bm25(self, queries: list[str], k: int) -> list[list[Hit]]:
        results = []
        for terms in bm25_tokenize(queries):
            terms = [t for t in dict.fromkeys(terms) if t in self.bm25.vocab_dict]
            if not terms:
                results.append([])
                continue
            per_term = np.stack([self.bm25.get_scores([t]) for t in terms])  # [terms, n]
            ranked = top_k_rows(per_term.sum(0, keepdims=True), k, positive_only=True)[0]
            results.append([Hit(r, doc, s, self.texts[doc], _term_contributions(terms, per_term[:, doc]))
                            for r, (doc, s) in enumerate(ranked, start=1)])
        return results

    def _hit(self, rank: int, doc: int, score: float, qrow, ranks: dict) -> Hit:
        tokens = self.matched_tokens(qrow, doc) if qrow is not None else []
        return Hit(rank, doc, score, self.texts[doc], tokens, dict(ranks))

    def matched_tokens(self, qrow: sp.csr_matrix, doc: int) -> list[tuple[str, float]]:
        """Tokens in both the query's and text ``doc``'s sparse vectors, with q_t * d_t, largest first."""
        drow = self.sparse[doc]
        shared, qi, di = np.intersect1d(qrow.indices, drow.indices, assume_unique=True, return_indices=True)
        contrib = qrow.data[qi].astype(np.float64) * drow.data[di]
        order = np.argsort(-contrib, kind="stable")
        decode = self.encoder.tokenizer.decode
        return [(decode([int(shared[j])]), float(contrib[j])) for j in order]


# ---------------------------------------------------------------- helpers
def check_output(path: str | os.PathLike) -> Path:
    """An index may be written to a new path, an empty directory or over an existing index, nothing else."""
    path = Path(path)
    if path.exists() and not (path / MANIFEST).is_file() and (not path.is_dir() or any(path.iterdir())):
        raise Text2TokenError(f"{path} exists and is not a text2token index: refusing to overwrite it")
    return path


def _term_contributions(terms: list[str], scores: np.ndarray) -> list[tuple[str, float]]:
    pairs = [(t, float(s)) for t, s in zip(terms, scores) if s > 0]
    return sorted(pairs, key=lambda p: -p[1])


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise Text2TokenError(f"unknown {what} {value!r} (choose from {', '.join(choices)})")


def _manifest(encoder, texts, settings: IndexSettings, model, matrix: sp.csr_matrix) -> dict:
    from .. import __version__

    return {
        "format_version": FORMAT_VERSION,
        "text2token_version": __version__,
        "model": str(Path(model).resolve()) if model is not None else None,
        "encoder_settings": encoder.settings.to_dict(),
        "precision": encoder.precision,  # queries are embedded in the same precision as the texts
        "hidden_size": encoder.hidden_size,
        "vocab_size": encoder.vocab_size,
        "count": len(texts),
        "sparse_nonzeros": int(matrix.nnz),
        "sparse_weights": "softmax(LM_head(pooled)) after the vocabulary filter, top-k, not renormalised",
        "settings": asdict(settings),
        "files": {"texts": TEXTS, "dense": DENSE, "sparse": SPARSE, "bm25": BM25_DIR},
    }


def _check_encoder(encoder, manifest: dict) -> None:
    if (encoder.hidden_size, encoder.vocab_size) != (manifest["hidden_size"], manifest["vocab_size"]):
        raise Text2TokenError(
            f"the model does not match the index (hidden size {encoder.hidden_size}, vocabulary "
            f"{encoder.vocab_size}; the index was built with {manifest['hidden_size']}, {manifest['vocab_size']})")


def _read_manifest(path: Path) -> dict:
    if not path.exists():
        raise Text2TokenError(f"index not found: {path}")
    if not (path / MANIFEST).is_file():
        raise Text2TokenError(f"{path}: not a text2token index (no {MANIFEST})")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        version = manifest["format_version"]
        manifest["settings"], manifest["count"], manifest["vocab_size"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as e:
        raise Text2TokenError(f"{path / MANIFEST}: unreadable manifest ({e})") from None
    if version != FORMAT_VERSION:
        raise Text2TokenError(f"{path}: index format {version}, this version of text2token reads {FORMAT_VERSION}")
    return manifest


def _read_texts(path: Path, count: int) -> list[str]:
    if not path.is_file():
        raise Text2TokenError(f"{path}: missing (damaged index?)")
    try:
        texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (ValueError, KeyError, TypeError) as e:
        raise Text2TokenError(f"{path}: unreadable ({e})") from None
    if len(texts) != count:
        raise Text2TokenError(f"{path}: {len(texts)} texts, the manifest says {count} (damaged index?)")
    return texts


def _read_part(path: Path, reader):
    if not path.exists():
        raise Text2TokenError(f"{path}: missing (damaged index?)")
    try:
        return reader(path)
    except (RuntimeError, ValueError, OSError, KeyError) as e:
        raise Text2TokenError(f"{path}: unreadable ({str(e).splitlines()[0] if str(e) else e!r})") from None


def _read_faiss(path: Path):
    import faiss

    return faiss.read_index(str(path))


def _read_bm25(path: Path):
    import bm25s

    return bm25s.BM25.load(path, allow_pickle=False)
