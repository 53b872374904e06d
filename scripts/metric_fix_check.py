"""The training run's before/after retrieval score with the old strict ranking and with the tie-aware one, side by side.

Before the redesign the before/after score counted only documents scored strictly higher than the relevant one, so a
tie counted as a win for the relevant document. This scores the raw backbone and a finished run's encoder on the
run's own held-out articles both ways and writes results/default/metric_fix.md (and .json).

    python scripts/metric_fix_check.py [--run runs/default]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from text2token.config import load_config
from text2token.eval.heldout import RETRIEVAL_KEYS, heldout_set
from text2token.eval.metrics import cosine, rank_counts, rank_metrics
from text2token.model.encoder import Encoder

ROOT = Path(__file__).resolve().parents[1]


def both_ways(queries: np.ndarray, documents: np.ndarray) -> dict:
    sims = cosine(queries, documents)
    above, tied = rank_counts(sims, np.arange(len(queries)))
    n = sims.shape[1]
    strict = rank_metrics(above, np.ones_like(tied), n)  # the old rule: every tie ranked below the relevant one
    fair = rank_metrics(above, tied, n)
    return {"queries_with_ties": int((tied > 1).sum()), "most_tied": int(tied.max()),
            "strict": {k: strict[k] for k in RETRIEVAL_KEYS}, "tie_aware": {k: fair[k] for k in RETRIEVAL_KEYS}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "default")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "default" / "metric_fix")
    args = ap.parse_args()
    cfg = load_config(args.run / "config.yaml")
    data = heldout_set(cfg.data, cfg.eval.articles, seed=cfg.data.seed)
    m = cfg.model
    encoders = {"before (raw backbone)": Encoder.from_backbone(m.backbone, m.encoder_settings(), device="cpu"),
                "after (Text2Token)": Encoder.load(args.run / "final", device="cpu")}
    result = {}
    for name, enc in encoders.items():
        q = enc.encode(data.queries, batch_size=cfg.eval.batch_size)
        d = enc.encode(data.documents, batch_size=cfg.eval.batch_size)
        result[name] = both_ways(q, d)
    rows = ["| model | metric | strict `>` (old) | tie-aware (now) | queries with ties |", "|---|---|---:|---:|---:|"]
    for name, r in result.items():
        for k in RETRIEVAL_KEYS:
            rows.append(f"| {name} | {k} | {r['strict'][k]:.4f} | {r['tie_aware'][k]:.4f} | {r['queries_with_ties']} |")
    md = "\n".join(rows) + f"\n\n{len(data.queries)} held-out dev articles, run {args.run.name}.\n"
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
