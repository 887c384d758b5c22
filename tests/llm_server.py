"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for testing the LLM path end to end.

It is a real HTTP server (``http.server`` in a thread, a free port) that answers
``POST /v1/chat/completions`` from a queue of scripted entries and records every request (body and
headers). Use the ``llm_server`` fixture (import it into a test module or conftest:
``from llm_server import llm_server``) and queue entries:

    llm_server.reply('{"layers": ...}')           # a completion whose content is this string
    llm_server.status(429, retry_after=1)          # an HTTP error (with a Retry-After header)
    llm_server.delay(2.0)                          # answer after 2 s (longer than the client timeout)
    llm_server.trickle('{"layers": ...}', 1.0)     # the body one byte per second (never times out per read)
    llm_server.reject_formats = {"json_schema"}    # 400 for requests with such a response_format
    llm_server.reject_status = 500                 # ... answered with this status instead (llama-cpp-python)
    llm_server.on_request = fn                     # fn(body) is called in the server before each answer

``llm_server.base_url`` is the value for ``--llm-base-url``. An empty queue answers HTTP 418 (not retried by
clients) so a test that asks more often than it scripted fails loudly. ``make_context`` and ``fake_metrics``
build a small DesignContext and an evaluator metrics object for designer tests.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["FakeLLMServer", "fake_metrics", "llm_server", "make_context"]


@dataclass
class _Entry:
    content: str | None = None
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    usage: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7})
    message: str = "error"
    raw: bytes | None = None  # a body sent as is (for broken servers)
    trickle: float = 0.0  # seconds between the body's bytes (a server that never stops sending)
    content_type: str = "application/json"


class FakeLLMServer:
    """Replays queued chat-completion replies and records the requests it got."""

    def __init__(self) -> None:
        self.queue: deque[_Entry] = deque()
        self.requests: list[dict[str, Any]] = []
        self.reject_formats: set[str] = set()
        self.reject_status = 400
        self.on_request: Any = None  # called with each request's body before it is answered
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- scripting -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reply(self, content: str, *, prompt_tokens: Any = 11, completion_tokens: Any = 7) -> None:
        """Queue a successful completion with this content (token counts as given, even if not numbers)."""
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        self.queue.append(_Entry(content=content, usage=usage))

    def status(self, code: int, *, retry_after: float | str | None = None, message: str = "error") -> None:
        """Queue an HTTP error answer (OpenAI-style error body)."""
        ra = None if retry_after is None else str(retry_after)
        self.queue.append(_Entry(status=code, retry_after=ra, message=message))

    def delay(self, seconds: float, content: str = "{}") -> None:
        """Queue an answer that comes only after ``seconds`` (or never, if the server stops first)."""
        self.queue.append(_Entry(content=content, delay=seconds))

    def raw(self, body: str, content_type: str = "application/json") -> None:
        """Queue an HTTP 200 whose body is ``body`` as is (not a chat completion)."""
        self.queue.append(_Entry(raw=body.encode(), content_type=content_type))

    def trickle(self, content: str, interval: float) -> None:
        """Queue a completion whose body is sent one byte every ``interval`` seconds."""
        self.queue.append(_Entry(content=content, trickle=interval))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of all requests so far."""
        return [r["body"] for r in self.requests]

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases delayed handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- serving ---------------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any, _Entry | None]:
        response_format = body.get("response_format") or {}
        fmt = response_format.get("type")
        if fmt == "json_object" and "schema" in response_format:
            fmt = "json_object_schema"
        if fmt in self.reject_formats:
            error = {
                "message": f"response_format {fmt} is not supported",
                "type": "invalid_request_error",
                "param": "response_format",
            }
            return self.reject_status, {}, {"error": error}, None
        with self._lock:
            entry = self.queue.popleft() if self.queue else None
        if entry is None:
            return 418, {}, {"error": {"message": "fake LLM server: no reply queued"}}, None
        if entry.raw is not None:
            return 200, {"Content-Type": entry.content_type}, entry.raw, None
        if entry.status != 200:
            headers = {"Retry-After": entry.retry_after} if entry.retry_after is not None else {}
            return entry.status, headers, {"error": {"message": entry.message, "type": "server_error"}}, None
        counts = [v for v in entry.usage.values() if isinstance(v, int)]
        usage = dict(entry.usage, total_tokens=sum(counts))
        completion = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": entry.content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return 200, {}, completion, entry

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                if server.on_request is not None:
                    server.on_request(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    code, headers, payload, entry = 404, {}, {"error": {"message": "not found"}}, None
                else:
                    code, headers, payload, entry = server._answer(body)
                if entry is not None and entry.delay and server._stop.wait(entry.delay):
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **headers}
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if entry is not None and entry.trickle:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            if server._stop.wait(entry.trickle):
                                return
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        return Handler


@pytest.fixture
def llm_server():
    """A started FakeLLMServer; stopped (and any delayed answers released) at teardown."""
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()


def make_context(
    history=(), best=None, *, iteration=None, image_size=32, env="Raspberry Pi 4", choices=None, log=None
):
    """A DesignContext over the default Choices and a 3-class task at ``image_size`` (for designer tests)."""
    import numpy as np

    from flnas.designers.base import DesignContext
    from flnas.records import TaskInfo
    from flnas.space import load_choices

    task = TaskInfo(
        dataset="ISIC 2019",
        classes=["MEL", "NV", "BCC"],
        groups={"sex": ["male", "female"], "age": ["young", "middle", "old"]},
        image_size=image_size,
        env=env,
    )
    history = list(history)
    return DesignContext(
        history=history,
        best=best,
        choices=choices if choices is not None else load_choices(None),
        task=task,
        iteration=iteration if iteration is not None else len(history) + 1,
        rng=np.random.default_rng(0),
        log=log if log is not None else (lambda message: None),
    )


def fake_metrics(val_accuracy=0.628, unfairness=0.013, params=30_000):
    """An evaluator metrics object with the fields the optMetrics line reads."""
    groups = {
        "male": {"accuracy": 0.6323, "count": 95},
        "female": {"accuracy": 0.6237, "count": 93},
        "young": {"accuracy": 0.2599, "count": 23},
        "middle": {"accuracy": 0.593, "count": 104},
        "old": {"accuracy": 0.8182, "count": 62},
    }
    val = {
        "loss": 0.6438,
        "accuracy": val_accuracy,
        "balanced_accuracy": 0.5,
        "unfairness": unfairness,
        "eodd": 0.1229,
        "eopp1": 0.1224,
        "eopp2": 0.0105,
        "groups": groups,
        "pairs": {},
    }
    return {
        "params": params,
        "flops": 1_000_000,
        "peak_memory_mb": 232.88,
        "latency_s": 0.004306,
        "throughput": 464.38,
        "device": "cuda",
        "train": {"loss": 0.8746, "accuracy": 0.5806},
        "val": val,
        "test": val,
    }
