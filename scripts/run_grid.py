"""The grid driver (issue 14): train, score and clean up every cell of configs/grid/, in a fixed order, resumably.

    python scripts/run_grid.py [--dry-run] [--only GLOB] [--split dev] [--keep-models]   (from the repo root)

For each cell (scripts/grid_configs.py CELLS) it does what is left:
  train    ``text2token train --config configs/grid/CELL.yaml --output RUNS/CELL`` (``--resume`` when the run
           dir has a config.yaml: an interrupted run continues from its last checkpoint, same final weights);
  eval     ``text2token eval --model RUNS/CELL/final --name CELL --split SPLIT --suite SUITE`` into
           RESULTS/CELL.json (skipped when that file exists for this split, suite and suite version);
  cleanup  removes RUNS/CELL/final (~540 MB) once the result exists, unless --keep-models / KEEP_MODELS=1.
First, each selected cell's setting gets its untrained reference (grid_configs.REFERENCES) scored into
RESULTS/untrained-POOLING-ATTENTION.json (``--model baseline:NAME``), unless that result is done.
Every heavy command runs under the heavy-job lock (HEAVY_LOCK, default /tmp/text2token-heavy.lock; do not wrap
this script in flock too: it would wait for itself). Each command's start, end, wall seconds and threads go to
TRAIN_RECORDS/CELL.json (CPU-minutes = wall x threads), the run's metrics.jsonl to TRAIN_RECORDS/CELL.metrics.jsonl.
A cell whose config changed after it trained (or since its unfinished run began), or whose model was deleted before
a (new) result, is reported and left alone. At the end scripts/grid_report.py writes the table and plots.
Ctrl-C / SIGTERM stop cleanly.
Env defaults: GRID_SPLIT (dev), GRID_SUITE (offline), GRID_SUITE_VERSION (the installed suite's), GRID_RUNS
(runs/grid), GRID_RESULTS, KEEP_MODELS, HEAVY_LOCK ("none": no lock), TEXT2TOKEN_CMD (text2token),
GRID_EVAL_ARGS (extra `text2token eval` arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grid_configs import (CELLS, EVAL_MINUTES, NUMERICS, REFERENCE_PRECISION, REFERENCES, REPO, Cell,  # noqa: E402
                          Reference, estimate_minutes)


@dataclass
class Options:
    runs: Path
    results: Path  # eval results of this split
    records: Path  # training records (timings, metrics copies), whatever the split
    split: str
    suite: str
    suite_version: int
    lock: str
    keep_models: bool
    text2token: list
    eval_args: list
    dry_run: bool
    only: list


def parse_options(argv: list[str] | None) -> Options:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Train, score and clean up the grid's cells (configs/grid/).")
    p.add_argument("--dry-run", action="store_true", help="print what each cell would do; run nothing")
    p.add_argument("--only", action="append", default=[], help="cells matching this glob (repeatable)")
    p.add_argument("--split", default=env("GRID_SPLIT", "dev"), help="suite split to score on (default dev)")
    p.add_argument("--suite", default=env("GRID_SUITE", "offline"), help="`text2token eval --suite` value")
    p.add_argument("--suite-version", type=int, default=env("GRID_SUITE_VERSION"),
                   help="the suite_version a result must have to count as done (default: the installed suite's)")
    p.add_argument("--runs", default=env("GRID_RUNS", "runs/grid"))
    p.add_argument("--results", default=env("GRID_RESULTS"), help="default results/offline/grid (dev), "
                   "results/offline/grid/SPLIT otherwise")
    p.add_argument("--keep-models", action="store_true", default=env("KEEP_MODELS", "") not in ("", "0"))
    a = p.parse_args(argv)
    if a.suite_version is None:
        from text2token.eval.suite import SUITE_VERSION
        a.suite_version = SUITE_VERSION
    grid = Path("results/offline/grid")
    results = Path(a.results) if a.results else grid if a.split == "dev" else grid / a.split
    return Options(Path(a.runs), results, Path(env("GRID_TRAIN_RECORDS", str(grid / "train"))), a.split, a.suite,
                   int(a.suite_version), env("HEAVY_LOCK", "/tmp/text2token-heavy.lock"), a.keep_models,
                   shlex.split(env("TEXT2TOKEN_CMD", "text2token")), shlex.split(env("GRID_EVAL_ARGS", "")),
                   a.dry_run, a.only)


# ------------------------------------------------------------------------------------------- state of a cell
def settings_sha(cfg) -> str:
    """sha256 of a resolved config without output_dir."""
    settings = cfg.to_dict()
    settings.pop("output_dir")
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def config_sha(path: Path) -> str:
    """:func:`settings_sha` of the config at ``path`` ("unreadable" when it does not load)."""
    from text2token.config import load_config
    from text2token.errors import Text2TokenError

    try:
        return settings_sha(load_config(path))
    except (Text2TokenError, ValueError, OSError):
        return "unreadable"


def config_facts(cell: Cell):
    """(the cell's :func:`settings_sha`, the threads its training uses, the config)."""
    from text2token.config import load_config

    cfg = load_config(cell.path)
    return settings_sha(cfg), cfg.train.threads or os.cpu_count() or 1, cfg


def record_path(opt: Options, cell: Cell | Reference) -> Path:
    return opt.records / f"{cell.name}.json"


def load_record(opt: Options, cell: Cell | Reference) -> dict:
    path = record_path(opt, cell)
    return json.loads(path.read_text()) if path.is_file() else {"cell": cell.name, "segments": []}


def save_record(opt: Options, cell: Cell | Reference, record: dict) -> None:
    path = record_path(opt, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def result_state(opt: Options, cell: Cell | Reference) -> str:
    """``done``, ``missing`` or why the result file does not count (another split, suite or suite version)."""
    path = opt.results / f"{cell.name}.json"
    if not path.is_file():
        return "missing"
    try:
        r = json.loads(path.read_text())
    except ValueError:
        return "unreadable"
    got = (r.get("split"), r.get("suite"), r.get("suite_version"))
    want = (opt.split, opt.suite, opt.suite_version)
    return "done" if got == want else f"stale (split, suite, version {got} != {want})"


def plan(opt: Options, cell: Cell, sha: str) -> tuple[list[str], str]:
    """(the steps left for ``cell``, a note); no steps and a note when the cell needs a person."""
    run, record = opt.runs / cell.name, load_record(opt, cell)
    if record.get("trained") and record.get("config_sha") != sha:
        return [], (f"BLOCKED: {cell.path.name} changed since it trained; to retrain remove {run}, "
                    f"{record_path(opt, cell)} and {opt.results / cell.name}.json")
    state = result_state(opt, cell)
    has_model = (run / "final" / "text2token.json").is_file()
    cleanup = ["cleanup"] if has_model and not opt.keep_models else []
    if state == "done":
        return cleanup, "result done"
    if (run / "config.yaml").is_file() and config_sha(run / "config.yaml") != sha:
        return [], f"BLOCKED: {run} holds a run of another config than {cell.path.name}; remove it to retrain"
    steps = []
    if not has_model:
        if record.get("trained"):
            return [], (f"BLOCKED: trained, but {run}/final was deleted and the result is {state}; "
                        f"remove {run} and {record_path(opt, cell)} to retrain")
        steps.append("resume" if (run / "config.yaml").is_file() else "train")
    return [*steps, "eval", *([] if opt.keep_models else ["cleanup"])], f"result {state}"


# ------------------------------------------------------------------------------------------- running
@contextlib.contextmanager
def heavy_lock(path: str):
    """The heavy-job lock (flock(2), the same lock as ``flock FILE cmd``); "none" or "" takes none."""
    if path in ("", "none"):
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"  waiting for the heavy-job lock {path}", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def heavy(opt: Options, cell: Cell | Reference, kind: str, cmd: list[str], threads: int) -> int:
    """Runs ``cmd`` under the lock; appends its timing segment (also when it fails or is interrupted)."""
    print("  $ " + shlex.join(cmd), flush=True)
    with heavy_lock(opt.lock):
        started, tic = now(), time.monotonic()
        proc = subprocess.Popen(cmd)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            rc = "interrupted"
        segment = {"kind": kind, "started": started, "finished": now(), "wall_s": round(time.monotonic() - tic, 1),
                   "threads": threads, "rc": rc, "resumed": "--resume" in cmd}
    record = load_record(opt, cell)
    record["segments"].append(segment)
    save_record(opt, cell, record)
    if rc == "interrupted":
        raise KeyboardInterrupt
    return rc


def mark_trained(opt: Options, cell: Cell, sha: str) -> None:
    """Records that the cell's model exists (with the config it was trained with) and keeps its loss curve."""
    run, record = opt.runs / cell.name, load_record(opt, cell)
    record.update(trained=True, config_sha=sha)
    save_record(opt, cell, record)
    if (run / "metrics.jsonl").is_file():
        shutil.copyfile(run / "metrics.jsonl", opt.records / f"{cell.name}.metrics.jsonl")


def eval_command(opt: Options, cell: Cell | Reference, model: str) -> list[str]:
    """`text2token eval` of ``model`` into the cell's (or reference's) result file, in the row's precision."""
    out = opt.results / f"{cell.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    precision = REFERENCE_PRECISION if isinstance(cell, Reference) else NUMERICS[cell.trainable][1]
    return [*opt.text2token, "eval", "--model", model, "--name", cell.name, "--split", opt.split, "--suite",
            opt.suite, "--precision", precision, "--output", str(out), *opt.eval_args]


def score_references(opt: Options, cells: list[Cell]) -> tuple[int, float]:
    """Scores the untrained backbone of every setting among ``cells`` that has no result yet (cheap: eval only);
    (how many failed, the estimated minutes left)."""
    failed, minutes = 0, 0.0
    for ref in [r for r in REFERENCES if any((c.pooling, c.attention) == (r.pooling, r.attention) for c in cells)]:
        state = result_state(opt, ref)
        minutes += 0.0 if state == "done" else EVAL_MINUTES[REFERENCE_PRECISION, ref.pooling]
        print(f"reference {ref.name} (baseline:{ref.baseline}): "
              f"{'nothing to do' if state == 'done' else 'eval'} (result {state})", flush=True)
        if state != "done" and not opt.dry_run:
            cmd = eval_command(opt, ref, f"baseline:{ref.baseline}")
            if heavy(opt, ref, "eval", cmd, os.cpu_count() or 1) != 0 or result_state(opt, ref) != "done":
                print(f"  eval of {ref.name} gave no {opt.split} result", flush=True)
                failed += 1
    return failed, minutes


def execute(opt: Options, cell: Cell, steps: list[str], sha: str, threads: int) -> bool:
    """Does ``steps``; False at the first one that fails."""
    run = opt.runs / cell.name
    for step in steps:
        if step in ("train", "resume"):
            cmd = [*opt.text2token, "train", "--config", str(cell.path.relative_to(REPO)), "--output", str(run)]
            if heavy(opt, cell, "train", cmd + (["--resume"] if step == "resume" else []), threads) != 0:
                return False
        if step in ("train", "resume", "eval") and (run / "final" / "text2token.json").is_file():
            mark_trained(opt, cell, sha)
        if step == "eval":
            if heavy(opt, cell, "eval", eval_command(opt, cell, str(run / "final")), threads) != 0 \
                    or result_state(opt, cell) != "done":
                print(f"  eval of {cell.name} gave no {opt.split} result", flush=True)
                return False
        if step == "cleanup" and result_state(opt, cell) == "done":
            shutil.rmtree(run / "final", ignore_errors=True)
    return True


def main(argv: list[str] | None = None) -> int:
    opt = parse_options(argv)
    os.chdir(REPO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout` / kill: stop like Ctrl-C
    cells = [c for c in CELLS if not opt.only or any(fnmatch(c.name, g) for g in opt.only)]
    blocked = 0
    try:
        failed, minutes = score_references(opt, cells)
        for i, cell in enumerate(cells, 1):
            sha, threads, cfg = config_facts(cell)
            steps, note = plan(opt, cell, sha)
            left = estimate_minutes(cell, cfg, train=steps[0] in ("train", "resume")) if "eval" in steps else 0.0
            minutes += left
            print(f"[{i}/{len(cells)}] {cell.name}: {' -> '.join(steps) or 'nothing to do'} ({note}"
                  f"{f'; ~{left:.0f} min' if left else ''})", flush=True)
            blocked += note.startswith("BLOCKED")
            if steps and not opt.dry_run and not execute(opt, cell, steps, sha, threads):
                failed += 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue", flush=True)
        return 130
    if not opt.dry_run:
        import grid_report

        grid_report.main(["--results", str(opt.results), "--records", str(opt.records)])
    print(f"{len(cells)} cells: {failed} failed, {blocked} blocked; estimated wall time left at the start: "
          f"{minutes / 60:.1f} h (scripts/grid_configs.py STEP_SECONDS)", flush=True)
    return 1 if failed or blocked else 0


if __name__ == "__main__":
    sys.exit(main())
