"""The server under load and abuse, at a reduced size (the full size: benchmarks/server_load.py, 200 clients and
5,000 requests)."""

import importlib.util
import sys
from pathlib import Path

import pytest

for module in ("fastapi", "uvicorn", "httpx", "psutil"):
    pytest.importorskip(module)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
server_load = importlib.import_module("server_load")


def test_load_and_abuse(tiny_encoder):
    pool = server_load.text_pool(40)
    result = server_load.measure(tiny_encoder, clients=40, requests=300, pool=pool)
    load = result["load"]
    assert load["answered"] == load["ok"] == 300 and load["errors"] == 0, load
    assert load["mismatches"] == 0, "every response equals Encoder.encode of its texts"
    assert load["shed"] == 0, "the default queue holds 40 clients' requests of a tiny model"
    assert load["p99_ms"] > 0 and load["requests_per_s"] > 0
    failed = [case for case in result["abuse"] if not case["ok"]]
    assert not failed, failed
    assert result["rss_growth_mb"] < 200, "memory stays bounded"


def test_a_small_queue_sheds_load_with_503_and_nothing_else(tiny_encoder):
    """200 clients against a queue of 16 texts: every request is answered 200 or 503 + Retry-After, the 200s are
    correct, no client times out."""
    pool = server_load.text_pool(40)
    load = server_load.measure(tiny_encoder, clients=200, requests=600, pool=pool, max_queue=16)["load"]
    assert load["errors"] == 0 and load["mismatches"] == 0, load
    assert load["ok"] + load["shed"] == 600 and load["shed"] > 0 and load["ok"] > 0
