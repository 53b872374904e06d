"""``text2token`` under torchrun with one rank made to fail while encoding (tests only).

Usage: ``torchrun --nproc_per_node N tests/serving/_encode_worker.py FAIL_RANK encode|index ARGS...``
"""

import os
import sys

from text2token import cli
from text2token.serving import encode_parallel

fail_rank = int(sys.argv.pop(1))
original = encode_parallel.encode_rows


def failing(*args, **kwargs):
    if int(os.environ.get("RANK", "0")) == fail_rank:
        raise RuntimeError(f"simulated failure on rank {fail_rank}")
    return original(*args, **kwargs)


encode_parallel.encode_rows = failing
sys.argv[0] = "text2token"
cli.main()
