"""sentence-transformers' own ``encode`` of the exported model vs ``Encoder.encode``, side by side.

    python -m benchmarks --only st_encode

The backbone is saved as a text2token model directory and exported with ``text2token export --format
sentence-transformers`` (``export_sentence_transformers``); both sides then embed the same mixed-length texts
with the same batch size (both sort by length and pad per batch), and the vectors are compared.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import load_encoder, mixed_texts, ratio, side_by_side, table

SIZES = {"default": {"texts": 64, "batch_size": 16, "rounds": 3},
         "quick": {"texts": 12, "batch_size": 4, "rounds": 1}}


def run(cfg, size: dict) -> tuple[dict, str]:
    from sentence_transformers import SentenceTransformer

    from text2token.model.encoder import Encoder
    from text2token.serving.export import export_sentence_transformers

    tmp = tempfile.TemporaryDirectory(prefix="t2t-bench-")
    model_dir, st_dir = Path(tmp.name) / "model", Path(tmp.name) / "st"
    load_encoder(cfg).save(model_dir)
    export_sentence_transformers(model_dir, st_dir)
    encoder = Encoder.load(model_dir, device="cpu")
    st = SentenceTransformer(str(st_dir), device="cpu")
    texts, bs = mixed_texts(size["texts"]), size["batch_size"]
    ours = encoder.encode(texts, batch_size=bs, show_progress_bar=False)
    theirs = st.encode(texts, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)
    t = side_by_side({
        "text2token": lambda: encoder.encode(texts, batch_size=bs, show_progress_bar=False),
        "sentence_transformers": lambda: st.encode(texts, batch_size=bs, convert_to_numpy=True,
                                                   show_progress_bar=False),
    }, rounds=size["rounds"])
    tmp.cleanup()
    measured = ratio(t["sentence_transformers"]["median_s"], t["text2token"]["median_s"])
    max_diff = float(np.abs(ours - theirs).max())
    result = {
        "texts": len(texts), "batch_size": bs, "seconds": t,
        "texts_per_s": {k: round(len(texts) / v["median_s"], 2) for k, v in t.items()},
        "max_abs_diff": max_diff,
        "ratios": {"text2token_vs_sentence_transformers_throughput": measured},
        "goals": [{"name": "Encoder.encode / sentence-transformers encode throughput (same exported model)",
                   "goal": "report (same vectors)", "measured": measured, "met": bool(max_diff <= 1e-4)}],
        "model": cfg.model.backbone,
    }
    md = (f"{len(texts)} mixed-length Wikipedia texts, batch {bs}, `{cfg.model.backbone}` exported with "
          f"`text2token export --format sentence-transformers`; max |difference| of the vectors {max_diff:.1e}\n\n"
          + table(["throughput", "texts/s"], [[k, v] for k, v in result["texts_per_s"].items()])
          + f"\n\nText2Token / sentence-transformers throughput: **{measured}**")
    return result, md


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", "st_encode"])
