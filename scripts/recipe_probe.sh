#!/usr/bin/env bash
# The early recipe probes behind the default config's choices: configs/probes/early/*.yaml (common.yaml is
# their shared base), each scored on 500 held-out articles. Each probe takes ~10 minutes on 2 CPU cores.
#   bash scripts/recipe_probe.sh [OUT_DIR]     -> OUT_DIR/summary.tsv (name, before, after, after-scores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/probes}
mkdir -p "$out"
for config in configs/probes/early/*.yaml; do
  name=$(basename "$config" .yaml)
  [ "$name" = common ] && continue
  rm -rf "${out:?}/$name"
  text2token train --config "$config" --output "$out/$name" > "$out/$name.log" 2>&1
  python - "$out/$name/eval.json" "$name" >> "$out/summary.tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}\t{d['before']['mean']:.4f}\t{d['after']['mean']:.4f}\t{json.dumps(d['after'])}")
PY
done
cat "$out/summary.tsv"
