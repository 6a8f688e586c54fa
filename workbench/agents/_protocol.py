"""The tool-call protocol: how tools are shown to the model and how its replies are read back.

Format (fixed, so that rollouts, training rows and serving all render the same text):

* Tools go into the system prompt, after the conversation's own system text (or a default one),
  as a ``# Tools`` section: one block per tool (``NAME: DESCRIPTION`` then ``Arguments: SCHEMA``
  with the JSON schema on one line), then the reply format.
* Worked examples follow as real turns right after the system message: per example a user
  question, the assistant's call, the tool's result and the assistant's ``{"answer": ...}``.
  SmolLM2's template has no tools slot and, zero-shot, the model never emits a JSON call; measured
  on ten arithmetic questions (greedy): 0/10 calls with the example as system-prompt text, 0/10
  with one example turn (it copies the answer form), 5/10 with two, 9/10 with three (the default
  ``max_examples``), and every follow-up after a real tool result was a well-formed answer.
* The model calls a tool by replying with one JSON object ``{"tool": NAME, "arguments": {...}}``
  and ends with ``{"answer": ...}``. The parser also accepts fenced ```json blocks, the OpenAI /
  Hermes shapes ``{"name": NAME, "arguments": ...}`` and ``{"function": {...}}``, lists of calls,
  and plain text (taken as the final answer).
* Tool results go back as a message of role ``tool`` (configurable; ``tool`` measured better than
  ``user``) whose content is the result text, or ``Error: ...`` for failures and unparseable
  replies.

Parsing never raises: malformed output becomes a ``parse_error`` result whose ``error`` is a short
message the loop shows to the model as the observation.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workbench.agents._types import Message, ToolCall, ToolExample, ToolSpec

__all__ = [
    "ParsedOutput",
    "ToolProtocol",
    "format_tool_call",
    "parse_tool_output",
    "example_messages",
    "render_tools_prompt",
    "to_prompt_messages",
]

# Bounds that keep parsing linear-ish on adversarial input.
_MAX_SCAN_CHARS = 32_000
_MAX_OBJECT_STARTS = 64
_MAX_LITERAL_EVAL_CHARS = 4_000

_ARG_KEYS = ("arguments", "args", "parameters", "input")
_ANSWER_KEYS = ("answer", "final_answer")
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[^\n`]*\n?(.*?)(?:```|\Z)", re.DOTALL)
# A reply that *tries* to be a call or an answer but did not parse must be an error, not prose.
_ATTEMPT_RE = re.compile(
    r"""(?:\{|\[\s*\{)\s*["']?(tool|name|function|answer|final_answer|arguments|tool_calls?)["']?\s*:"""
)


class ToolProtocol(BaseModel):
    """Rendering choices of the tool-call protocol (the parser accepts every variant anyway)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_system_prompt: str = Field(
        "You are a helpful assistant.", description="Used when the conversation has no system message."
    )
    tool_result_role: Literal["tool", "user"] = Field(
        "tool", description="Role of the message that carries a tool result back to the model."
    )
    max_examples: int = Field(
        3, ge=0, le=16, description="Most worked examples shown (taken round-robin from the tools' examples)."
    )
    examples_as: Literal["messages", "system"] = Field(
        "messages",
        description="Show examples as real turns after the system message (what SmolLM2 follows) or as text in it.",
    )


DEFAULT_PROTOCOL = ToolProtocol()


class ParsedOutput(BaseModel):
    """What a model reply means under the protocol.

    ``kind`` is ``tool_call`` (``tool_calls`` has one or more calls), ``answer`` (``answer`` holds
    it; ``answer_format`` says whether it came as ``{"answer": ...}`` JSON or plain text) or
    ``parse_error`` (``error`` says why, in a sentence fit to show the model).
    """

    kind: Literal["tool_call", "answer", "parse_error"]
    text: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    answer: str | None = None
    answer_format: Literal["json", "text"] | None = None
    error: str | None = None


# --------------------------------------------------------------------------- rendering


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The canonical text of a call, exactly as the model is taught to write it."""
    return _dumps({"tool": name, "arguments": arguments})


def _format_answer(answer: str) -> str:
    return _dumps({"answer": answer})


def _placeholder(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind, "value")


def _examples_for(tools: Sequence[ToolSpec], protocol: ToolProtocol) -> list[tuple[ToolSpec, ToolExample]]:
    """Up to ``max_examples`` examples, round-robin over the tools; a placeholder one if none has any."""
    if protocol.max_examples == 0 or not tools:
        return []
    chosen: list[tuple[ToolSpec, ToolExample]] = []
    depth = 0
    while len(chosen) < protocol.max_examples and any(len(t.examples) > depth for t in tools):
        for tool in tools:
            if len(tool.examples) > depth and len(chosen) < protocol.max_examples:
                chosen.append((tool, tool.examples[depth]))
        depth += 1
    if chosen:
        return chosen
    # No worked example given: show the shape with type-appropriate placeholder values.
    tool = tools[0]
    props = tool.parameters.get("properties") or {}
    required = tool.parameters.get("required") or list(props)
    args = {k: _placeholder(props.get(k) or {}) for k in required if isinstance(k, str)}
    return [(tool, ToolExample(question=f"Use {tool.name}.", arguments=args, result="(result)", answer="(answer)"))]


def example_messages(tools: Sequence[ToolSpec], protocol: ToolProtocol = DEFAULT_PROTOCOL) -> list[Message]:
    """The worked examples as turns (user, assistant call, tool result, assistant answer) per example."""
    out: list[Message] = []
    for tool, ex in _examples_for(tools, protocol):
        out += [
            {"role": "user", "content": ex.question},
            {"role": "assistant", "content": format_tool_call(tool.name, ex.arguments)},
            {"role": protocol.tool_result_role, "content": ex.result},
            {"role": "assistant", "content": _format_answer(ex.answer)},
        ]
    return out


def render_tools_prompt(tools: Sequence[ToolSpec], protocol: ToolProtocol = DEFAULT_PROTOCOL) -> str:
    """The ``# Tools`` section appended to the system prompt (empty string when there are no tools)."""
    if not tools:
        return ""
    lines = ["# Tools", "", "You can call these tools:", ""]
    for tool in tools:
        lines.append(f"{tool.name}: {tool.description}".rstrip())
        lines.append(f"Arguments: {_dumps(tool.parameters)}")
        lines.append("")
    lines.append(
        'To call a tool, reply with only one JSON object: {"tool": "<tool name>", "arguments": {<arguments>}}'
    )
    lines.append("The tool's result comes back in the next message.")
    lines.append('When you know the final answer, reply with only: {"answer": "<final answer>"}')
    if protocol.examples_as == "system":
        for tool, ex in _examples_for(tools, protocol):
            lines += [
                "",
                "Example:",
                f"User: {ex.question}",
                f"Assistant: {format_tool_call(tool.name, ex.arguments)}",
                f"Tool: {ex.result}",
                f"Assistant: {_format_answer(ex.answer)}",
            ]
    return "\n".join(lines)


def _content_text(content: Any) -> str:
    """Message content as text (OpenAI content parts are joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _tool_calls_text(tool_calls: Iterable[dict[str, Any]]) -> str:
    parts = []
    for call in tool_calls:
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {"_raw": args}
        parts.append(format_tool_call(fn.get("name", ""), args))
    return "\n".join(parts)


def to_prompt_messages(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec] = (),
    protocol: ToolProtocol = DEFAULT_PROTOCOL,
) -> list[Message]:
    """Turn a transcript into plain ``{"role", "content"}`` messages for a chat template.

    The tools section is merged into the (first) system message, assistant messages that carry
    only structured ``tool_calls`` get their canonical JSON text, and tool results take the
    protocol's role. Without tools and tool messages the conversation passes through unchanged,
    so the template's own default system prompt still applies.
    """
    out: list[Message] = []
    tools_text = render_tools_prompt(tools, protocol)
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise ValueError(f"message must be a dict with a 'role': {message!r}"[:200])
        role = message["role"]
        content = _content_text(message.get("content"))
        if role == "assistant" and not content.strip() and message.get("tool_calls"):
            content = _tool_calls_text(message["tool_calls"])
        elif role == "tool":
            role = protocol.tool_result_role
        out.append({"role": role, "content": content})
    if tools_text:
        if out and out[0]["role"] == "system":
            base = out[0]["content"].rstrip()
            system = {"role": "system", "content": f"{base}\n\n{tools_text}" if base else tools_text}
            rest = out[1:]
        else:
            system = {"role": "system", "content": f"{protocol.default_system_prompt}\n\n{tools_text}"}
            rest = out
        shots = example_messages(tools, protocol) if protocol.examples_as == "messages" else []
        out = [system, *shots, *rest]
    return out


# --------------------------------------------------------------------------- parsing


@dataclass
class _Found:
    """One JSON-ish value found in the reply, or why a would-be value did not parse."""

    start: int
    end: int
    value: Any = None
    error: str | None = None
    whole: bool = False  # the value is the entire reply (modulo whitespace / fence)


def _close_brackets(segment: str) -> tuple[int | None, str]:
    """Scan a segment that starts at a bracket: (index of the matching close or None, closers needed)."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(segment):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                return i, ""  # mismatched; let the parsers report it
            stack.pop()
            if not stack:
                return i, ""
    if quote:
        return None, ""  # cut inside a string: do not invent the rest of the value
    return None, "".join(reversed(stack))


def _lenient_loads(segment: str) -> Any:
    """Parse near-JSON: trailing commas, Python-style quoting/literals, missing closing brackets."""
    candidates = [segment]
    cleaned = re.sub(r",\s*([}\]])", r"\1", segment)
    if cleaned != segment:
        candidates.append(cleaned)
    last_error: Exception | None = None
    for text in candidates:
        try:
            return json.loads(text)
        except Exception as exc:  # noqa: BLE001 - any parser failure is just "not JSON"
            last_error = exc
        # literal_eval only for short, backslash-free text: escapes would make it warn (and differ from JSON).
        if len(text) <= _MAX_LITERAL_EVAL_CHARS and "\\" not in text:
            pythonish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", text)))
            try:
                value = ast.literal_eval(pythonish)
            except Exception as exc:  # noqa: BLE001 - SyntaxError, ValueError, RecursionError, MemoryError...
                last_error = exc
            else:
                if isinstance(value, (dict, list)):
                    return value
    raise ValueError(str(last_error) if last_error else "not JSON")


def _parse_segment(text: str, start: int, decoder: json.JSONDecoder) -> tuple[Any, int] | tuple[None, int, str]:
    """Parse the value starting at ``text[start]``: strict first, then lenient. Returns (value, end) or an error."""
    try:
        value, end = decoder.raw_decode(text, start)
        return value, end
    except Exception:  # noqa: BLE001 - fall through to the lenient parser
        pass
    close, closers = _close_brackets(text[start:])
    end = len(text) if close is None else start + close + 1
    segment = text[start:end] + closers
    try:
        return _lenient_loads(segment), end
    except Exception as exc:  # noqa: BLE001
        return None, end, f"malformed JSON ({str(exc).splitlines()[0][:120]})"


def _find_values(text: str) -> list[_Found]:
    decoder = json.JSONDecoder()
    found: list[_Found] = []
    stripped = text.strip()

    # Fenced blocks first: their content is what the model meant as data.
    covered: list[tuple[int, int]] = []
    for match in _FENCE_RE.finditer(text):
        lang = match.group(1).lower()
        body = match.group(2)
        covered.append(match.span())
        if lang not in ("", "json", "json5", "tool", "tool_call", "tool_code"):
            continue
        body_stripped = body.strip()
        if not body_stripped or body_stripped[0] not in "{[":
            if lang.startswith("json") or lang.startswith("tool"):
                error = "the ```json block holds no JSON object"
                found.append(_Found(start=match.start(), end=match.end(), error=error))
            continue
        offset = match.start(2) + (len(body) - len(body.lstrip()))
        parsed = _parse_segment(text, offset, decoder)
        whole = stripped == match.group(0).strip()
        if len(parsed) == 2:
            found.append(_Found(start=match.start(), end=match.end(), value=parsed[0], whole=whole))
        else:
            found.append(_Found(start=match.start(), end=match.end(), error=parsed[2], whole=whole))

    # Then bare objects / arrays outside the fences.
    attempts = 0
    i = 0
    while i < len(text) and attempts < _MAX_OBJECT_STARTS:
        ch = text[i]
        inside = next((e for s, e in covered if s <= i < e), None)
        if inside is not None:
            i = inside
            continue
        if ch not in "{[":
            i += 1
            continue
        attempts += 1
        parsed = _parse_segment(text, i, decoder)
        if len(parsed) == 2:
            value, end = parsed
            if isinstance(value, (dict, list)):
                whole = text[i:end].strip() == stripped
                found.append(_Found(start=i, end=end, value=value, whole=whole))
                covered.append((i, end))
                i = end
                continue
        elif _ATTEMPT_RE.match(text, i):
            found.append(_Found(start=i, end=parsed[1], error=parsed[2]))
            i = max(parsed[1], i + 1)
            continue
        i += 1
    found.sort(key=lambda f: f.start)
    return found


_Classified = tuple[Literal["calls", "answer", "error", "none"], Any]


def _lower_keys(d: dict[Any, Any]) -> dict[str, Any]:
    return {k.lower() if isinstance(k, str) else k: v for k, v in d.items()}


def _classify(value: Any, depth: int = 0) -> _Classified:
    """Decide what one JSON value is: tool call(s), an answer, an error, or unrelated data."""
    if depth > 3:
        return "none", None
    if isinstance(value, list):
        calls: list[tuple[Any, Any]] = []
        for item in value:
            kind, payload = _classify(item, depth + 1)
            if kind != "calls":
                return ("error", payload) if kind == "error" else ("none", None)
            calls.extend(payload)
        return ("calls", calls) if calls else ("none", None)
    if not isinstance(value, dict):
        return "none", None
    d = _lower_keys(value)
    if isinstance(d.get("tool_calls"), list):
        return _classify(d["tool_calls"], depth + 1)
    if isinstance(d.get("tool_call"), dict):
        return _classify(d["tool_call"], depth + 1)
    if isinstance(d.get("function"), dict) and "name" in _lower_keys(d["function"]):
        return _classify(d["function"], depth + 1)

    has_args = any(k in d for k in _ARG_KEYS)
    is_call = "tool" in d or ("name" in d and has_args)
    answer_key = next((k for k in _ANSWER_KEYS if k in d), None)
    if is_call and answer_key:
        return "error", "reply with either a tool call or an answer, not both in one object"
    if answer_key:
        answer = d[answer_key]
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            return "error", "the answer is empty"
        return "answer", answer if isinstance(answer, str) else _dumps(answer)
    if not is_call:
        return "none", None
    name = d.get("tool", d.get("name"))
    if isinstance(name, dict):  # {"tool": {"name": ..., "arguments": ...}}
        return _classify(name, depth + 1)
    if not isinstance(name, str) or not name.strip():
        return "error", "the tool name must be a non-empty string"
    args = next((d[k] for k in _ARG_KEYS if k in d), None)
    if args is None:
        args = {}
    if isinstance(args, str):  # OpenAI encodes arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except Exception:  # noqa: BLE001
            return "error", f"the arguments of {name!r} are not a JSON object"
    if not isinstance(args, dict):
        return "error", f"the arguments of {name!r} must be a JSON object"
    return "calls", [(name.strip(), args)]


def _check_call(name: str, args: dict[str, Any], tools: dict[str, ToolSpec] | None) -> str | None:
    if tools is None:
        return None
    spec = tools.get(name)
    if spec is None:
        available = ", ".join(sorted(tools)) or "none"
        return f"unknown tool {name[:64]!r} (available: {available})"
    required = spec.parameters.get("required") or []
    missing = [k for k in required if isinstance(k, str) and k not in args]
    if missing:
        return f"tool {name!r} is missing required argument(s): {', '.join(missing)}"
    return None


def parse_tool_output(
    text: str,
    tools: Sequence[ToolSpec] | Sequence[str] | None = None,
    *,
    call_id_prefix: str = "call",
) -> ParsedOutput:
    """Read a model reply under the protocol; never raises.

    ``tools`` (specs or names) enables checks: unknown tool names and, with specs, missing required
    arguments become parse errors. Calls get ids ``{call_id_prefix}_{i}``. If the reply holds
    several objects, the leading run of tool calls is taken and anything after it is ignored
    (small models often go on to imagine the tool's result and their answer).
    """
    try:
        return _parse(text, tools, call_id_prefix)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"; this is a safety net
        error = f"unreadable reply ({type(exc).__name__})"
        return ParsedOutput(kind="parse_error", text=str(text)[:_MAX_SCAN_CHARS], error=error)


def _parse(text: Any, tools: Sequence[ToolSpec] | Sequence[str] | None, prefix: str) -> ParsedOutput:
    if not isinstance(text, str):
        return ParsedOutput(kind="parse_error", text=str(text), error="the reply is not text")
    tool_map: dict[str, ToolSpec] | None = None
    if tools is not None:
        tool_map = {}
        for tool in tools:
            spec = tool if isinstance(tool, ToolSpec) else ToolSpec(name=str(tool))
            tool_map[spec.name] = spec
    scan = text[:_MAX_SCAN_CHARS]
    if not scan.strip():
        return ParsedOutput(kind="parse_error", text=text, error="the reply is empty")

    found = _find_values(scan)
    calls: list[tuple[str, dict[str, Any]]] = []
    first_error: str | None = None
    unrelated_whole = False
    for item in found:
        if item.error is not None:
            if calls:
                break  # the leading run of calls ended
            first_error = first_error or item.error
            continue
        kind, payload = _classify(item.value)
        if kind == "calls":
            if first_error is not None:
                break  # a broken object came first: report it rather than guess
            calls.extend(payload)
            continue
        if calls:
            break
        if kind == "answer":
            if first_error is not None:
                break
            return ParsedOutput(kind="answer", text=text, answer=payload, answer_format="json")
        if kind == "error":
            first_error = first_error or payload
            continue
        unrelated_whole = unrelated_whole or item.whole

    if calls:
        tool_calls = []
        for i, (name, args) in enumerate(calls):
            problem = _check_call(name, args, tool_map)
            if problem:
                return ParsedOutput(kind="parse_error", text=text, error=problem)
            tool_calls.append(ToolCall(id=f"{prefix}_{i}", name=name, arguments=args))
        return ParsedOutput(kind="tool_call", text=text, tool_calls=tool_calls)
    if first_error is not None:
        return ParsedOutput(kind="parse_error", text=text, error=first_error)
    if unrelated_whole:
        return ParsedOutput(
            kind="parse_error", text=text, error='the JSON reply has neither a "tool" nor an "answer" key'
        )
    rest = scan
    for item in found:  # values that parsed (as unrelated data) are not failed attempts
        if item.error is None:
            rest = rest[: item.start] + " " * (item.end - item.start) + rest[item.end :]
    if _ATTEMPT_RE.search(rest):
        return ParsedOutput(kind="parse_error", text=text, error="malformed tool call JSON")
    if scan.lstrip()[:1] in ("{", "[") or scan.lstrip().startswith("```json"):
        # A reply that opens like JSON but holds no readable value is a failed call, not prose.
        return ParsedOutput(kind="parse_error", text=text, error="malformed JSON reply")
    return ParsedOutput(kind="answer", text=text, answer=text.strip(), answer_format="text")
