"""Facts behind the README's reading of the ablations, read from the runs `scripts/run_comparison.sh` made:
whether the punctuation filter changed any target, which tokens only it removes, how often the kept stop words of
the dev probe appear in its targets, and where SimCSE's loss ends. Writes results/offline/ablation_checks.md.

    python scripts/ablation_checks.py [--runs runs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from text2token.targets.vocab import VocabFilter

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["not", "no", "never", "may", "might", "could", "but", "however", "more", "only", "very"]


def stage_targets(run: Path, stage: str) -> dict[str, np.ndarray]:
    """All shards of one stage's target store, concatenated (text_index, ids, weights)."""
    (store,) = sorted((run / "targets").glob(f"{stage}-*"))
    shards = [load_file(str(f)) for f in sorted(store.glob("*.safetensors"))]
    return {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--output", type=Path, default=ROOT / "results/offline/ablation_checks.md")
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    ref, lines = args.runs / "cmp-text2token", []
    tok = AutoTokenizer.from_pretrained(ref / "final")

    # 1. the punctuation filter alone
    vf = VocabFilter.from_tokenizer(tok)
    only = vf.punct & ~vf.special & ~vf.fragment & ~vf.short & ~vf.stopword
    examples = ", ".join(f"`{tok.convert_tokens_to_string([tok.convert_ids_to_tokens(int(i))])}`"
                         for i in np.flatnonzero(only)[:8])
    lines += ["## The punctuation filter on its own (`abl-no-punctuation-filter` vs `text2token`)", "",
              f"- Tokens that only the punctuation filter removes (the others keep them): {int(only.sum())} of "
              f"{len(only):,}, e.g. {examples}"]
    punct = args.runs / "cmp-abl-no-punctuation-filter"
    for stage in ("data-driven", "model-derived"):
        a, b = stage_targets(ref, stage), stage_targets(punct, stage)
        same_rows = int((a["ids"] == b["ids"]).all(1).sum())
        identical = all(np.array_equal(a[k], b[k]) for k in a)
        lines.append(f"- {stage} targets: {len(a['ids'])} rows, byte-identical: {identical}; rows with the same "
                     f"token ids: {same_rows}")

    # 2. the dev probe's kept stop words in its stage-1 targets
    probe = args.runs / "cmp-probe-keep-stopwords"
    lines += ["", "## Kept stop words in stage-1 (data-driven) targets (`probe-keep-stopwords` vs `text2token`)", "",
              "| word | " + " | ".join(WORDS) + " |", "|---|" + "---:|" * len(WORDS)]
    for name, run in (("text2token", ref), ("probe-keep-stopwords", probe)):
        t = stage_targets(run, "data-driven")
        counts = [int(((t["ids"] == tok.convert_tokens_to_ids("Ġ" + w)) & (t["weights"] > 0)).any(1).sum())
                  for w in WORDS]
        lines.append(f"| {name} ({len(t['ids'])} targets) | " + " | ".join(map(str, counts)) + " |")

    # 3. where SimCSE's loss ends
    lines += ["", "## SimCSE's training loss (logged every 10 steps)", ""]
    for name in ("cmp-simcse", "cmp-simcse-full"):
        path = args.runs / name / "metrics.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        losses = [r["loss"] for r in rows if r.get("event") == "train"]
        lines.append(f"- {name}: first {losses[0]:.3f}, last five logged {min(losses[-5:]):.3f} - "
                     f"{max(losses[-5:]):.3f} ({len(losses)} logged)")
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return args.output


if __name__ == "__main__":
    main()
