"""Trains configs/smoke.yaml and fingerprints the saved weights: a refactor must leave them bit-identical.

    python scripts/smoke_fingerprint.py --record   # before a change: write results/smoke_fingerprint.json
    python scripts/smoke_fingerprint.py            # after it: train again, compare, exit 1 on a difference
    python scripts/smoke_fingerprint.py --run-dir runs/smoke   # fingerprint a finished run, no training

The fingerprint is the sha256 of every tensor of ``final/*.safetensors`` (name, dtype, shape, bytes), in name
order, so file metadata does not count. Float results depend on the CPU and thread count: compare on the
machine kind that recorded it (the record names both).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "results" / "smoke_fingerprint.json"


def weights_sha256(final: Path) -> tuple[str, int]:
    from safetensors.numpy import load_file

    h, count = hashlib.sha256(), 0
    for file in sorted(final.glob("*.safetensors")):
        tensors = load_file(str(file))
        for name in sorted(tensors):
            t = tensors[name]
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.tobytes())
            count += 1
    if not count:
        raise SystemExit(f"{final}: no safetensors weights")
    return h.hexdigest(), count


def train_smoke(run_dir: Path) -> None:
    cmd = [sys.executable, "-m", "text2token.cli", "train", "--config", str(ROOT / "configs" / "smoke.yaml"),
           "--output", str(run_dir)]
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help="write the fingerprint instead of comparing")
    ap.add_argument("--run-dir", type=Path, help="fingerprint this finished run instead of training one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or Path(tmp) / "smoke"
        if args.run_dir is None:
            train_smoke(run_dir)
        digest, count = weights_sha256(run_dir / "final")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    import torch

    record = {"sha256": digest, "tensors": count, "commit": commit, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}
    if args.record:
        RECORD.write_text(json.dumps(record, indent=2) + "\n")
        print(f"recorded {digest} ({count} tensors) in {RECORD}")
        return 0
    want = json.loads(RECORD.read_text())
    same = want["sha256"] == digest
    print(f"{'identical' if same else 'DIFFERENT'}: {digest} now, {want['sha256']} at {want['commit'][:8]}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
