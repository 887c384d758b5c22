"""Taking the architecture JSON out of LLM replies: bare, fenced, in prose, malformed, several blocks."""

from __future__ import annotations

import json

import pytest

from flnas.designers.parse import ReplyParseError, extract_spec_json

SPEC = {
    "layers": [{"type": "conv", "channels": 16, "kernel": 3}, {"type": "pool", "mode": "max", "kernel": 2}],
    "head": {"pool": "avg", "hidden": [32], "dropout": 0.1},
}
OTHER = {"layers": [{"type": "sepconv", "channels": 32, "kernel": 5}], "head": {"hidden": []}}


def test_bare_json():
    assert extract_spec_json(json.dumps(SPEC)) == SPEC
    assert extract_spec_json("\n  " + json.dumps(SPEC, indent=2) + "\n") == SPEC


def test_fenced_block_with_prose_around():
    reply = f"Here is my design:\n```json\n{json.dumps(SPEC, indent=2)}\n```\nIt improves fairness."
    assert extract_spec_json(reply) == SPEC
    unlabeled = f"Design:\n```\n{json.dumps(SPEC)}\n```"
    assert extract_spec_json(unlabeled) == SPEC


def test_several_blocks_prefers_the_last_with_layers():
    reply = (
        f"The current best was:\n```json\n{json.dumps(OTHER)}\n```\n"
        f"My new design:\n```json\n{json.dumps(SPEC)}\n```\n"
        'Its expected metrics:\n```json\n{"accuracy": 0.7}\n```\n'
    )
    assert extract_spec_json(reply) == SPEC


def test_json_inside_prose_with_braces_in_strings_and_text():
    spec = dict(SPEC, note="a } and a { inside a string")
    reply = f"Sure {{as requested}}: {json.dumps(spec)} -- hope this {{helps}}."
    assert extract_spec_json(reply) == spec


def test_prose_with_two_objects_prefers_the_one_with_layers():
    reply = f'Metrics {{"acc": 0.5}} were seen; now try {json.dumps(SPEC)} and {{"note": 1}}.'
    assert extract_spec_json(reply) == SPEC


def test_wrapper_object_is_unwrapped():
    assert extract_spec_json(json.dumps({"architecture": SPEC})) == SPEC


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"layers": [{"type": "conv", "channels": 8},], "head": {}}', "trailing comma"),
        ("```json\n{'layers': [], 'head': {}}\n```", "double quotes"),
        ('Here: {"layers": [{"type": "conv", "channels": 8}', "never closed"),
        ("I think a ResNet would be good.", "no JSON object"),
        ("   ", "empty"),
        (None, "empty"),
        ("[1, 2, 3]", "JSON array"),
        ('"layers"', "JSON string"),
        ('{"layers": [], "head": {"dropout": NaN}}', "NaN"),
        ("__import__('os').system('echo pwned')", "no JSON object"),
    ],
)
def test_unparseable_replies_give_one_clear_sentence(reply, expected):
    with pytest.raises(ReplyParseError) as info:
        extract_spec_json(reply)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_malformed_first_block_then_valid_one():
    reply = f'```json\n{{"layers": [,]}}\n```\nCorrected:\n```json\n{json.dumps(SPEC)}\n```'
    assert extract_spec_json(reply) == SPEC
