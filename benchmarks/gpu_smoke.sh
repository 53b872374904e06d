#!/usr/bin/env bash
# The smoke config (configs/smoke.yaml, real SmolLM2-135M, both stages) on CUDA: records training throughput and
# peak GPU memory to benchmarks/results/gpu_smoke.json.
#
#   benchmarks/gpu_smoke.sh              # 1 GPU
#   NPROC=8 benchmarks/gpu_smoke.sh      # 8 GPUs (torchrun, DDP); throughput of the whole job, memory of rank 0
#
# Extra arguments are config overrides, e.g. `benchmarks/gpu_smoke.sh stages.0.steps=50 train.batch_size=64`.
# Status: written without a GPU at hand; not run yet (no results file is committed).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_smoke: no CUDA device')"
NPROC="${NPROC:-1}"
RUN="$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke.XXXXXX")"
OUT=benchmarks/results/gpu_smoke.json
mkdir -p "$(dirname "$OUT")"
cat > "$RUN/bench.py" <<'PY'
import json, os, sys, time
import torch
from text2token.config import load_config
from text2token.training.loop import train

run_dir, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = load_config("configs/smoke.yaml", overrides)
stamps = []
torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
train(cfg, os.path.join(run_dir, "run"), show_progress=False, on_step=lambda r: stamps.append(time.perf_counter()))
total = time.perf_counter() - t0
if int(os.environ.get("RANK", "0")) == 0:
    texts_per_step = cfg.train.batch_size * cfg.train.grad_accum
    # from the end of the first step to the end of the last (targets and the first step's warm-up excluded)
    steps = len(stamps)
    timed = stamps[-1] - stamps[0] if steps > 1 else float("nan")
    result = {
        "device": torch.cuda.get_device_name(0), "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "torch": torch.__version__, "config": "configs/smoke.yaml", "overrides": overrides,
        "steps": steps, "texts_per_step": texts_per_step,
        "steps_per_second": (steps - 1) / timed, "texts_per_second": (steps - 1) * texts_per_step / timed,
        "peak_memory_gib_rank0": torch.cuda.max_memory_allocated() / 2**30,
        "wall_seconds_total": total, "note": "throughput over the train steps (between the first and last step)",
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
PY
if [ "$NPROC" -gt 1 ]; then
  torchrun --standalone --nproc_per_node "$NPROC" "$RUN/bench.py" "$RUN" "$OUT" "$@"
else
  python "$RUN/bench.py" "$RUN" "$OUT" "$@"
fi
rm -rf "$RUN"
