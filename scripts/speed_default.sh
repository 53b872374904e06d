#!/usr/bin/env bash
# The adopted default (bf16 autocast + frozen-layer cache) against the fp32 default it replaced, on suite v1's
# test split (the suite the fp32 result was scored on): writes results/offline/speed/default-comparison.{md,png}.
#   bash scripts/speed_default.sh      (needs the trained default in runs/default: python scripts/record_default.py)
set -euo pipefail
cd "$(dirname "$0")/.."
RES=results/offline/speed
[ -f "$RES/default-bf16-cache.json" ] || text2token eval --model runs/default/final --name text2token-default-bf16-cache \
  --split test --suite v1 --precision fp32 --output "$RES/default-bf16-cache.json"
text2token compare results/offline/text2token-default.json "$RES/autocast-bf16.json" "$RES/default-bf16-cache.json" \
  --output "$RES/default-comparison" \
  --title "default recipe: fp32 vs bf16 autocast vs bf16 + frozen-layer cache (suite v1, test)"
