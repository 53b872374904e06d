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
    assert load["answered"] == 300 and load["errors"] == 0, load
    assert load["mismatches"] == 0, "every response equals Encoder.encode of its texts"
    assert load["p99_ms"] > 0 and load["requests_per_s"] > 0
    failed = [case for case in result["abuse"] if not case["ok"]]
    assert not failed, failed
    assert result["rss_growth_mb"] < 200, "memory stays bounded"
