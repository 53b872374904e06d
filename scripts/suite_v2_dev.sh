#!/usr/bin/env bash
# Suite v2 on the dev split: raw PromptEOL, the trained default, raw mean pooling; then the comparison table.
# Each model's run is one heavy job (2 CPU cores): wrap the script in `flock /tmp/text2token-heavy.lock` if shared.
set -euo pipefail
OUT=${OUT:-results/offline/v2/dev}
DEFAULT_MODEL=${DEFAULT_MODEL:-runs/default/final}
T2T=${T2T:-text2token}  # e.g. T2T="python -m text2token.cli" to run a source tree
mkdir -p "$OUT"
$T2T eval --model baseline:prompteol --name prompteol --split dev --output "$OUT/prompteol.json"
$T2T eval --model "$DEFAULT_MODEL" --name text2token-default --split dev --output "$OUT/text2token-default.json"
$T2T eval --model baseline:mean --name mean --split dev --output "$OUT/mean.json"
$T2T compare "$OUT/prompteol.json" "$OUT/text2token-default.json" "$OUT/mean.json" \
  --output "$OUT/comparison" --title "offline suite v2 (dev)"
