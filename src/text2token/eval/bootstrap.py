"""Bootstrap standard errors of suite scores: resample each task's items (queries, texts, pairs) with replacement.

A task result's ``items`` (written by ``Task.evaluate(items=True)``) says how its main score is made from items:
``mean`` (per-item values: a query's nDCG@10 / AP, a text's out-of-fold correctness), ``v_measure`` (labels and
k-means assignments, one per seed) or ``ap`` (pair labels and similarities). The same seeded resamples serve
every model, so the standard error of a *difference* of two models is paired.
"""

from __future__ import annotations

import zlib
from typing import Callable, Sequence

import numpy as np

from ..errors import Text2TokenError

ROUNDS = 1000


def compact(items: dict) -> dict:
    """JSON-ready item data (4 decimals for floats)."""
    out = {}
    for key, value in items.items():
        if key == "assignments":
            out[key] = [np.asarray(a).astype(int).tolist() for a in value]
        elif isinstance(value, np.ndarray) or (isinstance(value, list) and value and not isinstance(value[0], str)):
            arr = np.asarray(value)
            out[key] = arr.astype(int).tolist() if arr.dtype.kind in "bi" else np.round(arr, 4).tolist()
        else:
            out[key] = value
    return out


def v_measure(labels: np.ndarray, assigned: np.ndarray) -> float:
    """sklearn's ``v_measure_score`` (beta 1), without its per-call checks: the bootstrap calls it 1000s of times."""
    _, y = np.unique(labels, return_inverse=True)
    _, c = np.unique(assigned, return_inverse=True)
    joint = np.bincount(y * (c.max() + 1) + c).astype(float)
    joint = joint[joint > 0] / len(y)

    def entropy(codes: np.ndarray) -> float:
        p = np.bincount(codes) / len(codes)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_y, h_c = entropy(y), entropy(c)
    mutual = h_y + h_c + float((joint * np.log(joint)).sum())
    homogeneity = 1.0 if h_y == 0 else mutual / h_y
    completeness = 1.0 if h_c == 0 else mutual / h_c
    total = homogeneity + completeness
    return 0.0 if total == 0 else 2 * homogeneity * completeness / total


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's ``average_precision_score`` for binary labels (ties share a threshold), vectorised."""
    order = np.argsort(-scores, kind="mergesort")
    y, s = labels[order].astype(float), scores[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    tps = np.cumsum(y)[last]
    if tps[-1] == 0:
        return 0.0
    precision, recall = tps / (last + 1), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def statistic(items: dict) -> tuple[int, Callable[[np.ndarray], float]]:
    """(number of items, score of a resample given its item indices)."""
    kind = items.get("kind")
    if kind == "mean":
        values = np.asarray(items["values"], dtype=float)
        return len(values), lambda idx: float(values[idx].mean())
    if kind == "v_measure":
        labels = np.asarray(items["labels"])
        assignments = [np.asarray(a) for a in items["assignments"]]
        return len(labels), lambda idx: float(np.mean([v_measure(labels[idx], a[idx]) for a in assignments]))
    if kind == "ap":
        labels, sims = np.asarray(items["labels"]), np.asarray(items["sims"], dtype=float)
        return len(labels), lambda idx: average_precision(labels[idx], sims[idx])
    raise Text2TokenError(f"unknown bootstrap item kind {kind!r} (expected mean, v_measure or ap)")


def replicates(tasks: dict, rounds: int = ROUNDS, seed: int = 0) -> dict[str, np.ndarray]:
    """Per task (name -> result with ``items``): the main score of ``rounds`` seeded resamples."""
    out = {}
    for name in sorted(tasks):
        if "items" not in tasks[name]:
            raise Text2TokenError(f"task {name}: no item data to bootstrap (re-run `text2token eval`)")
        n, stat = statistic(tasks[name]["items"])
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])  # the same resamples for every model
        out[name] = np.array([stat(rng.integers(0, n, n)) for _ in range(rounds)])
    return out


def standard_errors(tasks: dict, rounds: int = ROUNDS) -> dict:
    """Bootstrap SE of each task's main score and of the task average."""
    reps = replicates(tasks, rounds)
    return {"average_se": float(np.mean(list(reps.values()), axis=0).std(ddof=1)),
            "task_se": {k: float(v.std(ddof=1)) for k, v in reps.items()}}


def paired_difference(a: dict, b: dict, rounds: int = ROUNDS, reps_a: dict | None = None) -> dict:
    """``b`` minus ``a`` (two results records on the same tasks): the average's difference and its paired SE.
    ``reps_a``: ``a``'s replicates of (at least) these tasks when already computed (they depend only on ``a``'s
    items and ``rounds``)."""
    names = sorted(set(a["tasks"]) & set(b["tasks"]))
    if not names:
        raise Text2TokenError("the two results share no task")
    ra = replicates({k: a["tasks"][k] for k in names}, rounds) if reps_a is None else {k: reps_a[k] for k in names}
    rb = replicates({k: b["tasks"][k] for k in names}, rounds)
    diff = np.mean([rb[k] - ra[k] for k in names], axis=0)
    point = float(np.mean([b["tasks"][k]["main_score"] - a["tasks"][k]["main_score"] for k in names]))
    return {"difference": point, "se": float(diff.std(ddof=1)), "tasks": names}


def difference_lines(runs: Sequence[dict]) -> list[str]:
    """Markdown lines: each run's average minus the first run's, with the paired bootstrap SE."""
    lines, first = [], runs[0]
    reps_first = replicates(first["tasks"]) if runs[1:] else None
    for r in runs[1:]:
        d = paired_difference(first, r, reps_a=reps_first)
        lines.append(f"- {r['model']} - {first['model']}: {100 * d['difference']:+.2f} "
                     f"(paired bootstrap SE {100 * d['se']:.2f}, {len(d['tasks'])} tasks)")
    return lines
