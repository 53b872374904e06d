"""Runs the default training (or reads a finished run) and records its results in results/default/, then fills
the include blocks of README.md and docs/*.md (scripts/update_readme.py).

The copied files: eval.json, metrics.jsonl, config.yaml, loss.png and scores.md (the table the README includes);
time.json: the wall time of the training command.

    python scripts/record_default.py [--run runs/default] [--skip-train]
    python scripts/record_default.py --coopt       # also train configs/coopt.yaml (runs/coopt): coopt.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "default"


def table(scores: dict) -> str:
    before, after = scores["before"], scores["after"]
    rows = ["| metric | before (raw backbone) | after (Text2Token) | change |", "|---|---:|---:|---:|"]
    for key in before:
        rows.append(f"| {key} | {before[key]:.4f} | {after[key]:.4f} | {after[key] - before[key]:+.4f} |")
    return "\n".join(rows)


def record_coopt(skip_train: bool) -> None:
    """The default recipe with the co-optimisation probe: its figure and metrics go to results/default/."""
    run = ROOT / "runs" / "coopt"
    if not skip_train:
        subprocess.run(["text2token", "train", "--config", "configs/coopt.yaml", "--output", str(run)],
                       check=True, cwd=ROOT)
    shutil.copy(run / "coopt.png", OUT / "coopt.png")
    shutil.copy(run / "metrics.jsonl", OUT / "coopt-metrics.jsonl")
    print(f"recorded {run / 'coopt.png'} and its metrics in {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/default")
    parser.add_argument("--skip-train", action="store_true", help="only record an existing finished run")
    parser.add_argument("--coopt", action="store_true", help="record the co-optimisation run (configs/coopt.yaml)")
    args = parser.parse_args()
    if args.coopt:
        return record_coopt(skip_train=args.skip_train)
    run = ROOT / args.run
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.skip_train:
        start = time.time()
        subprocess.run(["text2token", "train", "--output", str(run)], check=True, cwd=ROOT)
        (OUT / "time.json").write_text(json.dumps({"train_wall_s": round(time.time() - start),
                                                   "cpus": os.cpu_count()}) + "\n")
    scores = json.loads((run / "eval.json").read_text())
    for name in ("eval.json", "metrics.jsonl", "config.yaml", "loss.png"):
        shutil.copy(run / name, OUT / name)
    seconds = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    md = table(scores)
    (OUT / "scores.md").write_text(md + "\n")
    sys.path.insert(0, str(ROOT / "scripts"))
    from update_readme import update

    update()
    print(md)
    print(f"recorded {len(seconds)} metric lines in {OUT}")


if __name__ == "__main__":
    main()
