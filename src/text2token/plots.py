"""Pictures of a run: the training loss of every stage (PNG)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_run(run_dir: str | Path) -> Path | None:
    """Draws ``<run>/loss.png`` from ``metrics.jsonl`` (loss per global step, one colour per stage)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("event") == "train"]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=120)
    for stage in dict.fromkeys(r["stage"] for r in train):
        pts = [(r["global_step"], r["loss"]) for r in train if r["stage"] == stage]
        ax.plot(*zip(*pts), marker=".", label=f"stage {stage}")
    ax.set_xlabel("step")
    ax.set_ylabel("KL(target || predicted)")
    ax.set_title(f"Text2Token training loss ({run_dir.name})")
    ax.grid(alpha=0.3)
    ax.legend()
    evals = {r["when"]: r for r in records if r.get("event") == "eval"}
    if "before" in evals and "after" in evals:
        ax.text(0.98, 0.95, f"held-out score {evals['before']['mean']:.3f} -> {evals['after']['mean']:.3f}",
                transform=ax.transAxes, ha="right", va="top", fontsize=9)
    fig.tight_layout()
    out = run_dir / "loss.png"
    fig.savefig(out)
    plt.close(fig)
    return out
