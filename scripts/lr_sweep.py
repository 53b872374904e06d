"""Issue 14's learning-rate sweep from the probes ``scripts/run_probes.sh`` scored: suite v2 dev average against
train.lr, one point per seed, raw PromptEOL as the line to beat.

    python scripts/lr_sweep.py [results/offline/v2/dev]    # writes lr_sweep.md and lr_sweep.png there

The sweep is every probe of configs/probes/v2/ that differs from reference.yaml only in train.lr, train.seed and
the stages' steps (reference.yaml itself is the lr 1e-4 point); the probe files are the only record of the lrs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "configs" / "probes" / "v2"
VARIED = ("lr", "seed")


def _recipe(path: Path) -> tuple[dict, dict]:
    """The probe's settings without what the sweep varies, and the varied values (lr, seed, total steps)."""
    from text2token.config import load_config

    cfg = load_config(path).to_dict()
    varied = {key: cfg["train"].pop(key) for key in VARIED}
    varied["steps"] = sum(stage.pop("steps") for stage in cfg["stages"])
    del cfg["output_dir"]
    return cfg, varied


def sweep_points(results: Path) -> list[dict]:
    """One point per scored probe of the sweep, sorted by lr, steps and seed."""
    reference, _ = _recipe(PROBES / "reference.yaml")
    points = []
    for path in sorted(PROBES.glob("*.yaml")):
        result = results / f"probe-{path.stem}.json"
        cfg, varied = _recipe(path)
        if cfg != reference or not result.is_file():
            continue
        scored = json.loads(result.read_text())
        points.append({"probe": path.stem, **varied, "average": scored["average"],
                       "type_averages": scored["type_averages"]})
    return sorted(points, key=lambda p: (p["lr"], p["steps"], p["seed"]))


def table(points: list[dict], prompteol: dict) -> str:
    types = list(prompteol["type_averages"])
    rows = ["| probe | lr | steps | seed | avg | vs PromptEOL | " + " | ".join(types) + " |",
            "|---|---:|---:|---:|---:|---:|" + "---:|" * len(types)]
    for p in points:
        lift = [f"{100 * (p['type_averages'][t] - prompteol['type_averages'][t]):+.1f}" for t in types]
        rows.append(f"| `{p['probe']}` | {p['lr']:.0e} | {p['steps']} | {p['seed']} | {100 * p['average']:.2f} | "
                    f"{100 * (p['average'] - prompteol['average']):+.2f} | " + " | ".join(lift) + " |")
    return "\n".join(rows) + (f"\n\nSuite v2, dev split, main score x 100; per type: the difference from raw "
                              f"PromptEOL ({100 * prompteol['average']:.2f}).\n")


def plot(points: list[dict], prompteol: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for steps in sorted({p["steps"] for p in points}):
        pts = [p for p in points if p["steps"] == steps]
        ax.scatter([p["lr"] for p in pts], [100 * p["average"] for p in pts], label=f"{steps} steps", zorder=3)
    main = Counter(p["steps"] for p in points).most_common(1)[0][0]  # the budget most probes ran
    by_lr = defaultdict(list)
    for p in points:
        if p["steps"] == main:
            by_lr[p["lr"]].append(100 * p["average"])
    lrs = sorted(by_lr)
    ax.plot(lrs, [fmean(by_lr[lr]) for lr in lrs], color="C0", alpha=0.6, label=f"mean over seeds ({main} steps)")
    ax.axhline(100 * prompteol["average"], color="grey", linestyle="--", label="raw PromptEOL")
    ax.set_xscale("log")
    ax.set_xlabel("train.lr (top 8 layers, AdamW)")
    ax.set_ylabel("suite v2 dev average (x 100)")
    ax.set_title("Text2Token learning rate, SmolLM2-135M")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "offline" / "v2" / "dev"
    prompteol = json.loads((results / "prompteol.json").read_text())
    points = sweep_points(results)
    if not points:
        sys.exit(f"no scored learning-rate probe in {results}")
    (results / "lr_sweep.md").write_text(table(points, prompteol))
    plot(points, prompteol, results / "lr_sweep.png")
    print(table(points, prompteol))
    print(f"wrote {results / 'lr_sweep.md'} and {results / 'lr_sweep.png'}")


if __name__ == "__main__":
    main()
