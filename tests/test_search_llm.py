"""`flnas search --designer llm` end to end: the real CLI, a real HTTP chat-completions server, a real study.

The fake server (tests/llm_server.py) replays scripted replies in every shape an LLM answers in, and the
HTTP failures a real endpoint gives; the tests then read the Optuna study back from its SQLite file and
check what each trial stores (spec, status, the prompt, every raw reply with its validation errors, the
HTTP retries, token usage), that each re-ask carried the exact error, and that the API key, although sent
to the server, appears nowhere in the study, the output or the run folder. Designer-level details (backoff
arithmetic, response_format fallback, ...) are in test_llm_designer.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from flnas.cli.main import main
from flnas.designers.optmetrics import format_opt_metrics
from flnas.space import load_choices, spec_key, validate_spec

SECRET_PART = "5f1c0de0a9b84e7d9c3b2a1f0e9d8c7b"
KEY = f"sk-test-SECRET-{SECRET_PART}"
LLM_TIMEOUT = 5.0  # per LLM call (--llm-timeout): room for a busy machine; the scripted timeout answers after 30 s


def tiny(c1: int, c2: int, kernel: int = 3) -> dict:
    """A small, valid, distinct architecture (trains in well under a second at 32x32)."""
    return {
        "layers": [
            {"type": "conv", "channels": c1, "kernel": kernel, "stride": 2},
            {"type": "conv", "channels": c2, "stride": 2},
        ],
        "head": {"pool": "avg"},
    }


def stored(spec: dict) -> dict:
    """The spec as the study stores it (validated, every default filled in)."""
    return validate_spec(spec, load_choices(None), image_size=32, num_classes=8).spec.model_dump(mode="json")


def argv(synth_dir: Path, tmp_path: Path, server, *, iters: int, study: str = "llm") -> list[str]:
    return [
        "search",
        "--data",
        str(synth_dir),
        "--designer",
        "llm",
        "--llm-base-url",
        server.base_url,
        "--llm-model",
        "fake",
        "--llm-timeout",
        str(LLM_TIMEOUT),
        "--iters",
        str(iters),
        "--image-size",
        "32",
        "--epochs",  # 2 epochs at lr 0.01: every scripted spec learns (none is degenerate, one class)
        "2",
        "--lr",
        "0.01",
        "--no-hardware",
        "--study",
        study,
        "--storage",
        str(tmp_path / "study.db"),
        "--out",
        str(tmp_path / "out"),
    ]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; stdout/stderr come back with rich's line wrapping undone (one space)."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, " ".join(out.split()), " ".join(err.split())


def leaks(text: str | bytes) -> bool:
    """True when the key, or its secret part, is in ``text`` (also when wrapping split it over lines)."""
    if isinstance(text, bytes):
        return KEY.encode() in text or SECRET_PART.encode() in text
    squeezed = "".join(text.split())
    return KEY in squeezed or SECRET_PART in squeezed


def search_trials(tmp_path: Path, study: str = "llm") -> list[optuna.trial.FrozenTrial]:
    """The study's search trials, read back from the SQLite file with plain Optuna."""
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'study.db'}")
    trials = sorted(loaded.get_trials(deepcopy=False), key=lambda t: t.number)
    return [t for t in trials if t.user_attrs.get("kind") == "search"]


# the spec evaluated in each of the 9 iterations of the main scenario (A is proposed again in iteration 6)
SPECS = (
    tiny(8, 8),
    tiny(8, 16),
    tiny(16, 8),
    tiny(16, 16),
    tiny(8, 24),
    tiny(24, 8),
    tiny(8, 8, kernel=1),
    tiny(16, 16, kernel=1),
    tiny(24, 24),
)
A, B, C, D, E, F, G, H, LAST = SPECS
MALFORMED = '{"layers": [{"type": "conv", "channels": 16, "stride": 2},], "head": {}}'
OUT_OF_RANGE = {"layers": [{"type": "conv", "channels": 1000, "kernel": 9}, {"type": "conv", "channels": 16}]}
FENCED = f"Here is a fairer design:\n```json\n{json.dumps(B, indent=2)}\n```\nIt keeps the params low."
PROSE = f"I propose {json.dumps(C)} because two {{small}} convolutions are cheap on a Raspberry Pi."


def script(server) -> list[int]:
    """Queue the replies of 9 iterations; return how many requests each iteration makes."""
    server.reply(json.dumps(A), prompt_tokens=100, completion_tokens=10)  # 1: bare JSON
    server.reply(FENCED, prompt_tokens=200, completion_tokens=20)  # 2: fenced block
    server.reply(PROSE, prompt_tokens=300, completion_tokens=30)  # 3: JSON in prose
    server.reply(MALFORMED, prompt_tokens=400, completion_tokens=40)  # 4: malformed, then valid
    server.reply(json.dumps(D), prompt_tokens=401, completion_tokens=41)
    server.reply(json.dumps(OUT_OF_RANGE))  # 5: outside Choices, then valid
    server.reply(json.dumps(E))
    server.reply(json.dumps(A))  # 6: a duplicate of iteration 1's evaluated spec, then valid
    server.reply(json.dumps(F))
    server.status(429, retry_after=0, message="rate limited")  # 7: 429, then success
    server.reply(json.dumps(G))
    server.status(500, retry_after=0, message=f"upstream failed for key {KEY}")  # 8: 500 echoing the key
    server.reply(json.dumps(H))
    server.delay(30.0, json.dumps(tiny(96, 96)))  # 9: no answer within --llm-timeout, then success
    server.reply(json.dumps(LAST))
    return [1, 1, 1, 2, 2, 2, 2, 2, 2]


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


@pytest.mark.slow
def test_llm_search_stores_every_reply_shape_retry_and_no_secret(
    synth_dir, tmp_path, capsys, caplog, llm_server, secret_env
):
    caplog.set_level(logging.DEBUG)
    per_iteration = script(llm_server)
    code, out, err = run(argv(synth_dir, tmp_path, llm_server, iters=9), capsys)
    assert code == 0, err
    assert "9/9 evaluated candidates" in out and "OptDNN: trial #" in out
    assert "Traceback" not in out + err

    # the server got exactly the scripted requests, each with the key; the study holds IterMax candidates
    assert len(llm_server.requests) == sum(per_iteration)
    assert {r["headers"]["authorization"] for r in llm_server.requests} == {f"Bearer {KEY}"}
    assert {r["body"]["model"] for r in llm_server.requests} == {"fake"}
    trials = search_trials(tmp_path)
    assert len(trials) == 9
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 9
    attrs = [t.user_attrs for t in trials]
    assert [a["iteration"] for a in attrs] == list(range(1, 10))
    assert {a["designer"] for a in attrs} == {"llm"} and {a["status"] for a in attrs} == {"ok"}
    assert [a["spec"] for a in attrs] == [stored(s) for s in SPECS]
    assert [a["spec_key"] for a in attrs] == [spec_key(s) for s in SPECS]
    for t in trials:
        assert t.values[0] == t.user_attrs["metrics"]["val"]["balanced_accuracy"]  # a new study's default
        assert t.values[2] == t.user_attrs["metrics"]["params"]

    # each trial's record: the prompt it sent first, then every attempt's raw reply and errors
    requests = iter(llm_server.bodies)
    bodies = [[next(requests) for _ in range(n)] for n in per_iteration]
    records = [a["record"] for a in attrs]
    for record, sent in zip(records, bodies, strict=True):
        assert record["designer"] == "llm" and record["model"] == "fake"
        assert record["base_url"] == llm_server.base_url
        assert record["prompt"] == sent[0]["messages"]
        assert [m["role"] for m in record["prompt"]] == ["system", "user"]
        assert record["attempts"][-1]["errors"] == []
        assert record["attempts"][-1]["spec"] is not None
    raws = [[a["raw"] for a in r["attempts"]] for r in records]
    assert raws[:6] == [
        [json.dumps(A)],
        [FENCED],
        [PROSE],
        [MALFORMED, json.dumps(D)],
        [json.dumps(OUT_OF_RANGE), json.dumps(E)],
        [json.dumps(A), json.dumps(F)],
    ]
    assert raws[6:] == [[json.dumps(G)], [json.dumps(H)], [json.dumps(LAST)]]  # HTTP retries are not replies

    # the loop feeds the study back: iteration 2's prompt shows iteration 1's candidate and its metrics
    first = format_opt_metrics(attrs[0]["metrics"])
    assert first not in records[0]["prompt"][-1]["content"]
    assert first in records[1]["prompt"][-1]["content"]

    # after a bad reply the next request repeats the conversation and carries the exact error
    errors = {
        3: "trailing comma",
        4: validate_spec(OUT_OF_RANGE, load_choices(None), image_size=32, num_classes=8).messages(),
        5: f"$: already tried (iteration 1), with these metrics: {first}",
    }
    for i, expected in errors.items():
        bad, good = records[i]["attempts"]
        if isinstance(expected, list):
            assert len(expected) >= 2 and bad["errors"] == expected
        else:
            assert expected in bad["errors"][0]
        assert bad["spec"] is None and bad["feedback"]
        retry = bodies[i][1]["messages"]
        assert retry[:2] == bodies[i][0]["messages"]
        assert retry[2] == {"role": "assistant", "content": bad["raw"]}
        assert retry[3] == {"role": "user", "content": bad["feedback"]}
        for line in bad["errors"]:
            assert f"- {line}" in retry[3]["content"]

    # HTTP failures are retried inside one attempt and recorded
    http = [r["attempts"][-1]["http_retries"] for r in records]
    assert http[:6] == [[]] * 6
    assert [(x["error"][:8], x["wait_s"]) for x in http[6]] == [("HTTP 429", 0.0)]
    assert [(x["error"][:8], x["wait_s"]) for x in http[7]] == [("HTTP 500", 0.0)]
    assert "***" in http[7][0]["error"]  # the server echoed the key; the record has it scrubbed
    assert [x["error"] for x in http[8]] == [f"timed out after {LLM_TIMEOUT:g} s"]
    assert 0 < http[8][0]["wait_s"] <= 1.0  # exponential backoff's first step (base 1 s, jitter)

    # token usage per call and per trial, and the whole study's total at the end
    assert records[0]["attempts"][0]["usage"] == {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    assert records[3]["usage"] == {"prompt_tokens": 801, "completion_tokens": 81, "total_tokens": 882, "calls": 2}
    assert records[8]["usage"]["calls"] == 1  # the timed-out call is not a completion
    prompt = 100 + 200 + 300 + 801 + 11 * 7  # 7 replies with the fake server's default usage (11/7)
    completion = 10 + 20 + 30 + 81 + 7 * 7
    assert sum(r["usage"]["total_tokens"] for r in records) == prompt + completion
    assert (
        f"token usage (whole study): prompt_tokens {prompt:,}, completion_tokens {completion:,}, "
        f"total_tokens {prompt + completion:,}, calls 12" in out  # 15 requests, 3 failed
    )

    # artifacts of every candidate and the OptDNN are in the run folder
    run_dir = tmp_path / "out"
    assert sorted(int(p.name) for p in (run_dir / "candidates").iterdir()) == [t.number for t in trials]
    assert (run_dir / "best" / "spec.json").is_file()

    # the key was sent, but is nowhere: not in the SQLite file, the output, the logs or the run folder
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert tmp_path / "study.db" in files and len(files) > 10
    for path in files:
        assert not leaks(path.read_bytes()), path
    for text in (out, err, caplog.text):
        assert not leaks(text)


def test_endpoint_failing_for_good_is_an_invalid_trial_and_the_search_goes_on(
    synth_dir, tmp_path, capsys, llm_server, secret_env
):
    for _ in range(6):  # the first call and LLMDesigner's 5 HTTP retries (its default)
        llm_server.status(500, retry_after=0, message="upstream overloaded")
    llm_server.reply(json.dumps(A))
    code, out, err = run(argv(synth_dir, tmp_path, llm_server, iters=1), capsys)
    assert code == 0, err
    assert "1/1 evaluated candidates; 2 new trial(s)" in out
    reason = "the LLM endpoint failed 6 times in a row, the last time with HTTP 500: upstream overloaded"
    assert f"trial #0 (iteration 1, llm): invalid -- {reason}" in out
    failed, ok = search_trials(tmp_path)
    assert failed.state == TrialState.FAIL and ok.state == TrialState.COMPLETE
    assert failed.user_attrs["iteration"] == ok.user_attrs["iteration"] == 1  # the iteration is designed again
    assert failed.user_attrs["status"] == "invalid" and failed.user_attrs["reason"] == reason
    assert failed.user_attrs["spec"] is None and failed.user_attrs["metrics"] is None
    [attempt] = failed.user_attrs["record"]["attempts"]
    assert attempt["raw"] is None and attempt["errors"] == [reason]
    assert [r["error"] for r in attempt["http_retries"]] == ["HTTP 500: upstream overloaded"] * 5
    assert failed.user_attrs["record"]["usage"]["calls"] == 0
    assert ok.user_attrs["status"] == "ok" and ok.user_attrs["spec"] == stored(A)
    assert not (tmp_path / "out" / "candidates" / str(failed.number)).exists()  # nothing was trained


def test_endpoint_down_for_good_stops_cleanly_with_exit_code_1(tmp_path, synth_dir, capsys, llm_server, secret_env):
    for _ in range(3 * 6):  # 3 designer calls per unfinished iteration, each 1 + 5 HTTP retries
        llm_server.status(503, retry_after=0, message="service unavailable")
    code, out, err = run(argv(synth_dir, tmp_path, llm_server, iters=1), capsys)
    assert code == 1  # what search.py does when no candidate was evaluated (its --help does not say so yet)
    assert "stopped after 3 designer calls in this run without finishing iteration 1" in out
    assert "0/1 evaluated candidates; 3 new trial(s)" in out
    assert "no candidate was evaluated successfully; nothing to export" in err
    assert "Traceback" not in out + err and not leaks(out + err)
    assert len(llm_server.requests) == 18  # nothing more was asked: no endless loop
    trials = search_trials(tmp_path)
    assert [t.user_attrs["iteration"] for t in trials] == [1, 1, 1]
    assert {t.state for t in trials} == {TrialState.FAIL}
    assert {t.user_attrs["status"] for t in trials} == {"invalid"}
    assert {t.user_attrs["reason"] for t in trials} == {
        "the LLM endpoint failed 6 times in a row, the last time with HTTP 503: service unavailable"
    }
    assert not leaks((tmp_path / "study.db").read_bytes())
    assert not (tmp_path / "out" / "best").exists()
