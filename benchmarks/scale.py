"""A corpus of 10k / 100k (/ 1M with --scale-full) texts on disk: data-driven targets and 50 training steps.

    python -m benchmarks --only scale [--scale-full]

Each size runs in its own process (so its peak memory is its own), on a text file of real Wikipedia passages
(repeated and shuffled) that is streamed, never held in memory (``load_corpus`` -> ``TextFile``):

1. data-driven targets for *every* text: ``DataDrivenTargets.fit`` over the file in shard-sized chunks, then
   ``TargetStore.build`` over all texts (the store reads rows lazily);
2. ``train()`` of one data-driven stage of 50 steps on the same file (default config otherwise, no eval):
   the run's own corpus fingerprint, document-frequency pass, targets of the visited texts, 50 steps, save.

Memory: the peak RSS of each size minus the peak of the same pipeline on 1,000 texts (whose peak is the model,
its optimizer state and activations: the model's own footprint). Time: each phase at each size; the
per-text cost should stay flat (linear growth).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, peak_rss_mb, ratio, rss_mb, table

# the baseline run's peak memory is reached within its first steps (optimizer state, activations): 5 are enough
SIZES = {"default": {"sizes": [10_000, 100_000], "baseline": 1_000, "baseline_steps": 5, "steps": 50},
         "full": {"sizes": [10_000, 100_000, 1_000_000], "baseline": 1_000, "baseline_steps": 5, "steps": 50},
         "quick": {"sizes": [300, 600], "baseline": 100, "baseline_steps": 2, "steps": 2}}
GOAL_MB = 500


def write_corpus(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` Wikipedia passages, repeated and shuffled, one per line (written in chunks)."""
    from text2token.data import wiki_passages
    from text2token.eval.split import HELDOUT_FRACTION

    if path.is_file() and sum(1 for _ in open(path, "rb")) == n:
        return path
    pool = np.array(wiki_passages(40, HELDOUT_FRACTION), dtype=object)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, n, 100_000):
            f.write("\n".join(pool[rng.integers(0, len(pool), min(100_000, n - start))]) + "\n")
    tmp.replace(path)
    return path


def child(corpus: Path, work: Path, backbone: str | None, steps: int) -> dict:
    """One size, in this process: full target build, then train(); timings and memory."""
    from transformers import AutoTokenizer

    from benchmarks.common import default_config
    from text2token.model.backbone import resolve
    from text2token.config import Config
    from text2token.data import load_corpus
    from text2token.targets import DataDrivenTargets, TargetStore
    from text2token.training.loop import train

    out = {"rss_after_imports_mb": round(rss_mb(), 1)}
    cfg = default_config(backbone)
    d = cfg.to_dict()
    d["data"]["corpus"] = str(corpus)
    d["stages"] = [{"name": "data-driven", "targets": "data", "steps": steps}]
    d["eval"]["enabled"] = False
    d["train"]["checkpoint_every"] = 10**6
    cfg = Config.model_validate(d)
    start = time.perf_counter()
    texts = load_corpus(cfg.data)
    out["texts"] = len(texts)
    out["corpus_index_s"] = time.perf_counter() - start
    out["corpus_bytes"] = corpus.stat().st_size
    model_dir = resolve(cfg.model.backbone)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    vocab_size = int(json.loads((model_dir / "config.json").read_text())["vocab_size"])  # the LM head's rows
    chunk = cfg.targets.shard_size
    dd = DataDrivenTargets(tok, vocab_size, cfg.targets.data_driven)
    start = time.perf_counter()
    dd.fit(texts[i:i + chunk] for i in range(0, len(texts), chunk))
    out["fit_s"] = time.perf_counter() - start
    tw = dd.token_weights()
    start = time.perf_counter()
    store = TargetStore.build(work / "store", "scale", np.arange(len(texts)), lambda i, j: texts[i:j],
                              lambda t: dd.transform(t, tw), cfg.targets.data_driven.top_k, shard_size=chunk,
                              show_progress=False)
    out["store_build_s"] = time.perf_counter() - start
    out["store_bytes"] = sum(p.stat().st_size for p in (work / "store").iterdir())
    out["store_bytes_per_text"] = out["store_bytes"] / len(texts)
    probe = np.sort(np.random.default_rng(0).choice(len(texts), 16, replace=False))
    start = time.perf_counter()
    store.get(probe)
    out["store_get_16_ms"] = (time.perf_counter() - start) * 1000
    out["rss_after_targets_mb"] = round(rss_mb(), 1)
    del store, dd
    start = time.perf_counter()
    train(cfg, output_dir=work / "run", show_progress=False)
    out["train_s"] = time.perf_counter() - start
    steps_log = [json.loads(line) for line in open(work / "run" / "metrics.jsonl")
                 if '"event": "train"' in line]
    out["train_steps"] = steps_log[-1]["step"] if steps_log else 0
    out["steps_s"] = steps_log[-1].get("seconds") if steps_log else None
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def run_child(n: int, work_dir: Path, backbone: str | None, steps: int) -> dict:
    corpus = write_corpus(work_dir / f"corpus-{n}.txt", n)
    work = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=work_dir))
    cmd = [sys.executable, "-m", "benchmarks.scale", "--child", str(corpus), "--work", str(work),
           "--steps", str(steps)] + (["--backbone", backbone] if backbone else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                         os.environ.get("PYTHONPATH", "")])}
    try:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"scale child for {n} texts failed:\n{proc.stderr[-3000:]}")
        return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": round(time.perf_counter() - start, 1)}
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def run(cfg, size: dict, work_dir: Path | None = None) -> tuple[dict, str]:
    backbone = cfg.model.backbone
    work_dir = Path(work_dir or os.environ.get("T2T_BENCH_WORK") or tempfile.mkdtemp(prefix="t2t-scale-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    base = run_child(size["baseline"], work_dir, backbone, size["baseline_steps"])
    runs = {}
    for n in size["sizes"]:  # progress is kept as each size finishes (a 1M run takes minutes)
        runs[str(n)] = run_child(n, work_dir, backbone, size["steps"])
        (work_dir / "scale-progress.json").write_text(json.dumps({"baseline": base, "runs": runs}, indent=2))
    for r in runs.values():
        r["peak_growth_mb"] = round(r["peak_rss_mb"] - base["peak_rss_mb"], 1)
        r["targets_us_per_text"] = round(1e6 * (r["fit_s"] + r["store_build_s"]) / r["texts"], 2)
    sizes = [str(n) for n in size["sizes"]]
    growth = {f"{a}->{b}": {"texts_x": int(b) // int(a),
                            "targets_time_x": ratio(runs[b]["fit_s"] + runs[b]["store_build_s"],
                                                    runs[a]["fit_s"] + runs[a]["store_build_s"]),
                            "train_time_x": ratio(runs[b]["train_s"], runs[a]["train_s"])}
              for a, b in zip(sizes, sizes[1:])}
    worst = max(r["peak_growth_mb"] for r in runs.values())
    largest = runs[sizes[-1]]
    result = {
        "baseline": base, "runs": runs, "time_growth": growth, "steps": size["steps"],
        "goals": [
            {"name": f"peak RSS growth at {int(sizes[-1]):,} texts over the {size['baseline']:,}-text run (MB)",
             "goal": f"< {GOAL_MB}", "measured": worst, "met": worst < GOAL_MB},
            {"name": f"target build time growth {int(sizes[0]):,} -> {int(sizes[-1]):,} texts (x, linear = "
                     f"{int(sizes[-1]) // int(sizes[0])})",
             "goal": f"~{int(sizes[-1]) // int(sizes[0])}",
             "measured": ratio(largest["fit_s"] + largest["store_build_s"],
                               runs[sizes[0]]["fit_s"] + runs[sizes[0]]["store_build_s"]),
             "met": None},
        ],
        "model": backbone,
    }
    rows = [[f"{int(n):,}", f"{r['corpus_bytes'] / 1e6:.1f}", f"{r['fit_s']:.1f}", f"{r['store_build_s']:.1f}",
             f"{r['targets_us_per_text']:.0f}", f"{r['store_bytes_per_text']:.0f}", f"{r['train_s']:.0f}",
             f"{r['peak_rss_mb']:,.0f}", f"{r['peak_growth_mb']:+,.0f}"] for n, r in runs.items()]
    md = (f"`{backbone}`, one data-driven stage of {size['steps']} steps (batch {cfg.train.batch_size}); peak "
          f"RSS of the same pipeline on {size['baseline']:,} texts ({size['baseline_steps']} steps): "
          f"{base['peak_rss_mb']:,.0f} MB\n\n"
          + table(["texts", "corpus MB", "fit s", "store build s", "targets µs/text", "store bytes/text",
                   "train() s", "peak RSS MB", f"vs {size['baseline']:,} texts MB"], rows)
          + "\n\n" + "; ".join(f"{k}: texts x{v['texts_x']}, target time x{v['targets_time_x']}, "
                                f"train() time x{v['train_time_x']}" for k, v in growth.items()))
    return result, md


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--backbone")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    if args.child:
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(child(args.child, args.work, args.backbone, args.steps)))
    else:
        from benchmarks.__main__ import main

        main(["--only", "scale"])
