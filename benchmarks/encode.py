"""Encoder.encode vs a bare forward of the same backbone over the same batches, side by side.

    python -m benchmarks --only encode            (or: python -m benchmarks.encode)

- ``encode``: ``Encoder.encode(texts, batch_size)``: tokenises (prompt around each text), sorts by length, pads
  per batch, runs the base model under ``torch.inference_mode``, pools, copies to numpy.
- ``bare``: ``encoder.base(**batch, use_cache=False)`` under ``torch.inference_mode`` on the very same batches
  (same length-sorted order and per-batch padding, taken from the encoder's own batching), tokenised
  beforehand: the bare side does no tokenisation, pooling or copying, so the ratio charges all of that to
  ``encode``.

Levers, each measured side by side on the bare forward: length-sorted vs unsorted batches (both padded per
batch), ``inference_mode`` vs ``no_grad``, and ``encode`` at 1 torch thread vs the default.
"""

from __future__ import annotations

import torch

from benchmarks.common import goal, load_encoder, mixed_texts, ratio, ratio_rows, report, side_by_side, threads

SIZES = {"default": {"texts": 64, "batch_size": 16, "rounds": 3},
         "quick": {"texts": 24, "batch_size": 8, "rounds": 1}}
GOAL = 0.9


def run(cfg, size: dict) -> tuple[dict, str]:
    encoder = load_encoder(cfg)
    encoder.model.eval()
    texts = mixed_texts(size["texts"])
    bs = size["batch_size"]
    sorted_batches = [batch for _, batch in encoder._batches(texts, bs, False, "encode")]
    unsorted_batches = [encoder.tokenize(texts[i:i + bs])[0] for i in range(0, len(texts), bs)]
    tokens = int(sum(b["attention_mask"].sum() for b in sorted_batches))
    padded = {"sorted": int(sum(b["attention_mask"].numel() for b in sorted_batches)),
              "unsorted": int(sum(b["attention_mask"].numel() for b in unsorted_batches))}

    def bare(batches, mode=torch.inference_mode):
        def fn():
            with mode():
                for b in batches:
                    encoder.base(**b, use_cache=False)
        return fn

    def encode():
        encoder.encode(texts, batch_size=bs, show_progress_bar=False)

    def encode_1_thread():
        with threads(1):
            encode()

    t = side_by_side({
        "encode": encode,
        "bare_sorted": bare(sorted_batches),
        "bare_unsorted": bare(unsorted_batches),
        "bare_sorted_no_grad": bare(sorted_batches, torch.no_grad),
        "encode_1_thread": encode_1_thread,
    }, rounds=size["rounds"])
    return summarise(cfg, t, len(texts), bs, tokens, padded)


def summarise(cfg, t: dict, n: int, bs: int, tokens: int, padded: dict) -> tuple[dict, str]:
    """The result and its table from the sides' timings (``n`` texts in batches of ``bs``)."""
    med = {k: v["median_s"] for k, v in t.items()}
    result = {
        "texts": n, "batch_size": bs, "real_tokens": tokens, "padded_tokens": padded,
        "texts_per_s": {k: round(n / v, 2) for k, v in med.items()},
        "seconds": t,
        "ratios": {
            "encode_vs_bare": ratio(med["bare_sorted"], med["encode"]),
            "sorted_vs_unsorted": ratio(med["bare_unsorted"], med["bare_sorted"]),
            "inference_mode_vs_no_grad": ratio(med["bare_sorted_no_grad"], med["bare_sorted"]),
            "threads_default_vs_1": ratio(med["encode_1_thread"], med["encode"]),
        },
        "goals": [goal("encode throughput / bare forward throughput", ratio(med["bare_sorted"], med["encode"]),
                       GOAL, ">=", exact=med["bare_sorted"] / med["encode"])],
        "notes": "bare = encoder.base(**batch, use_cache=False) under inference_mode on the same pre-tokenised, "
                 "length-sorted, per-batch-padded batches as encode; ratios > 1 mean the first named is faster",
        "model": cfg.model.backbone, "max_length": cfg.model.max_length, "pooling": cfg.model.pooling,
        "torch_threads": torch.get_num_threads(),
    }
    rows = ratio_rows(result["ratios"], {
        "encode_vs_bare": "encode vs bare forward (throughput ratio)",
        "sorted_vs_unsorted": "length-sorted vs unsorted batches (bare)",
        "inference_mode_vs_no_grad": "inference_mode vs no_grad (bare)",
        "threads_default_vs_1": f"{torch.get_num_threads()} threads vs 1 (encode)",
    }, goals={"encode_vs_bare": f">= {GOAL}"})
    md = report(f"{n} mixed-length Wikipedia texts ({tokens:,} real tokens; padded: {padded['sorted']:,} sorted, "
                f"{padded['unsorted']:,} unsorted), batch {bs}, `{cfg.model.backbone}`, max_length "
                f"{cfg.model.max_length}; encode: {result['texts_per_s']['encode']:.1f} texts/s",
                ["speed ratio (higher = first is faster)", "measured", "goal"], rows)
    return result, md


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", "encode"])
