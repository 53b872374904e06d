"""Every PNG the project draws: a run's loss and probe curves, token bars, the comparison bars and the grid's
heatmap and loss curves (scripts/grid_report.py)."""

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


def bar_colors(n: int) -> list:
    """``n`` distinct colours (RGB tuples): the default cycle's 10, tab20's 20 past that, then a continuous map."""
    import matplotlib.pyplot as plt
    import numpy as np

    if n <= 10:
        return list(plt.get_cmap("tab10").colors[:n])
    if n <= 20:
        return list(plt.get_cmap("tab20").colors[:n])
    return [tuple(c[:3]) for c in plt.get_cmap("turbo")(np.linspace(0, 1, n))]


def plot_comparison(runs: list[dict], path: str | Path, title: str = "offline suite") -> Path:
    """Grouped bars: one group per task (plus the average), one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(dict.fromkeys(t for r in runs for t in r["tasks"]))
    groups = [*tasks, "average"]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(9, 1.1 * len(groups) + 2), 4.8), dpi=120)
    x = np.arange(len(groups))
    colors = bar_colors(len(runs))
    for i, r in enumerate(runs):
        full = all(t in r["tasks"] for t in tasks)
        vals = [r["tasks"][t]["main_score"] if t in r["tasks"] else np.nan for t in tasks]
        vals.append(r["average"] if full and r["average"] is not None else np.nan)
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, vals, width, label=r["model"], color=colors[i])
    ax.set_xticks(x)
    ax.set_xticklabels([g.replace("-", "\n", 1) for g in groups], fontsize=7)
    ax.set_ylabel("main score")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(runs)), loc="upper left", bbox_to_anchor=(0, -0.18))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_coopt(run_dir: str | Path) -> Path | None:
    """``<run>/coopt.png``: the co-optimisation probe (vocabulary space vs representation space) against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    probes = sorted((r for r in records if r.get("event") == "probe"), key=lambda r: r["global_step"])
    if len(probes) < 2:
        return None
    overlap_key = next(k for k in probes[0] if k.startswith("vocab_top"))
    steps = [r["global_step"] for r in probes]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    ax = axes[0]
    ax.plot(steps, [r["vocab_kl"] for r in probes], marker="o", color="tab:red", label="KL(target || LM head)")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out KL", color="tab:red")
    twin = ax.twinx()
    twin.plot(steps, [r[overlap_key] for r in probes], marker="s", color="tab:purple",
              label=overlap_key.replace("vocab_", "").replace("_", " "))
    twin.set_ylabel(overlap_key.replace("vocab_", "").replace("_", " "), color="tab:purple")
    ax.set_title("vocabulary space")
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(steps, [r["retrieval_ndcg@10"] for r in probes], marker="o", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out retrieval nDCG@10")
    ax.set_title("representation space")
    ax.grid(alpha=0.3)
    for axis in axes:  # stage boundaries
        for r0, r1 in zip(probes, probes[1:]):
            if r0.get("stage") and r1.get("stage") and r0["stage"] != r1["stage"]:
                axis.axvline(r0["global_step"], color="grey", ls="--", lw=0.8)
    fig.suptitle(f"co-optimisation of the two spaces ({run_dir.name})")
    fig.tight_layout()
    out = run_dir / "coopt.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_grid(named: list[tuple[str, dict]], path: str | Path, types: list[str]) -> Path | None:
    """Heatmap: one row per cell, columns the task average, the per-type average and each type's average (x 100,
    written in the cells). ``named``: (cell name, `text2token eval` result); None when there is none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not named:
        return None
    cols = ["avg (tasks)", "avg (types)", *types]
    vals = np.array([[r.get("average") or np.nan, r.get("average_by_type") or np.nan,
                      *[r.get("type_averages", {}).get(t, np.nan) for t in types]] for _, r in named]) * 100
    fig, ax = plt.subplots(figsize=(2 + 1.1 * len(cols), 1.2 + 0.32 * len(named)), dpi=120)
    im = ax.imshow(vals, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(vals):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if v < np.nanmean(vals[:, j]) else "black")
    ax.set_xticks(range(len(cols)), [c.replace("_", "\n") for c in cols], fontsize=8)
    ax.set_yticks(range(len(named)), [n for n, _ in named], fontsize=7)
    ax.set_title(f"the grid: averages x 100 ({named[0][1].get('split')} split)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_loss_grid(curves: dict[str, dict[str, list[tuple[int, float]]]], path: str | Path,
                   ncols: int = 3) -> Path | None:
    """Small multiples: one panel per cell, its training loss against the global step, one colour per stage
    (``curves``: cell -> stage -> [(step, loss)]); None when there is no curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        return None
    nrows = -(-len(curves) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.4 * nrows), dpi=100, squeeze=False)
    for ax, (cell, stages) in zip(axes.flat, curves.items()):
        for stage, points in stages.items():
            ax.plot(*zip(*sorted(points)), lw=1, label=stage)
        ax.set_title(cell, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.supxlabel("step", fontsize=9)
    fig.supylabel("training loss (each stage its objective's)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
