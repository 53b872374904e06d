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


def plot_tokens(pairs: list[tuple[str, float]], path: str | Path, title: str = "top tokens") -> Path:
    """Draws a horizontal bar chart of (token, probability) pairs, the first on top, to a PNG at ``path``."""
    return plot_token_panels({title: pairs}, path)


def plot_token_panels(panels: dict[str, list[tuple[str, float]]], path: str | Path, title: str | None = None) -> Path:
    """One horizontal bar chart of (token, probability) pairs per panel, side by side (e.g. before / after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    rows = max(len(pairs) for pairs in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.3 * rows + 1.4), dpi=120, squeeze=False)
    for ax, (name, pairs) in zip(axes[0], panels.items()):
        labels = [repr(token) for token, _ in pairs][::-1]
        values = [p for _, p in pairs][::-1]
        ax.barh(range(len(values)), values, color="tab:blue")
        ax.set_yticks(range(len(values)), labels, fontsize=9)
        ax.set_xlabel("probability")
        ax.set_title(name, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
