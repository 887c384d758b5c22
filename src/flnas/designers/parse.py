"""Take the architecture JSON out of an LLM's reply.

LLMs answer in many shapes: bare JSON, a fenced ```json block (sometimes several: the old design, then the
new one), or JSON inside prose. This module finds the object with ``json.loads`` only; nothing from a reply
is ever executed or evaluated. When nothing parses, the error says why in one sentence that can be sent
back to the LLM (for example a trailing comma, or an object cut off before its closing brace).
"""

from __future__ import annotations

import re
from typing import Any

from flnas.space.files import loads_bounded

__all__ = ["MAX_REPLY_CHARS", "ReplyParseError", "extract_spec_json"]

MAX_REPLY_CHARS = 50_000  # an architecture is a few hundred characters; prose around it a few thousand
MAX_SPANS = 50  # brace spans parsed by the prose scan (each is scanned to its end: bounded work)

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*[}\]]")


class ReplyParseError(ValueError):
    """No JSON object could be taken from a reply; the message is one sentence an LLM can act on."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    """Strict JSON: NaN/Infinity are rejected (Python's json would accept them); deep nesting is a ValueError."""
    return loads_bounded(text, parse_constant=_reject_constant)


def _describe(text: str, exc: Exception) -> str:
    """A short explanation of why ``text`` is not JSON."""
    if _TRAILING_COMMA.search(text):
        return f"{exc} (a trailing comma before '}}' or ']' is not allowed in JSON)"
    if "'" in text and '"' not in text:
        return f"{exc} (JSON strings and keys need double quotes, not single quotes)"
    return str(exc)


def _unwrap(obj: dict[str, Any]) -> dict[str, Any]:
    """Accept ``{"architecture": {"layers": ...}}``-style wrappers around the spec."""
    if "layers" not in obj and len(obj) == 1:
        (inner,) = obj.values()
        if isinstance(inner, dict) and "layers" in inner:
            return inner
    return obj


def _pick(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Prefer the last object that has ``layers`` (the final design); otherwise the last object."""
    objects = [_unwrap(o) for o in objects]
    with_layers = [o for o in objects if "layers" in o]
    return (with_layers or objects)[-1]


def _balanced_objects(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Scan for outermost ``{...}`` spans (braces inside JSON strings ignored) and parse each.

    Returns the parsed objects and the reasons the spans that did not parse failed.
    """
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    failed_until = -1  # end of the last span that did not parse: objects inside it are fragments
    i, n = 0, len(text)
    spans = 0
    while i < n and spans < MAX_SPANS:
        spans += 1
        start = text.find("{", i)
        if start < 0:
            break
        end = _matching_brace(text, start)
        if end is None:
            line = text.count("\n", 0, start) + 1
            problems.append(
                f"the JSON object starting on line {line} is never closed (the reply may be cut off)"
            )
            failed_until = n
            i = start + 1
            continue
        span = text[start : end + 1]
        try:
            obj = _loads(span)
        except ValueError as exc:
            problems.append(_describe(span, exc))
            failed_until = max(failed_until, end)
            i = start + 1  # a whole spec may sit inside unbalanced prose braces
            continue
        # inside a broken object only a complete spec counts, not a fragment such as one layer
        if isinstance(obj, dict) and (start > failed_until or "layers" in _unwrap(obj)):
            objects.append(obj)
        i = end + 1
    return objects, problems


def _matching_brace(text: str, start: int) -> int | None:
    """Index of the brace closing the one at ``start``, skipping braces inside double-quoted strings."""
    depth = 0
    in_string = False
    escaped = False
    for j in range(start, len(text)):
        ch = text[j]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


def extract_spec_json(text: str | None) -> dict[str, Any]:
    """Return the architecture object in ``text`` (an LLM reply) as a dict.

    Order: the whole reply as JSON; else fenced code blocks (the last one with a top-level ``layers`` key,
    else the last object); else a balanced-brace scan of the prose, with the same preference.
    Raises ReplyParseError with one sentence when no JSON object can be found.
    """
    if text is None or not text.strip():
        raise ReplyParseError("the reply is empty; it must contain one JSON object")
    if len(text) > MAX_REPLY_CHARS:
        raise ReplyParseError(
            f"the reply is {len(text):,} characters long, more than the {MAX_REPLY_CHARS:,} read; "
            "reply with one JSON object of a few hundred characters and nothing else"
        )
    stripped = text.strip()
    problems: list[str] = []

    try:
        whole = _loads(stripped)
    except ValueError as exc:
        if stripped.startswith("{"):
            problems.append(_describe(stripped, exc))
    else:
        if isinstance(whole, dict):
            return _unwrap(whole)
        kind = {list: "array", str: "string", bool: "boolean"}.get(type(whole), "number")
        kind = "null" if whole is None else kind
        raise ReplyParseError(f"the reply is a JSON {kind}, not one JSON object with 'layers' and 'head'")

    fenced: list[dict[str, Any]] = []
    for _lang, body in _FENCE.findall(text):
        body = body.strip()
        if not body:
            continue
        try:
            obj = _loads(body)
        except ValueError as exc:
            problems.append(_describe(body, exc))
            objs, _ = _balanced_objects(body)
            fenced.extend(objs)
            continue
        if isinstance(obj, dict):
            fenced.append(obj)
    if fenced:
        return _pick(fenced)

    objects, scan_problems = _balanced_objects(text)
    if objects:
        return _pick(objects)
    problems.extend(scan_problems)
    if problems:
        raise ReplyParseError(f"the JSON in the reply does not parse: {problems[0]}")
    raise ReplyParseError("the reply contains no JSON object; reply with one JSON object and nothing else")
