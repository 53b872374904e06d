"""The grid's cells (issue 14) and their config files: configs/grid/CELL.yaml, written deterministically.

    python scripts/grid_configs.py          # (re)writes configs/grid/*.yaml from CELLS
    python scripts/grid_configs.py --check  # exit 1 if a committed file differs from what this writes
    python scripts/grid_configs.py --estimates  # the grid README's time table: estimated wall minutes per cell

A cell is (method, pooling, attention, trainable); its file is ``base: methods/METHOD.yaml`` plus the setting.
The budget and everything the methods share live in configs/grid/base.yaml; each method's recipe in
configs/grid/methods/. tests/training/test_grid.py checks the committed files equal :func:`render`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from text2token.eval.baselines import RAW
from text2token.model.settings import DEFAULT_PROMPT, NO_PROMPT, EncoderSettings

REPO = Path(__file__).resolve().parents[1]
GRID_DIR = REPO / "configs" / "grid"

METHODS = {"text2token": "Text2Token (data-driven KL, then model-derived KL)",
           "llm2vec": "LLM2Vec (MNTP, then unsupervised SimCSE)",
           "simcse": "unsupervised SimCSE (two stages)"}
POOLINGS = {"eos": ("eos", DEFAULT_PROMPT, "last token after the PromptEOL prompt"),
            "mean": ("mean", NO_PROMPT, "mean over the text's tokens, no prompt")}
ATTENTIONS = {"causal": "causal", "bidir": "bidirectional"}
TRAINABLES = {"lora": ({"method": "lora"}, "LoRA r 16 on every linear projection of every layer"),
              "top8": ({"method": "top_layers", "top_layers": 8}, "the top 8 of 30 layers (all weights) + norm")}
# Learning rates that differ from the method's recipe (methods/METHOD.yaml), by (method, pooling), in every row:
# Text2Token's mean cells take 1e-4, chosen on dev (configs/probes/v2/grid-mean-lr-*.yaml: 44.52 / 44.78 against
# 41.9 at the recipe's 1e-5, swept with last-token pooling).
LEARNING_RATES = {("text2token", "mean"): "1.0e-4"}
# Numerics per row, pinned because sessions get machines with and without native bf16 (where `auto` differs, and
# emulated bf16 is far slower): (train.autocast, eval --precision). The top-8 row ran on avx512_bf16 machines
# (auto = bf16 in both); the LoRA row runs in fp32 wherever it runs. Untrained references are scored in fp32.
NUMERICS = {"lora": ("none", "fp32"), "top8": ("auto", "bf16")}
REFERENCE_PRECISION = "fp32"
# the driver's fixed order: the main (LoRA) row first, then the top-8 row; the paper's settings first
SETTINGS = [("eos", "causal"), ("mean", "causal"), ("mean", "bidir"), ("eos", "bidir")]


@dataclass(frozen=True)
class Cell:
    method: str
    pooling: str
    attention: str
    trainable: str

    @property
    def name(self) -> str:
        return f"{self.method}-{self.pooling}-{self.attention}-{self.trainable}"

    @property
    def path(self) -> Path:
        return GRID_DIR / f"{self.name}.yaml"


CELLS = [Cell(m, p, a, t) for t, (p, a), m in product(TRAINABLES, SETTINGS, METHODS)]


@dataclass(frozen=True)
class Reference:
    """A setting's untrained backbone (``baseline:NAME``, eval/baselines.py): what training a cell adds to."""
    pooling: str
    attention: str
    method: str = "untrained"
    trainable: str = "none"

    @property
    def baseline(self) -> str:
        """The raw baseline (eval/baselines.py RAW) with this setting's pooling, prompt and attention."""
        pooling, prompt, _ = POOLINGS[self.pooling]
        wanted = EncoderSettings(pooling=pooling, prompt=prompt, attention=ATTENTIONS[self.attention])
        return next(name for name, kw in RAW.items() if EncoderSettings(**kw) == wanted)

    @property
    def name(self) -> str:
        return f"untrained-{self.pooling}-{self.attention}"


REFERENCES = [Reference(p, a) for p, a in SETTINGS]

# Wall seconds per step of 16 texts on the 2 CPU cores, in each row's numerics (NUMERICS), by trainable set and pooling,
# as results/offline/grid/grid.md's s/step column (scripts/grid_report.py) reads them from train/*.metrics.jsonl.
# LoRA on every layer in fp32 (avx512_bf16 machines): last token after the PromptEOL prompt
# 6.2 s a KL step (4.1 s in the LoRA probes on an AVX2-only machine; the slower is kept); mean pooling without a prompt
# 3.5-3.6 s a KL step, 4.6 s an MNTP step, 8.7-10.9 s a SimCSE step (5.0 kept: right for SimCSE, generous for KL).
# Top 8 in bf16 from the grid's own top-8 cells: 1.9-2.1 s a KL or MNTP step with either pooling, 1.2 s from the
# frozen cache. A SimCSE step encodes the batch twice, with dropout: 2.05-2.25x a KL step with top 8 (4.1-4.5 s),
# 2.36x with LoRA and the prompt (14.6 s).
STEP_SECONDS = {("lora", "eos"): 6.2, ("lora", "mean"): 5.0, ("top8", "eos"): 2.0, ("top8", "mean"): 2.0}
OBJECTIVE_FACTOR = {"kl": 1.0, "kl_contrastive": 1.0, "mntp": 1.0, "simcse": 2.3, "kl_simcse": 2.3}
SETUP_MINUTES = {"text2token": 5.0, "llm2vec": 1.0, "simcse": 1.0}  # loading, targets (Text2Token: 2,400 forwards)
# `text2token eval --split dev` by precision and pooling (train/*.json eval segments: bf16 2.4-2.6 min mean pooling,
# 3.0-3.4 with the PromptEOL prompt; fp32 3.4-4.0 mean, 4.9-5.9 with the prompt; the slower is kept)
EVAL_MINUTES = {("bf16", "mean"): 2.6, ("bf16", "eos"): 3.4, ("fp32", "mean"): 4.0, ("fp32", "eos"): 5.9}


def estimate_minutes(cell: Cell, cfg, train: bool = True) -> float:
    """Expected wall minutes of ``cell`` (its config ``cfg``): training (when ``train``) and the dev eval."""
    eval_minutes = EVAL_MINUTES[NUMERICS[cell.trainable][1], cell.pooling]
    if not train:
        return eval_minutes
    steps = sum(s.steps * OBJECTIVE_FACTOR[s.objective] for s in cfg.stages) * cfg.train.grad_accum
    per_step = STEP_SECONDS[cell.trainable, cell.pooling] * cfg.train.batch_size / 16
    return steps * per_step / 60 + SETUP_MINUTES[cell.method] + eval_minutes


def estimates_table() -> str:
    """Markdown: estimated wall minutes of each method's cell per (trainable, pooling), one and two settings."""
    from text2token.config import load_config

    columns = [("lora", "eos"), ("lora", "mean"), ("top8", "eos"), ("top8", "mean")]
    minutes = {(c.method, c.trainable, c.pooling): estimate_minutes(c, load_config(c.path))
               for c in CELLS if c.attention == "causal"}
    short = {"lora": "LoRA", "top8": "top 8", "eos": "last token + PromptEOL", "mean": "mean pooling"}
    heads = [f"{short[t]}, {short[p]} ({NUMERICS[t][1]})" for t, p in columns]
    lines = ["| cell | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {m} | " + " | ".join(f"{minutes[m, t, p]:.0f}" for t, p in columns) + " |" for m in METHODS]
    setting = [sum(minutes[m, t, p] for m in METHODS) for t, p in columns]
    lines.append("| one setting (3 methods) | " + " | ".join(f"{v:.0f}" for v in setting) + " |")
    lines.append("| two settings (causal, bidirectional) | "
                 + " | ".join(f"{2 * v / 60:.1f} h" for v in setting) + " |")
    return "\n".join(lines)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def render(cell: Cell) -> str:
    """The text of ``cell``'s config file."""
    pooling, prompt, pooling_doc = POOLINGS[cell.pooling]
    train, trainable_doc = TRAINABLES[cell.trainable]
    lr = LEARNING_RATES.get((cell.method, cell.pooling))
    train = {**train, "lr": lr} if lr else train
    autocast = NUMERICS[cell.trainable][0]
    train = {**train, "autocast": autocast} if autocast != "auto" else train
    train_items = ", ".join(f"{k}: {v}" for k, v in train.items())
    return (f"# Generated by scripts/grid_configs.py: edit it (or base.yaml, methods/), not this file.\n"
            f"# Cell {cell.name}: {METHODS[cell.method]};\n"
            f"# {pooling_doc}; {ATTENTIONS[cell.attention]} attention; trains {trainable_doc}.\n"
            f"base: methods/{cell.method}.yaml\n"
            f"output_dir: runs/grid/{cell.name}\n"
            f"model: {{pooling: {pooling}, attention: {ATTENTIONS[cell.attention]}, prompt: {_quote(prompt)}}}\n"
            f"train: {{{train_items}}}\n")


def stale_files() -> list[str]:
    """Cell files missing or different from :func:`render`, and files under configs/grid/ no cell names."""
    wrong = [c.path.name for c in CELLS if not c.path.is_file() or c.path.read_text() != render(c)]
    known = {c.path.name for c in CELLS} | {"base.yaml"}
    return wrong + sorted(p.name for p in GRID_DIR.glob("*.yaml") if p.name not in known)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the committed files")
    parser.add_argument("--estimates", action="store_true", help="only print the estimated minutes per cell")
    args = parser.parse_args(argv)
    if args.estimates:
        print(estimates_table())
        return 0
    if args.check:
        stale = stale_files()
        print("\n".join(f"stale: configs/grid/{n}" for n in stale) or f"{len(CELLS)} cell files up to date")
        return 1 if stale else 0
    for cell in CELLS:
        cell.path.write_text(render(cell))
    print(f"wrote {len(CELLS)} cell files to {GRID_DIR.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
