"""The OpenAI-compatible server, run with uvicorn on a loopback port and called with the official openai client."""

import base64
import json
import sys
import threading

import numpy as np
import pytest

from text2token import cli
from text2token.model.encoder import Encoder
from text2token.model.pooling import POOLINGS
from text2token.model.settings import EncoderSettings

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from text2token.serving.serve import ServerThread as Server
from text2token.serving.serve import create_app

NAME = "tiny-t2t"
TEXTS = ["the cat sat on the mat", "Paris is the capital of France", "a", "zebra and giraffe graze",
         "the stock market fell sharply today " * 6]


class SpyEncoder:
    """The encoder, recording how many texts each encode call got (to see requests batched together)."""

    def __init__(self, encoder):
        self.encoder, self.batch_sizes = encoder, []

    def encode(self, texts, **kwargs):
        self.batch_sizes.append(len(texts))
        return self.encoder.encode(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.encoder, name)


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    from text2token.model.backbone import load_backbone

    model, tokenizer = load_backbone(str(tiny_dir))
    settings = EncoderSettings(pooling="eos", prompt='the text "{text}" is', max_length=24)
    return Encoder(model, tokenizer, settings, device="cpu")


@pytest.fixture(scope="module")
def spy(encoder):
    return SpyEncoder(encoder)


@pytest.fixture(scope="module")
def server(spy):
    app = create_app(spy, NAME, max_inputs=8, max_chars=2000, max_body_bytes=64 * 1024, batch_wait_ms=50,
                     max_batch=64)
    with Server(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=30)


def test_embeddings_float_equal_encode(client, encoder):
    resp = client.embeddings.create(model=NAME, input=TEXTS, encoding_format="float")
    want = encoder.encode(TEXTS, normalize=True)
    got = np.array([d.embedding for d in resp.data], dtype=np.float32)
    assert [d.index for d in resp.data] == list(range(len(TEXTS))) and resp.object == "list"
    assert resp.model == NAME and resp.data[0].object == "embedding"
    assert np.abs(got - want).max() <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    tokens = int(encoder.tokenize(TEXTS)[0]["attention_mask"].sum())
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == tokens


def test_embeddings_base64_equal_encode(client, encoder):
    want = encoder.encode(TEXTS, normalize=True)
    resp = client.embeddings.create(model=NAME, input=TEXTS, encoding_format="base64")
    got = np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in resp.data])
    assert np.abs(got - want).max() <= 1e-5
    default = client.embeddings.create(model=NAME, input=TEXTS)  # the client asks for base64 and decodes it
    assert np.abs(np.array([d.embedding for d in default.data]) - want).max() <= 1e-5


def test_single_string_input(client, encoder):
    resp = client.embeddings.create(model=NAME, input="the cat sat on the mat", encoding_format="float")
    assert len(resp.data) == 1
    assert np.abs(np.array(resp.data[0].embedding) - encoder.encode(["the cat sat on the mat"], normalize=True)[0]
                  ).max() <= 1e-5


def test_concurrent_requests_are_batched_and_correct(client, encoder, spy):
    requests = [TEXTS[i % 5: i % 5 + 1 + i % 3] for i in range(12)]  # 1 to 3 texts each
    results, errors = [None] * len(requests), []
    start = threading.Barrier(len(requests))

    def call(i):
        try:
            start.wait(timeout=10)
            resp = client.embeddings.create(model=NAME, input=requests[i], encoding_format="float")
            results[i] = np.array([d.embedding for d in resp.data], dtype=np.float32)
        except Exception as e:  # reported below
            errors.append(e)

    spy.batch_sizes.clear()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    for texts, got in zip(requests, results):
        assert got.shape[0] == len(texts)
        assert np.abs(got - encoder.encode(texts, normalize=True)).max() <= 1e-5
    assert sum(spy.batch_sizes) == sum(len(r) for r in requests)
    assert len(spy.batch_sizes) < len(requests)  # texts of several requests were encoded together


def test_explain_health_models(server, encoder):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        resp = http.post("/v1/explain", json={"input": ["the cat sat", "a dog"], "top_k": 3})
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        assert len(data) == 2 and data[1]["index"] == 1
        want = encoder.explain("the cat sat", top_k=3)
        assert [t["token"] for t in data[0]["tokens"]] == [t for t, _ in want]
        np.testing.assert_allclose([t["probability"] for t in data[0]["tokens"]], [p for _, p in want], atol=1e-6)
        assert http.get("/health").json() == {"status": "ok", "model": NAME}
        models = http.get("/v1/models").json()
        assert models["object"] == "list" and models["data"][0]["id"] == NAME
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    assert [m.id for m in client.models.list()] == [NAME]


BIG = json.dumps({"input": "word " * 20000}).encode()  # > max_body_bytes (64 KiB)


@pytest.mark.parametrize("path, body, status, param", [
    ("/v1/embeddings", {"model": NAME, "input": []}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": ""}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": ["fine", "   "]}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": 5}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": [1, 2, 3]}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": [["nested"]]}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": None}, 400, "input"),
    ("/v1/embeddings", {"model": NAME}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": ["x"] * 9}, 400, "input"),
    ("/v1/embeddings", {"model": NAME, "input": "a" * 2001}, 400, "input"),
    ("/v1/embeddings", {"model": 3, "input": "ok"}, 400, "model"),
    ("/v1/embeddings", {"model": NAME, "input": "ok", "encoding_format": "int8"}, 400, "encoding_format"),
    ("/v1/embeddings", {"model": NAME, "input": "ok", "dimensions": 7}, 400, "dimensions"),
    ("/v1/embeddings", b"{not json", 400, None),
    ("/v1/embeddings", b'{"input": "caf\xe9"}', 400, None),  # Latin-1, not UTF-8
    ("/v1/embeddings", b"[1, 2]", 400, None),
    ("/v1/embeddings", b"", 400, None),
    ("/v1/embeddings", b"[" * 100000 + b"]" * 100000, 413, None),
    ("/v1/embeddings", BIG, 413, None),
    ("/v1/explain", {"input": "ok", "top_k": 0}, 400, "top_k"),
    ("/v1/explain", {"input": "ok", "top_k": "3"}, 400, "top_k"),
    ("/v1/explain", {"input": []}, 400, "input"),
])
def test_bad_requests_get_openai_shaped_4xx(server, path, body, status, param):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = http.post(path, content=content, headers={"content-type": "application/json"})
        assert resp.status_code == status, resp.text
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        assert error["type"] == "invalid_request_error" and error["param"] == param
        assert http.post("/v1/embeddings", json={"input": "still fine"}).status_code == 200


def test_deep_json_and_chunked_body(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        deep = http.post("/v1/embeddings", content=b"[" * 20000 + b"]" * 20000)
        assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"
        chunks = (b"x" * 8192 for _ in range(16))  # no content-length: the limit applies while reading
        resp = http.post("/v1/embeddings", content=chunks)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"
        for method, path, status in [("GET", "/v1/nothing", 404), ("GET", "/v1/embeddings", 405)]:
            resp = http.request(method, path)
            assert resp.status_code == status and set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_openai_client_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=NAME, input=["ok", ""])
    assert info.value.status_code == 400 and "input[1]" in info.value.body["message"]


def test_raw_vectors_without_normalize(encoder):
    with Server(create_app(encoder, NAME, normalize=False, batch_wait_ms=0)) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0, timeout=30)
        resp = client.embeddings.create(model=NAME, input=TEXTS[:3], encoding_format="float")
    got = np.array([d.embedding for d in resp.data], dtype=np.float32)
    assert np.abs(got - encoder.encode(TEXTS[:3])).max() <= 1e-5


def test_cli_serve(monkeypatch, capsys, encoder, tmp_path):
    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.update(app=app, **kw))
    model_dir = encoder.save(tmp_path / "run" / "final")
    monkeypatch.setattr(sys, "argv", ["text2token", "serve", "--model", str(model_dir), "--port", "8123"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 0, capsys.readouterr().err
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8123
    paths = {route.path for route in calls["app"].routes}
    assert {"/v1/embeddings", "/v1/explain", "/v1/models", "/health"} <= paths
    monkeypatch.setattr(sys, "argv", ["text2token", "serve", "--model", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "model path not found" in err and "Traceback" not in err


def test_api_key_required_when_set(encoder):
    with Server(create_app(encoder, NAME, api_key="s3cret")) as srv:
        good = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="s3cret", max_retries=0, timeout=30)
        assert len(good.embeddings.create(model=NAME, input="the cat").data[0].embedding) == encoder.hidden_size
        bad = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="wrong", max_retries=0, timeout=30)
        with pytest.raises(openai.AuthenticationError) as err:
            bad.embeddings.create(model=NAME, input="the cat")
        assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
        assert httpx.get(f"{srv.url}/v1/models").status_code == 401
        assert httpx.get(f"{srv.url}/health").status_code == 200


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_every_pooling_serves_the_encoders_vectors(tiny_dir, pooling):
    from text2token.model.backbone import load_backbone

    model, tokenizer = load_backbone(str(tiny_dir))
    enc = Encoder(model, tokenizer, EncoderSettings(pooling=pooling, prompt='the text "{text}" is', max_length=24),
                  device="cpu")
    with Server(create_app(enc, NAME, batch_wait_ms=5)) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0, timeout=30)
        got = np.array([d.embedding for d in client.embeddings.create(model=NAME, input=TEXTS).data])
    assert np.abs(got - enc.encode(TEXTS, normalize=True)).max() <= 1e-5


class BlockingEncoder(SpyEncoder):
    """Encodes only once ``release`` is set: the queue fills up behind it."""

    def __init__(self, encoder):
        super().__init__(encoder)
        self.release, self.started = threading.Event(), threading.Event()

    def encode(self, texts, **kwargs):
        self.started.set()
        assert self.release.wait(30)
        return super().encode(texts, **kwargs)


def test_a_full_queue_answers_503_with_retry_after_at_once(encoder):
    import time

    blocking = BlockingEncoder(encoder)
    app = create_app(blocking, NAME, max_queue=4, batch_wait_ms=0)
    with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        first = {}
        worker = threading.Thread(target=lambda: first.update(r=http.post("/v1/embeddings", json={"input": TEXTS})))
        worker.start()  # 5 texts: more than max_queue, taken because nothing else is pending
        assert blocking.started.wait(30)
        tic = time.perf_counter()
        shed = http.post("/v1/embeddings", json={"input": ["one more text"]})
        assert time.perf_counter() - tic < 2, "refused at once, not queued"
        assert shed.status_code == 503 and int(shed.headers["retry-after"]) >= 1
        assert shed.json()["error"]["code"] == "server_overloaded" and "retry after" in shed.json()["error"]["message"]
        assert http.get("/health").status_code == 200, "the server keeps answering"
        blocking.release.set()
        worker.join(30)
        assert first["r"].status_code == 200 and len(first["r"].json()["data"]) == len(TEXTS)
        again = http.post("/v1/embeddings", json={"input": ["one more text"]})
        assert again.status_code == 200, "the queue drained: accepted again"
    assert app.state.batcher.shed == 1 and app.state.batcher.pending == 0
