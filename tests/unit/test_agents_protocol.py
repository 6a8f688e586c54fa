"""Tool-call protocol: rendering tools into prompts, and parsing replies (malformed and adversarial)."""

from __future__ import annotations

import json
import random
import time

import pytest
from agents_fixtures import CALCULATOR

from workbench.agents import (
    ParsedOutput,
    ToolProtocol,
    ToolSpec,
    example_messages,
    format_tool_call,
    parse_tool_output,
    render_tools_prompt,
    to_prompt_messages,
)

SEARCH = ToolSpec(
    name="search",
    description="Search the web.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}, "required": ["query"]},
)
TOOLS = [CALCULATOR, SEARCH]


def parse(text: object, tools=TOOLS) -> ParsedOutput:
    return parse_tool_output(text, tools)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- well-formed replies


@pytest.mark.parametrize(
    "text",
    [
        '{"tool": "calculator", "arguments": {"expression": "2+3"}}',
        '  {"tool": "calculator", "arguments": {"expression": "2+3"}}\n',
        '```json\n{"tool": "calculator", "arguments": {"expression": "2+3"}}\n```',
        '```\n{"tool": "calculator", "arguments": {"expression": "2+3"}}\n```',
        'I will use the calculator.\n```json\n{"tool": "calculator", "arguments": {"expression": "2+3"}}\n```\nDone.',
        'Let me compute: {"tool": "calculator", "arguments": {"expression": "2+3"}}',
        '{"name": "calculator", "arguments": {"expression": "2+3"}}',
        '{"name": "calculator", "arguments": "{\\"expression\\": \\"2+3\\"}"}',
        '{"name": "calculator", "parameters": {"expression": "2+3"}}',
        '{"tool": "calculator", "args": {"expression": "2+3"}}',
        '{"function": {"name": "calculator", "arguments": "{\\"expression\\": \\"2+3\\"}"}}',
        '{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "2+3"}}}',
        '{"tool_calls": [{"function": {"name": "calculator", "arguments": {"expression": "2+3"}}}]}',
        '{"tool_call": {"name": "calculator", "arguments": {"expression": "2+3"}}}',
        '{"tool": {"name": "calculator", "arguments": {"expression": "2+3"}}}',
        '{"Tool": "calculator", "Arguments": {"expression": "2+3"}}',
        # near-JSON a small model writes
        "{'tool': 'calculator', 'arguments': {'expression': '2+3'}}",
        '{"tool": "calculator", "arguments": {"expression": "2+3",},}',
        # cut off by max_new_tokens after the value was complete
        '{"tool": "calculator", "arguments": {"expression": "2+3"}',
        '{"tool": "calculator", "arguments": {"expression": "2+3"',
    ],
)
def test_tool_call_shapes(text: str) -> None:
    parsed = parse(text)
    assert parsed.kind == "tool_call", parsed.error
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("calculator", {"expression": "2+3"})]
    assert parsed.tool_calls[0].id == "call_0"
    assert parsed.text == text


def test_several_calls_in_a_list_or_in_a_row() -> None:
    listed = parse('[{"tool": "calculator", "arguments": {"expression": "1"}}, {"tool": "search", "arguments": {"query": "x"}}]')
    assert [c.name for c in listed.tool_calls] == ["calculator", "search"]
    assert [c.id for c in listed.tool_calls] == ["call_0", "call_1"]
    in_a_row = parse(
        '{"tool": "calculator", "arguments": {"expression": "1"}}\n{"tool": "search", "arguments": {"query": "x"}}'
    )
    assert [c.name for c in in_a_row.tool_calls] == ["calculator", "search"]


def test_imagined_continuation_after_a_call_is_ignored() -> None:
    text = '{"tool": "calculator", "arguments": {"expression": "2+3"}}\nTool: 5\n{"answer": "5"}'
    parsed = parse(text)
    assert parsed.kind == "tool_call"
    assert len(parsed.tool_calls) == 1


def test_call_ids_use_the_prefix() -> None:
    parsed = parse_tool_output('{"tool": "calculator", "arguments": {"expression": "1"}}', TOOLS, call_id_prefix="s3")
    assert parsed.tool_calls[0].id == "s3_0"


def test_arguments_default_to_empty_object_without_required_keys() -> None:
    parsed = parse_tool_output('{"tool": "ping"}', ["ping"])
    assert parsed.kind == "tool_call"
    assert parsed.tool_calls[0].arguments == {}


@pytest.mark.parametrize(
    ("text", "answer", "fmt"),
    [
        ('{"answer": "5"}', "5", "json"),
        ('{"answer": 5}', "5", "json"),
        ('{"answer": [1, 2]}', "[1, 2]", "json"),
        ('{"final_answer": "Paris"}', "Paris", "json"),
        ('```json\n{"answer": "Paris"}\n```', "Paris", "json"),
        ('The capital is Paris. {"answer": "Paris"}', "Paris", "json"),
        ("The capital of France is Paris.", "The capital of France is Paris.", "text"),
        ("  5  \n", "5", "text"),
        ("Use {curly braces} for sets.", "Use {curly braces} for sets.", "text"),
        ('Here is code:\n```python\nprint({"a": 1})\n```', 'Here is code:\n```python\nprint({"a": 1})\n```', "text"),
    ],
)
def test_answers(text: str, answer: str, fmt: str) -> None:
    parsed = parse(text)
    assert parsed.kind == "answer", parsed.error
    assert parsed.answer == answer
    assert parsed.answer_format == fmt


# --------------------------------------------------------------------------- malformed replies


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ('{"tool": "calculator", "arguments": {"expression": "2+3}', "malformed"),
        ('{"tool": "calculator", "arguments": }', "malformed"),
        ('{"tool": calculator, "arguments": {"expression": "1"}}', "malformed"),
        ("```json\nnot json at all\n```", "no JSON"),
        ('{"tool": "calc", "arguments": {}}', "unknown tool 'calc'"),
        ('{"tool": "calculator", "arguments": {}}', "missing required argument(s): expression"),
        ('{"tool": "calculator", "arguments": "not json"}', "not a JSON object"),
        ('{"tool": "calculator", "arguments": [1, 2]}', "must be a JSON object"),
        ('{"tool": "", "arguments": {}}', "non-empty string"),
        ('{"tool": 7, "arguments": {}}', "non-empty string"),
        ('{"tool": "calculator", "arguments": {"expression": "1"}, "answer": "1"}', "not both"),
        ('{"answer": null}', "empty"),
        ('{"answer": "  "}', "empty"),
        ('{"result": 5}', 'neither a "tool" nor an "answer"'),
        ("[1, 2, 3]", 'neither a "tool" nor an "answer"'),
        ("{" * 50, "malformed"),
        ('[{"tool": "calculator", "arguments": {"expression": "1"}}, {"tool": "nope"}]', "unknown tool 'nope'"),
    ],
)
def test_malformed_replies_become_parse_errors(text: str, fragment: str) -> None:
    parsed = parse(text)
    assert parsed.kind == "parse_error"
    assert parsed.tool_calls == []
    assert fragment in (parsed.error or "")


def test_broken_object_before_a_good_one_is_reported() -> None:
    text = '{"tool": "calculator", "arguments": {"expression": "1}\n{"tool": "calculator", "arguments": {"expression": "1"}}'
    assert parse(text).kind == "parse_error"


def test_unknown_tools_are_allowed_without_a_tool_list() -> None:
    parsed = parse_tool_output('{"tool": "anything", "arguments": {"x": 1}}', None)
    assert parsed.kind == "tool_call"
    assert parsed.tool_calls[0].name == "anything"


def test_name_key_without_arguments_is_not_a_call() -> None:
    # {"name": ...} alone is ordinary data (a person, a file), not a tool call.
    assert parse('{"name": "Alice", "age": 3}').kind == "parse_error"
    assert parse('Her record is {"name": "Alice", "age": 3}.').kind == "answer"


# --------------------------------------------------------------------------- adversarial replies


@pytest.mark.parametrize(
    "text",
    [
        "{" * 100_000,
        "[" * 100_000,
        '{"a":' * 20_000,
        '{"tool": "calculator", "arguments": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"answer": "' + "x" * 200_000 + '"}',
        '{"tool": "calculator", "arguments": {"expression": ' + "9" * 10_000 + "}}",
        "\x00\x01\x02{\x7f}\ud800",
        '{"tool": "calculator", "arguments": {"expression": "1"}}' * 5000,
        "```json\n" * 1000,
        "'" * 5000 + "{" + "'" * 5000,
        '{"tool": "calculator", "arguments": {"expression": NaN}}',
        '{"tool": "calculator", "arguments": {"__class__": {"__init__": 1}, "expression": "1"}}',
    ],
)
def test_adversarial_replies_never_raise_and_stay_fast(text: str) -> None:
    started = time.perf_counter()
    parsed = parse(text)
    assert parsed.kind in ("tool_call", "answer", "parse_error")
    assert time.perf_counter() - started < 2.0  # generous: a hang, not a benchmark


@pytest.mark.parametrize("value", [None, 12, b'{"answer": "x"}', ["a"]])
def test_non_text_input_is_a_parse_error(value: object) -> None:
    assert parse(value).kind == "parse_error"


def test_random_fragments_never_raise() -> None:
    rng = random.Random(1234)
    pieces = ['{"tool": ', '"calculator"', ', "arguments": ', "{", "}", "[", "]", '"', "'", ":", ",", "```json\n",
              "```", "\\", "answer", "null", "true", "1e999", "\n", " ", "é", "\u2028", "name"]  # fmt: skip
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        parsed = parse(text)
        assert parsed.kind in ("tool_call", "answer", "parse_error")
        if parsed.kind == "tool_call":
            for call in parsed.tool_calls:
                assert call.name in ("calculator", "search")
                assert isinstance(call.arguments, dict)


# --------------------------------------------------------------------------- rendering


def test_tools_prompt_format_is_fixed() -> None:
    text = render_tools_prompt([CALCULATOR])
    assert text == (
        "# Tools\n\nYou can call these tools:\n\n"
        "calculator: Evaluate an arithmetic expression.\n"
        'Arguments: {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}\n\n'
        'To call a tool, reply with only one JSON object: {"tool": "<tool name>", "arguments": {<arguments>}}\n'
        "The tool's result comes back in the next message.\n"
        'When you know the final answer, reply with only: {"answer": "<final answer>"}'
    )
    assert render_tools_prompt([]) == ""


def test_prompt_messages_merge_tools_into_system_and_add_examples() -> None:
    messages = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "What is 9*9?"}]
    out = to_prompt_messages(messages, [CALCULATOR])
    assert out[0]["role"] == "system"
    assert out[0]["content"].startswith("Be exact.\n\n# Tools\n")
    shots = out[1:-1]
    assert len(shots) == 12  # three examples x (question, call, result, answer)
    assert shots[1] == {"role": "assistant", "content": format_tool_call("calculator", {"expression": "2+3"})}
    assert shots[2] == {"role": "tool", "content": "5"}
    assert shots[3] == {"role": "assistant", "content": '{"answer": "5"}'}
    assert out[-1] == {"role": "user", "content": "What is 9*9?"}
    # Every example call parses back to itself: the protocol is self-consistent.
    for shot in shots[1::4]:
        assert parse(shot["content"]).kind == "tool_call"


def test_default_system_prompt_and_no_tools_passthrough() -> None:
    out = to_prompt_messages([{"role": "user", "content": "hi"}], [SEARCH])
    assert out[0]["content"].startswith("You are a helpful assistant.\n\n# Tools")
    # SEARCH has no examples: one placeholder example shows the shape.
    assert json.loads(out[2]["content"]) == {"tool": "search", "arguments": {"query": "value"}}
    plain = [{"role": "user", "content": "hi"}]
    assert to_prompt_messages(plain) == plain


def test_protocol_options() -> None:
    protocol = ToolProtocol(tool_result_role="user", max_examples=1, examples_as="messages")
    shots = example_messages([CALCULATOR, SEARCH], protocol)
    assert [m["role"] for m in shots] == ["user", "assistant", "user", "assistant"]
    in_system = to_prompt_messages([{"role": "user", "content": "q"}], [CALCULATOR], ToolProtocol(examples_as="system"))
    assert len(in_system) == 2
    assert "Example:\nUser: What is 2+3?" in in_system[0]["content"]
    none = to_prompt_messages([{"role": "user", "content": "q"}], [CALCULATOR], ToolProtocol(max_examples=0))
    assert len(none) == 2


def test_transcript_messages_render_as_text() -> None:
    call = {"id": "call_0", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+3"}'}}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "name": "calculator", "content": "5"},
        {"role": "assistant", "content": [{"type": "text", "text": '{"answer": '}, {"type": "text", "text": '"5"}'}]},
    ]
    out = to_prompt_messages(messages, [CALCULATOR], ToolProtocol(max_examples=0, tool_result_role="user"))
    assert out[2] == {"role": "assistant", "content": '{"tool": "calculator", "arguments": {"expression": "2+3"}}'}
    assert out[3] == {"role": "user", "content": "5"}
    assert out[4] == {"role": "assistant", "content": '{"answer": "5"}'}
    assert all(set(m) == {"role", "content"} for m in out)


def test_toolspec_from_openai_and_mcp_shapes() -> None:
    openai_tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    assert ToolSpec.from_openai(openai_tool).to_openai() == openai_tool
    mcp_tool = {"name": "kv_get", "description": "Read", "inputSchema": {"type": "object", "properties": {"k": {}}}}
    assert ToolSpec.from_openai(mcp_tool).parameters["properties"] == {"k": {}}
    with pytest.raises(ValueError):
        ToolSpec(name="bad name!")
