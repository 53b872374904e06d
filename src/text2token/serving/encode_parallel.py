"""``text2token encode`` / ``index`` in one process or several (``torchrun`` / ``accelerate launch``).

The input's rows are cut into chunks of ``CHUNK`` texts, the same chunks whatever the process count; rank ``r``
takes the ``r``-th contiguous run of chunks (``Dist.rows`` over the chunks) and encodes it chunk by chunk: each
chunk is length-sorted and batched as ``Encoder.encode`` does, and every batch is written straight into a
memory-mapped ``.npy`` (``files.atomic_memmap``), so a rank holds one chunk of texts and one batch of vectors.
A chunk's batches do not depend on the process count, so N processes write the bytes one process writes
(given the same float kernels: thread count, ``MKL_CBWR``; see docs/multi-node.md).

Files, with several processes: ``OUTPUT.parts/rank-00003.npy`` and ``rank-00003.json`` (its rows), for ``index``
also ``rank-00003.sparse.npz``, each written atomically by its rank. Then every rank reports success or its
error (a gather, not a barrier: a failed rank stops all of them with its one-line error instead of hanging
the others); the main rank writes ``manifest.json``, merges the parts into OUTPUT through a memory map in
blocks (a temporary name renamed at the end) and removes ``OUTPUT.parts`` whatever happened. One process
writes OUTPUT directly (``encode``) or through the same parts (``index``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Text2TokenError
from ..files import atomic_memmap, atomic_write

CHUNK = 4096  # texts sorted and batched together (fixed: the output does not depend on the process count)
MERGE_BYTES = 64 << 20  # copied per block when merging the parts


@dataclass
class EncodeJob:
    """What every rank needs to know (the same on every rank)."""

    model: Path
    input: Path
    batch_size: int = 32
    skip_bad_lines: bool = False
    precision: str = "fp32"
    normalize: bool = False
    chunk: int = CHUNK
    text_field: str = "text"  # the text's field or column in .jsonl, .csv/.tsv, .parquet and datasets inputs


def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def rank_rows(n: int, chunk: int, dist) -> tuple[int, int]:
    """Rows [start, stop) of this rank: a contiguous run of whole chunks."""
    share = dist.rows(-(-n // chunk))
    return min(share.start * chunk, n), min(share.stop * chunk, n)


def encode_rows(encoder, texts, start: int, stop: int, out: np.ndarray, job: EncodeJob,
                on_chunk: Callable[[np.ndarray], None] | None = None, progress: bool = False) -> None:
    """Encodes ``texts[start:stop]`` into ``out`` (its rows 0 .. stop - start) chunk by chunk; ``start`` is a
    multiple of ``job.chunk``. ``on_chunk(rows)``: called with each chunk's rows of ``out`` once written."""
    from tqdm.auto import tqdm

    for a in tqdm(range(start, stop, job.chunk), desc="encode", unit="chunk", disable=not progress):
        b = min(a + job.chunk, stop)
        rows = out[a - start:b - start]
        encoder.encode(texts[a:b], batch_size=job.batch_size, normalize=job.normalize, out=rows,
                       show_progress_bar=False)
        if on_chunk is not None:
            on_chunk(rows)


def _open(job: EncodeJob, dist):
    from ..data import open_corpus
    from ..model.encoder import Encoder

    texts = open_corpus(job.input, job.text_field, job.skip_bad_lines)  # every rank checks every row: same error
    return texts, Encoder.load(job.model, precision=job.precision, device=dist.device)


def run_ranks(dist, work: Callable[[], dict], parts: Path) -> list[dict]:
    """``work()`` on every rank, then every rank's result; any rank's error is raised on all ranks (one line)
    and the main rank removes ``parts``. One process: ``[work()]``, errors as they come."""
    if dist.world == 1:
        return [work()]
    try:
        result, error = work(), None
    except Exception as e:  # noqa: BLE001 -- reported to every rank, then raised as one line
        result, error = None, str(e) if isinstance(e, Text2TokenError) else f"{type(e).__name__}: {e}"
    reports = dist.gather_objects((result, error))
    failed = [(rank, err) for rank, (_, err) in enumerate(reports) if err is not None]
    if failed:
        if dist.is_main:
            shutil.rmtree(parts, ignore_errors=True)
        rank, err = next(((r, e) for r, e in failed if r == dist.rank), failed[0])
        raise Text2TokenError(err if rank == dist.rank else f"process {rank} failed: {err}")
    return [res for res, _ in reports]


def _write_json(path: Path, data: dict) -> None:
    blob = json.dumps(data, indent=2).encode()
    atomic_write(path, lambda f: f.write(blob))


def _part(dist, parts: Path, texts, encoder, job: EncodeJob, suffix: str = "") -> tuple[dict, Path]:
    start, stop = rank_rows(len(texts), job.chunk, dist)
    name = f"rank-{dist.rank:05d}"
    info = {"rank": dist.rank, "world": dist.world, "start": start, "stop": stop, "count": len(texts),
            "hidden": encoder.hidden_size, "chunk": job.chunk, "file": f"{name}{suffix}.npy", "name": name}
    parts.mkdir(parents=True, exist_ok=True)
    return info, parts / info["file"]


def merge_parts(parts: Path, infos: list[dict], output: Path) -> None:
    """Copies the rank parts, in row order, into one ``.npy`` at ``output`` through a memory map, in blocks."""
    n, hidden = infos[0]["count"], infos[0]["hidden"]
    if [i["start"] for i in infos] != [0, *(i["stop"] for i in infos[:-1])] or infos[-1]["stop"] != n:
        raise Text2TokenError(f"{parts}: the parts do not cover the {n} rows in order (damaged parts?)")
    _write_json(parts / "manifest.json", {"count": n, "hidden": hidden, "parts": infos})
    block = max(1, MERGE_BYTES // (4 * hidden))
    with atomic_memmap(output, (n, hidden)) as out:
        for info in infos:
            part = np.load(parts / info["file"], mmap_mode="r")
            if part.shape != (info["stop"] - info["start"], hidden):
                raise Text2TokenError(f"{parts / info['file']}: shape {part.shape}, expected "
                                      f"{(info['stop'] - info['start'], hidden)} (damaged part?)")
            for a in range(0, len(part), block):
                out[info["start"] + a:info["start"] + a + len(part[a:a + block])] = part[a:a + block]
            del part


def parallel_encode(job: EncodeJob, output: Path) -> tuple[int, int] | None:
    """``text2token encode``: the (rows, hidden) written to ``output`` on the main rank, None on the others."""
    from ..training.distributed import Dist

    dist, parts = Dist.from_env(), parts_dir(output)
    try:
        def work() -> dict:
            texts, encoder = _open(job, dist)
            if dist.world == 1:  # one process: straight into the output
                with atomic_memmap(output, (len(texts), encoder.hidden_size)) as out:
                    encode_rows(encoder, texts, 0, len(texts), out, job, progress=len(texts) >= 512)
                return {"count": len(texts), "hidden": encoder.hidden_size}
            info, path = _part(dist, parts, texts, encoder, job)
            with atomic_memmap(path, (info["stop"] - info["start"], info["hidden"])) as out:
                encode_rows(encoder, texts, info["start"], info["stop"], out, job, progress=dist.is_main)
            _write_json(parts / f"{info['name']}.json", info)
            return info

        infos = run_ranks(dist, work, parts)
        if not dist.is_main:
            dist.barrier()  # the others wait for the merge: a rank tearing gloo down early can abort
            return None
        if dist.world > 1:
            try:
                merge_parts(parts, infos, output)
            finally:
                shutil.rmtree(parts, ignore_errors=True)
                dist.barrier()
        return infos[0]["count"], infos[0]["hidden"]
    finally:
        dist.close()


def parallel_index(job: EncodeJob, output: Path, settings):
    """``text2token index``: builds and saves the index on the main rank (returns it); None on the others.
    Every rank writes its unit dense vectors and sparse vectors; the main rank merges them and builds faiss and
    BM25 over all texts (in its memory: see docs/multi-node.md)."""
    from scipy import sparse as sp

    from ..training.distributed import Dist
    from .search import SearchIndex, check_output

    check_output(output)
    dist, parts = Dist.from_env(), parts_dir(output)
    held = {}
    try:
        def work() -> dict:
            held["texts"], held["encoder"] = texts, encoder = _open(job, dist)
            info, path = _part(dist, parts, texts, encoder, job, ".dense")
            matrix = _index_part(encoder, texts, info, path, job, settings, dist.is_main)
            atomic_write(parts / f"{info['name']}.sparse.npz", lambda f: sp.save_npz(f, matrix, compressed=False))
            _write_json(parts / f"{info['name']}.json", info)
            return info

        infos = run_ranks(dist, work, parts)
        if not dist.is_main:
            dist.barrier()  # as in parallel_encode
            return None
        try:
            merge_parts(parts, infos, parts / "dense.npy")
            dense = np.load(parts / "dense.npy", mmap_mode="r")
            matrix = sp.vstack([sp.load_npz(parts / f"{i['name']}.sparse.npz") for i in infos], format="csr")
            index = SearchIndex.from_vectors(held["encoder"], held["texts"], dense, matrix, settings, job.model)
            index.save(output)
            del dense
        finally:
            shutil.rmtree(parts, ignore_errors=True)
            dist.barrier()
        return index
    finally:
        dist.close()


def _index_part(encoder, texts, info: dict, path: Path, job: EncodeJob, settings, progress: bool):
    """This rank's rows: unit dense vectors into a memory-mapped part, sparse vectors (CSR) returned; as
    ``vectors.embed`` computes them, chunk by chunk."""
    from scipy import sparse as sp

    from .vectors import sparse_mask, sparse_vectors

    mask, chunks = sparse_mask(encoder, settings.vocab_filter), []

    def finish(rows: np.ndarray) -> None:
        pooled = np.array(rows)
        chunks.append(sparse_vectors(encoder, pooled, settings.sparse_top_k, mask))
        rows[:] = (pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)

    with atomic_memmap(path, (info["stop"] - info["start"], info["hidden"])) as out:
        encode_rows(encoder, texts, info["start"], info["stop"], out, job, on_chunk=finish, progress=progress)
    if not chunks:
        return sp.csr_matrix((0, encoder.vocab_size), dtype=np.float32)
    return sp.vstack(chunks, format="csr")
