"""LLMDesigner: asks any OpenAI-compatible chat-completions endpoint for the next architecture.

The paper's LLM-based design generator: send the PromptGenerator's prompt, take the architecture JSON out of
the reply (``parse.extract_spec_json``), validate it against the Choices (``flnas.space.validate_spec``), and
ask again with the exact validation errors until it is valid or ``max_retries`` is spent. A spec that equals
an already evaluated one is invalid too ("already tried, with these metrics: ..."). Nothing from a reply is
ever executed. HTTP failures (timeouts, connection errors, 429, 5xx) are retried with exponential backoff
and jitter, done here rather than in the openai package so that every retry is recorded; ``timeout`` bounds
each request as a whole (``llm_http.chat_once``). The schema sent for constrained decoding and shown in the
prompt is the Template narrowed by the study's Choices (``flnas.space.schema.choices_schema``); a server
that refuses a ``response_format`` is asked in the next weaker one (``llm_http.FORMAT_MODES``) and the mode
that works is recorded with every proposal, so that a resumed search starts from it (``resume``). Past the
limits the proposal carries an ``error`` and the search goes on; ``propose`` never raises.

The API key comes only from ``OPENAI_API_KEY`` and is never stored, logged or shown.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flnas.designers import llm_http
from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.llm_http import FORMAT_MODES, USER_MODES
from flnas.designers.parse import ReplyParseError, extract_spec_json
from flnas.designers.prompt import PromptGenerator, opt_metrics
from flnas.designers.registry import register_designer
from flnas.errors import FlnasError, LLMError
from flnas.records import Candidate

__all__ = ["DEFAULT_MODEL", "FORMAT_MODES", "LLMDesigner", "USER_MODES", "is_configured"]

DEFAULT_MODEL = "gpt-4o-mini"
_RETRY_STATUS = {408, 409, 429}
MAX_STORED_REPLY = 20_000  # characters of a reply kept in the study (the head; its full size is recorded)
MAX_RESENT_REPLY = 4_000  # characters of an invalid reply sent back to the LLM with the problems
MAX_FEEDBACK_LINES = 20  # problems listed in one re-ask (the rest are counted)
MAX_LINE = 1000  # characters of one problem line in a re-ask (an optMetrics line is ~500)


def is_configured(base_url: str | None = None) -> bool:
    """True when an endpoint is set: a base URL (flag or OPENAI_BASE_URL) or OPENAI_API_KEY."""
    return bool(base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"))


def _public_url(url: str | None) -> str | None:
    """The base URL without user:password or query, fit to be stored."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _CallFailed(Exception):
    """One chat call failed for good; ``reason`` is one sentence, ``info`` the retries made."""

    def __init__(self, reason: str, info: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.info = info


@register_designer("llm")
class LLMDesigner(Designer):
    """The FL-NAS designer: an LLM proposes, flnas validates and asks again with the errors.

    ``structured_output``: "auto" (= "json_schema"), "json_schema", "json_object" (json_object with the
    schema first), "off", or a mode of ``FORMAT_MODES``; a rejected mode steps down to the next weaker one
    until plain text. ``timeout`` bounds each request as a whole, in seconds. ``backoff_base`` doubles
    on each HTTP retry up to ``backoff_max`` (times a jitter in [0.5, 1]); a Retry-After header is honoured
    up to ``retry_after_cap`` seconds.
    """

    name = "llm"

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        temperature: float = 0.7,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_http_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        retry_after_cap: float = 60.0,
        structured_output: str = "auto",
        prompt_generator: PromptGenerator | None = None,
        prompt_template: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import openai  # noqa: F401 - fail at construction, not mid-search, when openai is missing

        start = USER_MODES.get(structured_output) or (
            structured_output if structured_output in FORMAT_MODES else None
        )
        if start is None:
            raise LLMError(f"--llm-structured must be one of {', '.join(USER_MODES)}; got {structured_output!r}")
        if not timeout > 0:
            raise LLMError(f"--llm-timeout must be a positive number of seconds; got {timeout:g}")
        self.model = model or os.environ.get("FLNAS_LLM_MODEL") or DEFAULT_MODEL
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get("OPENAI_API_KEY") or ("not-needed" if base_url else None)
        if key is None:
            raise LLMError(
                "no LLM endpoint is configured: set OPENAI_API_KEY for OpenAI, or pass --llm-base-url "
                "(or set OPENAI_BASE_URL) for a local OpenAI-compatible server"
            )
        self.base_url = _public_url(base_url)
        self.temperature = temperature
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_http_retries = max_http_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_cap = retry_after_cap
        self.structured_output = structured_output
        self.format_mode = start
        self.prompt_generator = prompt_generator or PromptGenerator(prompt_template)
        self._secret = lambda: key  # kept out of vars()/repr as a plain string; used only to scrub text
        # the client options hold the key and the full URL: behind a function, out of vars()/repr
        self._client_options = lambda: {"api_key": key, "base_url": base_url}
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "calls": 0}

    def __repr__(self) -> str:
        return (
            f"LLMDesigner(model={self.model!r}, base_url={self.base_url!r}, format_mode={self.format_mode!r})"
        )

    def usage(self) -> dict[str, int]:
        """Cumulative tokens (prompt, completion, total) and number of successful calls."""
        return dict(self._usage)

    def resume_study(self, study: Any, log: Callable[[str], None] = print) -> None:
        """``resume`` from the records of an Optuna study's search trials (oldest first)."""
        trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        self.resume(
            [t.user_attrs.get("record") for t in trials if t.user_attrs.get("kind") == "search"], log=log
        )

    def resume(self, records: Iterable[dict[str, Any]], log: Callable[[str], None] = print) -> None:
        """Start from the structured-output mode that worked last in this study (``structured_output="auto"``).

        ``records`` are the stored records of earlier proposals, oldest first; the newest one with a
        successful call decides. An explicitly chosen mode is kept.
        """
        if self.structured_output != "auto":
            return
        for record in reversed(list(records)):
            if not isinstance(record, dict) or record.get("designer") != self.name:
                continue
            mode = record.get("structured_output")
            if mode in FORMAT_MODES and (record.get("usage") or {}).get("calls"):
                if mode != self.format_mode:
                    self.format_mode = mode
                    log(f"llm: structured output {mode} (the mode that worked earlier in this study)")
                return

    # -- propose ---------------------------------------------------------------------------------------

    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        """k independent conversations; each later one is told the specs already proposed this iteration."""
        try:
            base = self.prompt_generator.messages(context)
        except FlnasError as exc:
            return [Proposal(None, {"designer": self.name}, error=self._scrub(str(exc))) for _ in range(k)]
        tried: dict[str, str] = {}  # spec_key -> why it may not be proposed again
        for c in context.history:
            if c.spec is not None:
                tried.setdefault(self._key(c.spec), self._already(c))
        for c in context.pending:  # being trained by another worker of the study
            if c.spec is not None:
                tried.setdefault(self._key(c.spec), "being trained right now; propose a different one")
        proposals: list[Proposal] = []
        for _ in range(k):
            messages = [dict(m) for m in base]
            mine = [p.spec for p in proposals if p.spec is not None]
            if mine:
                listed = "\n".join(f"- {json.dumps(s, separators=(',', ':'))}" for s in mine)
                messages[-1]["content"] += (
                    "\n\nYou already proposed these architectures in this iteration; "
                    f"propose a different one:\n{listed}"
                )
            try:
                proposal = self._converse(messages, context, tried)
            except Exception as exc:  # noqa: BLE001 - "propose never raises": a bug here fails one proposal only
                why = self._scrub(f"the LLM designer failed ({exc.__class__.__name__}: {str(exc)[:300]})")
                proposal = Proposal(None, {"designer": self.name, "model": self.model}, error=why)
            if proposal.spec is not None:
                tried[self._key(proposal.spec)] = (
                    "already proposed in this iteration; propose a different one"
                )
            proposals.append(proposal)
        return proposals

    @staticmethod
    def _already(c: Candidate) -> str:
        if c.status == "ok":
            return f"already tried (iteration {c.iteration}), with these metrics: {opt_metrics(c)}"
        return (
            f"already tried (iteration {c.iteration}) and it {c.status}: {c.reason or 'no reason recorded'}"
        )

    @staticmethod
    def _key(spec: Any) -> str:
        """spec_key of a spec dict; a dict that is no longer a valid ArchSpec falls back to sorted JSON."""
        from flnas.space import ArchSpec, spec_key

        if isinstance(spec, dict):
            try:
                spec = ArchSpec.model_validate(spec)
            except ValueError:
                return json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return spec_key(spec)

    def _converse(
        self, messages: list[dict[str, str]], context: DesignContext, tried: dict[str, str]
    ) -> Proposal:
        record: dict[str, Any] = {
            "designer": self.name,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "prompt": [dict(m) for m in messages],
            "attempts": [],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "calls": 0},
        }
        record["prompt_size"] = {"chars": sum(len(m["content"]) for m in messages), "tokens": None}
        schema = self.prompt_generator.schema(context)
        errors: list[str] = []
        for attempt in range(1, self.max_retries + 2):
            try:
                content, info = self._chat(messages, schema, context.log)
            except _CallFailed as exc:
                record["attempts"].append(
                    {"attempt": attempt, "raw": None, "spec": None, "errors": [exc.reason], **exc.info}
                )
                return self._done(Proposal(None, record, error=exc.reason))
            for name, value in info["usage"].items():
                record["usage"][name] += value
            record["usage"]["calls"] += 1
            if record["prompt_size"]["tokens"] is None:
                record["prompt_size"]["tokens"] = info["usage"]["prompt_tokens"] or None
            spec, errors = self._check(content, context, tried)
            entry = {"attempt": attempt, "raw": _head(content, MAX_STORED_REPLY), "spec": spec, "errors": errors}
            if content is not None and len(content) > MAX_STORED_REPLY:
                entry["raw_chars"] = len(content)
            entry.update(info)
            record["attempts"].append(entry)
            if not errors:
                return self._done(Proposal(spec, record))
            context.log(f"llm: reply {attempt} is not a valid architecture: {errors[0][:MAX_LINE]}")
            feedback = _feedback(errors)
            entry["feedback"] = feedback
            messages = [
                *messages,
                {"role": "assistant", "content": _head(content, MAX_RESENT_REPLY) or ""},
                {"role": "user", "content": feedback},
            ]
        n = self.max_retries + 1
        last = errors[0][:MAX_LINE]
        reason = f"the LLM gave no valid architecture in {n} replies; the last problem was: {last}"
        return self._done(Proposal(None, record, error=reason))

    def _check(
        self, content: str | None, context: DesignContext, tried: dict[str, str]
    ) -> tuple[Any, list[str]]:
        """(spec dict, []) when the reply holds a valid, new architecture; else (None, error lines)."""
        from flnas.space import validate_spec

        try:
            data = extract_spec_json(content)
        except ReplyParseError as exc:
            return None, [f"(reply): {exc}"]
        try:
            result = validate_spec(
                data,
                context.choices,
                image_size=context.task.image_size,
                num_classes=len(context.task.classes),
            )
        except Exception as exc:  # a validator bug must not stop the search; the LLM is told something broke
            return None, [f"$: could not be validated ({exc.__class__.__name__}: {exc})"]
        if result.errors or result.spec is None:
            return None, [f"{issue.path or '$'}: {issue.message}" for issue in result.errors] or [
                "$: not a valid architecture"
            ]
        why = tried.get(self._key(result.spec))
        if why is not None:
            return None, [f"$: {why}"]
        return result.spec.model_dump(mode="json"), []

    # -- HTTP ------------------------------------------------------------------------------------------

    def _chat(
        self, messages: list[dict[str, str]], schema: dict[str, Any], log: Callable[[str], None]
    ) -> tuple[str | None, dict[str, Any]]:
        """One completion, with HTTP retries and format step-downs; returns (content, info) or raises _CallFailed."""
        import openai

        retries: list[dict[str, Any]] = []
        start = time.perf_counter()
        failures = 0
        while True:
            fmt = llm_http.response_format(self.format_mode, schema)
            info: dict[str, Any] = {"response_format": self.format_mode, "http_retries": retries}
            kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
            if fmt is not None:
                kwargs["response_format"] = fmt
            wait_hint: float | None = None
            try:
                response, body = llm_http.chat_once(self._client_options(), kwargs, self.timeout)
                content = llm_http.completion_content(response, body)
            except (TimeoutError, openai.APITimeoutError):
                problem = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as exc:
                problem = (
                    f"connection failed ({exc.__cause__.__class__.__name__ if exc.__cause__ else 'no reply'})"
                )
            except openai.APIStatusError as exc:
                code = exc.status_code
                message = self._scrub(llm_http.error_text(exc))
                if fmt is not None and llm_http.rejects_format(code, llm_http.error_body(exc)):
                    old = self.format_mode
                    self.format_mode = FORMAT_MODES[FORMAT_MODES.index(old) + 1]
                    rejected = f"HTTP {code} rejected response_format {old}: {message}"
                    retries.append({"error": rejected, "fallback": self.format_mode})
                    log(
                        f"llm: the server rejected response_format {old} (HTTP {code}); "
                        f"using {self.format_mode} from now on"
                    )
                    continue
                if code not in _RETRY_STATUS and code < 500:
                    info["latency_s"] = time.perf_counter() - start
                    raise _CallFailed(f"the LLM endpoint answered HTTP {code}: {message}", info) from None
                problem = f"HTTP {code}: {message}"
                wait_hint = llm_http.retry_after(exc.response.headers)
            except (openai.OpenAIError, ValueError) as exc:  # e.g. a 200 whose body is not a chat completion
                info["latency_s"] = time.perf_counter() - start
                why = self._scrub(str(exc))[:300]
                raise _CallFailed(f"the LLM endpoint sent a reply that is not a chat completion: {why}", info) from None
            else:
                info["latency_s"] = time.perf_counter() - start
                info["usage"] = self._count(response)
                return content, info
            if failures >= self.max_http_retries:
                info["latency_s"] = time.perf_counter() - start
                reason = f"the LLM endpoint failed {failures + 1} times in a row, the last time with {problem}"
                raise _CallFailed(reason, info)
            wait = self._backoff(failures, wait_hint)
            retries.append({"error": problem, "wait_s": round(wait, 4)})
            log(f"llm: {problem}; retrying in {wait:.2f} s")
            self._sleep(wait)
            failures += 1

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_cap))
        delay = min(self.backoff_max, self.backoff_base * 2**failures)
        return delay * (0.5 + 0.5 * self._rng.random())

    def _count(self, response: Any) -> dict[str, int]:
        counts = llm_http.usage_counts(response)
        for name, value in counts.items():
            self._usage[name] += value
        self._usage["calls"] += 1
        return counts

    # -- secrets ---------------------------------------------------------------------------------------

    def _scrub(self, value: Any) -> Any:
        """Replace the API key in every string of ``value`` (servers sometimes echo it in errors)."""
        key = self._secret()
        if isinstance(value, str):
            return value.replace(key, "***") if len(key) >= 4 else value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value

    def _done(self, proposal: Proposal) -> Proposal:
        proposal.record["structured_output"] = self.format_mode  # what a resumed search starts from
        proposal.record = self._scrub(proposal.record)
        proposal.error = self._scrub(proposal.error) if proposal.error else None
        return proposal


def _head(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, saying how long it was (huge replies are not kept or resent)."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... cut: the reply was {len(text):,} characters long]"


def _feedback(errors: list[str]) -> str:
    """The re-ask: every problem as a line (at most MAX_FEEDBACK_LINES, each at most MAX_LINE characters)."""
    lines = [f"- {e[:MAX_LINE]}" + ("..." if len(e) > MAX_LINE else "") for e in errors[:MAX_FEEDBACK_LINES]]
    if len(errors) > MAX_FEEDBACK_LINES:
        lines.append(f"- ... and {len(errors) - MAX_FEEDBACK_LINES} more problems")
    return (
        "Your reply is not a valid architecture:\n"
        + "\n".join(lines)
        + "\nFix every problem above and reply with ONE JSON object that matches the Template's JSON "
        "Schema, and nothing else."
    )
