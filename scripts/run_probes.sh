#!/usr/bin/env bash
# Issue 14's recipe probes: trains each configs/probes/v2/*.yaml (resuming an interrupted run), scores it on
# suite v2's dev split, skips finished results, then writes results/offline/v2/dev/probes.md (+ .png).
#   bash scripts/run_probes.sh [NAME ...]        (default: every file; takes the heavy-job lock per command)
# References: raw mean pooling and PromptEOL, and the default run (runs/default/final, text2token-default.json).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/offline/v2/dev
RUNS=${RUNS_DIR:-runs/probes}
LOCK=${HEAVY_LOCK:-/tmp/text2token-heavy.lock}
T2T=${T2T:-text2token}
heavy() { if [ "$LOCK" = none ]; then "$@"; else flock "$LOCK" "$@"; fi; }
mkdir -p "$OUT"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls configs/probes/v2/*.yaml | xargs -n1 basename | sed 's/\.yaml$//'))
for base in prompteol mean; do
  [ -f "$OUT/$base.json" ] || heavy $T2T eval --model baseline:$base --name $base --split dev --output "$OUT/$base.json"
done
[ -f "$OUT/text2token-default.json" ] || heavy $T2T eval --model runs/default/final --name text2token-default \
  --split dev --output "$OUT/text2token-default.json"
for name in "${names[@]}"; do
  run="$RUNS/$name"
  [ -f "$OUT/probe-$name.json" ] && continue
  if [ ! -f "$run/final/text2token.json" ]; then
    resume=(); [ -f "$run/config.yaml" ] && resume=(--resume)
    heavy $T2T train --config "configs/probes/v2/$name.yaml" --output "$run" "${resume[@]}"
  fi
  heavy $T2T eval --model "$run/final" --name "probe-$name" --split dev --output "$OUT/probe-$name.json"
done
results=("$OUT/prompteol.json" "$OUT/text2token-default.json" "$OUT/mean.json")  # differences from PromptEOL
for f in "$OUT"/probe-*.json; do [ -f "$f" ] && results+=("$f"); done
$T2T compare "${results[@]}" --output "$OUT/probes" --title "recipe probes, suite v2 (dev)"
