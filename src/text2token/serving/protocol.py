"""The OpenAI embeddings wire format: request parsing and checks, vector encoding, the error shape.

Bad input is an :class:`APIError`, answered as ``{"error": {"message", "type", "param", "code"}}`` with a 4xx.
"""

import base64
import json
from typing import Any

import numpy as np

MAX_TOP_K = 100


class APIError(Exception):
    """An error answered to the client as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# ---------------------------------------------------------------- request parsing
async def read_json(request, max_body_bytes: int) -> dict:
    """The request body as a JSON object; 413 if larger than ``max_body_bytes``, 400 if not UTF-8 JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise APIError(413, f"request body is larger than {max_body_bytes} bytes", code="request_too_large")
    from starlette.requests import ClientDisconnect

    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise APIError(413, f"request body is larger than {max_body_bytes} bytes", code="request_too_large")
            chunks.append(chunk)
    except ClientDisconnect:  # the caller went away mid-body (e.g. a slow client timing out): nothing to answer
        raise APIError(400, "the client disconnected before sending the whole body",
                       code="client_disconnected") from None
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise APIError(400, "request body is not valid UTF-8", code="invalid_encoding") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise APIError(400, f"request body is not valid JSON ({e.msg} at position {e.pos})",
                       code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "request body is nested too deeply", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    return body


def parse_inputs(value: Any, max_inputs: int, max_chars: int) -> list[str]:
    """``input`` (a string or a list of strings) as a non-empty list of non-blank strings within the limits."""
    if value is None:
        raise APIError(400, "'input' is required", param="input", code="missing_required_parameter")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise APIError(400, f"'input' must be a string or a list of strings, not {type(value).__name__}",
                       param="input", code="invalid_type")
    if not texts:
        raise APIError(400, "'input' is an empty list", param="input", code="invalid_value")
    if len(texts) > max_inputs:
        raise APIError(400, f"'input' has {len(texts)} items; at most {max_inputs} are allowed", param="input",
                       code="too_many_inputs")
    for i, text in enumerate(texts):
        where = "'input'" if isinstance(value, str) else f"'input[{i}]'"
        if not isinstance(text, str):
            hint = " (token-id input is not supported; send text)" if isinstance(text, (int, list)) else ""
            raise APIError(400, f"{where} must be a string, not {type(text).__name__}{hint}", param="input",
                           code="invalid_type")
        if not text.strip():
            raise APIError(400, f"{where} is empty or whitespace-only", param="input", code="invalid_value")
        if len(text) > max_chars:
            raise APIError(400, f"{where} has {len(text)} characters; at most {max_chars} are allowed",
                           param="input", code="input_too_long")
    return texts


def check_options(body: dict, hidden_size: int) -> str:
    """Validates ``model``, ``encoding_format``, ``dimensions``, ``user``; returns the encoding format."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, "'model' must be a string", param="model", code="invalid_type")
    fmt = body.get("encoding_format")
    fmt = "float" if fmt is None else fmt
    if fmt not in ("float", "base64"):
        raise APIError(400, f"'encoding_format' must be 'float' or 'base64', not {fmt!r}", param="encoding_format",
                       code="invalid_value")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or dims != hidden_size):
        raise APIError(400, f"'dimensions' must be {hidden_size} for this model (got {dims!r})", param="dimensions",
                       code="invalid_value")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise APIError(400, "'user' must be a string", param="user", code="invalid_type")
    return fmt


def parse_top_k(value: Any) -> int:
    """``top_k`` for /v1/explain: an integer in 1..MAX_TOP_K (default 10)."""
    if value is None:
        return 10
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise APIError(400, f"'top_k' must be an integer from 1 to {MAX_TOP_K}", param="top_k", code="invalid_value")
    return value


def encode_vector(vector: np.ndarray, fmt: str) -> list[float] | str:
    """One embedding as JSON floats or as base64 of little-endian float32 (what OpenAI's client decodes)."""
    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float32).tolist()


# ---------------------------------------------------------------- dynamic batching
