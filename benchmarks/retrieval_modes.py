"""Dense vs sparse vs hybrid vs BM25 retrieval on held-out Wikipedia articles, in one run.

The task is the one every training run scores (``text2token.data.heldout_set``): an article's short Wikidata
description is the query, its first lead passage among the N articles' passages is the one relevant text.

    python benchmarks/retrieval_modes.py --model runs/default/final [--articles 500]
                                         [--output benchmarks/results/retrieval_modes.json]

Writes the JSON and a markdown table (same name, ``.md``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from text2token.config import DataConfig
from text2token.eval.heldout import HeldoutSet, heldout_set
from text2token.eval.metrics import cosine, ranking_score
from text2token.serving.ranking import retrieval_metrics
from text2token.serving.search import MODES, IndexSettings, SearchIndex

K = 10


def evaluate_modes(encoder, data: HeldoutSet, k: int = K, modes=MODES, settings: IndexSettings | None = None,
                   batch_size: int = 32) -> dict:
    """Indexes ``data.documents`` once and scores each mode: {"scores": {mode: metrics}, "seconds": {...}}."""
    start = time.perf_counter()
    index = SearchIndex.build(encoder, data.documents, settings, batch_size=batch_size)
    seconds = {"index": time.perf_counter() - start}
    relevant = list(range(len(data.documents)))
    scores = {}
    for mode in modes:
        start = time.perf_counter()
        hits = index.search(list(data.queries), mode=mode, k=k, batch_size=batch_size)
        seconds[mode] = time.perf_counter() - start
        scores[mode] = retrieval_metrics(hits, relevant, k)
    result = {"scores": scores, "seconds": seconds, "ratio_sparse_dense": ratios(scores)}
    if "dense" in scores and index.settings.dense_index == "flat":
        result["dense_check"] = dense_check(index, data, scores["dense"], k, batch_size)
    return result


def dense_check(index: SearchIndex, data: HeldoutSet, dense: dict, k: int, batch_size: int) -> dict:
    """The dense row recomputed by ``text2token.eval.metrics.ranking_score`` (the suite's and training's metric)."""
    q, _ = index.encode_queries(list(data.queries), batch_size)
    d = index.dense.reconstruct_n(0, index.dense.ntotal)  # the flat index holds the documents' unit vectors
    ref = ranking_score(cosine(q, d), np.arange(len(q)), k=k)
    return {"metrics.ranking_score": ref,
            "agrees": all(abs(ref[m] - dense[m]) < 1e-4 for m in (f"ndcg@{k}", f"mrr@{k}"))}


def ratios(scores: dict) -> dict:
    """sparse / dense for each metric (None where dense is 0 or a mode is missing)."""
    if "sparse" not in scores or "dense" not in scores:
        return {}
    return {m: (scores["sparse"][m] / v if v else None) for m, v in scores["dense"].items()}


def markdown(result: dict, title: str) -> str:
    """The scores as a markdown table, one row per mode, then the sparse/dense ratio."""
    scores = result["scores"]
    metrics = list(next(iter(scores.values())))
    lines = [f"### {title}", "", "| mode | " + " | ".join(metrics) + " | seconds |",
             "|---|" + "---:|" * (len(metrics) + 1)]
    for mode, row in scores.items():
        lines.append(f"| {mode} | " + " | ".join(f"{row[m]:.4f}" for m in metrics)
                     + f" | {result['seconds'][mode]:.1f} |")
    if result.get("ratio_sparse_dense"):
        cells = [f"{v:.3f}" if v is not None else "n/a" for v in result["ratio_sparse_dense"].values()]
        lines.append("| sparse / dense | " + " | ".join(cells) + " | |")
    return "\n".join(lines) + "\n"


def write_results(result: dict, output: Path) -> tuple[Path, Path]:
    """Writes ``output`` (JSON) and the markdown table next to it (``.md``)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = output.with_suffix(".md")
    md.write_text(result["markdown"], encoding="utf-8")
    return output, md


def data_config(model: Path) -> DataConfig:
    """The data section of the model's run (``<run>/config.yaml`` next to ``<run>/final``), else the defaults:
    the held-out articles are then exactly the ones that run never trained on and scored."""
    run_config = Path(model).resolve().parent / "config.yaml"
    if run_config.is_file():
        from text2token.config import load_config

        return load_config(run_config).data
    return DataConfig()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained model directory (e.g. runs/default/final)")
    parser.add_argument("--articles", type=int, default=500, help="held-out articles (queries = documents)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/retrieval_modes.json"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sparse-top-k", type=int, default=128)
    parser.add_argument("--seed", type=int, default=None, help="which held-out articles (default: the run's data.seed)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    from text2token.model.encoder import Encoder

    args = parse_args(argv)
    cfg = data_config(args.model)
    data = heldout_set(cfg, args.articles, seed=cfg.seed if args.seed is None else args.seed)
    encoder = Encoder.load(args.model)
    result = evaluate_modes(encoder, data, K, settings=IndexSettings(sparse_top_k=args.sparse_top_k),
                            batch_size=args.batch_size)
    result.update(model=str(Path(args.model).resolve()), articles=len(data.queries), k=K,
                  sparse_top_k=args.sparse_top_k, data=cfg.model_dump())
    result["markdown"] = markdown(result, f"Retrieval on {len(data.queries)} held-out Wikipedia articles "
                                          f"({Path(args.model).name}, @{K})")
    json_path, md_path = write_results(result, args.output)
    print(result["markdown"])
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
