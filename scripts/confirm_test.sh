#!/usr/bin/env bash
# Issue 14's one look at the test split: raw PromptEOL against the default model (runs/default/final) on suite v2's
# test split, each scored once (finished results are skipped), then results/offline/v2/test/comparison.md (+ .png).
#   bash scripts/confirm_test.sh          (takes the heavy-job lock per command; HEAVY_LOCK=none to skip it)
# Recipe choices are made on dev (scripts/run_probes.sh); run this only to confirm the chosen default.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/offline/v2/test
LOCK=${HEAVY_LOCK:-/tmp/text2token-heavy.lock}
T2T=${T2T:-text2token}
heavy() { if [ "$LOCK" = none ]; then "$@"; else flock "$LOCK" "$@"; fi; }
mkdir -p "$OUT"
[ -f "$OUT/prompteol.json" ] || heavy $T2T eval --model baseline:prompteol --name prompteol --split test \
  --output "$OUT/prompteol.json"
[ -f "$OUT/text2token-default.json" ] || heavy $T2T eval --model runs/default/final --name text2token-default \
  --split test --output "$OUT/text2token-default.json"
$T2T compare "$OUT/prompteol.json" "$OUT/text2token-default.json" --output "$OUT/comparison" \
  --title "PromptEOL vs the default model, suite v2 (test)"
