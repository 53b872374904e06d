"""Inference precision: encode at fp32, bf16 and int8 against the fp32 bare forward, side by side, plus agreement.

    python -m benchmarks --only precision          (or: python -m benchmarks.precision [--model DIR])

- ``bare_fp32``: ``encoder.base(**batch)`` in float32 on the encoder's own length-sorted batches (tokenised
  beforehand): the reference every ratio divides by.
- ``encode_<precision>``: ``Encoder.load(model, precision=...).encode(texts)`` (tokenising, pooling, copying included).
- agreement: cosine of each text's vector with its fp32 vector (mean and min) over the suite's own texts.
- the offline-suite average (test split) of each precision, with ``--suite`` (the default size runs it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import goal, load_encoder, mixed_texts, ratio, ratio_rows, report, side_by_side

SIZES = {"default": {"texts": 64, "batch_size": 32, "rounds": 3, "agreement_texts": 1024, "suite": True},
         "quick": {"texts": 16, "batch_size": 8, "rounds": 1, "agreement_texts": 32, "suite": False}}
PRECISIONS = ("fp32", "bf16", "int8")
GOALS = {"speed": 2.0, "cosine_mean": 0.99, "cosine_min": 0.98, "suite_points": 0.3}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(1)


def _agreement_texts(n: int) -> list[str]:
    """The offline suite's own texts (a seeded sample of them), else real Wikipedia texts."""
    try:
        from text2token.eval.suite import load_suite, suite_texts

        texts = suite_texts(load_suite("test"))
        pick = np.random.default_rng(0).choice(len(texts), min(n, len(texts)), replace=False)
        return [texts[i] for i in sorted(pick)]
    except Exception:  # noqa: BLE001 - suite data missing (a machine without WordNet): Wikipedia texts
        return mixed_texts(n, seed=1)


def _suite_average(encoder) -> float:
    from text2token.eval.suite import load_suite, run_suite

    return run_suite(encoder, load_suite("test"), "precision", "test", show_progress_bar=False)["average"]


def _encoders(cfg, model_dir: Path | None) -> dict:
    from text2token.model.encoder import Encoder

    if model_dir is None:  # the raw backbone with the default settings, saved once so every precision loads it
        model_dir = Path(tempfile.mkdtemp()) / "model"
        load_encoder(cfg).save(model_dir)
    return {p: Encoder.load(model_dir, device="cpu", precision=p) for p in PRECISIONS}


def run(cfg, size: dict, model_dir: Path | None = None) -> tuple[dict, str]:
    encoders = _encoders(cfg, model_dir)
    fp32 = encoders["fp32"]
    texts, bs = mixed_texts(size["texts"]), size["batch_size"]
    batches = [batch for _, batch in fp32._batches(texts, bs, False, "encode")]

    def bare():
        with torch.inference_mode():
            for b in batches:
                fp32.base(**b, use_cache=False)

    fns = {"bare_fp32": bare, **{f"encode_{p}": (lambda e=e: e.encode(texts, batch_size=bs, show_progress_bar=False))
                                 for p, e in encoders.items()}}
    t = side_by_side(fns, rounds=size["rounds"])
    med = {k: v["median_s"] for k, v in t.items()}
    check = _agreement_texts(size["agreement_texts"])
    want = fp32.encode(check, batch_size=bs, show_progress_bar=False)
    agreement = {}
    for p in PRECISIONS[1:]:
        cos = _cosines(encoders[p].encode(check, batch_size=bs, show_progress_bar=False), want)
        agreement[p] = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}
    suite = {p: _suite_average(e) for p, e in encoders.items()} if size["suite"] else {}
    ratios = {f"{p}_vs_bare_fp32": ratio(med["bare_fp32"], med[f"encode_{p}"]) for p in PRECISIONS}
    result = {
        "texts": len(texts), "batch_size": bs, "agreement_texts": len(check), "seconds": t,
        "texts_per_s": {k: round(len(texts) / v, 2) for k, v in med.items()},
        "ratios": ratios, "agreement": agreement, "suite_average": suite,
        "goals": _goals(ratios, agreement, suite),
        "model": str(model_dir) if model_dir else cfg.model.backbone, "torch_threads": torch.get_num_threads(),
        "notes": "ratios: encode throughput at each precision / fp32 bare forward throughput on the same batches",
    }
    rows = ratio_rows(ratios, {f"{p}_vs_bare_fp32": f"encode {p} vs fp32 bare forward" for p in PRECISIONS},
                      goals={f"{p}_vs_bare_fp32": f">= {GOALS['speed']} (default)" for p in PRECISIONS[1:]})
    for p, a in agreement.items():
        rows.append((f"{p}: cosine to fp32, mean / min", f"{a['cosine_mean']:.4f} / {a['cosine_min']:.4f}",
                     f">= {GOALS['cosine_mean']} / >= {GOALS['cosine_min']}"))
    for p, avg in suite.items():
        rows.append((f"{p}: offline-suite average (test)", f"{100 * avg:.2f}",
                     "" if p == "fp32" else f"within {GOALS['suite_points']} of fp32"))
    md = report(f"{len(texts)} mixed-length Wikipedia texts, batch {bs}, agreement over {len(check)} suite texts; "
                f"model `{result['model']}`", ["measure", "measured", "goal"], rows)
    return result, md


def _goals(ratios: dict, agreement: dict, suite: dict) -> list[dict]:
    out = []
    for p, a in agreement.items():
        out.append(goal(f"{p} encode / fp32 bare forward", ratios[f"{p}_vs_bare_fp32"], GOALS["speed"], ">="))
        out.append(goal(f"{p} mean cosine to fp32", round(a["cosine_mean"], 4), GOALS["cosine_mean"], ">="))
        out.append(goal(f"{p} min cosine to fp32", round(a["cosine_min"], 4), GOALS["cosine_min"], ">="))
        if suite:
            gap = round(100 * abs(suite[p] - suite["fp32"]), 2)
            out.append(goal(f"{p} suite average, points from fp32", gap, GOALS["suite_points"], "<="))
    return out


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", "precision"])
