#!/usr/bin/env bash
# Quick recipe probes behind the default config's choices: 60+60 steps of batch 16 on the full Wikipedia
# passage corpus, scored on 500 held-out articles. Each probe takes ~10 minutes on 2 CPU cores.
#   bash scripts/recipe_probe.sh [OUT_DIR]     -> OUT_DIR/summary.tsv (name, before, after, after-scores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/probes}
mkdir -p "$out"
common=(data.max_texts=null eval.articles=500 train.batch_size=16 stages.0.steps=60 stages.1.steps=60
        train.checkpoint_every=1000 model.max_length=80)
probe() {
  local name=$1; shift
  rm -rf "$out/$name"
  text2token train --config configs/smoke.yaml --output "$out/$name" "${common[@]}" "$@" > "$out/$name.log" 2>&1
  python - "$out/$name/eval.json" "$name" >> "$out/summary.tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}\t{d['before']['mean']:.4f}\t{d['after']['mean']:.4f}\t{json.dumps(d['after'])}")
PY
}
probe lr1e-4                                   # the default recipe
probe lr3e-4 train.lr=3e-4
probe mix0 targets.model_derived.mix_data=0.0   # model-derived targets alone in stage 2
probe mean-noprompt model.pooling=mean 'model.prompt={text}'
cat "$out/summary.tsv"
