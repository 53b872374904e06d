#!/usr/bin/env bash
# The full comparison behind results/offline/: baselines, trained baselines, Text2Token and its ablations, all
# scored on the offline suite's test split. Every trained model gets the same budget (STEPS per stage, two stages,
# batch 16, the same texts in the same order, the top 8 of 30 layers trainable).
# Each step is skipped when its output exists, so rerunning continues. ~4 hours on 2 CPU cores, all of it.
# Usage (from the repository root): scripts/run_comparison.sh [STEPS_PER_STAGE]
#   SPLITS="test dev" also scores every model on dev; DEV_PROBES=1 adds the recipe probes (dev only);
#   SKIP_FULL_SIMCSE=1 leaves out SimCSE at 150 + 150 steps (~25 minutes); HEAVY_LOCK=FILE the flock file.
# The runs are config files: configs/comparison/ (text2token, text2token-seed1), configs/baselines/, every
# configs/ablations/NAME.yaml (abl-NAME) and configs/probes/NAME.yaml (probe-NAME); the script sets only the budget.
set -euo pipefail
STEPS=${1:-${COMPARE_STEPS:-60}}
SPLITS=${SPLITS:-test}
RES=results/offline
RUNS=${RUNS_DIR:-runs}
LOCK=${HEAVY_LOCK:-/tmp/text2token-heavy.lock}
mkdir -p "$RES/dev" "$RUNS"
# one heavy torch job at a time (two at once on 2 cores run ~10x slower); the output check runs under the lock
heavy() { local out=$1; shift; flock "$LOCK" bash -c '[ -f "$0" ] || "$@"' "$out" "$@"; }

evaluate() {  # NAME MODEL
  for split in $SPLITS; do
    local out="$RES/$1.json"; [ "$split" = dev ] && out="$RES/dev/$1.json"
    heavy "$out" text2token eval --suite v1 --precision fp32 --model "$2" --name "$1" --split "$split" --output "$out"
  done
}

# NAME CONFIG: trains CONFIG (a file under configs/) for STEPS per stage into runs/cmp-NAME, with its in-training
# evaluation off (keep_eval=1 leaves the config's eval settings on), then scores it; STEPS=N before the call
# changes the budget for that run only
keep_eval=
trained() {
  local name=$1 config=$2
  local run="$RUNS/cmp-$name" off=(eval.enabled=false); [ -n "$keep_eval" ] && off=()
  if [ ! -f "$run/final/text2token.json" ]; then
    local resume=(); [ -f "$run/config.yaml" ] && resume=(--resume)
    heavy "$run/final/text2token.json" text2token train --config "$config" --output "$run" "${resume[@]}" \
      stages.0.steps=$STEPS stages.1.steps=$STEPS "${off[@]}"
  fi
  evaluate "$name" "$run/final"
}

# untrained baselines and references
for b in mean eos prompteol tfidf bm25 minilm; do evaluate "$b" "baseline:$b"; done
# the default model as `text2token train` makes it (150 + 150 steps)
if [ -d "$RUNS/default/final" ]; then evaluate text2token-default "$RUNS/default/final"; fi
# same budget: Text2Token (with the co-optimisation probe every 10 steps) vs SimCSE vs LLM2Vec-style
keep_eval=1 trained text2token configs/comparison/reference.yaml
trained simcse configs/baselines/simcse.yaml
trained llm2vec configs/baselines/llm2vec.yaml
# ablations of Text2Token at the same budget: configs/ablations/NAME.yaml, one change each from configs/default.yaml
for f in configs/ablations/*.yaml; do trained "abl-$(basename "$f" .yaml)" "$f"; done
# seed noise: the reference recipe again with another seed (other data order)
trained text2token-seed1 configs/comparison/seed1.yaml
# SimCSE at the default model's own budget (150 + 150 steps), to compare with text2token-default
[ -n "${SKIP_FULL_SIMCSE:-}" ] || STEPS=150 trained simcse-full configs/baselines/simcse.yaml

# recipe candidates (DEV_PROBES=1): trained like the ablations, scored on the dev split only, where choices are made
if [ -n "${DEV_PROBES:-}" ]; then
  SPLITS=dev evaluate prompteol baseline:prompteol
  SPLITS=dev evaluate text2token "$RUNS/cmp-text2token/final"
  # configs/probes/NAME.yaml -> probe-NAME, e.g. keep-stopwords: the stop-word filter keeps negations and hedges
  for f in configs/probes/*.yaml; do SPLITS=dev trained "probe-$(basename "$f" .yaml)" "$f"; done
fi

main=(mean eos prompteol tfidf bm25 minilm text2token-default simcse-full text2token simcse llm2vec)
files=(); for m in "${main[@]}"; do [ -f "$RES/$m.json" ] && files+=("$RES/$m.json"); done
text2token compare "${files[@]}" --output $RES/comparison --title "offline suite (test split): baselines vs Text2Token"
seeds=(); [ -f $RES/text2token-seed1.json ] && seeds=($RES/text2token-seed1.json)
text2token compare $RES/text2token.json "${seeds[@]}" $RES/abl-*.json --output $RES/ablations \
  --title "Text2Token ablations, ${STEPS} + ${STEPS} steps each (offline suite, test split)"
[ -f "$RUNS/cmp-text2token/coopt.png" ] && cp "$RUNS/cmp-text2token/coopt.png" "$RUNS/cmp-text2token/metrics.jsonl" "$RES/" \
  && mv "$RES/metrics.jsonl" "$RES/coopt-metrics.jsonl"
if [ -d "$RUNS/cmp-abl-no-punctuation-filter" ] && [ -d "$RUNS/cmp-probe-keep-stopwords" ] && [ -d "$RUNS/cmp-simcse-full" ]; then
  python scripts/ablation_checks.py --runs "$RUNS"  # the facts behind the README's reading of the ablations
fi
if ls $RES/dev/*.json >/dev/null 2>&1; then
  text2token compare $RES/dev/*.json --output $RES/dev/comparison --title "offline suite, dev split"
fi
