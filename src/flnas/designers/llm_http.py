"""One chat-completions request, bounded in time, and the dialects of structured output.

Two things here that the ``openai`` package does not do on its own:

- **A deadline for the whole request.** The client's ``timeout`` bounds each network read, so a server
  that sends one byte a second never times out. :func:`chat_once` runs the request on the async client
  under ``asyncio.wait_for``, which cancels it (and closes the connection) when the deadline passes.
- **Structured output that every server accepts.** Servers differ in what ``response_format`` they take
  (see :data:`FORMAT_MODES`); a 4xx or 5xx whose body names the response format is a rejection of that
  mode (:func:`rejects_format`) and the designer steps down to the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import time
from collections.abc import Coroutine
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "FORMAT_MODES",
    "USER_MODES",
    "NotACompletion",
    "chat_once",
    "completion_content",
    "error_text",
    "rejects_format",
    "response_format",
    "retry_after",
    "usage_counts",
]

# Structured-output modes, strongest first; a rejected mode steps down to the next.
#   json_schema         {"type": "json_schema", "json_schema": {"name", "schema", "strict": false}}:
#                       OpenAI, vLLM, Ollama (OpenAI-compatible endpoint), llama.cpp's llama-server
#   json_object_schema  {"type": "json_object", "schema": ...}: llama-cpp-python's server and llama-server
#                       (grammar-constrained decoding from the schema)
#   json_object         {"type": "json_object"}: any JSON, no schema (most servers)
#   off                 no response_format: the prompt alone asks for one JSON object
FORMAT_MODES = ("json_schema", "json_object_schema", "json_object", "off")
# what --llm-structured accepts: auto = json_schema and step down; json_object = with the schema first
USER_MODES = {"auto": "json_schema", "json_schema": "json_schema", "json_object": "json_object_schema", "off": "off"}
_FORMAT_WORDS = ("response_format", "response format", "json_schema", "json_object", "structured", "'schema'")


class NotACompletion(ValueError):
    """An HTTP 200 whose body is not a chat completion (an HTML page, an error object, no choices)."""


def response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``response_format`` request field for ``mode`` (None for ``off``)."""
    if mode == "json_schema":
        # strict=False: OpenAI's strict mode forbids defaults and optional fields, which ArchSpec has;
        # servers with guided decoding (vLLM, llama.cpp, Ollama) still follow the schema.
        return {"type": "json_schema", "json_schema": {"name": "ArchSpec", "schema": schema, "strict": False}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def rejects_format(status: int, body: str) -> bool:
    """True when an HTTP error (any 4xx or 5xx) is the server refusing the ``response_format`` sent."""
    text = body.lower()
    return status >= 400 and any(word in text for word in _FORMAT_WORDS)


def error_text(exc: Any, limit: int = 300) -> str:
    """The server's error message (short) from an ``openai.APIStatusError``."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        text = inner.get("message") if isinstance(inner, dict) else inner
        if text:
            return str(text)[:limit]
    return str(getattr(exc, "message", exc))[:limit]


def error_body(exc: Any, limit: int = 4000) -> str:
    """The whole error body as text (to look for the words that name the response format)."""
    body = getattr(exc, "body", None)
    try:
        text = json.dumps(body) if body is not None else ""
    except (TypeError, ValueError):
        text = str(body)
    response = getattr(exc, "response", None)
    try:
        text += " " + (response.text if response is not None else "")
    except Exception:  # noqa: BLE001 - a body that cannot be read only loses the detail
        pass
    return f"{text} {getattr(exc, 'message', '')}"[:limit]


def retry_after(headers: Any) -> float | None:
    """Seconds from Retry-After (seconds or an HTTP date) or retry-after-ms; None when absent/unreadable."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None


def usage_counts(response: Any) -> dict[str, int]:
    """prompt/completion/total tokens from ``usage``; a missing, negative or non-numeric count is 0."""
    usage = getattr(response, "usage", None)
    counts = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, name, None)
        if value is None and isinstance(usage, dict):
            value = usage.get(name)
        try:
            number = float(value) if value is not None and not isinstance(value, bool) else 0.0
        except (TypeError, ValueError):
            number = 0.0
        counts[name] = int(number) if math.isfinite(number) and 0 <= number < 2**53 else 0
    return counts


def completion_content(response: Any, body: str) -> str | None:
    """The first choice's text; NotACompletion when the body is not a chat completion at all.

    ``None`` (the reply is then "empty") only when the server sent a completion whose message has no text.
    """
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        head = " ".join(body.split())[:200] or "(an empty body)"
        raise NotACompletion(f"no choices in {head}" if body.lstrip().startswith("{") else head)
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    return content if isinstance(content, str) else None


async def _request(client_options: dict[str, Any], kwargs: dict[str, Any], deadline: float) -> tuple[Any, str]:
    import openai

    async with openai.AsyncOpenAI(**client_options) as client:
        raw = await asyncio.wait_for(client.chat.completions.with_raw_response.create(**kwargs), deadline)
        body = raw.http_response.text
        try:
            parsed = raw.parse()
        except (ValueError, TypeError, AttributeError):
            parsed = None
        return parsed, body


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, also when an event loop is running (e.g. Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def chat_once(client_options: dict[str, Any], kwargs: dict[str, Any], timeout: float) -> tuple[Any, str]:
    """One request; (parsed response or None, body text). Raises TimeoutError past ``timeout`` seconds in all,
    or the openai exception (APIStatusError, APIConnectionError, ...)."""
    return _run(_request({**client_options, "timeout": timeout, "max_retries": 0}, kwargs, timeout))
