"""The grid's report: one markdown table and one PNG of task and per-type averages per cell, the loss curves of
every trained cell, and `text2token compare`'s per-task table.

    python scripts/grid_report.py [--results results/offline/grid] [--records results/offline/grid/train]

Writes RESULTS/grid.md (every cell), RESULTS/scored.md (the scored cells only), RESULTS/grid.png,
RESULTS/loss.png and RESULTS/tasks.{md,png} (the last from the cells with a result). Loss curves and CPU-minutes
come from the training records scripts/run_grid.py keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grid_configs import CELLS, REFERENCES, Cell, Reference  # noqa: E402

FLAT = 0.05  # a stage is flat when its last quarter lowered the loss by under 5% of the whole stage's drop


def train_events(metrics: Path) -> list[dict]:
    """The ``train`` events of a metrics.jsonl; none when the file is missing."""
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return [r for r in (json.loads(line) for line in lines if line.strip()) if r.get("event") == "train"]


def train_curve(events: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Stage name -> [(global step, loss)] from a metrics.jsonl's train events."""
    curve: dict[str, list[tuple[int, float]]] = {}
    for r in events:
        curve.setdefault(r["stage"], []).append((r["global_step"], r["loss"]))
    return curve


def step_seconds(events: list[dict]) -> dict[str, float]:
    """Stage name -> wall seconds per optimizer step, from the logged ``seconds`` (since the stage or resume
    began): the sum of its increases over the steps they span, so a resumed run's restart of the clock is skipped."""
    spans: dict[str, list[float]] = {}
    last: dict[str, dict] = {}
    for r in events:
        if "seconds" not in r:
            continue
        prev, last[r["stage"]] = last.get(r["stage"]), r
        if prev and r["step"] > prev["step"] and r["seconds"] > prev["seconds"]:
            span = spans.setdefault(r["stage"], [0.0, 0.0])
            span[0] += r["seconds"] - prev["seconds"]
            span[1] += r["step"] - prev["step"]
    return {stage: secs / steps for stage, (secs, steps) in spans.items()}


def late_drop(points: list[tuple[int, float]]) -> float | None:
    """(median loss of the stage's third quarter - of its last quarter) / (first quarter's median - last quarter's):
    the share of the stage's loss decrease still happening at its end; None with fewer than 8 points. Medians,
    because one spiky batch (a SimCSE loss near 0 jumping to 1.2) would otherwise decide it. 0 when the last quarter
    is not significantly below the third (one-sided Mann-Whitney, p >= 0.05) or the stage did not fall: per-batch
    losses that are mostly noise (a SimCSE stage starting near 0) show no decrease still going on."""
    from scipy.stats import mannwhitneyu

    losses = [loss for _, loss in sorted(points)]
    if len(losses) < 8:
        return None
    q = len(losses) // 4
    third, fourth = losses[-2 * q:-q], losses[-q:]
    total = median(losses[:q]) - median(fourth)
    if total <= 0 or mannwhitneyu(third, fourth, alternative="greater").pvalue >= 0.05:
        return 0.0
    return (median(third) - median(fourth)) / total


def cpu_minutes(record: dict, kind: str) -> float | None:
    """Wall time x threads of the record's ``kind`` (train / eval) segments, in minutes; every try counts."""
    segs = [s for s in record.get("segments", []) if s["kind"] == kind]
    return sum(s["wall_s"] * s["threads"] for s in segs) / 60 if segs else None


def load_row(cell: Cell | Reference, results: Path, records: Path) -> dict:
    result_file, record_file = results / f"{cell.name}.json", records / f"{cell.name}.json"
    events = train_events(records / f"{cell.name}.metrics.jsonl")
    curve = train_curve(events)
    return {"cell": cell, "result": json.loads(result_file.read_text()) if result_file.is_file() else None,
            "record": json.loads(record_file.read_text()) if record_file.is_file() else {}, "curve": curve,
            "late_drop": [late_drop(points) for points in curve.values()], "step_s": step_seconds(events)}


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _gain(row: dict, untrained: dict) -> str:
    """The row's task average minus its setting's untrained reference's, x 100 ("—" when either is missing)."""
    ref = untrained.get((row["cell"].pooling, row["cell"].attention))
    if row["cell"].method == "untrained" or not row["result"] or ref is None:
        return "—"
    return f"{100 * (row['result']['average'] - ref):+.1f}"


def grid_table(rows: list[dict], types: list[str]) -> str:
    """Markdown: one row per cell (the driver's order; untrained references first), scores x 100, the gain over
    the setting's untrained backbone, CPU-minutes, and the flattening check."""
    head = ["cell", "method", "pooling", "attention", "trainable", "avg (tasks)", "vs untrained", "avg (types)",
            *types, "train CPU-min", "s/step (per stage)", "late loss drop % (per stage)", "flat"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|---|" + "---:|" * (len(head) - 6) + "---|"]
    untrained = {(row["cell"].pooling, row["cell"].attention): row["result"]["average"] for row in rows
                 if row["cell"].method == "untrained" and row["result"]}
    for row in rows:
        c, r = row["cell"], row["result"] or {}
        scores = [_pct(r.get("average")), _gain(row, untrained), _pct(r.get("average_by_type"))]
        scores += [_pct(r.get("type_averages", {}).get(t)) for t in types]
        cpu = cpu_minutes(row["record"], "train")
        drops = row["late_drop"]
        flat = "—" if not drops or None in drops else ("yes" if max(drops) < FLAT else "**no**")
        step_s = " / ".join(f"{v:.1f}" for v in row["step_s"].values()) or "—"
        lines.append("| " + " | ".join([c.name, c.method, c.pooling, c.attention, c.trainable, *scores,
                                         "—" if cpu is None else f"{cpu:.0f}", step_s,
                                         " / ".join(map(_pct, drops)) or "—", flat]) + " |")
    lines += ["", f"Scores x 100 on the suite's {_split(rows)} split; vs untrained: the task average's change from "
              "the setting's untrained backbone (`untrained-*`: `baseline:mean`, `prompteol` or their `-bidir` "
              "forms); s/step: wall seconds per optimizer step of each stage on the 2 CPU cores; late loss drop: "
              f"how much of a stage's loss decrease its last quarter still made (flat: under {100 * FLAT:.0f}% in "
              "every stage)."]
    return "\n".join(lines) + "\n"


def _split(rows: list[dict]) -> str:
    splits = {row["result"].get("split") for row in rows if row["result"]}
    return "/".join(sorted(map(str, splits))) or "(no results yet)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results/offline/grid"))
    p.add_argument("--records", type=Path, default=Path("results/offline/grid/train"))
    a = p.parse_args(argv)
    from text2token.eval.plots import plot_comparison, plot_grid, plot_loss_grid
    from text2token.eval.report import comparison_table, load_results
    from text2token.eval.suite import TASK_TYPES

    rows = [load_row(c, a.results, a.records) for c in [*REFERENCES, *CELLS]]
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / "grid.md").write_text(grid_table(rows, list(TASK_TYPES)))
    scored = [row for row in rows if row["result"]]
    (a.results / "scored.md").write_text(grid_table(scored, list(TASK_TYPES)))  # the README quotes this one
    plot_grid([(row["cell"].name, row["result"]) for row in scored], a.results / "grid.png", list(TASK_TYPES))
    plot_loss_grid({row["cell"].name: row["curve"] for row in rows if row["curve"]}, a.results / "loss.png")
    if scored:  # what `text2token compare RESULTS/CELL.json ... --output RESULTS/tasks` writes
        runs = load_results([a.results / f"{row['cell'].name}.json" for row in scored])
        (a.results / "tasks.md").write_text(comparison_table(runs))
        plot_comparison(runs, a.results / "tasks.png", title="the grid: per-task scores")
    pngs = [f for f in ("grid.png", "loss.png", "tasks.png") if (a.results / f).is_file()]
    print(f"wrote {a.results / 'grid.md'}, scored.md and {', '.join(pngs) or 'no plot yet'} "
          f"({sum(r['cell'] in CELLS for r in scored)} of {len(CELLS)} cells scored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
