"""Shared helpers of the performance benchmarks: the default encoder, real texts, side-by-side timing, results.

Every ratio is measured inside one run, A and B alternating round by round (A B A B ...), and is the ratio of
the two medians, so a machine that is slower or busier for a while slows both sides alike.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"


def default_config(backbone: str | None = None):
    """configs/default.yaml (eos pooling, PromptEOL prompt, max_length 80, top 8 layers), optionally another
    backbone (the tests use a tiny random Llama)."""
    from text2token.config import load_config

    overrides = [f"model.backbone={backbone}"] if backbone else []
    return load_config(DEFAULT_CONFIG, overrides)


def load_encoder(cfg):
    from text2token.model.encoder import Encoder

    m = cfg.model
    return Encoder.from_backbone(m.backbone, m.encoder_settings(), dtype=m.dtype, trust_remote_code=m.trust_remote_code,
                                 device="cpu")


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    """Real texts of mixed length from the Wikipedia lead extracts: a third short (the article's description,
    ~5 words), a third 40-word passages, a third whole lead extracts (usually past max_length: truncated)."""
    from text2token.data import split_passages, wiki_articles

    articles = [a for a in wiki_articles() if a["description"]]
    rng = np.random.default_rng(seed)
    picked = [articles[i] for i in rng.choice(len(articles), n, replace=len(articles) < n)]
    out = []
    for i, a in enumerate(picked):
        kind = i % 3
        out.append(a["description"] if kind == 0 else split_passages(a["extract"], 40)[0] if kind == 1
                   else a["extract"])
    rng.shuffle(out)
    return out


def passages(n: int, seed: int = 0) -> list[str]:
    """``n`` 40-word Wikipedia passages (the training corpus), repeated if ``n`` is larger than the corpus."""
    from text2token.data import wiki_passages
    from text2token.eval.split import HELDOUT_FRACTION

    pool = wiki_passages(40, HELDOUT_FRACTION)
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), n, replace=len(pool) < n)]


def side_by_side(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, dict]:
    """Runs each function ``rounds`` times, interleaved; per name: median/min seconds and all times."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "times_s": [round(x, 4) for x in t]}
            for name, t in times.items()}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b > 0 else float("nan")


class threads:
    """``with threads(1): ...`` runs torch with that many intra-op threads, then restores the count."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, result: dict, markdown: str, out_dir: Path | None = None) -> Path:
    """Writes ``<out_dir>/<name>.json`` and ``<name>.md``; returns the JSON path."""
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"{name}.md").write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return path


def goal(name: str, measured: float, target: float, op: str = ">=", exact: float | None = None) -> dict:
    """One goal row of a result: ``measured op target``; ``exact`` is the unrounded value to test when
    ``measured`` is rounded for display."""
    value = measured if exact is None else exact
    met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    shown = f"{target:,}" if isinstance(target, int) else f"{target}"
    return {"name": name, "goal": f"{op} {shown}", "measured": measured, "met": bool(met)}


def ratio_rows(ratios: dict, labels: dict[str, str], goals: dict[str, str] | None = None) -> list[list]:
    """Table rows ``[label, ratio, goal]`` for the named entries of a result's ``ratios``, in ``labels``' order."""
    goals = goals or {}
    return [[label, ratios[key], goals.get(key, "")] for key, label in labels.items()]


def report(intro: str, header: list[str], rows: list[list]) -> str:
    """A benchmark's markdown: one intro line, then the table of its rows."""
    return intro + "\n\n" + table(header, rows)


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
