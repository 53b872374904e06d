#!/usr/bin/env bash
# Speed probe: trains configs/probes/speed/autocast-bf16.yaml (the default recipe, bf16 autocast), times the whole
# `text2token train`, scores it on the suite's test split and compares it with the fp32 default's committed result.
#   bash scripts/speed_probe.sh   -> results/offline/speed/{autocast-bf16.json,autocast-bf16-time.json,comparison.md,.png}
set -euo pipefail
cd "$(dirname "$0")/.."
RES=results/offline/speed
RUN=${RUNS_DIR:-runs}/autocast-bf16
mkdir -p "$RES"
if [ ! -f "$RUN/final/text2token.json" ]; then
  start=$(date +%s)
  text2token train --config configs/probes/speed/autocast-bf16.yaml --output "$RUN"
  echo "{\"train_wall_s\": $(( $(date +%s) - start ))}" > "$RES/autocast-bf16-time.json"
fi
if [ ! -f "$RES/autocast-bf16-time.json" ]; then  # a run trained earlier: from its first and last files
  echo "{\"train_wall_s_from_files\": $(( $(stat -c %Y "$RUN/eval.json") - $(stat -c %Y "$RUN/config.yaml") ))}" \
    > "$RES/autocast-bf16-time.json"
fi
[ -f "$RES/autocast-bf16.json" ] || text2token eval --suite v1 --precision fp32 --model "$RUN/final" --name text2token-autocast-bf16 --split test \
  --output "$RES/autocast-bf16.json"
text2token compare results/offline/text2token-default.json "$RES/autocast-bf16.json" --output "$RES/comparison" \
  --title "default recipe: fp32 vs bf16-autocast training (test split)"
