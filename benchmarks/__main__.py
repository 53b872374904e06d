"""Runs the performance benchmarks, writes ``benchmarks/results/<name>.json`` + ``.md`` and a summary table.

    python -m benchmarks                       # all, default sizes (<= 15 minutes on 2 CPU cores)
    python -m benchmarks --only encode,targets
    python -m benchmarks --quick               # tiny sizes: a smoke run
    python -m benchmarks --scale-full          # the scale benchmark up to 1,000,000 texts
    python -m benchmarks --backbone DIR --output DIR   # another backbone / results folder (the tests)
    python -m benchmarks --only precision --model runs/default/final   # precision on the trained model

Every number is a ratio of two things timed in the same run, alternating (see ``benchmarks/common.py``);
``benchmarks/results/performance.md`` (quoted in the README) lists each goal next to its measured value.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

# scale first: it measures peak RSS in child processes, and Linux keeps ru_maxrss across fork + exec, so a child
# started after the parent has loaded models would report the parent's peak (seen: 5 GB for every size)
BENCHMARKS = ("scale", "encode", "precision", "train_step", "train_run", "targets", "st_encode")
SUMMARY = "performance"
LOAD_TEST = "server_load_default"  # benchmarks/server_load.py --model runs/default/final --precision bf16 (minutes)


def summary(out_dir: Path) -> str:
    """The goals of every benchmark result in ``out_dir``: one markdown table."""
    from benchmarks.server_load import load_goals

    rows = []
    for name in (*BENCHMARKS, LOAD_TEST):
        path = out_dir / f"{name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        for goal in load_goals(result) if name == LOAD_TEST else result.get("goals", []):
            met = {True: "yes", False: "**no**", None: "see table"}[goal.get("met")]
            measured = goal["measured"]
            measured = f"{measured:,.0f}" if isinstance(measured, (int, float)) and abs(measured) >= 1000 else measured
            rows.append(f"| `{name.removesuffix('_default')}` | {goal['name']} | {goal['goal']} | {measured} | {met} |")
    return "\n".join(["| benchmark | measure | goal | measured | met |", "|---|---|---|---:|---|", *rows])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--scale-full", action="store_true", help="scale up to 1,000,000 texts")
    parser.add_argument("--backbone", help="another backbone than the default config's")
    parser.add_argument("--model", type=Path, help="precision: a trained model directory (default: the raw backbone)")
    parser.add_argument("--output", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument("--work-dir", type=Path, help="scratch folder for corpora and stores (default: a temp dir)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    logging.basicConfig(level=logging.WARNING)
    from benchmarks.common import RESULTS, default_config, write_result

    names = BENCHMARKS if not args.only else tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    out_dir = args.output or RESULTS
    cfg = default_config(args.backbone)
    results = {}
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        size = module.SIZES["quick" if args.quick else "full" if name == "scale" and args.scale_full else "default"]
        start = time.perf_counter()
        print(f"== {name} {size}", file=sys.stderr, flush=True)
        if name == "scale":
            result, md = module.run(cfg, size, work_dir=args.work_dir)
        elif name == "precision":
            result, md = module.run(cfg, size, model_dir=args.model)
        else:
            result, md = module.run(cfg, size)
        result["wall_s"] = round(time.perf_counter() - start, 1)
        result["size"] = size
        write_result(name, result, md, out_dir)
        results[name] = result
        print(f"\n## {name} ({result['wall_s']:.0f} s)\n\n{md}\n", flush=True)
    table = summary(Path(out_dir))
    (Path(out_dir) / f"{SUMMARY}.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return results


if __name__ == "__main__":
    main()
