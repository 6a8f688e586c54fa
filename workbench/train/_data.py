"""Training data: load rows from a file or memory, check they fit the algorithm, normalize them.

Checks run before any model is loaded and raise :class:`ValidationFailed` naming the row and
field (``dataset[3].messages[1].role``). Normalization renders every conversation through the
agents' tool-call protocol (:func:`workbench.agents.to_prompt_messages`): structured
``tool_calls`` become the JSON text the model is taught to write, so training text is exactly
what the engines show and parse at inference, and every message is a plain ``{role, content}``
(the chat template has no slot for the other fields).

No torch here: rows are plain Python; the trainers turn them into ``datasets.Dataset``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.errors import ValidationFailed

__all__ = ["DATASET_KINDS", "load_rows", "validate_dataset"]

ROLES = ("system", "user", "assistant", "tool")

# What each algorithm trains on (names as in workbench.data's dataset kinds).
DATASET_KINDS = {
    "sft": "sft",
    "dpo": "preference",
    "rm": "preference",
    "grpo": "rl_prompts",
    "ppo": "rl_prompts",
    "rft": "rl_prompts",
}
_SHAPES = {
    "sft": "chat rows {messages: [...]}",
    "preference": "preference rows {prompt, chosen, rejected} (each a list of messages)",
    "rl_prompts": "prompt rows {prompt: [messages], ...extra columns}",
}


def _plain(value: Any) -> Any:
    """numpy arrays / scalars (pandas, parquet via pandas) → Python lists and numbers."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_rows(source: Any, field: str = "dataset") -> list[dict[str, Any]]:
    """Rows from a ``.jsonl`` / ``.json`` / ``.parquet`` path, a ``datasets.Dataset``, a DataFrame or a list."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValidationFailed(field, f"no dataset file at {path}")
        suffix = path.suffix.lower()
        try:
            if suffix in (".jsonl", ".ndjson"):
                rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            elif suffix == ".json":
                data = json.loads(path.read_text())
                rows = data.get("rows", data.get("data")) if isinstance(data, dict) else data
            elif suffix == ".parquet":
                import pyarrow.parquet as pq

                rows = pq.read_table(path).to_pylist()
            else:
                raise ValidationFailed(field, f"unsupported dataset file type {suffix!r} (use .jsonl, .json or .parquet)")
        except ValidationFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad dataset file
            raise ValidationFailed(field, f"cannot read {path.name}: {str(exc).splitlines()[0][:200]}") from exc
    elif hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas DataFrame
        rows = source.to_dict("records")
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):  # datasets.Dataset
        rows = source.to_list()
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        rows = list(source)
    else:
        raise ValidationFailed(field, "must be a dataset file path, a list of rows, a DataFrame or a datasets.Dataset")
    if not isinstance(rows, list):
        raise ValidationFailed(field, "must hold a list of rows")
    if not rows:
        raise ValidationFailed(field, "is empty")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValidationFailed(f"{field}[{i}]", "a row must be an object")
        out.append(_plain(dict(row)))
    return out


def _check_messages(messages: Any, where: str, *, need_assistant: bool = False, prompt: bool = False) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed(where, "must be a non-empty list of messages")
    for j, message in enumerate(messages):
        at = f"{where}[{j}]"
        if not isinstance(message, Mapping):
            raise ValidationFailed(at, "a message must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise ValidationFailed(f"{at}.role", f"must be one of {', '.join(ROLES)}, not {role!r}")
        content = message.get("content")
        tool_calls = message.get("tool_calls")
        if content is not None and not isinstance(content, str):
            raise ValidationFailed(f"{at}.content", "must be a string or null")
        if tool_calls is not None:
            if role != "assistant":
                raise ValidationFailed(f"{at}.tool_calls", "only assistant messages carry tool calls")
            if not isinstance(tool_calls, list):
                raise ValidationFailed(f"{at}.tool_calls", "must be a list or null")
            for k, call in enumerate(tool_calls):
                fn = call.get("function", call) if isinstance(call, Mapping) else None
                if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
                    raise ValidationFailed(f"{at}.tool_calls[{k}].function.name", "must be a non-empty string")
                args = fn.get("arguments")
                if isinstance(args, str) and args.strip():
                    try:
                        args = json.loads(args)
                    except ValueError as exc:
                        raise ValidationFailed(f"{at}.tool_calls[{k}].function.arguments", "is not valid JSON") from exc
                if args is not None and not isinstance(args, (Mapping, str)):
                    raise ValidationFailed(f"{at}.tool_calls[{k}].function.arguments", "must be a JSON object")
    if need_assistant and not any(
        m.get("role") == "assistant" and ((m.get("content") or "").strip() or m.get("tool_calls")) for m in messages
    ):
        raise ValidationFailed(where, "has no assistant message (with content or tool_calls) to learn from")
    if prompt and messages[-1].get("role") == "assistant":
        raise ValidationFailed(f"{where}[{len(messages) - 1}].role", "a prompt must not end with the assistant's turn")


def _wrong_kind_hint(row: Mapping[str, Any]) -> str:
    if "messages" in row:
        return " (this looks like an sft dataset: rows with 'messages')"
    if "chosen" in row and "rejected" in row:
        return " (this looks like a preference dataset: rows with 'chosen' / 'rejected')"
    if "steps" in row:
        return " (this looks like a trajectories dataset; convert it to sft or rl_prompts rows first)"
    if "prompt" in row:
        return " (this looks like an rl_prompts dataset: rows with only a 'prompt')"
    return ""


def _require(row: Mapping[str, Any], key: str, i: int, algorithm: str, field: str) -> Any:
    if key not in row or row[key] is None:
        kind = DATASET_KINDS[algorithm]
        raise ValidationFailed(
            f"{field}[{i}].{key}",
            f"missing; {algorithm} needs {_SHAPES[kind]}{_wrong_kind_hint(row)}",
        )
    return row[key]


def _tool_specs(row: Mapping[str, Any], at: str) -> list[Any]:
    """The row's ``tools`` (OpenAI-format schemas, as a list or its JSON) as ToolSpecs."""
    from workbench.agents import ToolSpec

    tools = row.get("tools")
    if tools is None:
        return []
    try:
        schemas = json.loads(tools) if isinstance(tools, str) else list(tools)
        return [ToolSpec.from_openai(schema) for schema in schemas]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationFailed(f"{at}.tools", f"not a list of tool schemas: {exc}") from None


def _normalize(messages: list[dict[str, Any]], tools: Sequence[Any] = ()) -> list[dict[str, str]]:
    from workbench.agents import to_prompt_messages

    return [{"role": m["role"], "content": m["content"]} for m in to_prompt_messages(messages, tools)]


def validate_dataset(algorithm: str, source: Any, *, field: str = "dataset") -> list[dict[str, Any]]:
    """Load ``source`` and check that its rows fit ``algorithm``; returns normalized rows.

    * ``sft``: ``messages`` with at least one assistant turn → ``{messages}``.
    * ``dpo`` / ``rm``: ``prompt``, ``chosen``, ``rejected`` (lists of messages; the two replies
      made of assistant / tool turns) → ``{prompt, chosen, rejected}``.
    * ``grpo`` / ``ppo`` / ``rft``: ``prompt`` (not ending with an assistant turn) → the prompt plus
      every extra column (they reach reward functions and verifiers as keyword arguments).
    """
    from workbench.train._types import normalize_algorithm

    algorithm = normalize_algorithm(algorithm)
    rows = load_rows(source, field)
    kind = DATASET_KINDS[algorithm]
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        at = f"{field}[{i}]"
        if kind == "sft":
            messages = _require(row, "messages", i, algorithm, field)
            _check_messages(messages, f"{at}.messages", need_assistant=True)
            out.append({"messages": _normalize(messages, _tool_specs(row, at))})
        elif kind == "preference":
            prompt = _require(row, "prompt", i, algorithm, field)
            chosen = _require(row, "chosen", i, algorithm, field)
            rejected = _require(row, "rejected", i, algorithm, field)
            _check_messages(prompt, f"{at}.prompt", prompt=True)
            for name, reply in (("chosen", chosen), ("rejected", rejected)):
                _check_messages(reply, f"{at}.{name}", need_assistant=True)
                if reply[0].get("role") != "assistant":
                    raise ValidationFailed(f"{at}.{name}[0].role", "a reply must start with the assistant's turn")
            tools = _tool_specs(row, at)
            out.append({"prompt": _normalize(prompt, tools), "chosen": _normalize(chosen), "rejected": _normalize(rejected)})
        else:
            prompt = _require(row, "prompt", i, algorithm, field)
            if "chosen" in row and "rejected" in row:
                raise ValidationFailed(at, f"{algorithm} needs {_SHAPES[kind]}{_wrong_kind_hint(row)}")
            _check_messages(prompt, f"{at}.prompt", prompt=True)
            extra = {k: v for k, v in row.items() if k not in ("prompt", "completion", "completion_ids", "tools")}
            out.append({"prompt": _normalize(prompt, _tool_specs(row, at)), **extra})
    if kind == "rl_prompts":
        _check_columns(out, field)
    return out


def _check_columns(rows: list[dict[str, Any]], field: str) -> None:
    """Extra columns must form one Arrow type each (datasets needs that); say which one does not."""
    import pyarrow as pa

    columns = {k for row in rows for k in row if k != "prompt"}
    for column in sorted(columns):
        try:
            pa.array([row.get(column) for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValidationFailed(f"{field}.{column}", f"values of mixed types: {str(exc)[:160]}") from exc
