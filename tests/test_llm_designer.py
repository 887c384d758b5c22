"""LLMDesigner end to end against a real HTTP server on 127.0.0.1 that speaks chat completions."""

from __future__ import annotations

import json
import logging

import pytest

from flnas.designers.llm import LLMDesigner, is_configured
from flnas.designers.optmetrics import format_opt_metrics
from flnas.errors import LLMError
from flnas.records import Candidate
from flnas.space import load_choices, spec_key, validate_spec
from llm_server import fake_metrics, llm_server, make_context  # noqa: F401 - llm_server is a fixture

KEY = "sk-flnas-test-0123456789abcdef"
SPEC = {
    "layers": [
        {"type": "conv", "channels": 16, "kernel": 3, "stride": 2},
        {"type": "sepconv", "channels": 32, "kernel": 5, "norm": "group", "activation": "silu"},
    ],
    "head": {"pool": "avg", "hidden": [32], "dropout": 0.1},
}
OTHER = {"layers": [{"type": "conv", "channels": 8}, {"type": "conv", "channels": 16, "stride": 2}]}


def canonical(spec: dict) -> str:
    return spec_key(spec)


def make_designer(server, sleeps: list | None = None, **options) -> LLMDesigner:
    """Fast settings: tiny backoff, a short Retry-After cap, and a recorded sleep."""
    recorder = sleeps if sleeps is not None else []
    settings = dict(
        base_url=server.base_url,
        model="test-model",
        timeout=5.0,
        backoff_base=0.01,
        backoff_max=0.02,
        retry_after_cap=0.05,
        seed=0,
        sleep=recorder.append,
    )
    return LLMDesigner(**{**settings, **options})


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(SPEC),
        f"Here is a fairer design:\n```json\n{json.dumps(SPEC, indent=2)}\n```\nIt keeps params low.",
        f"I propose {json.dumps(SPEC)} because sepconv {{depthwise}} layers are cheap.",
    ],
    ids=["bare", "fenced", "prose"],
)
def test_valid_reply_in_any_shape(llm_server, reply):  # noqa: F811
    llm_server.reply(reply, prompt_tokens=100, completion_tokens=40)
    designer = make_designer(llm_server)
    [proposal] = designer.propose(make_context(), 1)
    assert proposal.error is None
    assert canonical(proposal.spec) == canonical(SPEC)
    [attempt] = proposal.record["attempts"]
    assert attempt["raw"] == reply and attempt["errors"] == [] and attempt["http_retries"] == []
    assert attempt["usage"] == {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140}
    assert proposal.record["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "calls": 1,
    }
    assert designer.usage() == {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "calls": 1,
    }
    [request] = llm_server.requests
    body = request["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.7
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"] == proposal.record["prompt"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["title"] == "ArchSpec"
    assert request["headers"]["authorization"] == "Bearer not-needed"  # local server, no key set


def test_malformed_json_then_valid_sends_the_parse_error_back(llm_server):  # noqa: F811
    bad = '{"layers": [{"type": "conv", "channels": 16},], "head": {}}'
    llm_server.reply(bad)
    llm_server.reply(json.dumps(SPEC))
    [proposal] = make_designer(llm_server).propose(make_context(), 1)
    assert canonical(proposal.spec) == canonical(SPEC)
    first, second = proposal.record["attempts"]
    assert first["spec"] is None and "trailing comma" in first["errors"][0]
    retry_messages = llm_server.bodies[1]["messages"]
    assert retry_messages[:2] == llm_server.bodies[0]["messages"]
    assert retry_messages[2] == {"role": "assistant", "content": bad}
    assert retry_messages[3]["role"] == "user" and "trailing comma" in retry_messages[3]["content"]
    assert retry_messages[3]["content"] == first["feedback"]
    assert second["errors"] == []


def test_out_of_range_values_send_the_exact_validation_errors(llm_server):  # noqa: F811
    bad = {"layers": [{"type": "conv", "channels": 1000, "kernel": 9}, {"type": "conv", "channels": 16}]}
    expected = validate_spec(bad, load_choices(None), image_size=32, num_classes=3).messages()
    assert len(expected) >= 2  # channels and kernel outside Choices
    llm_server.reply(json.dumps(bad))
    llm_server.reply(json.dumps(SPEC))
    [proposal] = make_designer(llm_server).propose(make_context(), 1)
    assert proposal.spec is not None
    feedback = llm_server.bodies[1]["messages"][-1]["content"]
    for line in expected:
        assert f"- {line}" in feedback
    assert proposal.record["attempts"][0]["errors"] == expected


def test_duplicate_of_an_evaluated_spec_is_rejected_with_its_metrics(llm_server):  # noqa: F811
    done = Candidate(0, 1, "llm", SPEC, "ok", fake_metrics())
    llm_server.reply(json.dumps(SPEC))
    llm_server.reply(json.dumps(OTHER))
    [proposal] = make_designer(llm_server).propose(make_context([done], done), 1)
    assert canonical(proposal.spec) == canonical(OTHER)
    feedback = llm_server.bodies[1]["messages"][-1]["content"]
    assert "already tried (iteration 1), with these metrics: " + format_opt_metrics(done.metrics) in feedback


def test_invalid_replies_past_max_retries_give_a_failed_proposal(llm_server):  # noqa: F811
    for _ in range(2):
        llm_server.reply("I cannot help with that.")
    [proposal] = make_designer(llm_server, max_retries=1).propose(make_context(), 1)
    assert proposal.spec is None
    assert proposal.error.startswith("the LLM gave no valid architecture in 2 replies")
    assert "no JSON object" in proposal.error
    assert len(proposal.record["attempts"]) == 2 and len(llm_server.requests) == 2


def test_429_with_retry_after_is_honoured_up_to_the_cap(llm_server):  # noqa: F811
    llm_server.status(429, retry_after=30)
    llm_server.reply(json.dumps(SPEC))
    sleeps: list[float] = []
    [proposal] = make_designer(llm_server, sleeps).propose(make_context(), 1)
    assert proposal.spec is not None
    assert sleeps == [0.05]  # Retry-After 30 s, capped at retry_after_cap
    [retry] = proposal.record["attempts"][0]["http_retries"]
    assert retry["error"].startswith("HTTP 429") and retry["wait_s"] == 0.05


def test_500_is_retried_with_backoff_then_succeeds(llm_server):  # noqa: F811
    llm_server.status(500)
    llm_server.status(503)
    llm_server.reply(json.dumps(SPEC))
    designer = make_designer(llm_server, sleep=__import__("time").sleep)  # real sleeps, 0.01-0.02 s
    [proposal] = designer.propose(make_context(), 1)
    assert proposal.spec is not None and len(llm_server.requests) == 3
    retries = proposal.record["attempts"][0]["http_retries"]
    assert [r["error"][:8] for r in retries] == ["HTTP 500", "HTTP 503"]
    assert 0.005 <= retries[0]["wait_s"] <= 0.01 and 0.01 <= retries[1]["wait_s"] <= 0.02  # doubling, jitter


def test_repeated_500s_end_in_a_failed_proposal_without_raising(llm_server):  # noqa: F811
    for _ in range(3):
        llm_server.status(500, message="upstream overloaded")
    [proposal] = make_designer(llm_server, max_http_retries=2).propose(make_context(), 1)
    assert proposal.spec is None
    assert (
        proposal.error
        == "the LLM endpoint failed 3 times in a row, the last time with HTTP 500: upstream overloaded"
    )
    assert len(llm_server.requests) == 3
    assert len(proposal.record["attempts"][0]["http_retries"]) == 2


def test_timeout_is_retried(llm_server):  # noqa: F811
    # the held answer never comes in time (the server releases it at teardown); the 1 s timeout leaves the
    # immediate answer plenty of room on a busy machine
    llm_server.delay(60.0, json.dumps(OTHER))
    llm_server.reply(json.dumps(SPEC))
    [proposal] = make_designer(llm_server, timeout=1.0).propose(make_context(), 1)
    assert canonical(proposal.spec) == canonical(SPEC)
    [retry] = proposal.record["attempts"][0]["http_retries"]
    assert retry["error"] == "timed out after 1 s"


def test_non_retryable_status_fails_at_once(llm_server):  # noqa: F811
    llm_server.status(404, message="model 'test-model' not found")
    [proposal] = make_designer(llm_server).propose(make_context(), 1)
    assert proposal.error == "the LLM endpoint answered HTTP 404: model 'test-model' not found"
    assert len(llm_server.requests) == 1


def test_rejected_response_format_falls_back_and_is_remembered(llm_server):  # noqa: F811
    llm_server.reject_formats = {"json_schema", "json_object_schema", "json_object"}
    llm_server.reply(json.dumps(SPEC))
    llm_server.reply(json.dumps(OTHER))
    messages: list[str] = []
    designer = make_designer(llm_server)
    [proposal] = designer.propose(make_context(log=messages.append), 1)
    assert proposal.spec is not None
    sent = [b.get("response_format") for b in llm_server.bodies]
    assert [(f or {}).get("type") for f in sent] == ["json_schema", "json_object", "json_object", None]
    assert "schema" in sent[1] and "schema" not in sent[2]  # json_object with the schema, then without
    fallbacks = [r["fallback"] for r in proposal.record["attempts"][0]["http_retries"]]
    assert fallbacks == ["json_object_schema", "json_object", "off"]
    assert designer.format_mode == "off" and proposal.record["structured_output"] == "off"
    assert sum("rejected response_format" in m for m in messages) == 3  # said once per step down
    designer.propose(make_context(log=messages.append), 1)  # the next call goes straight to plain text
    assert "response_format" not in llm_server.bodies[-1]
    assert sum("rejected response_format" in m for m in messages) == 3


@pytest.mark.parametrize("status", [400, 422, 500])
def test_any_error_status_naming_the_format_steps_down(llm_server, status):  # noqa: F811
    """llama-cpp-python answers json_schema with HTTP 500 "Input should be 'text' or 'json_object'"."""
    llm_server.reject_formats = {"json_schema"}
    llm_server.reject_status = status
    llm_server.reply(json.dumps(SPEC))
    sleeps: list[float] = []
    designer = make_designer(llm_server, sleeps)
    [proposal] = designer.propose(make_context(), 1)
    assert proposal.spec is not None and sleeps == []  # a step down, not a retry with backoff
    assert llm_server.bodies[-1]["response_format"]["type"] == "json_object"
    assert designer.format_mode == "json_object_schema"
    [retry] = proposal.record["attempts"][0]["http_retries"]
    assert retry["error"].startswith(f"HTTP {status} rejected response_format json_schema")


def test_the_schema_sent_is_the_template_narrowed_by_the_choices(llm_server):  # noqa: F811
    from flnas.space.schema import choices_schema

    choices = load_choices(None).model_copy(update={"channels": [8, 16], "kernels": [3], "max_head_layers": 1})
    for mode, path in (("auto", ("json_schema", "schema")), ("json_object", ("schema",))):
        llm_server.reply(json.dumps(OTHER))
        make_designer(llm_server, structured_output=mode).propose(make_context(choices=choices), 1)
        sent = llm_server.bodies[-1]["response_format"]
        for key in path:
            sent = sent[key]
        assert sent == choices_schema(choices)
        conv = sent["$defs"]["ConvLayer"]["properties"]
        assert conv["channels"]["enum"] == [8, 16] and conv["kernel"]["enum"] == [3]
        assert sent["$defs"]["Head"]["properties"]["hidden"]["maxItems"] == 1
        assert json.dumps(sent) in llm_server.bodies[-1]["messages"][-1]["content"]  # the prompt shows it


def test_plain_modes_and_a_bad_mode(llm_server):  # noqa: F811
    llm_server.reply(json.dumps(SPEC))
    make_designer(llm_server, structured_output="off").propose(make_context(), 1)
    assert "response_format" not in llm_server.bodies[-1]
    with pytest.raises(LLMError, match="--llm-structured must be one of auto, json_schema, json_object, off"):
        make_designer(llm_server, structured_output="grammar")


def test_a_resumed_designer_starts_from_the_mode_that_worked(llm_server):  # noqa: F811
    llm_server.reject_formats = {"json_schema"}
    llm_server.reply(json.dumps(SPEC))
    [first] = make_designer(llm_server).propose(make_context(), 1)
    assert first.record["structured_output"] == "json_object_schema"
    failed = {"designer": "llm", "structured_output": "off", "usage": {"calls": 0}}  # no call got through
    messages: list[str] = []
    resumed = make_designer(llm_server)
    resumed.resume([first.record, failed], log=messages.append)
    assert resumed.format_mode == "json_object_schema" and len(messages) == 1
    llm_server.reply(json.dumps(OTHER))
    resumed.propose(make_context(), 1)
    assert llm_server.bodies[-1]["response_format"]["type"] == "json_object"  # no json_schema request
    chosen = make_designer(llm_server, structured_output="json_schema")
    chosen.resume([first.record])
    assert chosen.format_mode == "json_schema"  # an explicit choice is kept


def test_timeout_bounds_the_whole_request_of_a_trickling_server(llm_server):  # noqa: F811
    """A body sent one byte every 0.2 s never trips a per-read timeout; the deadline still ends it."""
    llm_server.trickle(json.dumps(OTHER), 0.2)  # ~190 bytes: about 40 s if read to the end
    llm_server.reply(json.dumps(SPEC))
    [proposal] = make_designer(llm_server, timeout=1.0).propose(make_context(), 1)
    assert canonical(proposal.spec) == canonical(SPEC)
    [retry] = proposal.record["attempts"][0]["http_retries"]
    assert retry["error"] == "timed out after 1 s"


@pytest.mark.parametrize("tokens", ["lots", None, -5, 1e300, [1]])
def test_non_numeric_usage_counts_do_not_crash(llm_server, tokens):  # noqa: F811
    llm_server.reply(json.dumps(SPEC), prompt_tokens=tokens, completion_tokens=3)
    designer = make_designer(llm_server)
    [proposal] = designer.propose(make_context(), 1)
    assert proposal.spec is not None
    assert proposal.record["usage"]["prompt_tokens"] == 0 and proposal.record["usage"]["completion_tokens"] == 3


def test_prompt_size_is_recorded(llm_server):  # noqa: F811
    llm_server.reply("no json here", prompt_tokens=900)
    llm_server.reply(json.dumps(SPEC), prompt_tokens=1000)
    [proposal] = make_designer(llm_server).propose(make_context(), 1)
    size = proposal.record["prompt_size"]
    assert size["tokens"] == 900  # the prompt itself, not the re-ask
    assert size["chars"] == sum(len(m["content"]) for m in llm_server.bodies[0]["messages"])


def test_k_candidates_are_distinct_and_usage_adds_up(llm_server):  # noqa: F811
    llm_server.reply(json.dumps(SPEC), prompt_tokens=10, completion_tokens=5)
    llm_server.reply(json.dumps(SPEC), prompt_tokens=20, completion_tokens=5)  # same again: rejected
    llm_server.reply(json.dumps(OTHER), prompt_tokens=30, completion_tokens=5)
    designer = make_designer(llm_server)
    first, second = designer.propose(make_context(), 2)
    assert canonical(first.spec) == canonical(SPEC) and canonical(second.spec) == canonical(OTHER)
    assert (
        "You already proposed these architectures in this iteration" in second.record["prompt"][-1]["content"]
    )
    assert "already proposed in this iteration" in second.record["attempts"][0]["errors"][0]
    assert designer.usage() == {"prompt_tokens": 60, "completion_tokens": 15, "total_tokens": 75, "calls": 3}
    assert second.record["usage"]["calls"] == 2


def test_api_key_is_sent_but_never_stored_logged_or_shown(llm_server, monkeypatch, caplog, capsys):  # noqa: F811
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    llm_server.status(401, message=f"Incorrect API key provided: {KEY}")
    llm_server.reply("not json")
    llm_server.reply(json.dumps(SPEC))
    designer = make_designer(llm_server)
    print(repr(designer), vars(designer))
    failed = designer.propose(make_context(), 1)[0]
    ok = designer.propose(make_context(), 1)[0]
    assert llm_server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert failed.error.startswith("the LLM endpoint answered HTTP 401") and "***" in failed.error
    stored = json.dumps([failed.record, failed.error, ok.record])
    assert ok.spec is not None and "not json" in stored
    out = capsys.readouterr()
    for text in (stored, out.out, out.err, caplog.text, repr(designer), str(vars(designer))):
        assert KEY not in text


def test_no_endpoint_is_one_clear_error(monkeypatch):
    assert not is_configured()
    with pytest.raises(LLMError, match="no LLM endpoint is configured: set OPENAI_API_KEY"):
        LLMDesigner()
    assert is_configured("http://localhost:8000/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert is_configured()
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert is_configured()


def test_registered_as_llm_with_model_from_env(llm_server, monkeypatch):  # noqa: F811
    from flnas.designers.registry import create_designer

    monkeypatch.setenv("FLNAS_LLM_MODEL", "qwen2.5:7b")
    designer = create_designer("llm", base_url="http://user:pw@127.0.0.1:9/v1?x=1")
    assert isinstance(designer, LLMDesigner) and designer.name == "llm"
    assert designer.model == "qwen2.5:7b"
    assert designer.base_url == "http://127.0.0.1:9/v1"  # credentials and query never stored


def test_unreachable_server_is_retried_then_fails(monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    designer = LLMDesigner(base_url=f"http://127.0.0.1:{port}/v1", max_http_retries=1, sleep=sleeps.append)
    [proposal] = designer.propose(make_context(), 1)
    assert proposal.error.startswith(
        "the LLM endpoint failed 2 times in a row, the last time with connection failed"
    )
    assert len(sleeps) == 1 and designer.usage()["calls"] == 0


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<html>gateway says hi</html>", "text/html", "not a chat completion: <html>gateway says hi</html>"),
        ("<html>gateway says hi</html>", "application/json", "not a chat completion"),
        ('{"choices": []}', "application/json", 'not a chat completion: no choices in {"choices": []}'),
        ('{"object": "error"}', "application/json", "not a chat completion"),
    ],
)
def test_broken_200_bodies_fail_the_proposal_without_raising(llm_server, body, content_type, expected):  # noqa: F811
    llm_server.raw(body, content_type)
    [proposal] = make_designer(llm_server, max_retries=0).propose(make_context(), 1)
    assert proposal.spec is None and expected in proposal.error
    assert "empty" not in proposal.error
    assert len(llm_server.requests) == 1


def test_deeply_nested_reply_is_an_invalid_reply_not_a_crash(llm_server):  # noqa: F811
    llm_server.reply('{"layers":' + "[" * 50_000 + "]" * 50_000 + "}")
    llm_server.reply('{"layers": ' + "[" * 500 + "]" * 500 + ', "head": {}}')
    llm_server.reply(json.dumps(SPEC))
    [proposal] = make_designer(llm_server).propose(make_context(), 1)
    assert proposal.spec is not None
    first, second, _ = proposal.record["attempts"]
    assert "characters long" in first["errors"][0] and "nested" in second["errors"][0]


def test_huge_replies_are_capped_in_the_study_and_in_the_re_ask(llm_server):  # noqa: F811
    from flnas.designers.llm import MAX_FEEDBACK_LINES, MAX_RESENT_REPLY, MAX_STORED_REPLY

    huge = "x" * 10_000_000
    wide = json.dumps({**SPEC, "head": {"hidden": list(range(1, 5_001))}})  # 28 KB: under the read cap
    many = json.dumps({"layers": [{"type": "conv", "channels": 7, "kernel": 2}] * 30})  # 60+ problems
    for reply in (huge, wide, many):
        llm_server.reply(reply)
    llm_server.reply(json.dumps(SPEC))
    [proposal] = make_designer(llm_server).propose(make_context(), 1)
    assert proposal.spec is not None
    first, second, third, _ = proposal.record["attempts"]
    assert len(first["raw"]) < MAX_STORED_REPLY + 100 and first["raw_chars"] == len(huge)
    assert len(json.dumps(proposal.record)) < 200_000
    assert "5000 hidden layers is more than the Choices' maximum of 2" in second["errors"][0]
    assert len(second["errors"]) == 1  # refused by its size at once, not width by width
    resent = llm_server.bodies[1]["messages"][-2]["content"]
    assert len(resent) < MAX_RESENT_REPLY + 100 and "10,000,000 characters" in resent
    feedback = llm_server.bodies[3]["messages"][-1]["content"]
    assert feedback.count("\n- ") == MAX_FEEDBACK_LINES + 1 and "more problems" in feedback
    assert all(len(body["messages"][-1]["content"]) < 30_000 for body in llm_server.bodies)


def test_an_unexpected_error_fails_one_proposal_and_propose_does_not_raise(llm_server, monkeypatch):  # noqa: F811
    llm_server.reply(json.dumps(SPEC))
    llm_server.reply(json.dumps(OTHER))
    designer = make_designer(llm_server)
    calls = []

    def broken(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RecursionError("maximum recursion depth exceeded")
        return LLMDesigner._check(designer, *args)

    monkeypatch.setattr(designer, "_check", broken)
    first, second = designer.propose(make_context(), 2)
    assert first.spec is None and "RecursionError: maximum recursion depth exceeded" in first.error
    assert canonical(second.spec) == canonical(OTHER)
