"""An OpenAI-compatible HTTP server for an encoder: ``/v1/embeddings``, ``/v1/explain``, ``/v1/models``, ``/health``.

Requests from concurrent callers are batched together: each request puts its texts on an asyncio queue; one worker
takes the first waiting request, gathers more for up to ``batch_wait_ms`` or until ``max_batch`` texts, and runs
``encoder.encode`` on all of them in a single worker thread (so the event loop keeps serving and the model is only
ever used by one thread). Bad input gets a 4xx answer in OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}``, never a 500.
"""

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np

from ..errors import Text2TokenError
from .protocol import APIError, check_options, encode_vector, parse_inputs, parse_top_k, read_json

# idle keep-alive connections stay open longer than the longest Retry-After (60 s): a client that waits and then
# reuses its connection must not race the server closing it (uvicorn's default is 5 s)
KEEP_ALIVE_S = 75


class Overloaded(Exception):
    """The queue is full: the request is refused at once; ``retry_after`` seconds is when to try again."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; retry after {retry_after} s")
        self.retry_after = retry_after


class Batcher:
    """Collects texts of concurrent requests into batches and runs ``run(texts)`` on them in one thread.

    Admission control: a request is refused at once (:class:`Overloaded`) instead of waiting minutes when the
    texts pending would go beyond ``max_queue``, or would take longer than ``max_wait_s`` at the measured
    throughput. One larger than the bounds is taken only when nothing else is pending. ``Retry-After`` is the
    pending texts over the measured throughput.
    """

    def __init__(self, run: Callable[[list[str]], tuple[np.ndarray, list[int]]], executor: ThreadPoolExecutor,
                 max_batch: int, batch_wait_ms: float, max_queue: int = 256, max_wait_s: float = 5.0):
        self.run, self.executor = run, executor
        self.max_batch, self.wait_s, self.max_queue = max_batch, batch_wait_ms / 1000.0, max_queue
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self._getter: asyncio.Task | None = None
        self.pending = 0  # texts queued or being encoded
        self.texts_per_s = 0.0  # moving average of the encoder's throughput
        self.shed = 0

    def retry_after(self) -> int:
        rate = self.texts_per_s or 1.0
        return int(min(60, max(1, math.ceil(self.pending / rate))))

    def full(self, n: int) -> bool:
        after = self.pending + n
        too_slow = bool(self.texts_per_s) and after / self.texts_per_s > self.max_wait_s
        return bool(self.pending) and (after > self.max_queue or too_slow)

    async def submit(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Vectors and token counts of ``texts``, computed in a batch with other waiting requests."""
        if self.full(len(texts)):
            self.shed += 1
            raise Overloaded(self.retry_after())
        if self.worker is None or self.worker.done():
            self.queue = asyncio.Queue()
            self.worker = asyncio.create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        self.pending += len(texts)
        try:
            await self.queue.put((texts, future))
            return await future
        finally:
            self.pending -= len(texts)

    async def close(self) -> None:
        for task in (self.worker, self._getter):
            if task is not None:
                task.cancel()
        self.worker = self._getter = None

    async def _next(self, timeout: float | None):
        """The next queued request, or None after ``timeout`` seconds (the pending get is kept, not lost)."""
        if self._getter is None:
            if not self.queue.empty():
                return self.queue.get_nowait()
            self._getter = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait({self._getter}, timeout=timeout)
        if not done:
            return None
        item, self._getter = self._getter.result(), None
        return item

    async def _collect(self) -> list[tuple[list[str], asyncio.Future]]:
        jobs = [await self._next(None)]
        count = len(jobs[0][0])
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while count < self.max_batch:
            item = await self._next(max(0.0, deadline - asyncio.get_running_loop().time()))
            if item is None:
                break
            jobs.append(item)
            count += len(item[0])
        return [job for job in jobs if not job[1].done()]

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            if not jobs:
                continue
            texts = [t for job_texts, _ in jobs for t in job_texts]
            try:
                tic = time.perf_counter()
                vectors, counts = await loop.run_in_executor(self.executor, self.run, texts)
                rate = len(texts) / max(time.perf_counter() - tic, 1e-6)
                self.texts_per_s = rate if not self.texts_per_s else 0.8 * self.texts_per_s + 0.2 * rate
            except Exception as e:  # handed to each waiting request, which answers it
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for job_texts, future in jobs:
                end = start + len(job_texts)
                if not future.done():
                    future.set_result((vectors[start:end], counts[start:end]))
                start = end


# ---------------------------------------------------------------- the app
def _error_response(err: APIError):
    from fastapi.responses import JSONResponse

    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _install_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(APIError)
    async def _api_error(_, exc: APIError):
        return _error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(_, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _error_response(APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_, exc: RequestValidationError):
        return _error_response(APIError(400, str(exc.errors()[0].get("msg", "invalid request"))))

    @app.exception_handler(Exception)
    async def _server_error(_, exc: Exception):
        return _error_response(APIError(500, f"internal error: {type(exc).__name__}", kind="server_error"))


def _require_api_key(app, api_key: str) -> None:
    """Answers 401 (OpenAI's shape) to ``/v1/*`` requests without ``Authorization: Bearer <api_key>``."""
    import hmac

    expected = f"Bearer {api_key}".encode()

    @app.middleware("http")
    async def _check_key(request, call_next):
        if request.url.path.startswith("/v1/"):
            sent = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(sent, expected):
                return _error_response(APIError(401, "invalid or missing API key (send Authorization: Bearer KEY)",
                                                code="invalid_api_key"))
        return await call_next(request)


def _require_server_packages() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise Text2TokenError(f"serve needs {' and '.join(missing)} (pip install {' '.join(missing)})")


def create_app(encoder, model_name: str, max_inputs: int = 2048, max_chars: int = 50_000,
               max_body_bytes: int = 8 * 1024 * 1024, batch_wait_ms: float = 5.0, max_batch: int = 32,
               normalize: bool = True, api_key: str | None = None, max_queue: int = 256, max_wait_s: float = 5.0):
    """A FastAPI app serving ``encoder`` under the OpenAI embeddings API as ``model_name``.

    ``api_key``: when set, every ``/v1/*`` request must send ``Authorization: Bearer <api_key>`` (compared in
    constant time); ``/health`` stays open.

    ``max_inputs``: texts per request; ``max_chars``: characters per text; ``max_body_bytes``: request size;
    ``batch_wait_ms``/``max_batch``: how long the batcher waits for more requests / the most texts per batch;
    ``normalize``: unit-length vectors, as OpenAI's are (``Encoder.encode(texts, normalize=True)``);
    ``max_queue`` / ``max_wait_s``: most texts waiting or being encoded / longest expected wait; beyond either,
    ``/v1/embeddings`` answers 503 with ``Retry-After`` at once.
    """
    _require_server_packages()
    from fastapi import FastAPI

    if min(max_inputs, max_chars, max_body_bytes, max_batch, max_queue) < 1 or batch_wait_ms < 0 or max_wait_s <= 0:
        raise Text2TokenError("serve: limits must be positive (and batch_wait_ms >= 0)")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="text2token-model")

    def embed(texts: list[str]) -> tuple[np.ndarray, list[int]]:
        return encoder.encode(texts, batch_size=max_batch, normalize=normalize, show_progress_bar=False,
                              return_token_counts=True)

    batcher = Batcher(embed, executor, max_batch=max_batch, batch_wait_ms=batch_wait_ms, max_queue=max_queue,
                      max_wait_s=max_wait_s)

    @asynccontextmanager
    async def lifespan(_):
        yield
        await batcher.close()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="text2token", lifespan=lifespan)
    app.state.batcher = batcher  # its queue length, throughput and shed count
    _install_error_handlers(app)
    if api_key:
        _require_api_key(app, api_key)
    _add_info_routes(app, model_name)
    _add_embeddings_route(app, encoder, batcher, model_name, max_inputs, max_chars, max_body_bytes)
    _add_explain_route(app, encoder, executor, model_name, max_inputs, max_chars, max_body_bytes)
    return app


# (no `from __future__ import annotations` in this module: FastAPI must see the real Request class)
def _add_embeddings_route(app, encoder, batcher: Batcher, model_name: str, max_inputs: int, max_chars: int,
                          max_body_bytes: int) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await read_json(request, max_body_bytes)
        fmt = check_options(body, encoder.hidden_size)
        texts = parse_inputs(body.get("input"), max_inputs, max_chars)
        try:
            vectors, counts = await batcher.submit(texts)
        except Overloaded as e:
            raise APIError(503, str(e), code="server_overloaded", kind="server_error",
                           headers={"Retry-After": str(e.retry_after)}) from None
        except Text2TokenError as e:
            raise APIError(400, str(e), param="input") from None
        data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, fmt)}
                for i, v in enumerate(vectors)]
        tokens = int(sum(counts))
        return JSONResponse({"object": "list", "data": data, "model": model_name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _add_info_routes(app, model_name: str) -> None:
    created = int(time.time())

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "text2token"}]}


def _add_explain_route(app, encoder, executor, model_name: str, max_inputs: int, max_chars: int,
                       max_body_bytes: int) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse

    async def model_call(fn):
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except Text2TokenError as e:
            raise APIError(400, str(e), param="input") from None

    @app.post("/v1/explain")
    async def explain(request: Request):
        body = await read_json(request, max_body_bytes)
        texts = parse_inputs(body.get("input"), max_inputs, max_chars)
        top_k = parse_top_k(body.get("top_k"))
        pairs = await model_call(lambda: [encoder.explain(t, top_k=top_k) for t in texts])
        data = [{"object": "explanation", "index": i,
                 "tokens": [{"token": tok, "probability": p} for tok, p in row]} for i, row in enumerate(pairs)]
        return JSONResponse({"object": "list", "data": data, "model": model_name})


def default_model_name(model_dir) -> str:
    """The name the server reports: the model directory's name (its run's name for ``<run>/final``)."""
    from pathlib import Path

    path = Path(model_dir).resolve()
    return path.parent.name if path.name == "final" and path.parent.name else path.name


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, name: str | None = None, precision: str = "fp32",
          **limits) -> None:
    """Loads the encoder in ``model_dir`` (in ``precision``) and serves it with uvicorn until interrupted."""
    _require_server_packages()
    import uvicorn

    from ..model.encoder import Encoder

    encoder = Encoder.load(model_dir, precision=precision)
    app = create_app(encoder, name or default_model_name(model_dir), **limits)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=KEEP_ALIVE_S)


class ServerThread:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a background thread, for a ``with`` block (tests and
    the load benchmark)."""

    def __init__(self, app, log_level: str = "warning"):
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on",
                                                    timeout_keep_alive=KEEP_ALIVE_S))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()
