"""Runs ``text2token.training.loop.train`` in each process that ``torchrun`` / ``accelerate launch`` starts (tests only).

Usage: ``torchrun --nproc_per_node N tests/_dist_worker.py CONFIG.yaml RUN_DIR [--resume] [--stop-after STEPS]``
"""

import argparse

from text2token.config import load_config
from text2token.training.loop import train

parser = argparse.ArgumentParser()
parser.add_argument("config")
parser.add_argument("run_dir")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--stop-after", type=int, default=None)
args = parser.parse_args()
train(load_config(args.config), args.run_dir, resume=args.resume, stop_after_steps=args.stop_after,
      show_progress=False)
