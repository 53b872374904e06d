#!/usr/bin/env bash
# Issue 15's backbone table: for each configs/backbones/NAME.yaml (NAME is the backbone alias), scores the raw
# backbone with the PromptEOL prompt and the trained model on suite v2's dev split, times the training, and writes
# results/offline/backbones/backbones.md (+ .png). Finished results are skipped; an interrupted run resumes.
#   bash scripts/run_backbones.sh [NAME ...]      (default: every file; takes the heavy-job lock per command)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/offline/backbones
RUNS=${RUNS_DIR:-runs/backbones}
LOCK=${HEAVY_LOCK:-/tmp/text2token-heavy.lock}
T2T=${T2T:-text2token}
heavy() { if [ "$LOCK" = none ]; then "$@"; else flock "$LOCK" "$@"; fi; }
mkdir -p "$OUT"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls configs/backbones/*.yaml | xargs -n1 basename | sed 's/\.yaml$//'))
for name in "${names[@]}"; do
  run="$RUNS/$name"
  [ -f "$OUT/$name-prompteol.json" ] || heavy $T2T eval --model baseline:prompteol --backbone "$name" \
    --name "$name-prompteol" --split dev --output "$OUT/$name-prompteol.json"
  if [ ! -f "$run/final/text2token.json" ]; then
    resume=(); [ -f "$run/config.yaml" ] && resume=(--resume)
    # times the training inside the lock; only an uninterrupted run's wall time is recorded
    heavy bash -c 's=$(date +%s); "${@:2}" && echo "{\"train_seconds\": $(( $(date +%s) - s ))}" > "$1"' _ \
      "$OUT/$name-train.tmp" $T2T train --config "configs/backbones/$name.yaml" --output "$run" "${resume[@]}"
    if [ ${#resume[@]} -eq 0 ]; then mv "$OUT/$name-train.tmp" "$OUT/$name-train.json"; else rm -f "$OUT/$name-train.tmp"; fi
  fi
  [ -f "$OUT/$name-text2token.json" ] || heavy $T2T eval --model "$run/final" --name "$name-text2token" \
    --split dev --output "$OUT/$name-text2token.json"
done
${PYTHON:-python} scripts/backbone_report.py "$OUT"
