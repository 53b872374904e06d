"""Two-seed view of issue 14's recipe probes: each probe's seed mean against the recipe it changes.

    python scripts/probe_pairs.py [--dev results/offline/v2/dev] [--configs configs/probes/v2]

A probe ``NAME`` and its twin ``NAME-seed1`` form one row. Its reference is the probe file its config names as
``base:`` (``lr5-*`` -> ``lr-1e-5``, most others -> ``reference``); rows without a scored base show "—". A probe
beats the noise when it has two seeds, its mean gain exceeds the reference's seed spread, and both its seeds score
above both of the reference's, in the same numerics (bf16 or fp32). Writes ``probe_pairs.md`` beside the results
(scores x 100).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean as mean

import yaml

TYPES = ("classification", "clustering", "retrieval", "reranking", "pair_classification")
SEED_SUFFIX = "-seed1"


def load_runs(dev: Path) -> dict[str, list[dict]]:
    """Probe family -> its scored seeds (seed 0 first), from ``probe-*.json``."""
    paths = sorted(dev.glob("probe-*.json"))
    scored = {path.stem.removeprefix("probe-"): json.loads(path.read_text()) for path in paths}
    families = sorted({name.removesuffix(SEED_SUFFIX) for name in scored})
    return {f: [scored[n] for n in (f, f + SEED_SUFFIX) if n in scored] for f in families}


def reference_of(family: str, configs: Path, runs: dict) -> str | None:
    """The probe this one changes: its config's ``base:``, when that is a scored probe of the same folder."""
    path = configs / f"{family}.yaml"
    if not path.is_file():
        return None
    base = (yaml.safe_load(path.read_text()) or {}).get("base", "")
    name = Path(base).stem if isinstance(base, str) and "/" not in base else None
    return name if name in runs and name != family else None


def precisions(seeds: list[dict]) -> set[str]:
    """The numerics the runs were scored in (older files hold only the requested "auto": unknown, left out)."""
    return {s["precision"] for s in seeds if s.get("precision") not in (None, "auto")}


def row(family: str, seeds: list[dict], ref: str | None, runs: dict, prompteol: dict) -> str:
    avgs = [100 * s["average"] for s in seeds]
    cells = [family, str(len(seeds)), " / ".join(f"{a:.2f}" for a in avgs), f"{mean(avgs):.2f}",
             f"{max(avgs) - min(avgs):.2f}" if len(avgs) > 1 else "—",
             f"{mean(avgs) - 100 * prompteol['average']:+.2f}"]
    if ref is None:
        return "| " + " | ".join(cells + ["—"] * (4 + len(TYPES))) + " |"
    ref_avgs = [100 * s["average"] for s in runs[ref]]
    gain, spread = mean(avgs) - mean(ref_avgs), max(ref_avgs) - min(ref_avgs)
    beats = len(avgs) > 1 and len(ref_avgs) > 1 and gain > spread and min(avgs) > max(ref_avgs)
    mine, theirs = precisions(seeds), precisions(runs[ref])
    verdict = "**yes**" if beats else "no"
    if mine and theirs and mine != theirs:  # bf16 scores PromptEOL 0.26 above fp32: not a recipe's gain
        verdict = f"no ({'/'.join(sorted(mine))} vs {'/'.join(sorted(theirs))})"
    per_type = [100 * (mean([s["type_averages"][t] for s in seeds]) - mean([s["type_averages"][t] for s in runs[ref]]))
                for t in TYPES]
    cells += [ref, f"{gain:+.2f}", f"{spread:.2f}" if len(ref_avgs) > 1 else "—", verdict]
    return "| " + " | ".join(cells + [f"{d:+.1f}" for d in per_type]) + " |"


def table(dev: Path, configs: Path) -> str:
    runs = load_runs(dev)
    if not runs:
        raise SystemExit(f"{dev}: no probe-*.json results; run bash scripts/run_probes.sh first")
    prompteol = json.loads((dev / "prompteol.json").read_text())
    head = ["probe", "seeds", "avg per seed", "mean", "spread", "vs PromptEOL", "vs (reference)", "gain",
            "ref spread", "beats noise"] + [f"Δ {t}" for t in TYPES]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"
             + "---:|" * len(TYPES)]
    lines += [row(f, seeds, reference_of(f, configs, runs), runs, prompteol) for f, seeds in runs.items()]
    note = ("\nScores x 100 on the suite's dev split (task averages; Δ per type: the two-seed mean minus the "
            "reference's). Beats noise: two seeds, a gain above the reference's seed spread, and both seeds above "
            "both of the reference's. Written by `python scripts/probe_pairs.py`.\n")
    return "\n".join(lines) + "\n" + note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", type=Path, default=Path("results/offline/v2/dev"))
    p.add_argument("--configs", type=Path, default=Path("configs/probes/v2"))
    args = p.parse_args()
    text = table(args.dev, args.configs)
    (args.dev / "probe_pairs.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
