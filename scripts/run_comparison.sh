#!/usr/bin/env bash
# The full comparison behind results/offline/: baselines, trained baselines, Text2Token and its ablations,
# all scored on the offline suite (test split for the report, dev split for choices). Every trained model gets
# the same budget (COMPARE_STEPS per stage, two stages, batch 16, the same texts in the same order, top 8 layers).
# Each step is skipped when its output exists, so the script can be rerun to continue. ~2 hours on 2 CPU cores.
# Usage: scripts/run_comparison.sh [STEPS_PER_STAGE]   (run it from the repository root)
set -euo pipefail
STEPS=${1:-${COMPARE_STEPS:-60}}
RES=results/offline
RUNS=${RUNS_DIR:-runs}
mkdir -p "$RES/dev" "$RUNS"
LOCK=${HEAVY_LOCK:-/tmp/text2token-heavy.lock}
heavy() { flock "$LOCK" "$@"; }  # one heavy torch job at a time: two at once on 2 cores run ~10x slower

evaluate() {  # NAME MODEL
  for split in test dev; do
    out="$RES/$1.json"; [ "$split" = dev ] && out="$RES/dev/$1.json"
    [ -f "$out" ] || heavy text2token eval --model "$2" --name "$1" --split "$split" --output "$out"
  done
}

trained() {  # NAME CONFIG OVERRIDES...
  local name=$1 config=$2; shift 2
  [ -f "$RUNS/cmp-$name/final/text2token.json" ] || {
    rm -rf "$RUNS/cmp-$name"
    heavy text2token train --config "$config" --output "$RUNS/cmp-$name" \
      stages.0.steps=$STEPS stages.1.steps=$STEPS eval.enabled=false "$@"
  }
  evaluate "$name" "$RUNS/cmp-$name/final"
}

# untrained baselines and references
for b in mean eos prompteol tfidf bm25 minilm; do evaluate "$b" "baseline:$b"; done
# the default model as trained by `text2token train` (150 + 150 steps)
[ -d "$RUNS/default/final" ] && evaluate text2token-default "$RUNS/default/final"
# same-budget comparison: Text2Token (with the co-optimisation probe every 20 steps) vs SimCSE vs LLM2Vec-style
trained text2token configs/default.yaml eval.every=20
trained simcse configs/baselines/simcse.yaml
trained llm2vec configs/baselines/llm2vec.yaml
# ablations of Text2Token at the same budget (one change each from configs/default.yaml)
trained abl-data-only configs/default.yaml stages.1.targets=data stages.1.name=data-driven-2
trained abl-model-only configs/default.yaml stages.0.targets=model stages.0.name=model-derived-1
trained abl-no-stopword-filter configs/default.yaml targets.data_driven.remove_stopwords=false
trained abl-no-punctuation-filter configs/default.yaml targets.data_driven.remove_punctuation=false
trained abl-no-fragment-filter configs/default.yaml targets.data_driven.remove_fragments=false
trained abl-no-idf configs/default.yaml targets.data_driven.idf=none
trained abl-mean-pooling configs/default.yaml model.pooling=mean
trained abl-bidirectional configs/default.yaml model.attention=bidirectional

text2token compare $RES/*.json --output $RES/comparison --title "offline suite, test split"
text2token compare $RES/dev/*.json --output $RES/dev/comparison --title "offline suite, dev split"
