"""`flnas search --designer llm` with a server that refuses json_schema (as llama-cpp-python's does).

The search steps down at once (no backoff, no failed iteration), says so once, records the mode with every
proposal, and a resumed search starts from the recorded mode; `--llm-structured` picks a mode by hand. The
end shows the prompt's size in tokens per iteration.
"""

from __future__ import annotations

import json

import optuna
import pytest

from llm_server import llm_server  # noqa: F401 - a fixture
from test_search_llm import argv, run, tiny


def records(tmp_path, study: str = "llm") -> list[dict]:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'study.db'}")
    trials = sorted(loaded.get_trials(deepcopy=False), key=lambda t: t.number)
    return [t.user_attrs["record"] for t in trials if t.user_attrs.get("kind") == "search"]


@pytest.mark.slow
def test_a_500_refusing_json_schema_steps_down_and_a_resume_starts_there(synth_dir, tmp_path, capsys, llm_server):  # noqa: F811
    llm_server.reject_formats = {"json_schema"}
    llm_server.reject_status = 500
    llm_server.reply(json.dumps(tiny(8, 8)), prompt_tokens=1500)
    code, out, err = run(argv(synth_dir, tmp_path, llm_server, iters=1), capsys)
    assert code == 0, err
    assert out.count("rejected response_format json_schema (HTTP 500); using json_object_schema") == 1
    assert "prompt size in tokens per iteration: 1: 1,500" in out
    [first] = records(tmp_path)
    assert first["structured_output"] == "json_object_schema" and first["prompt_size"]["tokens"] == 1500
    formats = [b["response_format"]["type"] for b in llm_server.bodies]
    assert formats == ["json_schema", "json_object"]

    llm_server.reply(json.dumps(tiny(8, 16)), prompt_tokens=1700)
    code, out, err = run(argv(synth_dir, tmp_path, llm_server, iters=2), capsys)
    assert code == 0, err
    assert "llm: structured output json_object_schema (the mode that worked earlier in this study)" in out
    assert "rejected" not in out  # no json_schema request this time
    assert llm_server.bodies[-1]["response_format"]["type"] == "json_object"
    assert "schema" in llm_server.bodies[-1]["response_format"]
    assert "prompt size in tokens per iteration: 1: 1,500, 2: 1,700" in out


@pytest.mark.slow
def test_llm_structured_off_sends_no_response_format(synth_dir, tmp_path, capsys, llm_server):  # noqa: F811
    llm_server.reply(json.dumps(tiny(8, 8)))
    code, out, err = run([*argv(synth_dir, tmp_path, llm_server, iters=1), "--llm-structured", "off"], capsys)
    assert code == 0, err
    assert "response_format" not in llm_server.bodies[-1]
    code, out, err = run([*argv(synth_dir, tmp_path, llm_server, iters=1), "--llm-structured", "grammar"], capsys)
    assert code == 2 and "--llm-structured must be one of auto, json_schema, json_object, off" in err
