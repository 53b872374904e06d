"""The README's explain example: the top tokens of one real held-out text, raw backbone vs trained encoder.

    python scripts/explain_example.py [--model runs/default/final] [--output results/default/explain.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from text2token.config import load_config
from text2token.eval.heldout import heldout_set
from text2token.model.encoder import Encoder
from text2token.eval.plots import plot_token_panels

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="runs/default/final")
    parser.add_argument("--output", default="results/default/explain.png")
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    trained = Encoder.load(ROOT / args.model)
    cfg = load_config(ROOT / Path(args.model).parent / "config.yaml")
    raw = Encoder.from_backbone(cfg.model.backbone, cfg.model.encoder_settings())
    text = heldout_set(cfg.data, cfg.eval.articles, seed=cfg.data.seed).documents[0]
    panels = {"raw backbone (before)": raw.explain(text, args.top_k),
              "Text2Token (after)": trained.explain(text, args.top_k)}
    out = ROOT / args.output
    plot_token_panels(panels, out, title=f"{text[:110]}...")
    (out.with_suffix(".json")).write_text(json.dumps({"text": text, **panels}, indent=1))
    print(text)
    for name, pairs in panels.items():
        print(f"{name}: " + ", ".join(f"{t!r} {p:.3f}" for t, p in pairs))


if __name__ == "__main__":
    main()
