"""The backbone table of issue 15 from the results ``scripts/run_backbones.sh`` writes: raw PromptEOL against the
trained model on suite v2's dev split, per backbone, with training time and encode throughput.

    python scripts/backbone_report.py [results/offline/backbones]    # writes backbones.md, .json and .png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("retrieval", "reranking", "classification", "clustering", "pair_classification")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def backbone_row(name: str, out: Path) -> dict | None:
    """One backbone's numbers, or None while its raw or trained result is missing."""
    from text2token.config import load_config
    from text2token.training.plan import make_plan

    raw, trained = _load(out / f"{name}-prompteol.json"), _load(out / f"{name}-text2token.json")
    if raw is None or trained is None:
        return None
    cfg = load_config(ROOT / "configs" / "backbones" / f"{name}.yaml", [])
    plan = make_plan(cfg)
    steps = sum(s.steps for s in cfg.stages)
    seconds = (_load(out / f"{name}-train.json") or {}).get("train_seconds")
    return {"backbone": name, "architecture": plan.architecture, "layers": plan.layers,
            "parameters": plan.parameters, "trainable": plan.trainable, "steps": steps,
            "train_seconds": seconds,
            "train_seconds_per_300_steps": round(seconds * 300 / steps) if seconds else None,
            "encode_texts_per_s": round(trained["n_distinct_texts"] / trained["encode_seconds"], 1),
            "prompteol": raw["average"], "text2token": trained["average"],
            "prompteol_se": raw.get("average_se"), "text2token_se": trained.get("average_se"),
            "type_lift": {t: trained["type_averages"][t] - raw["type_averages"][t] for t in TYPES}}


def markdown(rows: list[dict]) -> str:
    head = ("| backbone | layers (trained) | parameters | steps | train min (x300 steps) | encode texts/s "
            "| PromptEOL | Text2Token | lift | " + " | ".join(t.replace("_", " ") for t in TYPES) + " |")
    lines = [head, "|" + "---|" * (9 + len(TYPES))]
    for r in rows:
        minutes = "-" if r["train_seconds"] is None else (
            f"{r['train_seconds'] / 60:.1f} ({r['train_seconds_per_300_steps'] / 60:.1f})")
        lift = [f"{100 * r['type_lift'][t]:+.1f}" for t in TYPES]
        lines.append(
            f"| `{r['backbone']}` | {r['layers']} ({r['trainable'] / 1e6:.0f}M) | {r['parameters'] / 1e6:.0f}M "
            f"| {r['steps']} | {minutes} | {r['encode_texts_per_s']:.0f} | {100 * r['prompteol']:.2f} "
            f"| {100 * r['text2token']:.2f} | {100 * (r['text2token'] - r['prompteol']):+.2f} | "
            + " | ".join(lift) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(rows)
    x = np.arange(len(TYPES) + 1)
    for i, r in enumerate(rows):
        lifts = [100 * r["type_lift"][t] for t in TYPES] + [100 * (r["text2token"] - r["prompteol"])]
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, lifts, width, label=r["backbone"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [t.replace("_", "\n") for t in TYPES] + ["average"])
    ax.set_ylabel("Text2Token - raw PromptEOL (points)")
    ax.set_title("What training buys per backbone (suite v2, dev)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(out: Path) -> None:
    names = sorted(p.stem for p in (ROOT / "configs" / "backbones").glob("*.yaml"))
    rows = [r for r in (backbone_row(n, out) for n in names) if r is not None]
    rows.sort(key=lambda r: r["parameters"])
    if not rows:
        sys.exit(f"no backbone has both results in {out} yet (run scripts/run_backbones.sh)")
    (out / "backbones.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "backbones.md").write_text(markdown(rows))
    plot(rows, out / "backbones.png")
    print(markdown(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "offline" / "backbones")
