"""PromptGenerator: Algorithm 2's parts, the switchable extras, and user template files."""

from __future__ import annotations

import json

import pytest

from flnas.designers.optmetrics import format_opt_metrics
from flnas.designers.prompt import PLACEHOLDERS, PromptGenerator
from flnas.errors import FlnasError
from flnas.records import Candidate
from flnas.space import example_spec, load_choices
from flnas.space.schema import choices_schema
from llm_server import fake_metrics, make_context

OUTPUT_INSTRUCTION = (
    "Reply with ONE JSON object that matches the Template's JSON Schema, and nothing else: "
    "no explanation, no code, no Markdown."
)


def _spec(channels: int) -> dict:
    return {"layers": [{"type": "conv", "channels": channels, "kernel": 3}], "head": {"hidden": []}}


@pytest.fixture
def history():
    """Four candidates: two ok (the best is #1), one failed in training, one invalid."""
    return [
        Candidate(0, 1, "llm", _spec(16), "ok", fake_metrics(0.60, 0.05, 20_000)),
        Candidate(1, 2, "llm", _spec(24), "ok", fake_metrics(0.66, 0.02, 25_000)),
        Candidate(2, 3, "llm", _spec(32), "failed", None, "loss became NaN at epoch 2"),
        Candidate(3, 4, "llm", None, "invalid", None, "layers[0].kernel: 4 is not one of 1, 3, 5, 7"),
    ]


def test_prompt_has_every_part_of_algorithm_2(history):
    best = history[1]
    text = PromptGenerator().build(make_context(history, best))
    assert text.startswith("You are an expert in the field of neural architecture search.")  # PromptApp
    assert "You need to follow the format in Template to generate a DNN architecture" in text  # PromptTask
    assert json.dumps(choices_schema(load_choices(None))) in text  # the Template narrowed by the Choices ...
    assert json.dumps(example_spec().model_dump(mode="json")) in text  # ... and an example
    # PromptConst: task, best spec, its optMetrics, env and limits, priorities, choices
    assert "ISIC 2019 dataset (32x32 pixels)" in text and "3 classes: MEL, NV, BCC" in text
    assert "sex: male, female; age: young, middle, old" in text
    assert '{"type": "conv", "channels": 24, "kernel": 3}' in text.split("and its evaluation is")[0]
    assert f"and its evaluation is: {format_opt_metrics(best.metrics)}" in text
    assert "Valid Acc: 66.00%" in text and "Fairness Detail: [male: (63.23%, 95)" in text
    assert "deployed into Raspberry Pi 4" in text and "at most 2,000,000 parameters" in text
    assert "improve the fairness without decreasing the accuracy" in text
    assert "improve the lowest accuracy in certain demographic groups" in text
    assert "lower than maintaining high accuracy, which is also lower than improving fairness" in text
    assert "You can insert or remove convolutional layers" in text
    assert json.dumps(load_choices(None).model_dump(mode="json")) in text
    assert text.endswith(OUTPUT_INSTRUCTION)


def test_iteration_one_has_no_best_and_points_to_the_example():
    text = PromptGenerator().build(make_context([], None))
    assert "No architecture has been evaluated yet (this is iteration 1)" in text
    assert "start from the example above" in text
    assert "evaluation is:" not in text
    assert "most recent" not in text and "already tried" not in text  # nothing to list yet
    assert text.endswith(OUTPUT_INSTRUCTION)


def test_extras_show_top_k_recent_failed_and_tried(history):
    text = PromptGenerator(top_k=3, recent=2).build(make_context(history, history[1]))
    compact = {c: json.dumps(_spec(c), separators=(",", ":")) for c in (16, 24, 32)}
    tried = text.split("already tried (each with its id); do not repeat any of them:")[1].split("The next best")[0]
    assert f"#0: {compact[16]}" in tried and f"#2: {compact[32]}" in tried
    assert "#1: the current best architecture above" in tried  # shown in full only as the best
    top = text.split("The next best architectures so far")[1].split("most recent")[0]
    assert f"1. #0: {format_opt_metrics(history[0].metrics)}" in top  # the other ok one, by id
    recent = text.split("The 2 most recent candidates")[1].split("Avoid these")[0]
    assert "iteration 3 (llm): #2, failed" in recent and "iteration 4 (llm): no valid architecture" in recent
    assert "iteration 2" not in recent
    failed = text.split("Avoid these attempts")[1]
    assert "#2, failed: loss became NaN at epoch 2" in failed
    assert "invalid: layers[0].kernel: 4 is not one of 1, 3, 5, 7" in failed
    for channels in (16, 24, 32):  # every earlier architecture appears exactly once
        assert text.count(compact[channels]) + text.count(json.dumps(_spec(channels)["layers"][0])) == 1
    assert text.count("loss became NaN") == 1 and text.count(format_opt_metrics(history[0].metrics)) == 1


def test_ids_keep_a_long_search_compact():
    """Each spec once, reasons once: the prompt grows by about one line per candidate, not three."""
    many = [
        Candidate(i, i + 1, "llm", _spec(8 + i), "ok", fake_metrics(0.5 + i / 100, 0.05, 20_000 + i))
        for i in range(12)
    ]
    generator = PromptGenerator()
    context = make_context(many, many[-1])
    text = generator.build(context)
    for c in many[:-1]:
        assert text.count(json.dumps(c.spec, separators=(",", ":"))) == 1
    recent = text.split("most recent candidates")[1]
    top = {c.number for c in generator._ranked(context)}
    for c in many[-3:-1]:  # the two recent ones before the best: top-k metrics are not repeated
        if c.number in top:
            assert f"#{c.number}, its evaluation is in the list of next best" in recent
        else:
            assert f"#{c.number}, {format_opt_metrics(c.metrics)}" in recent
    assert all(text.count(format_opt_metrics(c.metrics)) <= 1 for c in many[:-1])
    inline = PromptGenerator(show_tried=False)  # no ids: the lists write the JSON of what they name
    shorter = inline.build(context)
    named = {c.number for c in inline._ranked(context)} | {c.number for c in many[-3:-1]}
    for c in many[:-1]:
        assert (json.dumps(c.spec, separators=(",", ":")) in shorter) == (c.number in named)


def test_extras_switch_off_to_the_papers_prompt(history):
    context = make_context(history, history[1])
    paper = PromptGenerator(top_k=0, recent=0, show_failed=False, show_tried=False).build(context)
    for marker in (
        "best architectures so far",
        "most recent",
        "Avoid these attempts",
        "already tried",
        "NaN",
    ):
        assert marker not in paper
    assert "\n\n\n" not in paper
    assert paper.endswith(OUTPUT_INSTRUCTION)
    only_failed = PromptGenerator(top_k=0, recent=0, show_failed=True, show_tried=False).build(context)
    assert "Avoid these attempts" in only_failed and "already tried" not in only_failed
    only_tried = PromptGenerator(top_k=0, recent=0, show_failed=False, show_tried=True).build(context)
    assert "already tried" in only_tried and "Avoid these attempts" not in only_tried


def test_messages_split_system_and_user(history):
    messages = PromptGenerator().messages(make_context(history, history[1]))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "You are an expert in the field of neural architecture search."
    assert messages[1]["content"].startswith("You need to follow the format in Template")


def test_budgets_other_than_params_are_listed():
    choices = load_choices(None).model_copy(
        update={"max_params": None, "max_latency_s": 0.05, "max_flops": 10**7}
    )
    text = PromptGenerator().build(make_context(choices=choices))
    assert "a latency of at most 0.05 seconds at batch size 2" in text
    assert "at most 10,000,000 FLOPs" in text and "parameters;" not in text


def test_custom_template_file(tmp_path, history):
    path = tmp_path / "mine.txt"
    path.write_text(
        "Design for ${env} (cost $$0), iteration ${iteration}.\n${best}\n${schema}\nRange: ${choices}\n"
    )
    generator = PromptGenerator(path)
    messages = generator.messages(make_context(history, history[1]))
    assert len(messages) == 1 and messages[0]["role"] == "user"  # no [system]/[user] markers
    text = messages[0]["content"]
    assert text.startswith("Design for Raspberry Pi 4 (cost $0), iteration 5.")
    assert format_opt_metrics(history[1].metrics) in text
    assert generator.build(make_context(history, history[1])) == text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("${best} ${schema} ${choices} ${accuracy_goal}", "unknown placeholder ${accuracy_goal}"),
        ("${best} ${choices}", "placeholder ${schema} is missing"),
        ("${best} ${schema} ${choices} costs $5", "not a ${placeholder}"),
    ],
)
def test_bad_template_files_name_the_file_and_the_placeholder(tmp_path, content, expected):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(FlnasError) as info:
        PromptGenerator(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_missing_template_file(tmp_path):
    with pytest.raises(FlnasError, match="nothere.txt: cannot be read"):
        PromptGenerator(tmp_path / "nothere.txt")


def test_default_template_uses_every_placeholder():
    from flnas.designers.prompt import DEFAULT_TEMPLATE

    text = DEFAULT_TEMPLATE.read_text()
    assert {name for name in PLACEHOLDERS if "${" + name + "}" in text} == set(PLACEHOLDERS) - {"iteration"}
