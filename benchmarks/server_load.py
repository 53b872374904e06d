"""Load and abuse test of the OpenAI-compatible server, on a loopback port, bounded in count and time.

    python benchmarks/server_load.py --model runs/default/final [--clients 200] [--requests 5000]
    python benchmarks/server_load.py --tiny [--clients 200] [--requests 5000]      # a tiny random model

Load: ``clients`` concurrent callers send ``requests`` requests of 1..8 real texts of mixed sizes (float and base64);
every response's vectors must equal ``Encoder.encode(..., normalize=True)`` of the same texts, and every request is
answered 200 or 503 + Retry-After (admission control: the queue holds at most ``--max-queue`` texts). Abuse: oversize
bodies, too many inputs, over-long texts, non-UTF-8, wrong types, invalid JSON and a slow client that trickles its
body; each must get a 4xx in OpenAI's error shape while the server keeps answering. Reports p50/p99 latency,
throughput and the server process's RSS growth; writes benchmarks/results/server_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import socket
import time
from pathlib import Path

import numpy as np

LIMITS = {"max_inputs": 8, "max_chars": 4000, "max_body_bytes": 256 * 1024}
ROOT = Path(__file__).resolve().parents[1]


def text_pool(n: int = 300, seed: int = 0) -> list[str]:
    """Real texts of mixed sizes: held-out Wikipedia descriptions (short), lead passages (long), titles (1-3 words)."""
    from text2token.config import DataConfig
    from text2token.eval.heldout import heldout_set

    held = heldout_set(DataConfig(), n, seed=seed)
    words = [d.split()[0] for d in held.documents]
    return list(dict.fromkeys(held.queries + held.documents + words))


def _vectors(item: dict) -> np.ndarray:
    emb = item["embedding"]
    if isinstance(emb, str):
        return np.frombuffer(base64.b64decode(emb), dtype="<f4")
    return np.asarray(emb, dtype=np.float32)


async def run_load(url: str, pool: list[str], expected: np.ndarray, clients: int, requests: int,
                   seed: int = 0, tolerance: float = 1e-4, min_cosine: float | None = None) -> dict:
    """``clients`` concurrent callers share ``requests`` requests; returns counts, latencies and throughput.

    A vector is wrong when it differs from ``expected`` by more than ``tolerance`` (fp32), or, with
    ``min_cosine`` (bf16: batches of other sizes round differently), when its cosine to it is lower. A caller
    that is shed (503) waits the ``Retry-After`` seconds before its next request, as a polite client does."""
    import httpx

    rng = random.Random(seed)
    plan = [(rng.sample(range(len(pool)), rng.randint(1, LIMITS["max_inputs"])), rng.choice(["float", "base64"]))
            for _ in range(requests)]
    latencies, shed_ms, errors, mismatches, texts = [], [], [], 0, 0
    cursor = iter(plan)

    async def caller(client: httpx.AsyncClient) -> None:
        nonlocal mismatches, texts
        for idx, fmt in cursor:
            start = time.perf_counter()
            try:
                resp = await client.post(f"{url}/v1/embeddings", json={"input": [pool[i] for i in idx],
                                                                        "model": "t", "encoding_format": fmt})
            except httpx.HTTPError as e:  # a client timeout among them
                errors.append(type(e).__name__)
                continue
            if resp.status_code == 503 and resp.headers.get("retry-after"):  # shed by admission control
                shed_ms.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(float(resp.headers["retry-after"]))
                continue
            if resp.status_code != 200:
                errors.append(resp.status_code)
                continue
            latencies.append(time.perf_counter() - start)
            got = np.stack([_vectors(d) for d in resp.json()["data"]])
            if got.shape != (len(idx), expected.shape[1]):
                mismatches += 1
            elif min_cosine is not None:
                mismatches += int((got * expected[idx]).sum(1).min() < min_cosine)
            else:
                mismatches += int(np.abs(got - expected[idx]).max() > tolerance)
            texts += len(idx)

    start = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(caller(client) for _ in range(clients)))
    wall = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    shed = np.asarray(shed_ms) if shed_ms else np.zeros(1)
    return {"clients": clients, "requests": requests, "answered": len(latencies) + len(shed_ms),
            "ok": len(latencies), "shed": len(shed_ms), "shed_rate": round(len(shed_ms) / max(requests, 1), 4),
            "errors": len(errors), "error_kinds": sorted({str(e) for e in errors}), "mismatches": mismatches,
            "texts": texts, "seconds": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
            "texts_per_s": round(texts / wall, 1), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "shed_p99_ms": round(float(np.percentile(shed, 99)), 1)}


async def _slow_client(host: str, port: int, seconds: float) -> None:
    """Declares a body, then trickles it a byte at a time, never finishing within ``seconds``."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n")
    await writer.drain()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)
    except ConnectionError:
        pass
    finally:
        writer.close()


def abuse_cases() -> dict[str, tuple[bytes, str]]:
    big = LIMITS["max_body_bytes"] + 1000
    return {
        "oversize body": (json.dumps({"input": "a" * big}).encode(), "application/json"),
        "too many inputs": (json.dumps({"input": ["x"] * (LIMITS["max_inputs"] + 1)}).encode(), "application/json"),
        "over-long text": (json.dumps({"input": "y" * (LIMITS["max_chars"] + 1)}).encode(), "application/json"),
        "non-UTF-8 body": (b'{"input": "\xff\xfe"}', "application/json"),
        "input is a number": (b'{"input": 42}', "application/json"),
        "input has a non-string": (b'{"input": ["ok", {"a": 1}]}', "application/json"),
        "empty input": (b'{"input": []}', "application/json"),
        "bad encoding_format": (b'{"input": "ok", "encoding_format": "hex"}', "application/json"),
        "invalid JSON": (b'{"input": ', "application/json"),
        "not an object": (b'["ok"]', "application/json"),
    }


async def run_abuse(url: str) -> list[dict]:
    """Each abuse case must get a 4xx with an OpenAI-shaped error; a slow client must not stall others."""
    import httpx

    results = []
    async with httpx.AsyncClient(timeout=30) as client:
        for name, (body, ctype) in abuse_cases().items():
            resp = await client.post(f"{url}/v1/embeddings", content=body, headers={"content-type": ctype})
            try:
                shaped = set(resp.json()["error"]) >= {"message", "type", "param", "code"}
            except (ValueError, KeyError, TypeError):
                shaped = False
            results.append({"case": name, "status": resp.status_code, "ok": 400 <= resp.status_code < 500 and shaped})
        host, port = url.split("//")[1].split(":")
        slow = asyncio.create_task(_slow_client(host, int(port), seconds=2.0))
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        resp = await client.post(f"{url}/v1/embeddings", json={"input": "a normal request"})
        waited = time.perf_counter() - start
        results.append({"case": "normal request during a slow client", "status": resp.status_code,
                        "seconds": round(waited, 3), "ok": resp.status_code == 200 and waited < 1.5})
        await slow
        health = await client.get(f"{url}/health")
        results.append({"case": "health after abuse", "status": health.status_code, "ok": health.status_code == 200})
    return results


def measure(encoder, clients: int, requests: int, pool: list[str] | None = None, seed: int = 0,
            max_queue: int = 256, max_wait_s: float = 5.0) -> dict:
    """Serves ``encoder`` on loopback, runs the load and the abuse cases, and reports RSS growth."""
    import psutil

    from text2token.serving.serve import ServerThread, create_app

    pool = pool or text_pool()
    expected = encoder.encode(pool, normalize=True)
    app = create_app(encoder, "load-test", batch_wait_ms=5, max_batch=64, max_queue=max_queue, max_wait_s=max_wait_s,
                     **LIMITS)
    min_cosine = None if encoder.precision == "fp32" else 0.999
    proc = psutil.Process()
    with ServerThread(app) as server:
        warm = asyncio.run(run_load(server.url, pool, expected, clients=4, requests=20, seed=seed + 1,
                                    min_cosine=min_cosine))
        rss_before = proc.memory_info().rss
        load = asyncio.run(run_load(server.url, pool, expected, clients, requests, seed=seed, min_cosine=min_cosine))
        rss_after = proc.memory_info().rss
        abuse = asyncio.run(run_abuse(server.url))
    return {"load": load, "warmup_errors": warm["errors"], "abuse": abuse,
            "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1), "rss_mb": round(rss_after / 2**20, 1),
            "pool_texts": len(pool)}


def summary_markdown(results: list[dict]) -> str:
    """One table row per load-test result (JSON written by this script)."""
    rows = ["| model | clients | requests | 200 | 503 (shed) | errors | vector mismatches | p50 ms (200s) | "
            "p99 ms (200s) | requests/s | texts/s | RSS growth MB | abuse cases passed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        load, abuse = r["load"], r["abuse"]
        errors = f"{load['errors']}" + (f" ({', '.join(load['error_kinds'])})" if load["errors"] else "")
        ok, shed = load.get("ok", load["answered"]), load.get("shed", 0)
        rows.append(f"| {r['model']} | {load['clients']} | {load['requests']} | {ok} | {shed} | {errors} | "
                    f"{load['mismatches']} | {load['p50_ms']:.0f} | {load['p99_ms']:.0f} | {load['requests_per_s']} | "
                    f"{load['texts_per_s']} | {r['rss_growth_mb']} | {sum(c['ok'] for c in abuse)}/{len(abuse)} |")
    return "\n".join(rows) + "\n"


def _tiny_encoder():
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_model, make_tokenizer

    from text2token.model.encoder import Encoder
    from text2token.model.settings import EncoderSettings

    tokenizer = make_tokenizer()
    settings = EncoderSettings(pooling="mean", prompt="{text}", max_length=64)
    return Encoder(make_model(len(tokenizer)), tokenizer, settings, device="cpu")


def load_goals(result: dict) -> list[dict]:
    """The issue-13 goals of a load result, as rows of ``python -m benchmarks``' summary."""
    load = result["load"]
    unanswered = load["requests"] - load["ok"] - load["shed"]
    return [{"name": f"{load['clients']} clients: client timeouts and errors", "goal": "0",
             "measured": load["errors"], "met": load["errors"] == 0},
            {"name": "wrong vectors", "goal": "0", "measured": load["mismatches"], "met": load["mismatches"] == 0},
            {"name": "requests answered neither 200 nor 503", "goal": "0", "measured": unanswered,
             "met": unanswered == 0},
            {"name": "p50 / p99 of the 200s (ms); shed rate", "goal": "report",
             "measured": f"{load['p50_ms']:.0f} / {load['p99_ms']:.0f}; {load['shed_rate']:.0%}", "met": None}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a text2token model directory")
    source.add_argument("--tiny", action="store_true", help="a tiny random model (tests the server, not the model)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--max-queue", type=int, default=256, help="the server's admission limit (texts)")
    parser.add_argument("--max-wait", type=float, default=5.0, help="the server's admission limit (expected wait, s)")
    parser.add_argument("--precision", default="fp32", help="the encoder's precision (fp32, bf16, int8)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "server_load.json"))
    parser.add_argument("--summarize", nargs="+", metavar="JSON", help="only write a markdown table of these results")
    args = parser.parse_args()
    if args.summarize:
        md = summary_markdown([json.loads(Path(p).read_text()) for p in args.summarize])
        Path(args.output).with_suffix(".md").write_text(md)
        print(md)
        return
    if not (args.tiny or args.model):
        parser.error("give --model DIR or --tiny")
    from text2token.model.encoder import Encoder

    encoder = _tiny_encoder() if args.tiny else Encoder.load(args.model, precision=args.precision)
    result = {"model": "tiny" if args.tiny else args.model, "precision": encoder.precision, "max_queue": args.max_queue,
              "max_wait_s": args.max_wait, **measure(encoder, args.clients, args.requests, max_queue=args.max_queue,
                                                     max_wait_s=args.max_wait)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    load = result["load"]
    print(f"{load['ok']} answered 200 and {load['shed']} shed (503) of {load['requests']} requests from "
          f"{load['clients']} clients: {load['errors']} errors, "
          f"{load['mismatches']} vector mismatches; p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
          f"{load['requests_per_s']} requests/s ({load['texts_per_s']} texts/s); RSS +{result['rss_growth_mb']} MB")
    for case in result["abuse"]:
        print(f"  {'ok  ' if case['ok'] else 'FAIL'} {case['case']}: {case['status']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    main()
