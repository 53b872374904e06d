"""Tables of eval results (``text2token compare``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import Text2TokenError


def load_results(paths: Sequence[Path]) -> list[dict]:
    runs = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise Text2TokenError(f"results file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise Text2TokenError(f"{path}: not a JSON results file") from None
        if not isinstance(data, dict) or "tasks" not in data or "model" not in data:
            raise Text2TokenError(f"{path}: not written by `text2token eval` (no model/tasks)")
        runs.append(data)
    if not runs:
        raise Text2TokenError("no results given")
    splits = {r.get("split") for r in runs}
    if len(splits) > 1:
        raise Text2TokenError(f"results mix splits {sorted(map(str, splits))}; compare one split at a time")
    return runs


def task_order(runs: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(t for r in runs for t in r["tasks"]))


def comparison_table(runs: Sequence[dict]) -> str:
    """Markdown: one row per model, one column per task (main score x 100), the averages; best per column bold.
    The averages cover only models that ran every task (BM25 has no vectors for the other tasks)."""
    tasks = task_order(runs)
    short = [t.replace("-classification", "-clf").replace("-clustering", "-clust").replace("-retrieval", "-ret")
             .replace("-reranking", "-rerank") for t in tasks]
    with_se = all(r.get("average_se") is not None for r in runs)
    cols = [*short, "avg (tasks)", "avg (types)", *(["avg se"] if with_se else [])]
    rows = []
    for r in runs:
        full = all(t in r["tasks"] for t in tasks)
        vals = [r["tasks"][t]["main_score"] * 100 if t in r["tasks"] else None for t in tasks]
        vals += [r["average"] * 100 if full else None, r["average_by_type"] * 100 if full else None]
        vals += [r["average_se"] * 100 if full else None] if with_se else []
        rows.append((r["model"], vals))
    best = [max((v[i] for _, v in rows if v[i] is not None), default=None) if c != "avg se" else None
            for i, c in enumerate(cols)]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for model, vals in rows:
        cells = ["—" if v is None else (f"**{v:.1f}**" if v == best[i] else f"{v:.1f}") for i, v in enumerate(vals)]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    metrics = {t: runs[0]["tasks"][t]["main_metric"] if t in runs[0]["tasks"] else "" for t in tasks}
    lines.append("")
    lines.append(f"Split: {runs[0].get('split')}. Main metrics (x 100): "
                 + ", ".join(f"{s} {metrics[t] or next(r['tasks'][t]['main_metric'] for r in runs if t in r['tasks'])}"
                             for s, t in zip(short, tasks)) + ".")
    lines += _difference_notes(runs, tasks) if with_se else []
    return "\n".join(lines) + "\n"


def _difference_notes(runs: Sequence[dict], tasks: list[str]) -> list[str]:
    """The bootstrap note: each model's average minus the first model's, with its paired SE."""
    from .bootstrap import difference_lines

    full = [r for r in runs if all(t in r["tasks"] and "items" in r["tasks"][t] for t in tasks)]
    if len(full) < 2:
        return []
    return ["", f"avg se: bootstrap standard error of the task average (resampled queries / texts / pairs). "
                f"Paired bootstrap differences from {full[0]['model']}:", "", *difference_lines(full)]
