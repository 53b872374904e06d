"""A whole ``train()`` of the default recipe against the float32 recipe it replaced, side by side.

    python -m benchmarks --only train_run

``configs/default.yaml`` (bf16 autocast where native, the frozen-layer cache) and ``configs/recipe-fp32.yaml``
(the same recipe in float32, no cache) each train a shortened run, alternating: both stages with the same
steps, the model-derived target pass and checkpoints included, the before/after score off (a fixed cost both
pay in float32). The issue-13 goal is the default run in <= 50% of the fp32 run's wall time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import goal, ratio, report, side_by_side

SIZES = {"default": {"steps": 40, "max_texts": None, "batch_size": 16, "rounds": 1},
         "quick": {"steps": 2, "max_texts": 200, "batch_size": 4, "rounds": 1}}
GOAL = 2.0  # fp32 wall / default wall


def _config(name: str, size: dict, backbone: str):
    from text2token.config import CONFIG_DIR, load_config

    steps = size["steps"]
    return load_config(CONFIG_DIR / name, [f"stages.0.steps={steps}", f"stages.1.steps={steps}",
                                           f"train.batch_size={size['batch_size']}", "eval.enabled=false",
                                           f"data.max_texts={size['max_texts'] or 'null'}",
                                           f"model.backbone={backbone}"])


def run(cfg, size: dict) -> tuple[dict, str]:
    from text2token.data import load_corpus
    from text2token.model.backbone import load_backbone
    from text2token.training.loop import train

    configs = {"default": _config("default.yaml", size, cfg.model.backbone),
               "fp32": _config("recipe-fp32.yaml", size, cfg.model.backbone)}
    load_corpus(configs["fp32"].data)  # the corpus cache and the backbone's files: warm before either side
    load_backbone(cfg.model.backbone)
    tmp = tempfile.TemporaryDirectory(prefix="t2t-bench-run-")
    count = {"n": 0}

    def one(name):
        count["n"] += 1
        train(configs[name], Path(tmp.name) / f"{name}-{count['n']}", show_progress=False)

    t = side_by_side({"fp32": lambda: one("fp32"), "default": lambda: one("default")},
                     rounds=size["rounds"], warmup=0)
    tmp.cleanup()
    fp32, default = t["fp32"]["median_s"], t["default"]["median_s"]
    measured = ratio(fp32, default)
    result = {"steps_per_stage": size["steps"], "batch_size": size["batch_size"], "seconds": t,
              "ratios": {"fp32_vs_default_wall": measured},
              "goals": [goal("fp32 recipe wall / default recipe wall (short run)", measured, GOAL, ">=",
                             exact=fp32 / default)],
              "model": cfg.model.backbone}
    md = report(f"`text2token train`, both stages of {size['steps']} steps of {size['batch_size']} texts, "
                f"before/after score off: fp32 recipe {fp32:.0f} s, default recipe {default:.0f} s",
                ["whole-run ratio", "measured", "goal"],
                [["fp32 recipe wall / default recipe wall (bf16 autocast + frozen-layer cache)", measured,
                  f">= {GOAL}"]])
    return result, md


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", "train_run"])
