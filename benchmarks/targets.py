"""Target building throughput: data-driven (texts/s) and model-derived vs encode, side by side.

    python -m benchmarks --only targets

- data-driven: ``DataDrivenTargets`` fitted on the texts, then ``TargetStore.build`` over them (``transform`` +
  checksummed shard writes, as ``train.py`` does), on real 64-token texts (Wikipedia passages joined and cut
  at 64 tokens). The tokenizer alone (``encode_batch_fast`` of the copy ``transform`` calls) is the ceiling
  and is measured too. Ids and targets of every text are checked against the tokenizer's own call and the
  original transform.
- model-derived: ``ModelDerivedTargets.transform`` (default config: the frozen backbone read after the PromptEOL
  prompt, top-32 of the filtered vocabulary, mixed half-half with the data-driven target) vs
  ``Encoder.encode`` of the same mixed-length texts, batch ``targets.batch_size``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import goal, load_encoder, mixed_texts, passages, ratio, report, side_by_side

SIZES = {"default": {"dd_texts": 20000, "dd_rounds": 3, "md_texts": 64, "md_rounds": 3},
         "quick": {"dd_texts": 300, "dd_rounds": 1, "md_texts": 12, "md_rounds": 1}}
DD_GOAL = 20000
MD_GOAL = 0.9


def texts_of_tokens(tokenizer, n: int, tokens: int = 64) -> list[str]:
    """``n`` real texts of about ``tokens`` tokens: consecutive Wikipedia passages joined, cut, decoded."""
    pool = passages(3 * n + 3, seed=1)
    joined = [" ".join(pool[i:i + 3]) for i in range(0, 3 * n, 3)]
    ids = tokenizer(joined, add_special_tokens=False)["input_ids"]
    return [tokenizer.decode(r[:tokens]).strip() for r in ids]


def original_transform(dd, texts, tw):
    """The data-driven transform as first written (the tokenizer's own call, a Python generator over every token,
    a COO count matrix, a dense-row multiply): the reference the vectorised one must equal byte for byte
    (``tests/targets/test_targets.py``) and the speed it is compared with."""
    import scipy.sparse as sp

    from text2token.targets.data_driven import topk_rows

    token_ids = dd.tokenizer([dd.prefix + t for t in texts], add_special_tokens=False)["input_ids"]
    lengths = np.fromiter((len(r) for r in token_ids), dtype=np.int64, count=len(token_ids))
    cols = np.fromiter((t for r in token_ids for t in r), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(token_ids)), lengths)
    keep = cols < dd.vocab_size
    counts = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                           shape=(len(token_ids), dd.vocab_size))
    counts.sum_duplicates()
    if dd.cfg.tf == "log":
        counts.data = 1.0 + np.log(counts.data)
    elif dd.cfg.tf == "binary":
        counts.data = np.ones_like(counts.data)
    ids, w = topk_rows(sp.csr_matrix(counts.multiply(tw[None, :])), dd.cfg.top_k)
    if dd.cfg.power != 1.0:
        w = w ** dd.cfg.power
    total = w.sum(1, keepdims=True)
    return ids, np.divide(w, total, out=np.zeros_like(w), where=total > 0).astype(np.float32)


def run(cfg, size: dict) -> tuple[dict, str]:
    from text2token.targets import DataDrivenTargets, ModelDerivedTargets, TargetStore, VocabFilter
    from text2token.targets.data_driven import _token_ids

    encoder = load_encoder(cfg)
    tok = encoder.tokenizer
    ddc = cfg.targets.data_driven
    texts = texts_of_tokens(tok, size["dd_texts"])
    lengths = [len(r) for r in tok(texts, add_special_tokens=False)["input_ids"]]
    vocab = VocabFilter.from_tokenizer(tok, encoder.vocab_size, min_chars=ddc.min_chars)
    dd = DataDrivenTargets(tok, encoder.vocab_size, ddc, vocab)
    start = time.perf_counter()
    dd.fit(texts[i:i + cfg.targets.shard_size] for i in range(0, len(texts), cfg.targets.shard_size))
    fit_s = time.perf_counter() - start
    tw = dd.token_weights()
    tmp = tempfile.TemporaryDirectory(prefix="t2t-bench-")
    builds = iter(range(10**6))

    def build():
        TargetStore.build(Path(tmp.name) / f"s{next(builds)}", "bench", np.arange(len(texts)),
                          lambda i, j: texts[i:j], lambda t: dd.transform(t, tw), ddc.top_k,
                          shard_size=cfg.targets.shard_size, show_progress=False)

    backend = dd.backend  # the tokenizer copy transform calls (a larger BPE word cache)
    dd_t = side_by_side({
        "store_build": build,
        "transform": lambda: dd.transform(texts, tw),
        "original_transform": lambda: original_transform(dd, texts, tw),
        "tokenizer_only": lambda: backend.encode_batch_fast([" " + t for t in texts], add_special_tokens=False),
    }, rounds=size["dd_rounds"])
    tmp.cleanup()
    identical_ids = _token_ids(tok, texts, dd.prefix, dd.backend) == tok([dd.prefix + t for t in texts],
                                                              add_special_tokens=False)["input_ids"]
    new, old = dd.transform(texts, tw), original_transform(dd, texts, tw)
    identical = {"ids": bool(identical_ids),
                 "targets": bool(np.array_equal(new[0], old[0]) and np.array_equal(new[1], old[1]))}

    md = ModelDerivedTargets(encoder, cfg.targets.model_derived, vocab, dd, cfg.targets.batch_size)
    mixed = mixed_texts(size["md_texts"])
    encoder.model.eval()
    md_t = side_by_side({
        "model_derived": lambda: md.transform(mixed),
        "encode": lambda: encoder.encode(mixed, batch_size=cfg.targets.batch_size, show_progress_bar=False),
    }, rounds=size["md_rounds"])
    return summarise(cfg, dd_t, md_t, lengths, fit_s, len(mixed), identical)


def summarise(cfg, dd_t: dict, md_t: dict, lengths: list, fit_s: float, n_mixed: int,
              identical: dict) -> tuple[dict, str]:
    """The result and its table from the timings (``lengths``: the data-driven texts' token counts)."""
    ddc, md_cfg = cfg.targets.data_driven, cfg.targets.model_derived
    n = len(lengths)
    dd_rate = {k: round(n / v["median_s"], 1) for k, v in dd_t.items()}
    md_ratio = ratio(md_t["encode"]["median_s"], md_t["model_derived"]["median_s"])
    identical_targets = identical["targets"]
    result = {
        "data_driven": {"texts": n, "mean_tokens": round(float(np.mean(lengths)), 1), "fit_s": round(fit_s, 3),
                        "fit_texts_per_s": round(n / fit_s, 1), "texts_per_s": dd_rate, "seconds": dd_t,
                        "fast_tokenizer_ids_identical": identical["ids"],
                        "identical_to_original": identical_targets, "top_k": ddc.top_k},
        "model_derived": {"texts": n_mixed, "batch_size": cfg.targets.batch_size, "seconds": md_t,
                          "texts_per_s": {k: round(n_mixed / v["median_s"], 2) for k, v in md_t.items()},
                          "mix_data": md_cfg.mix_data, "source": md_cfg.source},
        "ratios": {"model_derived_vs_encode_throughput": md_ratio,
                   "transform_vs_original_throughput": ratio(dd_t["original_transform"]["median_s"],
                                                             dd_t["transform"]["median_s"])},
        "goals": [
            goal("data-driven target building, 64-token texts (texts/s, TargetStore.build)", dd_rate["store_build"],
                 DD_GOAL, ">="),
            goal("model-derived target building / encode throughput", md_ratio, MD_GOAL, ">="),
        ],
        "model": cfg.model.backbone,
    }
    rows = [["data-driven: TargetStore.build (transform + shard writes)", f"{dd_rate['store_build']:,.0f} texts/s",
             f">= {DD_GOAL:,} texts/s"],
            ["data-driven: transform alone", f"{dd_rate['transform']:,.0f} texts/s", ""],
            ["data-driven: the original transform (before this change)",
             f"{dd_rate['original_transform']:,.0f} texts/s", ""],
            ["data-driven: the tokenizer alone (ceiling)", f"{dd_rate['tokenizer_only']:,.0f} texts/s", ""],
            ["data-driven: fit (document frequencies)", f"{n / fit_s:,.0f} texts/s", ""],
            ["model-derived / encode (throughput ratio)", md_ratio, f">= {MD_GOAL}"]]
    md_text = report(f"data-driven: {n:,} Wikipedia texts of {np.mean(lengths):.1f} tokens, top-{ddc.top_k} (output "
                     f"identical to the original implementation: {identical_targets}); "
                     f"model-derived: {n_mixed} mixed-length texts, `{cfg.model.backbone}`",
                     ["target building", "measured", "goal"], rows)
    return result, md_text


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", "targets"])
